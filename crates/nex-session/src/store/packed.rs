//! [`PackedFields`]: a session's fields in one shared buffer.
//!
//! The memory store keeps every session this way (about a dozen bytes for one
//! small field), and a request's snapshot of its session is the same buffer
//! shared, not a copy: reading a session from memory costs no allocation.

use std::sync::Arc;

use super::Fields;

/// A session's fields, packed as `varint(len) key varint(len) value` pairs in
/// key order, in one reference-counted buffer (cloning it is a counter increment).
///
/// ```
/// use nex_session::store::{Fields, PackedFields};
///
/// let mut fields = Fields::new();
/// fields.insert("user_id".into(), b"42".to_vec());
/// let packed = PackedFields::from_fields(&fields);
/// assert_eq!(packed.get("user_id"), Some(&b"42"[..]));
/// assert_eq!(packed.get("cart"), None);
/// assert_eq!(packed.to_fields(), fields);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PackedFields(Arc<[u8]>);

impl PackedFields {
    /// Packs fields.
    pub fn from_fields(fields: &Fields) -> Self {
        Self::default().merged(fields.iter().map(|(k, v)| (k.as_str(), Some(v.as_slice()))))
    }

    /// The value of `field`, if present.
    pub fn get(&self, field: &str) -> Option<&[u8]> {
        self.iter().find(|(k, _)| *k == field).map(|(_, v)| v)
    }

    /// Every `(field, value)`, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        entries(&self.0)
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

    /// The packed bytes (for the memory store's writes).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// These fields with `changes` (in key order; `None` deletes) merged in, in one pass.
    pub(crate) fn merged<'a>(&self, changes: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>) -> Self {
        let mut out = Vec::with_capacity(self.0.len() + 32);
        let mut push = |key: &str, value: &[u8]| {
            put_varint(&mut out, key.len());
            out.extend_from_slice(key.as_bytes());
            put_varint(&mut out, value.len());
            out.extend_from_slice(value);
        };
        let mut old = self.iter().peekable();
        for (key, change) in changes {
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

    /// Replaces the bytes at `at..at + value.len()` (a value of the same length), in
    /// place when no request holds a snapshot of these fields, else in a copy.
    pub(crate) fn overwrite(&mut self, at: usize, value: &[u8]) {
        let range = at..at.saturating_add(value.len());
        if let Some(bytes) = Arc::get_mut(&mut self.0) {
            if let Some(old) = bytes.get_mut(range) {
                old.copy_from_slice(value);
            }
            return;
        }
        let mut copy = self.0.to_vec();
        if let Some(old) = copy.get_mut(range) {
            old.copy_from_slice(value);
        }
        self.0 = Arc::from(copy.as_slice());
    }
}

impl std::fmt::Debug for PackedFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k, String::from_utf8_lossy(v)))).finish()
    }
}

/// The `(key, value)` pairs of packed fields, in key order.
/// Only this module writes them, so they are well formed; iteration stops quietly if not.
fn entries(mut packed: &[u8]) -> impl Iterator<Item = (&str, &[u8])> {
    std::iter::from_fn(move || {
        let (key, rest) = take_chunk(packed)?;
        let (value, rest) = take_chunk(rest)?;
        packed = rest;
        Some((std::str::from_utf8(key).ok()?, value))
    })
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_chunk(input: &[u8]) -> Option<(&[u8], &[u8])> {
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
        assert_eq!(PackedFields::from_fields(&all).to_fields(), all);
        assert_eq!(PackedFields::from_fields(&all).len(), 3);
    }

    #[test]
    fn merge_puts_replaces_and_deletes_in_key_order() {
        let packed = PackedFields::from_fields(&fields(&[("b", "2"), ("d", "4")]));
        let changes =
            [("a", Some(&b"1"[..])), ("b", None), ("c", Some(&b"3"[..])), ("d", Some(&b"44"[..])), ("e", None)];
        let merged = packed.merged(changes.into_iter());
        assert_eq!(merged.to_fields(), fields(&[("a", "1"), ("c", "3"), ("d", "44")]));
    }

    #[test]
    fn one_small_field_packs_into_a_dozen_bytes() {
        assert_eq!(PackedFields::from_fields(&fields(&[("user_id", "42")])).bytes().len(), 11);
    }

    #[test]
    fn an_overwrite_never_changes_a_snapshot_someone_holds() {
        let mut packed = PackedFields::from_fields(&fields(&[("n", "41")]));
        let snapshot = packed.clone();
        let at = packed.bytes().len() - 2;
        packed.overwrite(at, b"42");
        assert_eq!(packed.get("n"), Some(&b"42"[..]));
        assert_eq!(snapshot.get("n"), Some(&b"41"[..]), "the held snapshot is untouched");
        drop(snapshot);
        packed.overwrite(at, b"43");
        assert_eq!(packed.get("n"), Some(&b"43"[..]));
    }
}
