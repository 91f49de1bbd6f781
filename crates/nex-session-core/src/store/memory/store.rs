//! [`MemoryStore`]: the sessions in sharded maps, and its `SessionStore` and
//! `FastReads` implementations.

use std::sync::{Arc, Mutex, MutexGuard};

use super::clock::{Clock, Evictable, Evicted};
use super::index::{self, Users};
use super::table::{Entry, Table};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::toolkit::shards::Shards;
use crate::store::users::{Binding, USER_FIELD};
use crate::store::{
    BoxFuture, Changes, FastReads, LoadNow, Presence, Record, SessionAdmin, SessionStore, Snapshot, UpdateAction,
    UpdateFn, WriteOutcome,
};
use crate::token::now_ms;

pub(super) const SHARDS: usize = 64;
/// The store's kind ([`SessionStore::kind`]).
pub(super) const KIND: &str = "memory";

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
/// Sessions are spread over 64 shards by their (random) key, each a hash table
/// behind its own mutex, so requests of different sessions rarely contend and no
/// lock is ever held across an `.await`. A session is one table slot of 56 bytes
/// (its key, its expiry and "used" mark in one word, its fields as one shared
/// buffer, [`Snapshot`]), which keeps an idle session small (under 96 bytes with
/// one small field, the table's spare slots included, bounded or not), and which
/// a request reads without a copy ([`FastReads::load_now`]).
///
/// Expired sessions are invisible at once and removed by
/// [`SessionAdmin::purge_expired`], which the session layer runs in the
/// background; it locks one shard at a time and yields between shards, so
/// requests never wait for a whole-table scan.
///
/// **Capacity bound** ([`MemoryStore::with_max_sessions`]): each shard holds at most
/// its share of the bound, so the store never holds more than the bound rounded up
/// to a multiple of 64. When a new session arrives at a full shard, the shard evicts
/// one by *second chance* (a "clock"): a hand walks the shard's table, and every
/// store, read or write of a session (save, load, update, touch) marks it as used.
/// The hand evicts an expired session at once, takes the mark off a used one and
/// moves on, and evicts the first one not used since it last passed. So a session
/// in use outlives sessions created and never come back to (anonymous traffic, a
/// flood of fresh cookies), a new session survives at least until the hand has
/// passed it twice, and eviction costs O(1) amortised per new session, never a
/// scan of the shard under its lock. Sessions not used since leave in the table's
/// order, which is random, not in the order they arrived.
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
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) shards: Shards<Mutex<Shard>>,
    pub(super) max_per_shard: Option<usize>,
    /// Which sessions each user is bound to (`index.rs`). Lock order: this lock
    /// before any shard lock, never the other way round.
    pub(super) users: Users,
}

#[derive(Default)]
pub(super) struct Shard {
    pub(super) sessions: Table,
    /// The eviction hand; only a bounded store moves it.
    pub(super) clock: Clock,
}

/// Runs an update of one field of the live session `entry`.
fn update_entry(entry: &mut Entry, field: &str, f: UpdateFn<'_>, expires_at_ms: i64) {
    let found = entry.fields.find(field);
    let action = f(found.as_ref().map(|found| found.value));
    let span = found.map(|found| found.span);
    entry.mark_used();
    match action {
        UpdateAction::Keep => return,
        UpdateAction::Set(value) => {
            // Same length (a counter from 41 to 42): overwrite in place, no new allocation.
            let overwritten = span.is_some_and(|span| entry.fields.overwrite(&span, &value));
            if !overwritten {
                entry.fields = entry.fields.merged([(field, Some(&value[..]))].into_iter());
            }
        }
        UpdateAction::Delete => entry.fields = entry.fields.merged([(field, None)].into_iter()),
    }
    entry.slide(expires_at_ms);
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
        Self { inner: Arc::new(Inner { shards, max_per_shard, users: Users::default() }) }
    }

    /// An update of one field, under its shard's lock, as of `now` (ms): what
    /// `update` and `update_now` both run (the memory store never waits).
    fn update_in_shard(
        &self,
        key: StoreKey,
        field: &str,
        f: UpdateFn<'_>,
        expires_at_ms: i64,
        presence: Presence,
        now: i64,
    ) -> WriteOutcome {
        let mut shard = self.shard(key);
        // One lookup for the usual case, an update of a live session.
        let outcome = match shard.sessions.get_mut(&key).filter(|e| e.live(now)) {
            Some(entry) if presence.holds(true) => {
                update_entry(entry, field, f, expires_at_ms);
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
        outcome
    }

    /// Live sessions right now (expired ones not yet purged are not counted).
    pub fn len(&self) -> usize {
        let now = now_ms();
        self.inner.shards.iter().map(|s| lock(s).sessions.iter().filter(|e| e.live(now)).count()).sum()
    }

    /// True when no live session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The per-user index, with evicted bound sessions already forgotten.
    pub(super) fn users(&self) -> std::sync::MutexGuard<'_, index::Index> {
        self.inner.users.lock()
    }

    pub(super) fn shard(&self, key: StoreKey) -> MutexGuard<'_, Shard> {
        lock(self.inner.shards.of(key))
    }

    /// Inserts `entry`, whose key the shard does not hold; in a bounded store,
    /// evicts first to make room (the type's docs give the rule).
    fn insert_new(&self, shard: &mut Shard, entry: Entry, now: i64) {
        let Some(max) = self.inner.max_per_shard else {
            shard.sessions.insert_absent(entry);
            return;
        };
        while shard.sessions.len() >= max {
            let Some((evicted, gone)) = shard.clock.evict_one(shard.sessions.buckets(), now) else { break };
            if matches!(evicted, Evicted::Unused) {
                tracing::debug!(target: "nex_session::store", "memory store full: evicted a session unused since the last round");
            }
            if let Some(user) = bound_user(&gone.fields) {
                // The index lock may not be taken under a shard lock: leave a note.
                self.inner.users.orphaned(user, gone.key());
            }
        }
        shard.sessions.insert_absent(entry);
    }

    /// Stores `fields` as the whole session under `key`: a rewrite of a live one
    /// or of an expired leftover (in place), or a new session.
    fn put_entry(&self, shard: &mut Shard, key: StoreKey, fields: Snapshot, expires_at_ms: i64, now: i64) {
        let entry = Entry::new(key, fields, expires_at_ms);
        match shard.sessions.get_mut(&key) {
            Some(slot) => *slot = entry,
            None => self.insert_new(shard, entry, now),
        }
    }
}

/// The user a session's fields bind it to; only a bound session pays for the parse.
pub(super) fn bound_user(fields: &Snapshot) -> Option<String> {
    fields.get(USER_FIELD).and_then(Binding::decode).map(|binding| binding.user)
}

pub(super) fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock cannot leave an entry half-written (each
    // write replaces a whole entry or a whole value), so a poisoned lock is safe to use.
    shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionStore for MemoryStore {
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        let now = now_ms();
        let mut shard = self.shard(key);
        let record = shard.sessions.get_mut(&key).filter(|e| e.live(now)).map(|e| {
            e.mark_used();
            Record { fields: e.fields.to_fields(), expires_at_ms: e.expires_at_ms() }
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
        Box::pin(std::future::ready(Ok(self.update_in_shard(key, field, f, expires_at_ms, presence, now_ms()))))
    }

    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        let now = now_ms();
        let mut shard = self.shard(key);
        let touched = match shard.sessions.get_mut(&key) {
            Some(e) if e.live(now) => {
                e.slide(expires_at_ms);
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
        let mut index = self.users();
        // Take the source out under its shard lock; the old id stops working here.
        let taken = match self.shard(from).sessions.remove(&from) {
            Some(e) if e.live(now) => Some(e),
            Some(expired) => {
                if let Some(user) = bound_user(&expired.fields) {
                    index::forget(&mut index, &user, from);
                }
                None
            }
            None => None,
        };
        let moved = match taken {
            None => false,
            Some(entry) => {
                let mut shard = self.shard(to);
                if shard.sessions.get(&to).is_some_and(|e| e.live(now)) {
                    // The target is taken (a 192-bit id collision): put the source back
                    // untouched. As a new entry: while it was out, its shard may have
                    // filled up.
                    drop(shard);
                    self.insert_new(&mut self.shard(from), entry, now);
                    false
                } else {
                    let entry = entry.rekeyed(to, expires_at_ms);
                    let user = bound_user(&entry.fields);
                    match shard.sessions.get_mut(&to) {
                        // An expired leftover under the new key: take over its place.
                        Some(leftover) => *leftover = entry,
                        None => self.insert_new(&mut shard, entry, now),
                    }
                    drop(shard);
                    if let Some(user) = user {
                        index::moved(&mut index, &user, from, to);
                    }
                    true
                }
            }
        };
        drop(index);
        Box::pin(std::future::ready(Ok(moved)))
    }

    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        let removed = self.shard(key).sessions.remove(&key);
        // The shard lock is released before the index lock is taken (lock order).
        if let Some(user) = removed.and_then(|entry| bound_user(&entry.fields)) {
            index::forget(&mut self.users(), &user, key);
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
                entry.mark_used();
                LoadNow::Found(entry.fields.clone())
            }
            None => LoadNow::Missing,
        }
    }

    fn update_now(
        &self,
        key: StoreKey,
        field: &str,
        f: UpdateFn<'_>,
        expires_at_ms: i64,
        presence: Presence,
        now_ms: i64,
    ) -> Option<Result<WriteOutcome, StoreError>> {
        Some(Ok(self.update_in_shard(key, field, f, expires_at_ms, presence, now_ms)))
    }
}
