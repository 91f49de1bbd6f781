//! The sessions of one shard: a hash table of [`Entry`]s, each holding its own
//! key, expiry, "used" mark and fields.
//!
//! Why not `HashMap<StoreKey, Entry>`: an idle session's memory is mostly its
//! table slot, and the eviction hand of a bounded store (`clock.rs`) walks the
//! table's own buckets, which only `hashbrown::HashTable` lets us address by
//! index (`get_bucket_entry`, `num_buckets`, documented API). So the key lives in
//! the entry, and the expiry shares a word with the mark ([`Stamp`]): a slot is
//! 56 bytes (32 key, 8 stamp, 16 fields), where a map of key to entry took 64
//! and a bounded store kept a second copy of every key in an eviction ring (about
//! 40 bytes more per session).

use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;

use super::clock::Evictable;
use crate::id::StoreKey;
use crate::store::toolkit::shards::KeyHasher;
use crate::store::Snapshot;

/// One stored session.
pub(super) struct Entry {
    key: StoreKey,
    stamp: Stamp,
    pub(super) fields: Snapshot,
}

impl Entry {
    /// A session just stored under `key`. It starts *used*, so a bounded store's
    /// hand passes it once before it can be evicted (see `clock.rs`).
    pub(super) fn new(key: StoreKey, fields: Snapshot, expires_at_ms: i64) -> Self {
        Self { key, stamp: Stamp::new(expires_at_ms, true), fields }
    }

    pub(super) fn key(&self) -> StoreKey {
        self.key
    }

    /// Until when the session lives (ms since the epoch).
    pub(super) fn expires_at_ms(&self) -> i64 {
        self.stamp.expires_at_ms()
    }

    /// Slides the expiry; a write or a touch is a use, so this marks it too.
    pub(super) fn slide(&mut self, expires_at_ms: i64) {
        self.stamp = Stamp::new(expires_at_ms, true);
    }

    /// Records a read.
    pub(super) fn mark_used(&mut self) {
        self.stamp = Stamp::new(self.stamp.expires_at_ms(), true);
    }

    /// The same session under another key (a rename), marked used.
    pub(super) fn rekeyed(self, key: StoreKey, expires_at_ms: i64) -> Self {
        Self { key, stamp: Stamp::new(expires_at_ms, true), fields: self.fields }
    }
}

impl Evictable for Entry {
    fn live(&self, now: i64) -> bool {
        self.expires_at_ms() > now
    }

    fn take_used(&mut self) -> bool {
        let used = self.stamp.used();
        self.stamp = Stamp::new(self.stamp.expires_at_ms(), false);
        used
    }
}

/// An expiry and a "used" mark in one `u64`: the mark is the top bit, the expiry
/// the other 63, which hold every non-negative `i64`. A negative expiry (long past)
/// is kept as 0: expired either way, and no store hands it back.
#[derive(Clone, Copy)]
struct Stamp(u64);

const USED: u64 = 1 << 63;

impl Stamp {
    fn new(expires_at_ms: i64, used: bool) -> Self {
        let expiry = u64::try_from(expires_at_ms).unwrap_or(0);
        Self(if used { expiry | USED } else { expiry })
    }

    fn expires_at_ms(self) -> i64 {
        // Below 2^63 once the mark is masked off: always an `i64`.
        i64::try_from(self.0 & !USED).unwrap_or(i64::MAX)
    }

    fn used(self) -> bool {
        self.0 & USED != 0
    }
}

/// The entries of one shard, found by key.
#[derive(Default)]
pub(super) struct Table {
    entries: HashTable<Entry>,
}

/// A key's hash, as every per-session table of the crate takes it (`StoreKey`'s
/// `Hash` through [`KeyHasher`]: its first eight bytes, already uniformly random).
fn hash(key: &StoreKey) -> u64 {
    BuildHasherDefault::<KeyHasher>::default().hash_one(key)
}

impl Table {
    pub(super) fn get(&self, key: &StoreKey) -> Option<&Entry> {
        self.entries.find(hash(key), |e| e.key == *key)
    }

    pub(super) fn get_mut(&mut self, key: &StoreKey) -> Option<&mut Entry> {
        self.entries.find_mut(hash(key), |e| e.key == *key)
    }

    pub(super) fn remove(&mut self, key: &StoreKey) -> Option<Entry> {
        let found = self.entries.find_entry(hash(key), |e| e.key == *key).ok()?;
        Some(found.remove().0)
    }

    /// Stores `entry`, whose key the table does not hold (the callers looked).
    pub(super) fn insert_absent(&mut self, entry: Entry) {
        self.entries.insert_unique(hash(&entry.key), entry, |e| hash(&e.key));
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    pub(super) fn retain(&mut self, keep: impl FnMut(&mut Entry) -> bool) {
        self.entries.retain(keep);
    }

    /// Gives memory back after a purge emptied most of the table.
    pub(super) fn shrink_if_sparse(&mut self) {
        if self.entries.capacity() > 4 * self.entries.len().max(16) {
            self.entries.shrink_to_fit(|e| hash(&e.key));
        }
    }

    /// The table itself, for the eviction hand, which walks its buckets.
    pub(super) fn buckets(&mut self) -> &mut HashTable<Entry> {
        &mut self.entries
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_56_bytes_and_the_stamp_keeps_expiry_and_mark_apart() {
        // The point of the packing: 32 key + 8 stamp + 16 fields, no padding.
        assert_eq!(std::mem::size_of::<Entry>(), 56);
        for expiry in [0, 1, 1_796_550_368_793, i64::MAX - 1, i64::MAX] {
            for used in [false, true] {
                let stamp = Stamp::new(expiry, used);
                assert_eq!((stamp.expires_at_ms(), stamp.used()), (expiry, used));
            }
        }
        assert_eq!(Stamp::new(-5, true).expires_at_ms(), 0, "a negative expiry reads as long past");
        let mut entry = Entry::new(StoreKey::from_bytes([1; 32]), Snapshot::default(), 42);
        assert!(entry.take_used() && !entry.take_used(), "new entries start used; the hand clears the mark");
        entry.mark_used();
        assert_eq!((entry.expires_at_ms(), entry.take_used()), (42, true));
    }

    #[test]
    fn entries_are_found_by_their_whole_key() {
        let mut table = Table::default();
        // Same hashed bytes, different keys: the table must tell them apart.
        let (a, b) = (
            StoreKey::from_bytes([7; 32]),
            StoreKey::from_bytes([[7; 8], [8; 8], [7; 8], [7; 8]].concat().try_into().unwrap()),
        );
        table.insert_absent(Entry::new(a, Snapshot::default(), 1));
        table.insert_absent(Entry::new(b, Snapshot::default(), 2));
        assert_eq!(table.get(&a).map(Entry::expires_at_ms), Some(1));
        assert_eq!(table.remove(&b).map(|e| e.key()), Some(b));
        assert!(table.get(&b).is_none() && table.len() == 1);
    }
}
