//! The store handle: its parts (the connection, the group commit of updates,
//! the client-side cache, where the purge's sweep stands), opening it, and the
//! cache's statistics. Its operations are in `session_store.rs`, `rename.rs`,
//! `users.rs` and `admin.rs`.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::ClientCache;
use crate::connect::RedisOptions;
use crate::connect::{Connection, Redis};
use crate::sweep::Sweep;
use nex_session_core::store::toolkit::update_chain::Updates;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Sessions in Redis / Valkey, on one node or a Redis Cluster. Cloning shares the connection.
///
/// Every [`SessionStore`] call is bounded by the store's timeout; see the
/// [`store` module](super) for the contract.
///
/// # Users
///
/// [`SessionStore::users`] answers `Some`: sessions can be bound to users, listed
/// per user and revoked ("log out everywhere"), with one protocol for a single
/// node and a cluster, where a user's index and their sessions sit in different
/// hash slots and no command changes both at once.
///
/// - A user's index is one hash, `<prefix>u:{<hex SHA-256 of the user id>}`
///   (the hash tag keeps it in one slot; no user id appears in a key name),
///   holding the keys of their sessions, each with a state: bound, taken by a
///   revoke, or moving in (the new key of a `renew` in flight). The binding
///   itself is the session's `_nex_user` field.
/// - **Atomic**: each step is one Lua script on one key, the index or a session.
/// - **Ordered**: `bind` indexes the session, then writes its binding, then
///   drops it from a previous user's index; a revoke marks the user's members as
///   taken (one script, so none slips through), then deletes each session still
///   bound to the user, then drops the marks; a `renew` of a bound session
///   indexes the new key as moving in (refused if a revoke took the old one),
///   moves the data, then settles the index, deleting the new key itself if a
///   revoke took it meanwhile.
/// - So a revoke-all is **final**: every session bound before it started is
///   gone when it returns; a `renew` racing with it either finished first (the
///   new key is revoked too) or fails (and its new id is never handed out).
///   A revoke that fails after deleting some sessions is
///   [`StoreError::OutcomeUnknown`], and running it again finishes the job.
/// - Members of expired or removed sessions are dropped when the user's sessions
///   are next read, bound or revoked; nothing scans all sessions.
///
/// Sessions without a user never touch an index: `load`, `apply`, `update`,
/// `touch` and `remove` cost what they did, and `renew` stays one script. An
/// index expires with its user's last session. Run Redis with `maxmemory-policy
/// noeviction`: evicting an index would hide its user's sessions from revokes,
/// and indexes carry expiries, so `volatile-*` policies may evict them.
///
/// ```no_run
/// # async fn demo() -> Result<(), nex_session::StoreError> {
/// use nex_session::store::{Keep, RedisStore, SessionStore};
///
/// let store = RedisStore::open("redis+cluster://10.0.0.1:7000,10.0.0.2:7000").await?;
/// let users = store.users().expect("the Redis store indexes users");
/// for session in users.sessions("alice").await? {
///     println!("{} signed in at {}", session.handle, session.signed_in_ms);
/// }
/// users.revoke_all("alice", Keep::None).await?;
/// # Ok(()) }
/// ```
///
/// [`SessionStore`]: nex_session_core::store::SessionStore
/// [`SessionStore::users`]: nex_session_core::store::SessionStore::users
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) redis: Redis,
    pub(crate) updates: Arc<Updates>,
    /// Sessions read recently, kept current by Redis' invalidation pushes.
    pub(crate) cache: Option<Arc<ClientCache>>,
    /// Where the purge's sweep of users' indexes stands.
    pub(crate) sweep: Arc<Sweep>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.redis.conn {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
            Connection::Sentinel(_) => "sentinel",
        };
        f.debug_struct("RedisStore").field("mode", &mode).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = crate::connect::DEFAULT_PREFIX;
    /// The default bound on every Redis call.
    pub const DEFAULT_TIMEOUT: Duration = crate::connect::DEFAULT_TIMEOUT;

    /// Connects with the default prefix and a 1 s timeout to:
    ///
    /// | URL | what |
    /// |---|---|
    /// | `redis://[USER:PASSWORD@]HOST:PORT[/DB]` | one node |
    /// | `redis+cluster://HOST:PORT,HOST:PORT,…` | Redis Cluster |
    /// | `redis+sentinel://[USER:PASSWORD@]HOST:PORT,…/SERVICE[/DB]` | the master of `SERVICE`, found through the sentinels, followed across failovers |
    ///
    /// Each with `rediss` for TLS (`rediss://`, `rediss+cluster://`,
    /// `rediss+sentinel://`), and the query parameters `sslmode` (`verify-full`,
    /// the default; `verify-ca`; `require`), `sslrootcert`, `sslcert`, `sslkey`,
    /// and for sentinels `sentinel_username`, `sentinel_password` (see the
    /// [crate docs](crate)).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// use nex_session::store::RedisStore;
    /// // A managed Redis with in-transit encryption: verified against the system's roots.
    /// let store = RedisStore::open("rediss://:AUTH_TOKEN@master.sessions.abc123.euw1.cache.amazonaws.com:6379").await?;
    /// // Sentinel, TLS with a private CA.
    /// let ha = RedisStore::open("rediss+sentinel://s1:26379,s2:26379,s3:26379/sessions?sslrootcert=/etc/ssl/redis-ca.pem").await?;
    /// # let _ = (store, ha); Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Timeout`] if Redis cannot be
    /// reached, a TLS handshake fails or a certificate file cannot be read (the
    /// message names the URL parameter to fix), or no sentinel names a master.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_options(url, RedisOptions::default()).await
    }

    /// Like [`RedisStore::open`] with a key prefix and a per-call timeout.
    ///
    /// # Errors
    /// As [`RedisStore::open`].
    pub async fn open_with(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        Self::open_with_options(url, RedisOptions { prefix: prefix.to_owned(), timeout, ..RedisOptions::default() })
            .await
    }

    /// Connects with every option spelled out; see [`RedisOptions`].
    ///
    /// # Errors
    /// As [`RedisStore::open`].
    pub async fn open_with_options(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        // The redis crate may quote the URL in an error (cluster nodes are redis:// URLs).
        let opened = Redis::open(url, options)
            .await
            .map_err(|e| nex_session_core::store::toolkit::redact::scrub_error(e, url))?;
        Ok(Self { redis: opened.redis, updates: Arc::new(Updates::new()), cache: opened.cache, sweep: Arc::default() })
    }

    /// The client-side cache's `(hits, misses)` so far, or `None` when it is off
    /// (Redis Cluster, a server older than Redis 6, or `client_cache: 0`). Through
    /// Sentinel the cache is on, and emptied at every failover.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// let store = nex_session::store::RedisStore::open("redis://127.0.0.1:6379").await?;
    /// if let Some((hits, misses)) = store.client_cache_stats() {
    ///     println!("{hits} session reads answered from memory, {misses} from Redis");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn client_cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// Drops `key` from the client-side cache before this process changes it.
    pub(crate) fn forget(&self, key: StoreKey) {
        if let Some(cache) = &self.cache {
            cache.invalidate(key);
        }
    }

    /// Drops `key` from the client-side cache now, and again when the returned
    /// guard is dropped: at the end of a write, completed, failed or cancelled.
    /// The second drop matters when a load of the session on this instance ran
    /// while the write was on its way: it may have read the old value from Redis
    /// and cached it after the first drop, and Redis' invalidation of it may arrive
    /// after the write's reply (see `cache.rs`).
    pub(crate) fn forget_around(&self, key: StoreKey) -> ForgetOnDrop<'_> {
        self.forget(key);
        self.forget_when_done(key)
    }

    /// Drops `key` from the client-side cache when the returned guard is dropped
    /// only: an `update`, which may start from the cached copy until then.
    pub(crate) fn forget_when_done(&self, key: StoreKey) -> ForgetOnDrop<'_> {
        ForgetOnDrop { store: self, key }
    }
}

/// Drops a session from the client cache when dropped: at the end of a write,
/// completed, failed or cancelled, so this process's next read of the session
/// never answers from before the write (Redis' invalidation, which also comes,
/// may arrive later).
pub(crate) struct ForgetOnDrop<'a> {
    store: &'a RedisStore,
    key: StoreKey,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.store.forget(self.key);
    }
}
