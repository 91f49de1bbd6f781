//! [`Snapshot`]: a session's fields, read-only and cheap to share.
//!
//! A request reads its session once and keeps what it read for the rest of the
//! request. Building a map of owned strings for that costs an allocation per
//! field, so a snapshot keeps every field in one reference-counted buffer
//! instead: cloning it is a counter increment, and the in-memory store hands a
//! request the very buffer it stores (no copy at all).
//!
//! The layout is private to this file: `varint(len) key varint(len) value`
//! pairs, in key order. Stores other than the in-memory one only ever build
//! snapshots with [`Snapshot::from_fields`].

use std::ops::Range;
use std::sync::Arc;

use super::Fields;

/// A read-only snapshot of a session's fields; cloning it is cheap.
///
/// What [`FastReads::load_now`](super::FastReads::load_now) hands out.
///
/// ```
/// use nex_session::store::{Fields, Snapshot};
///
/// let mut fields = Fields::new();
/// fields.insert("user_id".into(), b"42".to_vec());
/// let snapshot = Snapshot::from_fields(&fields);
/// assert_eq!(snapshot.get("user_id"), Some(&b"42"[..]));
/// assert_eq!(snapshot.get("cart"), None);
/// assert_eq!(snapshot.to_fields(), fields);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Snapshot(Arc<[u8]>);

/// Where one value sits in a snapshot's buffer; only made by [`Snapshot::find`].
#[derive(Debug, Clone)]
pub(crate) struct ValueSpan(Range<usize>);

/// A field found in a snapshot: its value, and where the value sits.
pub(crate) struct Found<'a> {
    pub(crate) value: &'a [u8],
    pub(crate) span: ValueSpan,
}

impl Snapshot {
    /// A snapshot of `fields`.
    pub fn from_fields(fields: &Fields) -> Self {
        Self::default().merged(fields.iter().map(|(k, v)| (k.as_str(), Some(v.as_slice()))))
    }

    /// The value of `field`, if present.
    pub fn get(&self, field: &str) -> Option<&[u8]> {
        // The hot path of every `get` (and of the end of a request, which asks for
        // the reserved binding field): compare bytes, and stop once a key is past
        // `field`, since keys are in order (byte order is `str` order). The first
        // bytes first: a key that starts differently is passed (or ends the search)
        // without a call to compare the rest; a full order comparison of every key
        // passed cost more than the stop saves.
        let field = field.as_bytes();
        let mut rest: &[u8] = &self.0;
        while let Some((key, after_key)) = take_chunk(rest) {
            let (value, after_value) = take_chunk(after_key)?;
            match key.first().cmp(&field.first()) {
                std::cmp::Ordering::Greater => return None,
                std::cmp::Ordering::Equal if key == field => return Some(value),
                _ => {}
            }
            rest = after_value;
        }
        None
    }

    /// Every `(field, value)`, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.raw_entries().map_while(|(key, value)| Some((std::str::from_utf8(key).ok()?, value)))
    }

    /// Every `(field, value)` with the field as bytes, in field order: what the
    /// write paths walk. Keys went in as `str`, and byte order is `str` order, so
    /// they compare as bytes without a UTF-8 check per key (which cost about 190
    /// instructions of every write that changed a value's length).
    fn raw_entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (key, after_key) = take_chunk(rest)?;
            let (value, after_value) = take_chunk(after_key)?;
            rest = after_value;
            Some((key, value))
        })
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields as a map.
    pub fn to_fields(&self) -> Fields {
        // Entries come in key order: inserting one by one skips `collect`'s buffer and sort.
        let mut fields = Fields::new();
        for (k, v) in self.iter() {
            fields.insert(k.to_owned(), v.to_vec());
        }
        fields
    }

    /// The value of `field` and where it sits, for an [`overwrite`](Self::overwrite).
    pub(crate) fn find(&self, field: &str) -> Option<Found<'_>> {
        let field = field.as_bytes();
        Entries { rest: &self.0, offset: 0 }.find(|entry| entry.key == field).map(|entry| entry.found)
    }

    /// These fields with `changes` (in key order; `None` deletes) merged in, in one
    /// pass: what a store that keeps snapshots (a cache) makes of its own write.
    ///
    /// ```
    /// use nex_session::store::{Fields, Snapshot};
    ///
    /// let fields = Fields::from([("a".to_owned(), b"1".to_vec()), ("b".to_owned(), b"2".to_vec())]);
    /// let merged = Snapshot::from_fields(&fields).merged([("a", None), ("c", Some(&b"3"[..]))].into_iter());
    /// assert_eq!(merged.get("a"), None);
    /// assert_eq!(merged.get("c"), Some(&b"3"[..]));
    /// ```
    pub fn merged<'a>(&self, changes: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>) -> Self {
        let mut out = Vec::with_capacity(self.0.len() + 32);
        let mut push = |key: &[u8], value: &[u8]| {
            put_varint(&mut out, key.len());
            out.extend_from_slice(key);
            put_varint(&mut out, value.len());
            out.extend_from_slice(value);
        };
        let mut old = self.raw_entries().peekable();
        for (key, change) in changes {
            let key = key.as_bytes();
            while let Some((k, v)) = old.next_if(|(k, _)| *k < key) {
                push(k, v);
            }
            // An existing entry with this key is replaced (or deleted).
            let _ = old.next_if(|(k, _)| *k == key);
            if let Some(value) = change {
                push(key, value);
            }
        }
        for (k, v) in old {
            push(k, v);
        }
        // An exact-size buffer: shrinking `out` in place would leave a small free gap
        // after every stored session, which the allocator rarely reuses.
        Self(Arc::from(out.as_slice()))
    }

    /// Replaces the value at `span` (found in this snapshot) with `value`, which
    /// has the same length: in place when no request holds this snapshot, else in
    /// a copy, so a snapshot a request holds never changes under it. A span or a
    /// length that does not fit changes nothing and answers `false`.
    pub(crate) fn overwrite(&mut self, span: &ValueSpan, value: &[u8]) -> bool {
        if span.0.len() != value.len() || span.0.end > self.0.len() {
            return false;
        }
        // `make_mut` copies the buffer first when someone else holds it.
        match Arc::make_mut(&mut self.0).get_mut(span.0.clone()) {
            Some(old) => {
                old.copy_from_slice(value);
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k, String::from_utf8_lossy(v)))).finish()
    }
}

/// One entry of a buffer.
struct Entry<'a> {
    key: &'a [u8],
    found: Found<'a>,
}

/// The entries of a buffer with where their values sit, in key order (for
/// `find`). Only this file writes buffers, so they are well formed; iteration
/// stops quietly if not.
struct Entries<'a> {
    rest: &'a [u8],
    /// Where `rest` starts in the whole buffer.
    offset: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (key, after_key) = take_chunk(self.rest)?;
        let (value, rest) = take_chunk(after_key)?;
        // A value ends where the rest begins.
        let value_end = self.offset + (self.rest.len() - rest.len());
        self.offset = value_end;
        self.rest = rest;
        let span = ValueSpan(value_end - value.len()..value_end);
        Some(Entry { key, found: Found { value, span } })
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Splits a `varint(len) bytes` chunk off the front: `(bytes, rest)`.
// Inline: the loop of `get` calls it twice per field (out of line since the
// one-byte fast path made it bigger, it cost a call per chunk).
#[inline]
fn take_chunk(input: &[u8]) -> Option<(&[u8], &[u8])> {
    // Keys and most values are shorter than 128 bytes: a one-byte length.
    if let Some((&len, rest)) = input.split_first() {
        if len < 0x80 {
            let len = usize::from(len);
            return (len <= rest.len()).then(|| rest.split_at(len));
        }
    }
    let mut len = 0usize;
    let mut shift = 0u32;
    for (i, b) in input.iter().enumerate() {
        len |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            let rest = input.get(i + 1..)?;
            return (len <= rest.len()).then(|| rest.split_at(len));
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn packing_round_trips_including_long_values() {
        let mut all = fields(&[("a", ""), ("user_id", "42")]);
        all.insert("big".into(), vec![7; 100_000]);
        assert_eq!(Snapshot::from_fields(&all).to_fields(), all);
        assert_eq!(Snapshot::from_fields(&all).len(), 3);
    }

    #[test]
    fn merge_puts_replaces_and_deletes_in_key_order() {
        let snapshot = Snapshot::from_fields(&fields(&[("b", "2"), ("d", "4")]));
        let changes =
            [("a", Some(&b"1"[..])), ("b", None), ("c", Some(&b"3"[..])), ("d", Some(&b"44"[..])), ("e", None)];
        let merged = snapshot.merged(changes.into_iter());
        assert_eq!(merged.to_fields(), fields(&[("a", "1"), ("c", "3"), ("d", "44")]));
    }

    #[test]
    fn get_finds_every_key_and_nothing_else_whatever_it_sorts_before_or_after() {
        let all = fields(&[("Z", "1"), ("_nex_user", "2"), ("a", "3"), ("user_id", "4"), ("é", "5")]);
        let snapshot = Snapshot::from_fields(&all);
        for (field, value) in &all {
            assert_eq!(snapshot.get(field), Some(value.as_slice()), "{field}");
        }
        for missing in ["", "A", "_nex_seen", "b", "user", "user_id2", "zz", "ê", "ë"] {
            assert_eq!(snapshot.get(missing), None, "{missing}");
        }
        assert_eq!(Snapshot::default().get("a"), None);
        // Lengths of two bytes and more (the short path takes one-byte lengths only).
        let (long_key, long_value) = ("k".repeat(130), "v".repeat(20_000));
        let long = fields(&[("a", "1"), (&long_key, &long_value), ("z", &"w".repeat(128))]);
        let snapshot = Snapshot::from_fields(&long);
        for (field, value) in &long {
            assert_eq!(snapshot.get(field), Some(value.as_slice()), "{}", field.len());
        }
        assert_eq!(snapshot.get(&"k".repeat(129)), None);
    }

    #[test]
    fn one_small_field_packs_into_a_dozen_bytes() {
        assert_eq!(Snapshot::from_fields(&fields(&[("user_id", "42")])).0.len(), 11);
    }

    #[test]
    fn find_gives_the_span_of_each_value() {
        let mut all = fields(&[("a", "x"), ("n", "41"), ("z", "")]);
        all.insert("long".into(), vec![b'l'; 300]);
        let snapshot = Snapshot::from_fields(&all);
        for (field, value) in &all {
            let found = snapshot.find(field).unwrap();
            assert_eq!(found.value, value.as_slice());
            assert_eq!(snapshot.0.get(found.span.0.clone()), Some(value.as_slice()), "span of {field}");
        }
        assert!(snapshot.find("missing").is_none());
    }

    #[test]
    fn an_overwrite_never_changes_a_snapshot_someone_holds() {
        let mut snapshot = Snapshot::from_fields(&fields(&[("a", "x"), ("n", "41"), ("z", "y")]));
        let span = snapshot.find("n").unwrap().span;
        let held = snapshot.clone();
        assert!(snapshot.overwrite(&span, b"42"));
        assert_eq!(snapshot.get("n"), Some(&b"42"[..]));
        assert_eq!(held.get("n"), Some(&b"41"[..]), "the held snapshot is untouched");
        drop(held);
        assert!(snapshot.overwrite(&span, b"43"));
        assert_eq!(snapshot.to_fields(), fields(&[("a", "x"), ("n", "43"), ("z", "y")]));
        assert!(!snapshot.overwrite(&span, b"100"), "another length is refused");
        assert_eq!(snapshot.get("n"), Some(&b"43"[..]));
    }
}
