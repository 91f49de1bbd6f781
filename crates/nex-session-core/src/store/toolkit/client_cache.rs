//! What the two client-side caches share (Redis client tracking in
//! `nex-session-redis`'s `cache.rs`, PostgreSQL `LISTEN/NOTIFY` in `nex-session-postgres`'s `cache.rs`): loaded
//! sessions kept by key, and the clock of the backend's signs of life.
//!
//! - [`Entries`]: sessions in shards, each shard with a *generation* that every
//!   invalidation in it bumps. A load takes a [`Ticket`] (the generation) before
//!   asking the backend and caches the answer only if the generation is unchanged
//!   when the answer is back: an answer that raced with a change is used once,
//!   never kept. An entry is never served past its session's expiry.
//! - [`Liveness`]: a silent backend (frozen, cut off) sends no invalidations, and
//!   silence would look like "nothing changed". Each cache notes when its last
//!   sign of life was *sent* (a heartbeat that came back); the cache answers only
//!   within [`ANSWERS_FOR`] of it, and after a longer silence it must be emptied
//!   before answering again (invalidations may have been missed).
//!
//! How invalidations arrive, and what counts as a sign of life, is each store's own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::shards::{KeyMap, Shards};
use crate::id::StoreKey;
use crate::store::{Record, Snapshot};

const SHARDS: usize = 64;

/// How long after its last sign of life a cache still answers.
pub const ANSWERS_FOR: Duration = Duration::from_secs(3);

/// Cached sessions, fenced against loads that race with invalidations.
pub struct Entries {
    shards: Shards<Mutex<Shard>>,
    max_per_shard: usize,
}

#[derive(Default)]
struct Shard {
    generation: u64,
    entries: KeyMap<Cached>,
}

/// A cached session.
struct Cached {
    /// Shared with the requests that read it.
    fields: Snapshot,
    expires_at_ms: i64,
    /// The number of the cache owner's last own write patched in (0: as loaded);
    /// see `Entries::patch` (the PostgreSQL cache's).
    written: u64,
}

/// A load in progress: the generation of its key's shard when it started.
#[derive(Clone, Copy)]
pub struct Ticket {
    generation: u64,
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Entries are replaced whole, so a panic elsewhere cannot leave one half-made.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Entries {
    /// Room for about `capacity` sessions.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: Shards::new(SHARDS, || Mutex::new(Shard::default())),
            max_per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// The cached session's fields, if cached and not expired at `now_ms`.
    pub fn get(&self, key: StoreKey, now_ms: i64) -> Option<Snapshot> {
        let shard = lock(self.shards.of(key));
        shard.entries.get(&key).filter(|c| c.expires_at_ms > now_ms).map(|c| c.fields.clone())
    }

    /// Call before asking the backend for `key`; hand the ticket to [`Entries::insert`].
    pub fn ticket(&self, key: StoreKey) -> Ticket {
        Ticket { generation: lock(self.shards.of(key)).generation }
    }

    /// Caches what the backend answered for `key`, unless something in its shard
    /// changed since the ticket was taken.
    pub fn insert(&self, key: StoreKey, record: &Record, ticket: Ticket) {
        let mut shard = lock(self.shards.of(key));
        if shard.generation != ticket.generation {
            return;
        }
        if shard.entries.len() >= self.max_per_shard && !shard.entries.contains_key(&key) {
            // Full: make room by dropping any one entry (it only costs a later round trip).
            if let Some(victim) = shard.entries.keys().next().copied() {
                shard.entries.remove(&victim);
            }
        }
        let fields = Snapshot::from_fields(&record.fields);
        let cached = Cached { fields, expires_at_ms: record.expires_at_ms, written: 0 };
        shard.entries.insert(key, cached);
    }

    /// Drops `key` and fences off loads of its shard that are in flight.
    pub fn invalidate(&self, key: StoreKey) {
        let mut shard = lock(self.shards.of(key));
        shard.generation = shard.generation.wrapping_add(1);
        shard.entries.remove(&key);
    }

    /// Drops everything, fencing off every load in flight.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.generation = shard.generation.wrapping_add(1);
            shard.entries.clear();
        }
    }

    /// The owner's own write number `write`, begun at `ticket`, committed
    /// `changes` (fields set or deleted) and `expires_at_ms` on `key`: the cached
    /// session gets them if its shard saw no invalidation since the ticket (so the
    /// entry held what the backend held when the write began, or what it holds
    /// now); otherwise the entry is dropped. Loads in flight are fenced either way.
    pub fn patch<'c>(
        &self,
        key: StoreKey,
        ticket: Ticket,
        changes: impl Iterator<Item = (&'c str, Option<&'c [u8]>)>,
        expires_at_ms: i64,
        write: u64,
    ) {
        let mut shard = lock(self.shards.of(key));
        let undisturbed = shard.generation == ticket.generation;
        shard.generation = shard.generation.wrapping_add(1);
        match shard.entries.get_mut(&key) {
            Some(cached) if undisturbed => {
                cached.fields = cached.fields.merged(changes);
                cached.expires_at_ms = expires_at_ms;
                cached.written = write;
            }
            _ => {
                shard.entries.remove(&key);
            }
        }
    }

    /// Drops `key` (as [`Entries::invalidate`]) unless the owner's write number
    /// `write`, or a later one, was patched into it.
    pub fn invalidate_unless_written(&self, key: StoreKey, write: u64) {
        let mut shard = lock(self.shards.of(key));
        if shard.entries.get(&key).is_some_and(|cached| cached.written >= write) {
            return;
        }
        shard.generation = shard.generation.wrapping_add(1);
        shard.entries.remove(&key);
    }
}

/// When the backend last showed a cache current, in milliseconds since the
/// cache was made (monotonic: a wall clock set back must not make an old sign
/// look new). 0 means never.
pub struct Liveness {
    born: Instant,
    last_ms: AtomicU64,
}

impl Liveness {
    /// No sign of life yet: the cache does not answer until the first one.
    pub fn waiting() -> Self {
        Self { born: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    /// Alive now (a cache made just before its connection: that connection is the
    /// first sign of life).
    pub fn alive_now() -> Self {
        Self { born: Instant::now(), last_ms: AtomicU64::new(1) }
    }

    /// No sign of life yet, for a cache made at `born`: what a test of a long
    /// silence starts from.
    pub fn born_at(born: Instant) -> Self {
        Self { born, last_ms: AtomicU64::new(0) }
    }

    /// `at` in milliseconds since the cache was made, at least 1 (0 means never).
    pub fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.born).as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Whether the cache may answer at `now`: within [`ANSWERS_FOR`] of the last sign of life.
    pub fn fresh(&self, now: Instant) -> bool {
        let last = self.last_ms.load(Ordering::Acquire);
        last != 0 && self.ms(now) < last.saturating_add(millis(ANSWERS_FOR))
    }

    /// A sign of life *sent* at `sent_ms` came back: the cache may answer again.
    /// If it ends a silence of [`ANSWERS_FOR`] or more, `empty` runs first (the
    /// cache must be emptied before it answers: invalidations may have been
    /// missed). Older signs change nothing. Called by one task per cache.
    pub fn alive(&self, sent_ms: u64, empty: impl FnOnce()) {
        let last = self.last_ms.load(Ordering::Acquire);
        if sent_ms <= last {
            return;
        }
        if sent_ms - last >= millis(ANSWERS_FOR) {
            empty();
        }
        self.last_ms.store(sent_ms, Ordering::Release);
    }

    /// The backend is gone (a lost connection): no answers until the next sign of life.
    pub fn lost(&self) {
        self.last_ms.store(0, Ordering::Release);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::fixtures::{key, record};

    #[test]
    fn a_load_that_raced_with_an_invalidation_is_not_cached_and_expired_ones_are_not_served() {
        let entries = Entries::new(100);
        let ticket = entries.ticket(key(1));
        entries.invalidate(key(1));
        entries.insert(key(1), &record("old", i64::MAX), ticket);
        assert!(entries.get(key(1), 0).is_none());
        let ticket = entries.ticket(key(1));
        entries.insert(key(1), &record("new", 1_000), ticket);
        assert_eq!(entries.get(key(1), 999).unwrap().get("k"), Some(&b"new"[..]));
        assert!(entries.get(key(1), 1_000).is_none(), "expired sessions are not served");
    }

    #[test]
    fn a_patch_applies_only_to_an_undisturbed_entry_and_marks_it_written() {
        let entries = Entries::new(100);
        let t = entries.ticket(key(2));
        entries.insert(key(2), &record("a", i64::MAX), t);
        let write = entries.ticket(key(2));
        entries.patch(key(2), write, [("k", Some(&b"b"[..]))].into_iter(), i64::MAX, 7);
        assert_eq!(entries.get(key(2), 0).unwrap().get("k"), Some(&b"b"[..]));
        entries.invalidate_unless_written(key(2), 7);
        assert!(entries.get(key(2), 0).is_some(), "write 7 is in the entry");
        entries.invalidate_unless_written(key(2), 8);
        assert!(entries.get(key(2), 0).is_none(), "write 8 is not");
        let t = entries.ticket(key(2));
        entries.insert(key(2), &record("a", i64::MAX), t);
        let write = entries.ticket(key(2));
        entries.invalidate(key(2));
        entries.patch(key(2), write, [("k", Some(&b"c"[..]))].into_iter(), i64::MAX, 9);
        assert!(entries.get(key(2), 0).is_none(), "disturbed since the write began: dropped");
    }

    #[test]
    fn liveness_answers_within_the_bound_and_reports_silences() {
        let emptied = std::cell::Cell::new(0);
        let empty = || emptied.set(emptied.get() + 1);
        let life = Liveness::waiting();
        assert!(!life.fresh(Instant::now()), "no sign of life yet");
        life.alive(life.ms(Instant::now()), empty);
        assert!(life.fresh(Instant::now()));
        assert_eq!(emptied.get(), 0, "a young cache's first sign ends no silence");
        life.lost();
        assert!(!life.fresh(Instant::now()));
        assert!(Liveness::alive_now().fresh(Instant::now()));
        let old = Liveness::born_at(Instant::now() - ANSWERS_FOR * 2);
        old.last_ms.store(1, Ordering::Release);
        assert!(!old.fresh(Instant::now()), "silent too long");
        old.alive(1, empty);
        assert!(!old.fresh(Instant::now()) && emptied.get() == 0, "an old sign changes nothing");
        old.alive(old.ms(Instant::now()), empty);
        assert!(old.fresh(Instant::now()));
        assert_eq!(emptied.get(), 1, "back after a silence: emptied first");
    }
}
