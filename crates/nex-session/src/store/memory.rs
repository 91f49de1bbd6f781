//! The in-memory store: the default, for one process. See [`MemoryStore`].

use std::sync::{Arc, Mutex, MutexGuard};

use super::shards::{KeyMap, Shards};
use super::{
    BoxFuture, Changes, LoadNow, Presence, Record, SessionAdmin, SessionStore, Snapshot, Summary, UpdateAction,
    UpdateFn, WriteOutcome,
};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::token::now_ms;

const SHARDS: usize = 64;

/// The in-memory session store: the default, for one process. Cloning shares
/// the same sessions.
///
/// Sessions are spread over 64 shards by their (random) key, each a hash map
/// behind its own mutex, so requests of different sessions rarely contend and no
/// lock is ever held across an `.await`. A session is one map entry: its expiry
/// and its fields as one shared buffer ([`Snapshot`]), which keeps an idle session
/// small (about 100 bytes with one small field, including the table's share), and
/// which a request reads without a copy ([`SessionStore::load_now`]).
///
/// Expired sessions are invisible at once and removed by
/// [`SessionAdmin::purge_expired`], which the session layer runs in the
/// background; it locks one shard at a time and yields between shards, so
/// requests never wait for a whole-table scan.
///
/// **Capacity bound** ([`MemoryStore::with_max_sessions`]): each shard holds at most
/// its share of the bound. When a new session arrives at a full shard, that shard's
/// expired sessions are dropped first; if it is still full, the session that
/// expires soonest (the one idle the longest) is evicted.
///
/// ```
/// use nex_session::store::MemoryStore;
///
/// let unbounded = MemoryStore::new();
/// let bounded = MemoryStore::with_max_sessions(100_000);
/// # let _ = (unbounded, bounded);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Shards<Mutex<Shard>>,
    max_per_shard: Option<usize>,
}

type Shard = KeyMap<Entry>;

struct Entry {
    expires_at_ms: i64,
    fields: Snapshot,
}

impl Entry {
    fn live(&self, now: i64) -> bool {
        self.expires_at_ms > now
    }

    /// Runs an update of one field of this live session.
    fn update(&mut self, field: &str, f: UpdateFn<'_>, expires_at_ms: i64) {
        let found = self.fields.find(field);
        let action = f(found.as_ref().map(|found| found.value));
        let span = found.map(|found| found.span);
        match action {
            UpdateAction::Keep => return,
            UpdateAction::Set(value) => {
                // Same length (a counter from 41 to 42): overwrite in place, no new allocation.
                let overwritten = span.is_some_and(|span| self.fields.overwrite(&span, &value));
                if !overwritten {
                    self.fields = self.fields.merged([(field, Some(&value[..]))].into_iter());
                }
            }
            UpdateAction::Delete => self.fields = self.fields.merged([(field, None)].into_iter()),
        }
        self.expires_at_ms = expires_at_ms;
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
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
        Self::bounded(None)
    }

    /// An empty store bounded to about `max` sessions (each of the 64 shards holds
    /// at most `max / 64`, rounded up); see the type's docs for the eviction rule.
    pub fn with_max_sessions(max: usize) -> Self {
        Self::bounded(Some(max.div_ceil(SHARDS).max(1)))
    }

    fn bounded(max_per_shard: Option<usize>) -> Self {
        let shards = Shards::new(SHARDS, || Mutex::new(Shard::default()));
        Self { inner: Arc::new(Inner { shards, max_per_shard }) }
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

    fn shard(&self, key: StoreKey) -> MutexGuard<'_, Shard> {
        lock(self.inner.shards.of(key))
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

    /// Stores `fields` as the whole session under `key` (a new session, or a
    /// rewrite of a live one), making room first for a new one.
    fn put_entry(&self, shard: &mut Shard, key: StoreKey, fields: Snapshot, expires_at_ms: i64, now: i64) {
        match shard.get_mut(&key) {
            Some(entry) if entry.live(now) => *entry = Entry { expires_at_ms, fields },
            _ => {
                shard.remove(&key);
                self.make_room(shard, now);
                shard.insert(key, Entry { expires_at_ms, fields });
            }
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock cannot leave an entry half-written (each
    // write replaces a whole entry or a whole value), so a poisoned lock is safe to use.
    shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionStore for MemoryStore {
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        let now = now_ms();
        let shard = self.shard(key);
        let record = shard
            .get(&key)
            .filter(|e| e.live(now))
            .map(|e| Record { fields: e.fields.to_fields(), expires_at_ms: e.expires_at_ms });
        drop(shard);
        Box::pin(std::future::ready(Ok(record)))
    }

    fn load_now(&self, key: StoreKey, now: i64) -> LoadNow {
        match self.shard(key).get(&key).filter(|e| e.live(now)) {
            // The stored buffer itself, shared: no copy, no allocation.
            Some(entry) => LoadNow::Found(entry.fields.clone()),
            None => LoadNow::Missing,
        }
    }

    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let now = now_ms();
        let mut shard = self.shard(key);
        let current = shard.get(&key).filter(|e| e.live(now));
        let outcome = if presence.holds(current.is_some()) {
            let old = current.map(|e| e.fields.clone()).unwrap_or_default();
            let fields = old.merged(changes.iter().map(|(k, change)| (k.as_str(), change.value())));
            drop(old);
            self.put_entry(&mut shard, key, fields, expires_at_ms, now);
            WriteOutcome::Done
        } else {
            WriteOutcome::PresenceFailed
        };
        drop(shard);
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
        let now = now_ms();
        let mut shard = self.shard(key);
        // One lookup for the usual case, an update of a live session.
        let outcome = match shard.get_mut(&key).filter(|e| e.live(now)) {
            Some(entry) if presence.holds(true) => {
                entry.update(field, f, expires_at_ms);
                WriteOutcome::Done
            }
            Some(_) => WriteOutcome::PresenceFailed,
            None if !presence.holds(false) => WriteOutcome::PresenceFailed,
            // No live session, and `presence` allows that: a new one, unless `f` keeps nothing.
            None => {
                let fields = match f(None) {
                    UpdateAction::Keep => None,
                    UpdateAction::Set(value) => {
                        Some(Snapshot::default().merged([(field, Some(&value[..]))].into_iter()))
                    }
                    UpdateAction::Delete => Some(Snapshot::default()),
                };
                if let Some(fields) = fields {
                    self.put_entry(&mut shard, key, fields, expires_at_ms, now);
                }
                WriteOutcome::Done
            }
        };
        drop(shard);
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        let now = now_ms();
        let mut shard = self.shard(key);
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
        let taken = match self.shard(from).remove(&from) {
            Some(e) if e.live(now) => Some(e),
            _ => None,
        };
        let moved = match taken {
            None => false,
            Some(mut entry) => {
                let mut shard = self.shard(to);
                if shard.get(&to).is_some_and(|e| e.live(now)) {
                    // The target is taken (a 192-bit id collision): put the source back untouched.
                    drop(shard);
                    self.shard(from).insert(from, entry);
                    false
                } else {
                    shard.remove(&to);
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
        self.shard(key).remove(&key);
        Box::pin(std::future::ready(Ok(())))
    }

    fn admin(&self) -> Option<&dyn SessionAdmin> {
        Some(self)
    }
}

impl SessionAdmin for MemoryStore {
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut removed = 0u64;
            for shard in self.inner.shards.iter() {
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
        for shard in self.inner.shards.iter() {
            let shard = lock(shard);
            for (key, e) in shard.iter().filter(|(_, e)| e.live(now)) {
                if out.len() >= limit {
                    break;
                }
                out.push(Summary { key: *key, fields: e.fields.len(), expires_at_ms: e.expires_at_ms });
            }
        }
        Box::pin(std::future::ready(Ok(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Change;

    #[tokio::test]
    async fn updates_in_place_and_by_repacking_keep_the_other_fields() {
        let store = MemoryStore::new();
        let key = StoreKey::from_bytes([4; 32]);
        let mut batch = Changes::new();
        batch.insert("a".into(), Change::Put(b"x".to_vec()));
        batch.insert("n".into(), Change::Put(b"41".to_vec()));
        batch.insert("z".into(), Change::Put(b"y".to_vec()));
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
