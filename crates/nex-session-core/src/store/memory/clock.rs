//! Second-chance ("clock") eviction: which session a full shard of a bounded
//! store drops to take a new one, at O(1) amortised cost per insert.
//!
//! A [`Clock`] is a ring of the shard's keys in insertion order; the hand is its
//! front. An entry carries a "used since the hand last passed" mark, set by every
//! read or write of the session (see [`Evictable`]). To make room, the hand takes
//! keys off the front:
//!
//! - a key no longer in the map (removed, renamed, purged) is a dead slot: skipped;
//! - an expired entry is evicted at once;
//! - a marked entry loses its mark and goes to the back (its second chance);
//! - an unmarked entry is evicted.
//!
//! So a session used since the hand last passed it outlives every session that
//! was not, and sessions nobody came back to leave in the order they arrived.
//!
//! Cost: each step of the hand either evicts, skips a dead slot, or clears a mark.
//! Every dead slot was made by one removal and every mark by one access, each O(1),
//! so the hand's steps are paid for by the operations that made them: O(1)
//! amortised per insert. Dead slots are dropped all at once when the ring grows
//! past twice the live entries (plus some slack), which the pushes since the last
//! compaction pay for in the same way.

use std::collections::VecDeque;

use crate::id::StoreKey;
use crate::store::toolkit::shards::KeyMap;

/// The ring is compacted when it is longer than this many times the live entries…
const COMPACT_FACTOR: usize = 2;
/// …plus this many, so that a nearly empty shard does not compact on every push.
const COMPACT_SLACK: usize = 64;

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

/// The keys of one shard in insertion order, with the hand at the front.
#[derive(Default)]
pub(crate) struct Clock {
    ring: VecDeque<StoreKey>,
    /// Slots the hand examined and entries it evicted, for the tests of the cost bound.
    #[cfg(test)]
    pub(crate) stats: Stats,
}

/// What the hand did, counted for tests.
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    /// Slots taken off the front of the ring.
    pub(crate) examined: u64,
    /// Entries evicted.
    pub(crate) evicted: u64,
}

impl Clock {
    /// Records `key`, just inserted into `map` (which must be the map this ring tracks).
    pub(crate) fn push<E>(&mut self, key: StoreKey, map: &KeyMap<E>) {
        self.ring.push_back(key);
        if self.ring.len() > COMPACT_FACTOR * map.len() + COMPACT_SLACK {
            self.compact(map);
        }
    }

    /// Evicts one entry of `map` per the rule in the module docs; `None` when the
    /// map is empty.
    pub(crate) fn evict_one<E: Evictable>(&mut self, map: &mut KeyMap<E>, now: i64) -> Option<(Evicted, StoreKey, E)> {
        if map.is_empty() {
            return None;
        }
        if let Some(evicted) = self.sweep(map, now) {
            return Some(evicted);
        }
        // Every entry is pushed when inserted and compaction keeps the keys of the
        // map, so a non-empty map with an exhausted ring is a bug of this module.
        // Say so, and rebuild the ring rather than let the shard outgrow its bound.
        tracing::error!(
            target: "nex_session::store",
            entries = map.len(),
            "memory store eviction ring lost track of its entries; rebuilding it"
        );
        self.ring = map.keys().copied().collect();
        self.sweep(map, now)
    }

    /// Moves the hand until it evicts an entry or the ring is empty. Ends: a key
    /// goes back only after losing its mark, and nothing sets marks meanwhile.
    fn sweep<E: Evictable>(&mut self, map: &mut KeyMap<E>, now: i64) -> Option<(Evicted, StoreKey, E)> {
        while let Some(key) = self.ring.pop_front() {
            #[cfg(test)]
            {
                self.stats.examined += 1;
            }
            let Some(entry) = map.get_mut(&key) else {
                continue;
            };
            let evicted = if !entry.live(now) {
                Evicted::Expired
            } else if entry.take_used() {
                self.ring.push_back(key);
                continue;
            } else {
                Evicted::Unused
            };
            let entry = map.remove(&key)?;
            #[cfg(test)]
            {
                self.stats.evicted += 1;
            }
            // The entry goes to the caller: the memory store unindexes a bound session.
            return Some((evicted, key, entry));
        }
        None
    }

    /// Drops dead slots and duplicates (a key removed and inserted again), keeping
    /// the order of the rest; then the ring holds each key of `map` once.
    pub(crate) fn compact<E>(&mut self, map: &KeyMap<E>) {
        let mut seen: KeyMap<()> = KeyMap::default();
        seen.reserve(map.len());
        self.ring.retain(|key| map.contains_key(key) && seen.insert(*key, ()).is_none());
        if self.ring.capacity() > 4 * self.ring.len().max(16) {
            self.ring.shrink_to_fit();
        }
    }

    /// Slots in the ring, dead ones included.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.ring.len()
    }
}
