//! The in-memory store: the default, for one process.
//!
//! Sessions are spread over 64 shards by their (random) key, each a hash map
//! behind its own mutex, so requests of different sessions rarely contend and no
//! lock is ever held across an `.await`. A session is one map entry: its expiry
//! and its fields packed into a single shared byte buffer ([`PackedFields`]) (length-prefixed key and
//! value pairs), which keeps an idle session small (about 100 bytes with one
//! small field, including the table's share).
//!
//! Expired sessions are invisible at once and removed by [`SessionStore::purge_expired`],
//! which the session layer runs in the background; it locks one shard at a time
//! and yields between shards, so requests never wait for a whole-table scan.
//!
//! **Capacity bound** ([`MemoryStore::with_max_sessions`]): each shard holds at most
//! its share of the bound. When a new session arrives at a full shard, that shard's
//! expired sessions are dropped first; if it is still full, the session that
//! expires soonest (the one idle the longest) is evicted.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    BoxFuture, Changes, PackedFields, Presence, Record, SessionStore, Summary, UpdateAction, UpdateFn, WriteOutcome,
};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::token::now_ms;

const SHARDS: usize = 64;

/// The in-memory session store. Cloning shares the same sessions.
///
/// ```
/// use nex_session::store::MemoryStore;
///
/// let unbounded = MemoryStore::new();
/// let bounded = MemoryStore::with_max_sessions(100_000);
/// # let _ = (unbounded, bounded);
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    max_per_shard: Option<usize>,
}

impl Default for Inner {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), max_per_shard: None }
    }
}

type Shard = HashMap<StoreKey, Entry, BuildHasherDefault<KeyHasher>>;

/// A hash map keyed by [`StoreKey`], hashing only its first bytes (already random).
#[cfg(feature = "redis")]
pub(super) type KeyMap<V> = HashMap<StoreKey, V, BuildHasherDefault<KeyHasher>>;

/// A session's new fields, as a write computes them.
enum Packed {
    /// All fields, freshly packed.
    Whole(PackedFields),
    /// One value replaced by one of the same length, at this byte offset.
    Overwrite { at: usize, value: Vec<u8> },
}

struct Entry {
    expires_at_ms: i64,
    packed: PackedFields,
}

impl Entry {
    fn live(&self, now: i64) -> bool {
        self.expires_at_ms > now
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("max_per_shard", &self.inner.max_per_shard).finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty, unbounded store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store bounded to about `max` sessions (each of the 64 shards holds
    /// at most `max / 64`, rounded up); see the [module docs](self) for the eviction rule.
    pub fn with_max_sessions(max: usize) -> Self {
        let inner = Inner {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            max_per_shard: Some(max.div_ceil(SHARDS).max(1)),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Live sessions right now (expired ones not yet purged are not counted).
    pub fn len(&self) -> usize {
        let now = now_ms();
        self.inner.shards.iter().map(|s| lock(s).values().filter(|e| e.live(now)).count()).sum()
    }

    /// True when no live session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &StoreKey) -> MutexGuard<'_, Shard> {
        let index = usize::from(key.as_bytes()[8]) % SHARDS;
        // The index is reduced modulo the shard count, so it is always in range.
        #[allow(clippy::indexing_slicing)]
        lock(&self.inner.shards[index])
    }

    /// Makes room for one more session in `shard` per the eviction rule.
    fn make_room(&self, shard: &mut Shard, now: i64) {
        let Some(max) = self.inner.max_per_shard else {
            return;
        };
        if shard.len() < max {
            return;
        }
        shard.retain(|_, e| e.live(now));
        while shard.len() >= max {
            let Some(oldest) = shard.iter().min_by_key(|(_, e)| e.expires_at_ms).map(|(k, _)| *k) else {
                break;
            };
            shard.remove(&oldest);
            tracing::debug!(target: "nex_session::store", "memory store full: evicted the session idle the longest");
        }
    }

    /// The common frame of every write: check presence, let `change` compute
    /// the new packed fields from the old (`None`: leave everything as is), store.
    fn write(
        &self,
        key: StoreKey,
        presence: Presence,
        expires_at_ms: i64,
        change: impl FnOnce(&PackedFields) -> Option<Packed>,
    ) -> WriteOutcome {
        let now = now_ms();
        let mut shard = self.shard(&key);
        let existing = shard.get(&key).filter(|e| e.live(now));
        let had_live = existing.is_some();
        match (presence, had_live) {
            (Presence::Existing, false) | (Presence::New, true) => return WriteOutcome::PresenceFailed,
            _ => {}
        }
        let none;
        let current = match existing {
            Some(e) => &e.packed,
            None => {
                none = PackedFields::default();
                &none
            }
        };
        let packed = match change(current) {
            None => return WriteOutcome::Done,
            Some(Packed::Whole(packed)) => packed,
            Some(Packed::Overwrite { at, value }) => {
                // Only made for a live entry, from its own bytes: the range is in bounds.
                if let Some(entry) = shard.get_mut(&key) {
                    entry.packed.overwrite(at, &value);
                    entry.expires_at_ms = expires_at_ms;
                }
                return WriteOutcome::Done;
            }
        };
        if !had_live {
            shard.remove(&key);
            self.make_room(&mut shard, now);
        }
        shard.insert(key, Entry { expires_at_ms, packed });
        WriteOutcome::Done
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock cannot leave an entry half-written (each
    // write is one insert), so a poisoned lock is safe to keep using.
    shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionStore for MemoryStore {
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        let now = now_ms();
        let shard = self.shard(&key);
        let record = shard
            .get(&key)
            .filter(|e| e.live(now))
            .map(|e| Record { fields: e.packed.to_fields(), expires_at_ms: e.expires_at_ms });
        drop(shard);
        Box::pin(std::future::ready(Ok(record)))
    }

    fn load_now(&self, key: StoreKey, now: i64) -> Option<Result<Option<PackedFields>, StoreError>> {
        let shard = self.shard(&key);
        // The stored buffer itself, shared: no copy, no allocation.
        Some(Ok(shard.get(&key).filter(|e| e.live(now)).map(|e| e.packed.clone())))
    }

    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let outcome = self.write(key, presence, expires_at_ms, |packed| {
            Some(Packed::Whole(packed.merged(changes.iter().map(|(k, v)| (k.as_str(), v.as_deref())))))
        });
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn update<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        f: UpdateFn<'a>,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let outcome = self.write(key, presence, expires_at_ms, |packed| {
            let current = packed.get(field);
            match (f(current), current) {
                // Same length (a counter from 41 to 42): overwrite in place, no new allocation.
                (UpdateAction::Set(value), Some(old)) if old.len() == value.len() => Some(Packed::Overwrite {
                    at: (old.as_ptr() as usize).wrapping_sub(packed.bytes().as_ptr() as usize),
                    value,
                }),
                (UpdateAction::Set(value), _) => {
                    Some(Packed::Whole(packed.merged(std::iter::once((field, Some(value.as_slice()))))))
                }
                (UpdateAction::Delete, _) => Some(Packed::Whole(packed.merged(std::iter::once((field, None))))),
                (UpdateAction::Keep, _) => None,
            }
        });
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        let now = now_ms();
        let mut shard = self.shard(&key);
        let touched = match shard.get_mut(&key) {
            Some(e) if e.live(now) => {
                e.expires_at_ms = expires_at_ms;
                true
            }
            _ => false,
        };
        drop(shard);
        Box::pin(std::future::ready(Ok(touched)))
    }

    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        let now = now_ms();
        // Take the source out under its shard lock; the old id stops working here.
        let taken = {
            let mut shard = self.shard(&from);
            match shard.remove(&from) {
                Some(e) if e.live(now) => Some(e),
                _ => None,
            }
        };
        let moved = match taken {
            None => false,
            Some(mut entry) => {
                let mut shard = self.shard(&to);
                if shard.get(&to).is_some_and(|e| e.live(now)) {
                    // A 192-bit id collision: put the source back untouched.
                    drop(shard);
                    self.shard(&from).insert(from, entry);
                    false
                } else {
                    self.make_room(&mut shard, now);
                    entry.expires_at_ms = expires_at_ms;
                    shard.insert(to, entry);
                    true
                }
            }
        };
        Box::pin(std::future::ready(Ok(moved)))
    }

    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        self.shard(&key).remove(&key);
        Box::pin(std::future::ready(Ok(())))
    }

    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut removed = 0u64;
            for shard in &*self.inner.shards {
                {
                    let mut shard = lock(shard);
                    let before = shard.len();
                    shard.retain(|_, e| e.live(now_ms));
                    removed += (before - shard.len()) as u64;
                    if shard.capacity() > 4 * shard.len().max(16) {
                        shard.shrink_to_fit();
                    }
                }
                // One shard per step, so request handling interleaves with the sweep.
                tokio::task::yield_now().await;
            }
            Ok(removed)
        })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        let now = now_ms();
        let mut out = Vec::new();
        for shard in &*self.inner.shards {
            let shard = lock(shard);
            for (key, e) in shard.iter().filter(|(_, e)| e.live(now)) {
                if out.len() >= limit {
                    break;
                }
                out.push(Summary { key: *key, fields: e.packed.len(), expires_at_ms: e.expires_at_ms });
            }
        }
        Box::pin(std::future::ready(Ok(out)))
    }
}

/// Passes through the eight key bytes `StoreKey::hash` writes (see there why).
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn updates_in_place_and_by_repacking_keep_the_other_fields() {
        let store = MemoryStore::new();
        let key = StoreKey::from_bytes([4; 32]);
        let mut batch = Changes::new();
        batch.insert("a".into(), Some(b"x".to_vec()));
        batch.insert("n".into(), Some(b"41".to_vec()));
        batch.insert("z".into(), Some(b"y".to_vec()));
        store.apply(key, &batch, i64::MAX, Presence::New).await.unwrap();
        for new in [&b"42"[..], b"100", b"7", b"8"] {
            let mut set = |_: Option<&[u8]>| UpdateAction::Set(new.to_vec());
            store.update(key, "n", &mut set, i64::MAX - 1, Presence::Existing).await.unwrap();
            let record = store.load(key).await.unwrap().unwrap();
            assert_eq!(record.fields["n"], new);
            assert_eq!((&record.fields["a"][..], &record.fields["z"][..]), (&b"x"[..], &b"y"[..]));
            assert_eq!(record.expires_at_ms, i64::MAX - 1, "the expiry slides in place too");
        }
    }
}
