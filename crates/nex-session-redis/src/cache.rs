//! Client-side caching of loaded sessions, kept current by Redis itself.
//!
//! Without it every request that reads its session pays a Redis round trip,
//! which on loopback is most of a small request's cost. With Redis 6+ "client
//! tracking" (RESP3), the server remembers which keys this connection read and
//! pushes an `invalidate` message on the same connection as soon as any client
//! changes or expires one of them. So a session read once can be answered from
//! memory until Redis says it changed.
//!
//! Why the answers stay correct (the sessions and the liveness clock are
//! `toolkit::client_cache` of the core, shared with the PostgreSQL store's cache):
//! - Pushes arrive on the connection in stream order with the replies; the
//!   connection manager hands them on through a channel of its own, so one is
//!   handled a task hop after it arrives.
//! - Every shard has a generation, bumped by each invalidation in it. A load
//!   notes the generation before asking Redis and caches its answer only if the
//!   generation is unchanged when the answer is back; so an answer that raced
//!   with a change is used once, never kept.
//! - A lost connection drops the whole cache (tracking is per connection), and
//!   so does a `FLUSHALL`-style invalidation without keys.
//! - This process's own writes drop the entry before they are sent and again
//!   when they end (completed, failed or cancelled): a load on this instance that
//!   ran meanwhile may have read the old value and cached it after the first
//!   drop, and Redis' invalidation of that entry can arrive after the write's
//!   reply. An `update` drops it only when it ends, so that it can start from the
//!   cached copy ([`ClientCache::copy`]); every read after it is acknowledged misses.
//! - An entry is never served past its session's expiry.
//! - **Only while Redis shows signs of life.** A frozen or cut-off Redis sends no
//!   invalidations, so silence would look like "nothing changed". A heartbeat
//!   (`PING` every [`HEARTBEAT`] on the tracking connection) notes when each
//!   answered `PING` was *sent*: every invalidation Redis produced before that
//!   moment came before its reply. The cache answers only within [`ANSWERS_FOR`]
//!   (3 s) of the last such moment; past it, every read goes to Redis (and fails
//!   honestly while Redis does not answer). When signs of life come back after
//!   such a gap, the cache is emptied first: invalidations may have been missed.
//!
//! What it costs: a write by *another* app instance becomes visible here once
//! its invalidation arrives, which is a loopback or LAN hop (micro- to
//! milliseconds) after that write. Writes themselves always go to Redis and are
//! never decided on cached data (updates compare-and-set in Redis).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::aio::{AsyncPushSender, ConnectionLike, SendError};
use redis::{PushInfo, PushKind, Value};

use crate::scripts::{INDEX_INFIX, ORDER_INFIX};
use nex_session_core::observe;
use nex_session_core::store::toolkit::client_cache::{Entries, Liveness};
pub(crate) use nex_session_core::store::toolkit::client_cache::{Ticket, ANSWERS_FOR};
use nex_session_core::store::{Record, Snapshot};
use nex_session_core::StoreKey;

/// How often the heartbeat asks Redis for a sign of life.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// The cache of one [`RedisStore`](crate::store::RedisStore) connection.
pub(crate) struct ClientCache {
    entries: Entries,
    prefix: Arc<str>,
    /// Counters for tests and operators: answers from memory, and trips to Redis.
    hits: AtomicU64,
    misses: AtomicU64,
    /// When Redis last showed the cache current.
    life: Liveness,
}

impl ClientCache {
    /// A cache for about `capacity` sessions of keys named `<prefix><hex key>`.
    pub(crate) fn new(capacity: usize, prefix: Arc<str>) -> Self {
        Self {
            entries: Entries::new(capacity),
            prefix,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            // Made just before its connection: that connection is the first sign of life.
            life: Liveness::alive_now(),
        }
    }

    /// The cached session's fields, if it is cached, not expired at `now_ms`,
    /// and Redis showed signs of life within [`ANSWERS_FOR`].
    pub(crate) fn get(&self, key: StoreKey, now_ms: i64) -> Option<Snapshot> {
        let record = self.copy(key, now_ms);
        let counter = if record.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        observe::client_cache(record.is_some());
        record
    }

    /// The cached session's fields, as [`ClientCache::get`] but not counted as a
    /// read of the cache: the starting point of an `update`, which the
    /// compare-and-set checks (so it may be stale).
    pub(crate) fn copy(&self, key: StoreKey, now_ms: i64) -> Option<Snapshot> {
        if !self.life.fresh(Instant::now()) {
            return None;
        }
        self.entries.get(key, now_ms)
    }

    /// Call before asking Redis for `key`; hand the ticket to [`ClientCache::insert`].
    pub(crate) fn ticket(&self, key: StoreKey) -> Ticket {
        self.entries.ticket(key)
    }

    /// Caches what Redis answered for `key`, unless something in its shard
    /// changed since the ticket was taken.
    pub(crate) fn insert(&self, key: StoreKey, record: &Record, ticket: Ticket) {
        self.entries.insert(key, record, ticket);
    }

    /// Drops `key` and fences off loads of its shard that are in flight.
    pub(crate) fn invalidate(&self, key: StoreKey) {
        self.entries.invalidate(key);
    }

    /// Drops everything (connection lost, or Redis flushed).
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// Redis answered a heartbeat sent at `sent`: everything it invalidated before
    /// then has reached the cache. After a silence of [`ANSWERS_FOR`] or more,
    /// the cache is emptied first (invalidations may have been lost meanwhile).
    /// Called by the heartbeat only, so one writer.
    pub(crate) fn alive(&self, sent: Instant) {
        self.life.alive(self.life.ms(sent), || self.clear());
    }

    /// `(hits, misses)` so far.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Acts on one push message from Redis.
    fn handle(&self, info: &PushInfo) {
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for name in keys {
                        let own = match name {
                            Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
                            Value::SimpleString(text) => Some(text.as_str()),
                            _ => None,
                        }
                        .and_then(|name| name.strip_prefix(&*self.prefix));
                        match own.map(|rest| (rest, StoreKey::from_hex(rest))) {
                            Some((_, Some(key))) => self.invalidate(key),
                            // A user's index or order, read by the store's user calls: never cached.
                            Some((rest, None)) if rest.starts_with(INDEX_INFIX) || rest.starts_with(ORDER_INFIX) => {}
                            // Not a name we know how to map: be safe.
                            _ => self.clear(),
                        }
                    }
                }
                // A null key list: the whole database was flushed.
                _ => self.clear(),
            },
            PushKind::Disconnection => self.clear(),
            _ => {}
        }
    }
}

/// Asks Redis for a sign of life every [`HEARTBEAT`] on the tracking connection
/// `conn`, for as long as `cache` exists (see the module docs).
pub(crate) async fn heartbeat(cache: Weak<ClientCache>, mut conn: impl ConnectionLike + Send) {
    loop {
        let sent = Instant::now();
        // A late answer still counts (it proves the cache current as of `sent`),
        // but there is no use waiting longer than the cache may answer.
        let answered = tokio::time::timeout(ANSWERS_FOR, redis::cmd("PING").query_async::<()>(&mut conn)).await;
        let Some(cache) = cache.upgrade() else { return };
        if matches!(answered, Ok(Ok(()))) {
            cache.alive(sent);
        }
        drop(cache);
        tokio::time::sleep_until((sent + HEARTBEAT).into()).await;
    }
}

/// Hands Redis' push messages to the cache (see the module docs).
///
/// Holds the cache weakly: the connection (and so this sender) lives as long as
/// the heartbeat task, which lives as long as the cache; a strong reference here
/// would keep all three alive after the store is dropped.
pub(crate) struct Invalidator(pub(crate) Weak<ClientCache>);

impl AsyncPushSender for Invalidator {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if let Some(cache) = self.0.upgrade() {
            cache.handle(&info);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nex_session_core::store::conformance::fixtures::{key, record};

    fn invalidate_push(names: &[String]) -> PushInfo {
        let keys = names.iter().map(|n| Value::BulkString(n.as_bytes().to_vec())).collect();
        PushInfo { kind: PushKind::Invalidate, data: vec![Value::Array(keys)] }
    }

    #[test]
    fn a_load_that_raced_with_an_invalidation_is_not_cached() {
        let cache = ClientCache::new(100, "p:".into());
        let ticket = cache.ticket(key(1));
        cache.handle(&invalidate_push(&[format!("p:{}", key(1).to_hex())]));
        cache.insert(key(1), &record("old", i64::MAX), ticket);
        assert!(cache.get(key(1), 0).is_none());
        let ticket = cache.ticket(key(1));
        cache.insert(key(1), &record("new", i64::MAX), ticket);
        assert_eq!(cache.get(key(1), 0).unwrap().get("k"), Some(&b"new"[..]));
    }

    #[test]
    fn invalidations_disconnects_and_expiry_drop_entries() {
        let cache = ClientCache::new(100, "p:".into());
        for n in 1..=3 {
            let t = cache.ticket(key(n));
            cache.insert(key(n), &record("v", 1_000), t);
        }
        assert!(cache.get(key(1), 999).is_some());
        assert!(cache.get(key(1), 1_000).is_none(), "expired sessions are not served");
        cache.handle(&invalidate_push(&[format!("p:{}", key(2).to_hex())]));
        assert!(cache.get(key(2), 0).is_none());
        assert!(cache.get(key(3), 0).is_some());
        cache.handle(&PushInfo { kind: PushKind::Disconnection, data: vec![] });
        assert!(cache.get(key(3), 0).is_none(), "a lost connection drops everything");
        let t = cache.ticket(key(3));
        cache.insert(key(3), &record("v", 1_000), t);
        cache.handle(&PushInfo { kind: PushKind::Invalidate, data: vec![Value::Nil] });
        assert!(cache.get(key(3), 0).is_none(), "a flush drops everything");
    }

    #[test]
    fn a_silent_redis_stops_the_cache_and_its_return_empties_it() {
        let mut cache = ClientCache::new(100, "p:".into());
        let t = cache.ticket(key(1));
        cache.insert(key(1), &record("v", i64::MAX), t);
        assert!(cache.get(key(1), 0).is_some(), "just made: its connection is a sign of life");
        // The last sign of life is older than the bound.
        let long_ago = Instant::now().checked_sub(ANSWERS_FOR + Duration::from_secs(1)).expect("the clock runs");
        cache.life = Liveness::born_at(long_ago);
        assert!(cache.get(key(1), 0).is_none(), "silent too long: no answer from memory");
        cache.alive(long_ago);
        assert!(cache.get(key(1), 0).is_none(), "an old sign of life changes nothing");
        cache.alive(Instant::now());
        assert!(cache.get(key(1), 0).is_none(), "back after a silence: emptied, invalidations may be lost");
        let t = cache.ticket(key(1));
        cache.insert(key(1), &record("v", i64::MAX), t);
        assert!(cache.get(key(1), 0).is_some(), "and answering again");
        cache.alive(Instant::now());
        assert!(cache.get(key(1), 0).is_some(), "a heartbeat without a silence keeps the entries");
    }

    #[test]
    fn a_changed_user_index_drops_nothing_but_an_unknown_name_drops_everything() {
        let cache = ClientCache::new(100, "p:".into());
        let t = cache.ticket(key(1));
        cache.insert(key(1), &record("v", i64::MAX), t);
        cache.handle(&invalidate_push(&[format!("p:{INDEX_INFIX}{{{}}}", "ab".repeat(32))]));
        assert!(cache.get(key(1), 0).is_some(), "an index is never cached: its change drops no session");
        cache.handle(&invalidate_push(&["p:something-else".to_owned()]));
        assert!(cache.get(key(1), 0).is_none(), "a name the cache cannot map drops everything");
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = ClientCache::new(64, "p:".into());
        for n in 0..=255u8 {
            let t = cache.ticket(key(n));
            cache.insert(key(n), &record("v", i64::MAX), t);
        }
        let cached = (0..=255u8).filter(|n| cache.get(key(*n), 0).is_some()).count();
        assert!(cached <= 64, "{cached}");
    }
}
