//! The in-memory store: the default, for one process. See [`MemoryStore`].

use std::sync::{Arc, Mutex, MutexGuard};

use self::clock::{Clock, Evictable, Evicted};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::observe;
use crate::store::toolkit::shards::{KeyMap, Shards};
use crate::store::users::{Binding, USER_FIELD};
use crate::store::{
    BoxFuture, Changes, FastReads, LoadNow, Presence, Record, SessionAdmin, SessionStore, Snapshot, Summary,
    UpdateAction, UpdateFn, WriteOutcome,
};
use crate::token::now_ms;

mod clock;
mod users;

const SHARDS: usize = 64;
/// The store's kind ([`SessionStore::kind`]).
const KIND: &str = "memory";

/// The bound of a memory store opened by URL (`nex_session::store::open("memory")`)
/// when neither the URL nor `nex_session::store::OpenOptions` give one: 100,000
/// sessions, some 10 to 15 MB with small sessions. Anonymous traffic that makes
/// sessions cannot grow an unbounded store until the process runs out of memory.
///
/// ```
/// assert_eq!(nex_session::store::DEFAULT_MAX_SESSIONS, 100_000);
/// ```
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// The in-memory session store: the default, for one process. Cloning shares
/// the same sessions.
///
/// Sessions are spread over 64 shards by their (random) key, each a hash map
/// behind its own mutex, so requests of different sessions rarely contend and no
/// lock is ever held across an `.await`. A session is one map entry: its expiry
/// and its fields as one shared buffer ([`Snapshot`]), which keeps an idle session
/// small (about 100 bytes with one small field, including the table's share), and
/// which a request reads without a copy ([`FastReads::load_now`]).
///
/// Expired sessions are invisible at once and removed by
/// [`SessionAdmin::purge_expired`], which the session layer runs in the
/// background; it locks one shard at a time and yields between shards, so
/// requests never wait for a whole-table scan.
///
/// **Capacity bound** ([`MemoryStore::with_max_sessions`]): each shard holds at most
/// its share of the bound, so the store never holds more than the bound rounded up
/// to a multiple of 64. When a new session arrives at a full shard, the shard evicts
/// one by *second chance* (a "clock"): its sessions wait in a ring in the order they
/// were created, and every read or write of a session (load, update, touch, a
/// rewrite) marks it as used. The ring's hand takes sessions in order: an expired
/// one is evicted at once; a used one loses its mark and goes round again; the
/// first one not used since the hand last passed it is evicted. So a session in use
/// outlives sessions created and never come back to (anonymous traffic, a flood of
/// fresh cookies), and eviction costs O(1) amortised per new session, never a scan
/// of the shard under its lock.
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
    /// Which sessions each user is bound to (`users.rs`). Lock order: this lock
    /// before any shard lock, never the other way round.
    users: Mutex<users::Index>,
    /// Bound sessions evicted under a shard lock, which cannot take the index lock:
    /// the index forgets them at the next bind, listing or purge (a leaf lock).
    orphans: Mutex<Vec<(String, StoreKey)>>,
}

#[derive(Default)]
struct Shard {
    sessions: KeyMap<Entry>,
    /// Eviction order of `sessions`; only a bounded store records keys in it.
    clock: Clock,
}

struct Entry {
    expires_at_ms: i64,
    fields: Snapshot,
    /// Read or written since the eviction hand last passed (see [`Clock`]).
    used: bool,
}

impl Evictable for Entry {
    fn live(&self, now: i64) -> bool {
        self.expires_at_ms > now
    }

    fn take_used(&mut self) -> bool {
        std::mem::take(&mut self.used)
    }
}

impl Entry {
    /// A session just created: not used yet, so it waits its turn in the ring.
    fn new(fields: Snapshot, expires_at_ms: i64) -> Self {
        Self { expires_at_ms, fields, used: false }
    }

    /// Runs an update of one field of this live session.
    fn update(&mut self, field: &str, f: UpdateFn<'_>, expires_at_ms: i64) {
        let found = self.fields.find(field);
        let action = f(found.as_ref().map(|found| found.value));
        let span = found.map(|found| found.span);
        self.used = true;
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
        Self { inner: Arc::new(Inner { shards, max_per_shard, users: Mutex::default(), orphans: Mutex::default() }) }
    }

    /// Live sessions right now (expired ones not yet purged are not counted).
    pub fn len(&self) -> usize {
        let now = now_ms();
        self.inner.shards.iter().map(|s| lock(s).sessions.values().filter(|e| e.live(now)).count()).sum()
    }

    /// True when no live session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: StoreKey) -> MutexGuard<'_, Shard> {
        lock(self.inner.shards.of(key))
    }

    /// Inserts `entry` under `key`, which the shard does not hold; in a bounded
    /// store, evicts first to make room (the type's docs give the rule).
    fn insert_new(&self, shard: &mut Shard, key: StoreKey, entry: Entry, now: i64) {
        let Some(max) = self.inner.max_per_shard else {
            shard.sessions.insert(key, entry);
            return;
        };
        while shard.sessions.len() >= max {
            let Some((evicted, gone_key, gone)) = shard.clock.evict_one(&mut shard.sessions, now) else { break };
            if matches!(evicted, Evicted::Unused) {
                tracing::debug!(target: "nex_session::store", "memory store full: evicted a session unused since the last round");
            }
            if let Some(user) = bound_user(&gone.fields) {
                // The index lock may not be taken under a shard lock: leave a note.
                self.orphaned(user, gone_key);
            }
        }
        shard.sessions.insert(key, entry);
        shard.clock.push(key, &shard.sessions);
    }

    /// Stores `fields` as the whole session under `key`: a rewrite of a live one
    /// (which counts as a use), the overwrite of an expired leftover (which keeps
    /// its place in the ring), or a new session.
    fn put_entry(&self, shard: &mut Shard, key: StoreKey, fields: Snapshot, expires_at_ms: i64, now: i64) {
        match shard.sessions.get_mut(&key) {
            Some(entry) if entry.live(now) => *entry = Entry { expires_at_ms, fields, used: true },
            Some(entry) => *entry = Entry::new(fields, expires_at_ms),
            None => self.insert_new(shard, key, Entry::new(fields, expires_at_ms), now),
        }
    }
}

/// The user a session's fields bind it to; only a bound session pays for the parse.
fn bound_user(fields: &Snapshot) -> Option<String> {
    fields.get(USER_FIELD).and_then(Binding::decode).map(|binding| binding.user)
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock cannot leave an entry half-written (each
    // write replaces a whole entry or a whole value), so a poisoned lock is safe to use.
    shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionStore for MemoryStore {
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        let now = now_ms();
        let mut shard = self.shard(key);
        let record = shard.sessions.get_mut(&key).filter(|e| e.live(now)).map(|e| {
            e.used = true;
            Record { fields: e.fields.to_fields(), expires_at_ms: e.expires_at_ms }
        });
        drop(shard);
        Box::pin(std::future::ready(Ok(record)))
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
        let current = shard.sessions.get(&key).filter(|e| e.live(now));
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
        let outcome = match shard.sessions.get_mut(&key).filter(|e| e.live(now)) {
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
        let touched = match shard.sessions.get_mut(&key) {
            Some(e) if e.live(now) => {
                e.expires_at_ms = expires_at_ms;
                e.used = true;
                true
            }
            _ => false,
        };
        drop(shard);
        Box::pin(std::future::ready(Ok(touched)))
    }

    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        let now = now_ms();
        // The index lock first (renames are rare): a revoke of the session's user
        // waits for the move, then finds the session under its new key.
        let mut index = self.index();
        // Take the source out under its shard lock; the old id stops working here.
        let taken = match self.shard(from).sessions.remove(&from) {
            Some(e) if e.live(now) => Some(e),
            Some(expired) => {
                if let Some(user) = bound_user(&expired.fields) {
                    users::forget(&mut index, &user, from);
                }
                None
            }
            None => None,
        };
        let moved = match taken {
            None => false,
            Some(mut entry) => {
                let mut shard = self.shard(to);
                if shard.sessions.get(&to).is_some_and(|e| e.live(now)) {
                    // The target is taken (a 192-bit id collision): put the source back
                    // untouched. As a new entry: while it was out, its shard may have
                    // filled up or dropped its ring slot.
                    drop(shard);
                    self.insert_new(&mut self.shard(from), from, entry, now);
                    false
                } else {
                    entry.expires_at_ms = expires_at_ms;
                    entry.used = true;
                    let user = bound_user(&entry.fields);
                    match shard.sessions.get_mut(&to) {
                        // An expired leftover under the new key: take over its place.
                        Some(leftover) => *leftover = entry,
                        None => self.insert_new(&mut shard, to, entry, now),
                    }
                    drop(shard);
                    if let Some(user) = user {
                        users::moved(&mut index, &user, from, to);
                    }
                    true
                }
            }
        };
        drop(index);
        Box::pin(std::future::ready(Ok(moved)))
    }

    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        // Its ring slot goes dead; the ring skips it and compaction drops it.
        let removed = self.shard(key).sessions.remove(&key);
        // The shard lock is released before the index lock is taken (lock order).
        if let Some(user) = removed.and_then(|entry| bound_user(&entry.fields)) {
            users::forget(&mut self.index(), &user, key);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn users(&self) -> Option<&dyn crate::store::UserIndex> {
        Some(self)
    }

    fn fast_reads(&self) -> Option<&dyn FastReads> {
        Some(self)
    }

    fn admin(&self) -> Option<&dyn SessionAdmin> {
        Some(self)
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        // In this process: up whenever the process is.
        Box::pin(std::future::ready(Ok(())))
    }
}

impl FastReads for MemoryStore {
    fn load_now(&self, key: StoreKey, now: i64) -> LoadNow {
        match self.shard(key).sessions.get_mut(&key).filter(|e| e.live(now)) {
            // The stored buffer itself, shared: no copy, no allocation.
            Some(entry) => {
                entry.used = true;
                LoadNow::Found(entry.fields.clone())
            }
            None => LoadNow::Missing,
        }
    }
}

impl SessionAdmin for MemoryStore {
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut removed = 0u64;
            // Sessions left after the sweep: the store's gauge, for free here.
            let mut held = 0u64;
            // Expired sessions that were bound: dropped from the index after the
            // sweep (never with a shard lock held: lock order).
            let mut unbound = Vec::new();
            for shard in self.inner.shards.iter() {
                {
                    let mut guard = lock(shard);
                    let shard = &mut *guard;
                    let before = shard.sessions.len();
                    shard.sessions.retain(|key, e| {
                        let live = e.live(now_ms);
                        if !live {
                            if let Some(user) = bound_user(&e.fields) {
                                unbound.push((user, *key));
                            }
                        }
                        live
                    });
                    let purged = before - shard.sessions.len();
                    removed += purged as u64;
                    held += shard.sessions.len() as u64;
                    if purged > 0 && self.inner.max_per_shard.is_some() {
                        // The sweep is a scan anyway: drop the ring's dead slots with it.
                        shard.clock.compact(&shard.sessions);
                    }
                    if shard.sessions.capacity() > 4 * shard.sessions.len().max(16) {
                        shard.sessions.shrink_to_fit();
                    }
                }
                // One shard per step, so request handling interleaves with the sweep.
                tokio::task::yield_now().await;
            }
            if !unbound.is_empty() {
                let mut index = self.index();
                for (user, key) in unbound {
                    users::forget(&mut index, &user, key);
                }
            }
            observe::store_sessions(KIND, held);
            Ok(removed)
        })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        let now = now_ms();
        let mut out = Vec::new();
        for shard in self.inner.shards.iter() {
            let shard = lock(shard);
            for (key, e) in shard.sessions.iter().filter(|(_, e)| e.live(now)) {
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

    /// A key of shard `shard` (the byte `Shards` picks by), made distinct by `n`.
    fn key_in_shard(shard: u8, n: u64) -> StoreKey {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes[8] = shard;
        // Distinct beyond the hashed bytes too, so no two calls collide.
        bytes[9..17].copy_from_slice(&n.to_be_bytes());
        StoreKey::from_bytes(bytes)
    }

    async fn create(store: &MemoryStore, key: StoreKey, expires_at_ms: i64) {
        let mut batch = Changes::new();
        batch.insert("user_id".into(), Change::Put(b"7".to_vec()));
        store.apply(key, &batch, expires_at_ms, Presence::New).await.unwrap();
    }

    fn present(store: &MemoryStore, key: StoreKey) -> bool {
        // `load` marks the session as used, so peek at the map instead.
        store.shard(key).sessions.get(&key).is_some_and(|e| e.live(now_ms()))
    }

    #[tokio::test]
    async fn evicted_and_expired_bound_sessions_leave_the_index() {
        use crate::store::users::{Binding, UserIndex};
        // One session per shard: a second one in shard 3 evicts the first.
        let store = MemoryStore::with_max_sessions(SHARDS);
        let (first, second) = (key_in_shard(3, 1), key_in_shard(3, 2));
        let later = now_ms() + 60_000;
        create(&store, first, later).await;
        let binding = Binding::new("alice", now_ms(), None).unwrap();
        store.bind(first, &binding, later).await.unwrap();
        assert!(store.index().contains_key("alice"));
        create(&store, second, later).await;
        assert!(!present(&store, first), "the first session was evicted");
        assert!(!store.index().contains_key("alice"), "an evicted bound session leaves the index");

        // Expired, then purged: gone from the index too.
        create(&store, first, later).await;
        store.bind(first, &binding, now_ms() + 20).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        assert!(store.index().contains_key("alice"), "expired but not purged yet");
        store.purge_expired(now_ms()).await.unwrap();
        assert!(!store.index().contains_key("alice"), "the purge unindexes expired bound sessions");
    }

    /// The counters of every shard's eviction ring, summed.
    fn eviction_stats(store: &MemoryStore) -> (u64, u64) {
        store.inner.shards.iter().map(|s| lock(s).clock.stats).fold((0, 0), |(x, e), s| (x + s.examined, e + s.evicted))
    }

    #[tokio::test]
    async fn a_session_used_since_the_last_round_survives_and_an_unused_one_is_evicted() {
        // Two sessions per shard; all keys below share shard 5.
        let store = MemoryStore::with_max_sessions(2 * SHARDS);
        let far = now_ms() + 3_600_000;
        let (used, unused, newcomer) = (key_in_shard(5, 1), key_in_shard(5, 2), key_in_shard(5, 3));
        create(&store, used, far).await;
        // Created later and expiring later: the old rule (evict the soonest expiry) kept it.
        create(&store, unused, far + 1_000).await;
        assert!(store.load(used).await.unwrap().is_some());
        create(&store, newcomer, far).await;
        assert!(present(&store, used), "the session read since it was created stays");
        assert!(!present(&store, unused), "the session nobody came back to goes");
        assert!(present(&store, newcomer));
    }

    #[tokio::test]
    async fn touch_and_update_count_as_use_and_expired_sessions_go_first() {
        let store = MemoryStore::with_max_sessions(3 * SHARDS);
        let now = now_ms();
        let (touched, updated, expired) = (key_in_shard(9, 1), key_in_shard(9, 2), key_in_shard(9, 3));
        create(&store, touched, now + 60_000).await;
        create(&store, updated, now + 60_000).await;
        create(&store, expired, now - 1).await;
        assert!(store.touch(touched, now + 120_000).await.unwrap());
        let mut bump = |_: Option<&[u8]>| UpdateAction::Set(b"8".to_vec());
        store.update(updated, "user_id", &mut bump, now + 120_000, Presence::Existing).await.unwrap();
        // The shard holds 3 entries (one expired, not purged): full.
        let first = key_in_shard(9, 4);
        create(&store, first, now + 60_000).await;
        assert!(present(&store, touched) && present(&store, updated) && present(&store, first));
        assert_eq!(lock(store.inner.shards.of(first)).sessions.len(), 3, "the expired entry made the room");
        // Now `touched` and `updated` lost their marks going round: the next newcomer
        // evicts the oldest of them that is unused.
        create(&store, key_in_shard(9, 5), now + 60_000).await;
        assert!(!present(&store, touched), "used once, then passed over by the hand: evicted next");
        assert!(present(&store, updated) && present(&store, first));
    }

    #[tokio::test]
    async fn eviction_examines_a_few_slots_per_insert_into_a_full_store() {
        // 100 sessions per shard. The old rule scanned the whole shard (100 entries)
        // for every insert into a full one; the ring looks at about one.
        let store = MemoryStore::with_max_sessions(100 * SHARDS);
        let far = now_ms() + 3_600_000;
        let mut keys = Vec::new();
        for n in 0..(200 * SHARDS as u64) {
            let key = key_in_shard((n % SHARDS as u64) as u8, n);
            create(&store, key, far).await;
            keys.push(key);
            // A third of the traffic comes back to a recent session, and some log out:
            // marks to clear and dead slots to skip, as in real use.
            if n % 3 == 0 {
                let back = keys[keys.len().saturating_sub(1 + (n as usize % 50))];
                let _ = store.load(back).await.unwrap();
            }
            if n % 7 == 0 {
                store.remove(keys[keys.len() / 2]).await.unwrap();
            }
        }
        let (examined, evicted) = eviction_stats(&store);
        assert!(evicted > 50 * SHARDS as u64, "the store was full for most inserts ({evicted} evictions)");
        assert!(examined <= 3 * evicted, "{examined} ring slots examined for {evicted} evictions: not O(1) amortised");
    }

    #[tokio::test]
    async fn size_and_ring_stay_bounded_under_mixed_traffic() {
        let max_per_shard = 4;
        let store = MemoryStore::with_max_sessions(max_per_shard * SHARDS);
        let now = now_ms();
        let mut live: Vec<StoreKey> = Vec::new();
        for n in 0..20_000u64 {
            // Few shards, so each sees plenty of churn.
            let key = key_in_shard((n % 3) as u8, n);
            let expires = if n % 11 == 0 { now - 1 } else { now + 60_000 };
            match n % 5 {
                0 if !live.is_empty() => {
                    let from = live.swap_remove(n as usize % live.len());
                    if store.rename(from, key, now + 60_000).await.unwrap() {
                        live.push(key);
                    }
                }
                1 if !live.is_empty() => store.remove(live.swap_remove(n as usize % live.len())).await.unwrap(),
                2 if !live.is_empty() => {
                    let _ = store.touch(live[n as usize % live.len()], now + 60_000).await.unwrap();
                }
                _ => {
                    create(&store, key, expires).await;
                    live.push(key);
                }
            }
            for shard in store.inner.shards.iter() {
                let shard = lock(shard);
                assert!(shard.sessions.len() <= max_per_shard, "a shard outgrew its bound");
                assert!(shard.clock.slots() <= 2 * max_per_shard + 64 + 1, "the ring kept dead slots");
            }
        }
        assert!(store.len() <= max_per_shard * SHARDS);
    }

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
