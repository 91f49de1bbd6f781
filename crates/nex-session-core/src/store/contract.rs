//! The store contract in types: the [`SessionStore`] trait and its optional
//! extensions ([`FastReads`], [`SessionAdmin`]); the values they exchange are in
//! `record.rs`.
//! The contract itself is written down in the [module docs](super).

use super::record::{BoxFuture, Changes, Presence, Record, Summary, UpdateFn, WriteOutcome};
use super::snapshot::Snapshot;
use super::users::UserIndex;
use crate::error::StoreError;
use crate::id::StoreKey;

/// What [`FastReads::load_now`] knows without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadNow {
    /// The session's fields, exactly what `load` would give.
    Found(Snapshot),
    /// No live session has this key (`load` would give `None`).
    Missing,
    /// Not known without asking the backend: call `load`.
    Unknown,
}

/// A place to keep sessions. See the [module docs](crate::store) for the contract and
/// a complete example.
///
/// Implementations must be cheap to share (`Arc` inside); the layer holds one.
///
/// # Errors
/// Every method fails with a [`StoreError`] that says whether a write may have
/// landed: [`Unavailable`](StoreError::Unavailable) (unreachable or refused; nothing
/// applied), [`Timeout`](StoreError::Timeout) (no answer before the write was sent;
/// nothing applied), [`OutcomeUnknown`](StoreError::OutcomeUnknown) (a write sent
/// whose answer never came) and [`Corrupt`](StoreError::Corrupt) (stored bytes the
/// store cannot read). A missing session is never an error: `load` gives `None`,
/// writes give [`WriteOutcome::PresenceFailed`] or `false`.
pub trait SessionStore: Send + Sync + 'static {
    /// Reads every field of a live session, or `None` if there is none.
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;

    /// Applies a batch of per-field puts and deletes atomically and sets the
    /// expiry, if `presence` holds: [`WriteOutcome::Done`] when it did,
    /// [`WriteOutcome::PresenceFailed`] (and no change) when `presence` did not hold.
    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>>;

    /// Atomically replaces one field with what `f` decides from its current
    /// value, and sets the expiry (unless `f` says `Keep`), if `presence` holds.
    /// `f` may run more than once. [`WriteOutcome::Done`] once `f`'s last decision
    /// took effect (`Keep` included); [`WriteOutcome::PresenceFailed`] as for `apply`.
    fn update<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        f: UpdateFn<'a>,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>>;

    /// Moves a live session's fields to `to` atomically, setting the expiry;
    /// `from` stops existing at once. `Ok(false)` (and no change) if `from` is
    /// missing or `to` is a live session.
    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Removes a session. Removing a missing session is not an error.
    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Sets a live session's expiry. `Ok(false)` if there is no such session.
    ///
    /// The default is an empty [`apply`](Self::apply) on an existing session;
    /// override it when the backend has something cheaper.
    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        static NO_CHANGES: Changes = Changes::new();
        Box::pin(async move {
            let outcome = self.apply(key, &NO_CHANGES, expires_at_ms, Presence::Existing).await?;
            Ok(outcome == WriteOutcome::Done)
        })
    }

    /// The store's fast read path ([`FastReads`]), if it has one. The default
    /// is `None`: the session layer reads with [`load`](Self::load). A store that
    /// can answer reads without waiting, or that keeps its sessions as
    /// [`Snapshot`]s, implements [`FastReads`] and returns `Some(self)`.
    ///
    /// ```
    /// use nex_session::store::{LoadNow, MemoryStore, SessionStore};
    ///
    /// let store = MemoryStore::new();
    /// let key = nex_session::SessionId::generate().unwrap().store_key();
    /// let fast = store.fast_reads().expect("the memory store answers reads at once");
    /// assert_eq!(fast.load_now(key, nex_session::token::now_ms()), LoadNow::Missing);
    /// ```
    fn fast_reads(&self) -> Option<&dyn FastReads> {
        None
    }

    /// The store's administration (listing and purging), if it has one. The
    /// default is `None`; a store that implements [`SessionAdmin`] returns `Some(self)`.
    /// The session layer purges expired sessions in the background through it.
    fn admin(&self) -> Option<&dyn SessionAdmin> {
        None
    }

    /// The store's per-user index (bind a session to a user, list and revoke a
    /// user's sessions), if it has one. The default is `None`: binding a session
    /// is then an error, and nothing else changes. Every store of this crate has one.
    ///
    /// ```
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// use nex_session::store::{Keep, MemoryStore, SessionStore};
    ///
    /// let store = MemoryStore::new();
    /// let users = store.users().expect("the memory store indexes users");
    /// // An admin tool or a password change: sign alice out everywhere.
    /// let revoked = users.revoke_all("alice", Keep::None).await?;
    /// # assert_eq!(revoked, 0);
    /// # Ok(()) }
    /// ```
    fn users(&self) -> Option<&dyn UserIndex> {
        None
    }

    /// The store's kind, a short fixed name: the `store` label of nex-session's
    /// metrics and field of its spans ([`crate::observe`]), and
    /// [`Health::store`](crate::observe::Health::store). `memory`, `sqlite`,
    /// `redis` and `postgres` for the stores of this crate; the default is `custom`. Keep it one
    /// constant per store type (it becomes a metric label).
    ///
    /// ```
    /// use nex_session::store::{MemoryStore, SessionStore};
    /// assert_eq!(MemoryStore::new().kind(), "memory");
    /// ```
    fn kind(&self) -> &'static str {
        "custom"
    }

    /// Whether the store answers, for a readiness check
    /// ([`SessionLayer::health`](crate::SessionLayer::health)): `Ok(())` when it
    /// does. Must not read or write any session, and should answer within the
    /// store's own timeout.
    ///
    /// The default [`load`](Self::load)s a key no session has (all zero bytes,
    /// which no id hashes to in practice); override it with something cheaper.
    /// The memory store is always up, the SQLite store runs `SELECT 1` on its
    /// connection (after checking its file is still there), the PostgreSQL store
    /// runs `SELECT 1` on a pooled connection, and the Redis store
    /// sends `PING`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use nex_session::store::{MemoryStore, SessionStore};
    /// assert!(MemoryStore::new().health().await.is_ok());
    /// # });
    /// ```
    ///
    /// # Errors
    /// The [`StoreError`] that says why the store cannot serve sessions now.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.load(StoreKey::from_bytes([0; 32])).await.map(drop) })
    }

    /// Where the store is connected now, for health reports
    /// ([`Health::endpoint`](crate::observe::Health::endpoint)): the host that
    /// answered and how, such as `127.0.0.1:6380 (TLS, master "sessions" found
    /// through sentinels)` for Redis or `db2:5432 (TLS)` for PostgreSQL, where a
    /// failover or a multi-host URL can change it. `None` (the default) when there
    /// is nothing to say. It answers from what the store already knows, without
    /// a round trip, and never holds a password.
    ///
    /// ```
    /// use nex_session::store::{MemoryStore, SessionStore};
    /// assert_eq!(MemoryStore::new().endpoint(), None);
    /// ```
    fn endpoint(&self) -> Option<String> {
        None
    }
}

/// Administration of a store, for operators and the background purge: optional,
/// offered through [`SessionStore::admin`].
///
/// ```
/// # async fn demo() -> Result<(), nex_session::StoreError> {
/// use nex_session::store::{MemoryStore, SessionStore};
///
/// let store = MemoryStore::new();
/// if let Some(admin) = store.admin() {
///     let purged = admin.purge_expired(nex_session::token::now_ms()).await?;
///     let live = admin.list(100).await?;
///     println!("purged {purged}, {} live", live.len());
/// }
/// # Ok(()) }
/// ```
pub trait SessionAdmin: Send + Sync {
    /// Removes every session expired at `now_ms`; returns how many. Must not
    /// stall concurrent requests for long (work in bounded batches). A backend
    /// that expires data by itself answers `Ok(0)`.
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Lists live sessions, at most `limit` of them, in no set order (the SQL
    /// stores give the latest expiry first).
    ///
    /// # Errors
    /// As [`SessionStore`]'s; a store that cannot list answers an error
    /// (say [`StoreError::Unavailable`] with the reason), never an empty list.
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>>;
}

/// A store's fast read path: optional, offered through
/// [`SessionStore::fast_reads`]. Nothing else changes whether a store has one;
/// it only makes the first read of a request cheaper.
///
/// Both methods must agree with [`load`](SessionStore::load) at every moment
/// (the `conformance` suite checks it after every kind of write). Implement
/// [`load_now`](Self::load_now) when the answer can be known without waiting (an
/// in-memory store, a cache known to be current), and
/// [`load_snapshot`](Self::load_snapshot) when the store keeps its sessions as
/// [`Snapshot`]s already.
///
/// ```
/// use nex_session::store::{FastReads, LoadNow, SessionStore};
/// # use nex_session::store::{BoxFuture, Changes, Presence, Record, UpdateFn, WriteOutcome};
/// # use nex_session::{StoreError, StoreKey};
///
/// struct Cached { /* … a map the store keeps current … */ }
///
/// impl FastReads for Cached {
///     fn load_now(&self, _key: StoreKey, _now_ms: i64) -> LoadNow {
///         LoadNow::Unknown // look the key up; `Unknown` sends the read to `load`
///     }
/// }
///
/// impl SessionStore for Cached {
///     fn fast_reads(&self) -> Option<&dyn FastReads> {
///         Some(self)
///     }
///     // … load, apply, update, rename, remove as usual
/// #   fn load(&self, _: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> { Box::pin(async { Ok(None) }) }
/// #   fn apply<'a>(&'a self, _: StoreKey, _: &'a Changes, _: i64, _: Presence) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> { Box::pin(async { Ok(WriteOutcome::Done) }) }
/// #   fn update<'a>(&'a self, _: StoreKey, _: &'a str, _: UpdateFn<'a>, _: i64, _: Presence) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> { Box::pin(async { Ok(WriteOutcome::Done) }) }
/// #   fn rename(&self, _: StoreKey, _: StoreKey, _: i64) -> BoxFuture<'_, Result<bool, StoreError>> { Box::pin(async { Ok(false) }) }
/// #   fn remove(&self, _: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> { Box::pin(async { Ok(()) }) }
/// }
/// ```
pub trait FastReads: SessionStore {
    /// What [`load`](SessionStore::load) would give, when it is known without
    /// waiting. The default is [`LoadNow::Unknown`]: "call `load_snapshot`".
    ///
    /// This is the hottest path, the first `get` of a request: no future, and the
    /// fields as a [`Snapshot`] rather than a map built per request. `now_ms` is
    /// the request's clock reading (ms since the Unix epoch), the same one the
    /// layer judged the cookie by, so a request reads the clock once.
    ///
    /// ```
    /// use nex_session::store::{LoadNow, MemoryStore, FastReads};
    ///
    /// let key = nex_session::SessionId::generate().unwrap().store_key();
    /// // An in-memory store always knows at once: here, that there is no such session.
    /// let now = nex_session::token::now_ms();
    /// assert_eq!(MemoryStore::new().load_now(key, now), LoadNow::Missing);
    /// ```
    fn load_now(&self, key: StoreKey, now_ms: i64) -> LoadNow {
        let _ = (key, now_ms);
        LoadNow::Unknown
    }

    /// [`load`](SessionStore::load)'s fields as a [`Snapshot`]: what the session
    /// layer reads when [`load_now`](Self::load_now) does not know. The default
    /// converts `load`'s record; a store that keeps snapshots (a cache) overrides
    /// it to hand them out without building a map per request.
    ///
    /// ```
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// use nex_session::store::{Change, FastReads, MemoryStore, Presence, SessionStore};
    ///
    /// let store = MemoryStore::new();
    /// let key = nex_session::SessionId::generate().unwrap().store_key();
    /// let batch = [("user_id".to_owned(), Change::Put(b"42".to_vec()))].into();
    /// store.apply(key, &batch, nex_session::token::now_ms() + 60_000, Presence::New).await?;
    /// let fields = store.load_snapshot(key).await?.expect("the session");
    /// assert_eq!(fields.get("user_id"), Some(&b"42"[..]));
    /// # Ok(()) }
    /// ```
    fn load_snapshot(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
        Box::pin(async move { Ok(self.load(key).await?.map(|record| Snapshot::from_fields(&record.fields))) })
    }

    /// [`update`](SessionStore::update) done at once, for a store that never
    /// waits (it keeps its sessions in this process): `Some(outcome)` when it ran
    /// the update, with the same meaning and the same atomicity as `update`'s.
    /// The default is `None`: "call `update`".
    ///
    /// The session layer calls it before `update` on every atomic update, the
    /// hot write of a counter or a cart: it saves the boxed future of `update`
    /// (an allocation, and a poll through a `dyn Future`). A store that may have
    /// to wait answers `None`, never blocks.
    ///
    /// ```
    /// use nex_session::store::{FastReads, MemoryStore, Presence, UpdateAction, WriteOutcome};
    ///
    /// let store = MemoryStore::new();
    /// let key = nex_session::SessionId::generate().unwrap().store_key();
    /// let now = nex_session::token::now_ms();
    /// let mut set = |_: Option<&[u8]>| UpdateAction::Set(b"1".to_vec());
    /// let outcome = store.update_now(key, "visits", &mut set, now + 60_000, Presence::New, now);
    /// assert!(matches!(outcome, Some(Ok(WriteOutcome::Done))));
    /// ```
    fn update_now(
        &self,
        key: StoreKey,
        field: &str,
        f: UpdateFn<'_>,
        expires_at_ms: i64,
        presence: Presence,
        now_ms: i64,
    ) -> Option<Result<WriteOutcome, StoreError>> {
        let _ = (key, field, f, expires_at_ms, presence, now_ms);
        None
    }
}
