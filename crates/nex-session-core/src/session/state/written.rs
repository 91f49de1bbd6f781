//! [`Written`]: the values a request already wrote to the store, so its later
//! reads see them.

use crate::store::{Change, Changes};

/// One field this request wrote: its name and, for a put, its value, in one
/// buffer, so recording a write allocates once (a `String` for the name and a
/// copy of the value allocated twice, about 200 instructions of every hot write).
pub(super) struct WrittenField {
    /// The field's name, then its value (nothing after the name for a delete).
    bytes: Vec<u8>,
    /// Where the name ends in `bytes`.
    name_len: usize,
    /// A put (the value follows the name), not a delete.
    put: bool,
}

impl WrittenField {
    /// A put of `value` under `field`.
    pub(super) fn put(field: &str, value: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(field.len() + value.len());
        bytes.extend_from_slice(field.as_bytes());
        bytes.extend_from_slice(value);
        Self { bytes, name_len: field.len(), put: true }
    }

    /// A delete of `field`.
    pub(super) fn delete(field: &str) -> Self {
        Self { bytes: field.as_bytes().to_vec(), name_len: field.len(), put: false }
    }

    /// `change` of `field`.
    pub(super) fn of(field: &str, change: &Change) -> Self {
        match change.value() {
            Some(value) => Self::put(field, value),
            None => Self::delete(field),
        }
    }

    fn name(&self) -> &[u8] {
        self.bytes.get(..self.name_len).unwrap_or_default()
    }

    /// The value written: `None` for a delete.
    fn value(&self) -> Option<&[u8]> {
        self.put.then(|| self.bytes.get(self.name_len..).unwrap_or_default())
    }

    fn into_change(self) -> Option<(String, Change)> {
        let value = self.value().map(<[u8]>::to_vec);
        let name = String::from_utf8(self.name().to_vec()).ok()?;
        Some((name, value.map_or(Change::Delete, Change::Put)))
    }
}

/// The fields this request wrote (flushed or `update`d), in the order written.
///
/// A request writes a handful of fields at most, so a short list searched from
/// the front serves it better than a map (a `BTreeMap` allocated a node of some
/// 500 bytes for the first entry), and the first field is kept without a `Vec`:
/// most requests that write, write one field.
#[derive(Default)]
pub(super) struct Written {
    first: Option<WrittenField>,
    more: Vec<WrittenField>,
}

impl Written {
    /// What this request wrote to `field`: `None` if it did not write it,
    /// `Some(None)` if it deleted it.
    pub(super) fn get(&self, field: &str) -> Option<Option<&[u8]>> {
        self.iter().find(|written| written.name() == field.as_bytes()).map(WrittenField::value)
    }

    /// Records a write, replacing an earlier one of the same field.
    pub(super) fn insert(&mut self, field: WrittenField) {
        let slot = match &mut self.first {
            None => &mut self.first,
            Some(first) if first.name() == field.name() => &mut self.first,
            Some(_) => match self.more.iter_mut().position(|written| written.name() == field.name()) {
                Some(index) => {
                    if let Some(earlier) = self.more.get_mut(index) {
                        *earlier = field;
                    }
                    return;
                }
                None => {
                    self.more.push(field);
                    return;
                }
            },
        };
        *slot = Some(field);
    }

    /// Records a batch that was written.
    pub(super) fn extend(&mut self, batch: &Changes) {
        for (field, change) in batch {
            self.insert(WrittenField::of(field, change));
        }
    }

    /// Forgets every write (the session they went to is gone).
    pub(super) fn clear(&mut self) {
        self.first = None;
        self.more.clear();
    }

    /// Every write, for a fresh session that must carry them.
    pub(super) fn into_changes(self) -> Changes {
        self.first.into_iter().chain(self.more).filter_map(WrittenField::into_change).collect()
    }

    fn iter(&self) -> impl Iterator<Item = &WrittenField> {
        self.first.iter().chain(&self.more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_write_of_a_field_replaces_the_earlier_one() {
        let mut written = Written::default();
        written.insert(WrittenField::put("a", b"1"));
        written.extend(&[("b".to_owned(), Change::Delete), ("a".to_owned(), Change::Put(b"2".to_vec()))].into());
        written.insert(WrittenField::put("c", b""));
        written.insert(WrittenField::put("b", b"3"));
        assert_eq!(written.get("a"), Some(Some(&b"2"[..])));
        assert_eq!(written.get("b"), Some(Some(&b"3"[..])));
        assert_eq!(written.get("c"), Some(Some(&b""[..])), "an empty value is a put, not a delete");
        assert_eq!(written.get("d"), None);
        written.insert(WrittenField::of("b", &Change::Delete));
        assert_eq!(written.get("b"), Some(None));
        let changes = written.into_changes();
        let expected: Changes = [
            ("a".to_owned(), Change::Put(b"2".to_vec())),
            ("b".to_owned(), Change::Delete),
            ("c".to_owned(), Change::Put(Vec::new())),
        ]
        .into();
        assert_eq!(changes, expected);
        let mut cleared = Written::default();
        cleared.insert(WrittenField::put("a", b"1"));
        cleared.insert(WrittenField::put("z", b"2"));
        cleared.clear();
        assert_eq!((cleared.get("a"), cleared.get("z")), (None, None));
    }
}
