//! [`Written`]: the values a request already wrote to the store, so its later
//! reads see them.

use crate::store::{Change, Changes};

/// The fields this request wrote (flushed or `update`d), in the order written.
///
/// A request writes a handful of fields at most, so a short list searched from
/// the front serves it better than a map: a `BTreeMap` allocated a node of some
/// 500 bytes for the first entry and walked it again to drop it, about 250
/// instructions of every hot write.
#[derive(Default)]
pub(super) struct Written(Vec<(String, Change)>);

impl Written {
    /// What this request wrote to `field`, if it wrote it.
    pub(super) fn get(&self, field: &str) -> Option<&Change> {
        self.0.iter().find(|(name, _)| name == field).map(|(_, change)| change)
    }

    /// Records a write of `field`, replacing an earlier one.
    pub(super) fn insert(&mut self, field: String, change: Change) {
        if let Some((_, earlier)) = self.0.iter_mut().find(|(name, _)| *name == field) {
            *earlier = change;
        } else if self.0.capacity() == 0 {
            // The first write: `vec!` allocates once, where growing from empty
            // took the slow path of `Vec` growth, about 70 instructions.
            self.0 = vec![(field, change)];
        } else {
            self.0.push((field, change));
        }
    }

    /// Records a batch that was written.
    pub(super) fn extend(&mut self, batch: Changes) {
        for (field, change) in batch {
            self.insert(field, change);
        }
    }

    /// Forgets every write (the session they went to is gone).
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// Every write, for a fresh session that must carry them.
    pub(super) fn into_changes(self) -> Changes {
        self.0.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_write_of_a_field_replaces_the_earlier_one() {
        let mut written = Written::default();
        written.insert("a".into(), Change::Put(b"1".to_vec()));
        written.extend([("b".to_owned(), Change::Delete), ("a".to_owned(), Change::Put(b"2".to_vec()))].into());
        assert_eq!(written.get("a"), Some(&Change::Put(b"2".to_vec())));
        assert_eq!(written.get("b"), Some(&Change::Delete));
        assert_eq!(written.get("c"), None);
        let changes = written.into_changes();
        assert_eq!(changes.len(), 2);
        let mut cleared = Written::default();
        cleared.insert("a".into(), Change::Delete);
        cleared.clear();
        assert_eq!(cleared.get("a"), None);
    }
}
