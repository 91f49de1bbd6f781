use std::sync::Arc;
use std::time::Duration;

use crate::cache::ClientCache;
use crate::connect::RedisOptions;
use crate::connect::{Connection, Redis};
use nex_session_core::store::toolkit::update_chain::Updates;
use nex_session_core::store::users::USER_FIELD;
use nex_session_core::token::now_ms;
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
/// `touch` and `remove` are unchanged, and `renew` stays one script. Run Redis
/// with a `maxmemory-policy` of `noeviction` or `volatile-*`: indexes have no
/// expiry, and evicting one would hide its user's sessions from revokes.
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
    pub(crate) sweep: Arc<crate::users::Sweep>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.redis.conn {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore").field("mode", &mode).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = crate::connect::DEFAULT_PREFIX;
    /// The default bound on every Redis call.
    pub const DEFAULT_TIMEOUT: Duration = crate::connect::DEFAULT_TIMEOUT;

    /// Connects to `redis://HOST:PORT[/DB]` (single node) or
    /// `redis+cluster://HOST:PORT,HOST:PORT,…` (Redis Cluster), with the default
    /// prefix and a 1 s timeout.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Timeout`] if Redis cannot be reached.
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
    /// (Redis Cluster, a server older than Redis 6, or `client_cache: 0`).
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

    /// Moves the session under `from` to `to` (see [`SessionStore::rename`]) if
    /// its binding ([`USER_FIELD`]) is `expected` (empty: none); otherwise moves
    /// nothing and answers the binding it has, for the caller to take the way
    /// that binding needs (`users.rs` for a bound session).
    ///
    /// [`SessionStore::rename`]: nex_session_core::store::SessionStore::rename
    pub(crate) async fn move_session(
        &self,
        from: StoreKey,
        to: StoreKey,
        expires_at_ms: i64,
        expected: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<Moved, StoreError> {
        let (from, to) = (self.redis.key(from), self.redis.key(to));
        match &self.redis.conn {
            Connection::Single(_) => {
                let mut invocation = self.redis.scripts.rename.key(&from);
                invocation.key(&to).arg(expires_at_ms).arg(USER_FIELD).arg(expected);
                let mut conn = self.redis.conn.clone();
                let (moved, binding): (i64, Vec<u8>) =
                    self.redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
                Ok(match moved {
                    1 => Moved::Done,
                    2 => Moved::BindingIs(binding),
                    _ => Moved::Refused,
                })
            }
            Connection::Cluster(_) => self.rename_across_slots(&from, &to, expires_at_ms, expected, deadline).await,
        }
    }

    /// `renew` on a cluster: two keys may sit in two slots, which no atomic
    /// command spans. Take the old session away atomically first (the old id
    /// stops working at once), then write it under the new key. If the new key
    /// turns out to be taken (a 192-bit collision, checked first and then again
    /// by the write), the session is put back as it was; if a step fails, the
    /// user is logged out, never left on the old id.
    async fn rename_across_slots(
        &self,
        from: &str,
        to: &str,
        expires_at_ms: i64,
        expected: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<Moved, StoreError> {
        let mut conn = self.redis.conn.clone();
        let target_taken: bool = self.redis.read(deadline, redis::cmd("EXISTS").arg(to).query_async(&mut conn)).await?;
        if target_taken {
            return Ok(Moved::Refused);
        }
        let mut take = self.redis.scripts.take.key(from);
        take.arg(USER_FIELD).arg(expected);
        let taken: Vec<Vec<u8>> = self.redis.write(deadline, take.invoke_async(&mut conn)).await?;
        let fields = match taken.split_first() {
            Some((tag, rest)) if tag.as_slice() == b"taken" => rest,
            Some((tag, rest)) if tag.as_slice() == b"binding" => {
                return Ok(Moved::BindingIs(rest.first().cloned().unwrap_or_default()));
            }
            _ => return Ok(Moved::Refused),
        };
        let Some((ttl, fields)) = fields.split_first().filter(|(_, fields)| !fields.is_empty()) else {
            return Ok(Moved::Refused);
        };
        // The old session is gone from here on: any failure leaves the user logged
        // out, whatever else happened, so it is reported as possibly applied.
        let moved = self.put_all_if_absent(to, expires_at_ms, fields, deadline).await.map_err(taken_away)?;
        if moved {
            return Ok(Moved::Done);
        }
        // Refused after all: put the source back with the time it had left.
        let ttl_ms = std::str::from_utf8(ttl).ok().and_then(|t| t.parse::<i64>().ok()).filter(|t| *t > 0);
        let restored_expiry = ttl_ms.map_or(expires_at_ms, |t| now_ms().saturating_add(t));
        self.put_all_if_absent(from, restored_expiry, fields, deadline).await.map_err(taken_away)?;
        Ok(Moved::Refused)
    }

    /// Writes a whole session under `key` unless one is there; `Ok(false)` if one was.
    async fn put_all_if_absent(
        &self,
        key: &str,
        expires_at_ms: i64,
        fields: &[Vec<u8>],
        deadline: tokio::time::Instant,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.redis.scripts.put_all_if_absent.key(key);
        invocation.arg(expires_at_ms);
        for part in fields {
            invocation.arg(part.as_slice());
        }
        let mut conn = self.redis.conn.clone();
        let written: i64 = self.redis.write(deadline, invocation.invoke_async(&mut conn)).await?;
        Ok(written == 1)
    }
}

/// What [`RedisStore::move_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Moved {
    /// The data is under the new key; the old key is gone.
    Done,
    /// Nothing moved: no such session, or the new key is taken.
    Refused,
    /// Nothing moved: the session's binding is not the one expected; here it is
    /// (empty: none).
    BindingIs(Vec<u8>),
}

/// A step failed after the store changed (a cluster `renew` took the old
/// session away, a revoke deleted sessions): the failure is never reported as
/// "nothing applied".
pub(crate) fn taken_away(err: StoreError) -> StoreError {
    match err {
        StoreError::OutcomeUnknown(_) => err,
        other => StoreError::OutcomeUnknown(Box::new(other)),
    }
}
