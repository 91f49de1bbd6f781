//! [`Written`]: the values a request already wrote to the store, so its later
//! reads see them.

use crate::store::{Change, Changes};

/// One field this request wrote: its value (for a put) and then its name, in one
/// buffer, so that recording an `update` allocates once, and recording a flushed
/// put reuses the value's own buffer (an encoded value has room to spare for a name).
pub(super) struct WrittenField {
    /// The value (nothing for a delete), then the field's name.
    bytes: Vec<u8>,
    /// Where the value ends and the name begins in `bytes`.
    value_len: usize,
    /// A put, not a delete.
    put: bool,
}

impl WrittenField {
    /// A put of `value` under `field`, copied into one new buffer.
    pub(super) fn put(field: &str, value: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(value.len() + field.len());
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(field.as_bytes());
        Self { bytes, value_len: value.len(), put: true }
    }

    /// A delete of `field`.
    pub(super) fn delete(field: &str) -> Self {
        Self { bytes: field.as_bytes().to_vec(), value_len: 0, put: false }
    }

    /// `change` of `field`, reusing the value's buffer.
    fn owned(field: &str, change: Change) -> Self {
        match change {
            Change::Put(mut bytes) => {
                let value_len = bytes.len();
                bytes.extend_from_slice(field.as_bytes());
                Self { bytes, value_len, put: true }
            }
            Change::Delete => Self::delete(field),
        }
    }

    fn name(&self) -> &[u8] {
        self.bytes.get(self.value_len..).unwrap_or_default()
    }

    /// The value written: `None` for a delete.
    pub(super) fn value(&self) -> Option<&[u8]> {
        self.put.then(|| self.bytes.get(..self.value_len).unwrap_or_default())
    }

    /// The field's name and change, for a fresh session that must carry them.
    fn into_change(mut self) -> (String, Change) {
        let name = self.bytes.split_off(self.value_len);
        // Every name went in as a `&str`: the lossy form is the same string.
        let name = String::from_utf8_lossy(&name).into_owned();
        (name, if self.put { Change::Put(self.bytes) } else { Change::Delete })
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
    /// What this request wrote to `field`, if it wrote it.
    pub(super) fn get(&self, field: &str) -> Option<&WrittenField> {
        self.first.iter().chain(&self.more).find(|written| written.name() == field.as_bytes())
    }

    /// Records a write, replacing an earlier one of the same field.
    pub(super) fn insert(&mut self, field: WrittenField) {
        let earlier = self.first.iter_mut().chain(&mut self.more).find(|written| written.name() == field.name());
        if let Some(earlier) = earlier {
            *earlier = field;
        } else if self.first.is_none() {
            self.first = Some(field);
        } else {
            self.more.push(field);
        }
    }

    /// Records a batch that was written.
    pub(super) fn extend(&mut self, batch: Changes) {
        for (field, change) in batch {
            self.insert(WrittenField::owned(&field, change));
        }
    }

    /// Forgets every write (the session they went to is gone).
    pub(super) fn clear(&mut self) {
        self.first = None;
        self.more.clear();
    }

    /// Every write, for a fresh session that must carry them.
    pub(super) fn into_changes(self) -> Changes {
        self.first.into_iter().chain(self.more).map(WrittenField::into_change).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(written: &'a Written, field: &str) -> Option<Option<&'a [u8]>> {
        written.get(field).map(WrittenField::value)
    }

    #[test]
    fn a_later_write_of_a_field_replaces_the_earlier_one() {
        let mut written = Written::default();
        written.insert(WrittenField::put("a", b"1"));
        written.extend([("b".to_owned(), Change::Delete), ("a".to_owned(), Change::Put(b"2".to_vec()))].into());
        written.insert(WrittenField::put("c", b""));
        written.insert(WrittenField::put("b", b"3"));
        assert_eq!(value(&written, "a"), Some(Some(&b"2"[..])));
        assert_eq!(value(&written, "b"), Some(Some(&b"3"[..])));
        assert_eq!(value(&written, "c"), Some(Some(&b""[..])), "an empty value is a put, not a delete");
        assert_eq!(value(&written, "d"), None);
        written.insert(WrittenField::delete("b"));
        assert_eq!(value(&written, "b"), Some(None));
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
        assert_eq!((value(&cleared, "a"), value(&cleared, "z")), (None, None));
    }

    #[test]
    fn a_name_that_ends_like_another_value_is_still_its_own_field() {
        // Value then name in one buffer: "ab" + "c" and "a" + "bc" must not meet.
        let mut written = Written::default();
        written.insert(WrittenField::put("c", b"ab"));
        written.insert(WrittenField::put("bc", b"a"));
        assert_eq!(value(&written, "c"), Some(Some(&b"ab"[..])));
        assert_eq!(value(&written, "bc"), Some(Some(&b"a"[..])));
        assert_eq!(value(&written, "abc"), None);
    }
}
