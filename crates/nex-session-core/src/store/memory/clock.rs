//! Second-chance ("clock") eviction: which session a full shard of a bounded
//! store drops to take a new one, at O(1) amortised cost per insert.
//!
//! The hand is a position in the shard's hash table (`table.rs`), which it walks
//! bucket by bucket, wrapping at the end. An entry carries a "used since the hand
//! last passed" mark, set when the session is stored and by every read or write of
//! it (see [`Evictable`]). To make room, the hand moves on:
//!
//! - an empty bucket is skipped;
//! - an expired entry is evicted at once;
//! - a marked entry loses its mark and stays (its second chance);
//! - an unmarked entry is evicted.
//!
//! So a session used since the hand last passed it outlives every session that
//! was not, and a session just stored survives until the hand has passed it twice:
//! a new session is never the next one evicted unless every other one was used
//! since. Sessions leave in the table's (random) order, not the order they
//! arrived: no ring of keys in arrival order is kept, which would cost a second
//! copy of every key (about 40 bytes per idle session).
//!
//! Cost: each step of the hand evicts, clears a mark, or skips an empty bucket.
//! Every mark was set by one store or access, O(1) each; a full shard has most of
//! its buckets occupied (a hash table keeps at least 7 of 16 full after it grows),
//! so empty buckets cost a small constant per eviction. Hence O(1) amortised per
//! insert, and at most two turns of the table for any one eviction (the first
//! clears every mark, the second must meet an unmarked entry).

use hashbrown::HashTable;

/// What the hand needs to know of an entry.
pub(crate) trait Evictable {
    /// Whether the entry is still live at `now` (ms since the epoch).
    fn live(&self, now: i64) -> bool;
    /// Clears the "used since the hand last passed" mark; returns whether it was set.
    fn take_used(&mut self) -> bool;
}

/// Why an entry was evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evicted {
    /// It had expired (and was not purged yet).
    Expired,
    /// It was not used since the hand last passed it.
    Unused,
}

/// The hand of one shard: the next bucket it looks at.
#[derive(Default)]
pub(crate) struct Clock {
    hand: usize,
    /// Buckets looked at and entries evicted, for the tests of the cost bound.
    #[cfg(test)]
    pub(crate) stats: Stats,
}

/// What the hand did, counted for tests.
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    /// Buckets looked at.
    pub(crate) examined: u64,
    /// Entries evicted.
    pub(crate) evicted: u64,
}

impl Clock {
    /// Evicts one entry of `table` per the rule in the module docs; `None` when the
    /// table is empty.
    pub(crate) fn evict_one<E: Evictable>(&mut self, table: &mut HashTable<E>, now: i64) -> Option<(Evicted, E)> {
        if table.is_empty() {
            return None;
        }
        let buckets = table.num_buckets();
        // Two turns and one step suffice (module docs); the bound also keeps a bug
        // from looping forever.
        for _ in 0..=2 * buckets {
            // The table may have grown or shrunk since the last call: wrap.
            let index = self.hand % buckets;
            self.hand = index + 1;
            #[cfg(test)]
            {
                self.stats.examined += 1;
            }
            let Ok(mut slot) = table.get_bucket_entry(index) else {
                continue;
            };
            let why = if !slot.get().live(now) {
                Evicted::Expired
            } else if slot.get_mut().take_used() {
                continue;
            } else {
                Evicted::Unused
            };
            #[cfg(test)]
            {
                self.stats.evicted += 1;
            }
            // The entry goes to the caller: the memory store unindexes a bound session.
            return Some((why, slot.remove().0));
        }
        tracing::error!(
            target: "nex_session::store",
            entries = table.len(),
            "memory store eviction found nothing to evict in two turns of its table"
        );
        None
    }
}
