//! The store interface: where session data lives, keyed by [`StoreKey`].
//!
//! [`SessionStore`] is what the session layer needs from a store: five required
//! methods with a precise contract, so that the in-memory, SQLite, Redis and PostgreSQL stores
//! (and yours) all give the guarantees the layer relies on. Values are opaque
//! bytes here; the session layer encodes them (JSON). Operators' tools (listing,
//! purging expired sessions) use the optional [`SessionAdmin`].
//!
//! # Contract
//!
//! A session is a set of `(field, value)` pairs plus an expiry (milliseconds since
//! the Unix epoch). For every method:
//!
//! - A session whose expiry is not after the store's current time does not
//!   exist: `load` returns `None`, and `Presence::Existing` writes see it as missing,
//!   whether or not its data has been removed yet.
//! - Writes are **per field**: `apply` changes only the fields in its batch, so two
//!   requests writing different fields of one session never overwrite each other.
//!   A batch is applied atomically: all of it or none of it.
//! - `update` is an atomic read-modify-write of one field. The closure may be
//!   called more than once (stores that use compare-and-set retry); only the last
//!   call's result is stored.
//! - Every successful write sets the session's expiry to the given one (sliding expiry).
//! - `rename` is all or nothing: afterwards either the data lives under the new key
//!   and the old key is gone, or nothing changed. It refuses (`Ok(false)`) when the
//!   source is missing or the target is a live session.
//! - An error means the operation had no effect that a later `load` can see
//!   (no half-applied batch), or the store cannot tell; it is never silently dropped.
//!
//! The `conformance` suite (module `store::conformance`, feature `conformance`)
//! checks all of it.
//!
//! # Writing your own store
//!
//! A complete store: sessions in a `HashMap` behind one lock. The lock makes every
//! method atomic, which is all the contract asks; a networked store gets the same
//! from a transaction or a script.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//!
//! use nex_session::store::{
//!     BoxFuture, Change, Changes, Presence, Record, SessionStore, UpdateAction, UpdateFn, WriteOutcome,
//! };
//! use nex_session::token::now_ms;
//! use nex_session::{StoreError, StoreKey};
//!
//! #[derive(Default)]
//! struct MapStore(Mutex<HashMap<StoreKey, Record>>);
//!
//! impl MapStore {
//!     /// Runs `op` under the lock, with the current time.
//!     fn locked<T>(&self, op: impl FnOnce(&mut HashMap<StoreKey, Record>, i64) -> T) -> Result<T, StoreError> {
//!         let mut map = self.0.lock().map_err(|_| StoreError::Unavailable("a writer panicked".into()))?;
//!         Ok(op(&mut map, now_ms()))
//!     }
//! }
//!
//! /// The live session under `key`: an expired one counts as missing.
//! fn live(map: &HashMap<StoreKey, Record>, key: StoreKey, now: i64) -> Option<&Record> {
//!     map.get(&key).filter(|record| record.expires_at_ms > now)
//! }
//!
//! /// The record a write goes to: a fresh one when the key holds nothing live.
//! fn target(map: &mut HashMap<StoreKey, Record>, key: StoreKey, now: i64) -> &mut Record {
//!     let record = map.entry(key).or_default();
//!     if record.expires_at_ms <= now {
//!         *record = Record::default(); // an expired leftover must not come back
//!     }
//!     record
//! }
//!
//! impl SessionStore for MapStore {
//!     fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
//!         Box::pin(std::future::ready(self.locked(|map, now| live(map, key, now).cloned())))
//!     }
//!
//!     fn apply<'a>(
//!         &'a self,
//!         key: StoreKey,
//!         changes: &'a Changes,
//!         expires_at_ms: i64,
//!         presence: Presence,
//!     ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
//!         Box::pin(std::future::ready(self.locked(|map, now| {
//!             if !presence.holds(live(map, key, now).is_some()) {
//!                 return WriteOutcome::PresenceFailed;
//!             }
//!             let record = target(map, key, now);
//!             for (field, change) in changes {
//!                 match change {
//!                     Change::Put(value) => record.fields.insert(field.clone(), value.clone()),
//!                     Change::Delete => record.fields.remove(field),
//!                 };
//!             }
//!             record.expires_at_ms = expires_at_ms;
//!             WriteOutcome::Done
//!         })))
//!     }
//!
//!     fn update<'a>(
//!         &'a self,
//!         key: StoreKey,
//!         field: &'a str,
//!         f: UpdateFn<'a>,
//!         expires_at_ms: i64,
//!         presence: Presence,
//!     ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
//!         Box::pin(std::future::ready(self.locked(|map, now| {
//!             let current = live(map, key, now);
//!             if !presence.holds(current.is_some()) {
//!                 return WriteOutcome::PresenceFailed;
//!             }
//!             // Read, decide and write under one lock: `f` runs once here.
//!             let action = f(current.and_then(|record| record.fields.get(field)).map(Vec::as_slice));
//!             let change = match action {
//!                 UpdateAction::Keep => return WriteOutcome::Done,
//!                 UpdateAction::Set(value) => Change::Put(value),
//!                 UpdateAction::Delete => Change::Delete,
//!             };
//!             let record = target(map, key, now);
//!             match change {
//!                 Change::Put(value) => record.fields.insert(field.to_owned(), value),
//!                 Change::Delete => record.fields.remove(field),
//!             };
//!             record.expires_at_ms = expires_at_ms;
//!             WriteOutcome::Done
//!         })))
//!     }
//!
//!     fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
//!         Box::pin(std::future::ready(self.locked(|map, now| {
//!             if live(map, from, now).is_none() || live(map, to, now).is_some() {
//!                 return false;
//!             }
//!             let Some(mut record) = map.remove(&from) else { return false };
//!             record.expires_at_ms = expires_at_ms;
//!             map.insert(to, record);
//!             true
//!         })))
//!     }
//!
//!     fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
//!         Box::pin(std::future::ready(self.locked(|map, _| drop(map.remove(&key)))))
//!     }
//! }
//!
//! // Check it against the whole contract (the `conformance` feature, in a test):
//! # #[cfg(feature = "conformance")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! nex_session::store::conformance::run_all(Arc::new(MapStore::default())).await;
//! # });
//! // and use it:
//! # let config = nex_session::SessionConfig::new(nex_session::token::SecretKeyBase::new([3u8; 32]).unwrap());
//! let layer = nex_session::SessionLayer::new(MapStore::default(), config);
//! ```
//!
//! Optional extras, each with a default: [`SessionStore::touch`] (sliding the
//! expiry of a session that is only read; by default an empty [`apply`](SessionStore::apply)),
//! [`SessionStore::load_now`] (answering reads without waiting, for stores that
//! keep sessions in memory), [`SessionStore::admin`] (listing and purging) and
//! [`SessionStore::users`] (the per-user index, see [`users`]), and
//! [`SessionStore::kind`] and [`SessionStore::health`] for operators ([`crate::observe`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::error::StoreError;
use crate::id::StoreKey;

#[cfg(any(feature = "redis", feature = "postgres"))]
mod client_cache;
mod clock;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
#[cfg(feature = "sqlite")]
mod file_identity;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod redact;
#[cfg(feature = "redis")]
mod redis;
mod shards;
mod snapshot;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(feature = "redis", feature = "sqlite", feature = "postgres"))]
mod update_chain;
mod url;
pub mod users;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisOptions, RedisStore};
pub use memory::{MemoryStore, DEFAULT_MAX_SESSIONS};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresOptions, PostgresStore};
pub use redact::RedactedUrl;
pub use snapshot::Snapshot;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;
pub use url::{open, open_with, OpenOptions, StoreUrl};
pub use users::{Binding, Keep, SessionHandle, UserIndex, UserSession};

/// A boxed, `Send` future: what store methods return, so the trait works as `dyn SessionStore`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A session's fields as loaded from a store.
pub type Fields = BTreeMap<String, Vec<u8>>;

/// What a batch does to one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Store these bytes as the field's value.
    Put(Vec<u8>),
    /// Remove the field.
    Delete,
}

impl Change {
    /// The value a `Put` stores; `None` for a `Delete`.
    ///
    /// ```
    /// use nex_session::store::Change;
    /// assert_eq!(Change::Put(b"1".to_vec()).value(), Some(&b"1"[..]));
    /// assert_eq!(Change::Delete.value(), None);
    /// ```
    pub fn value(&self) -> Option<&[u8]> {
        match self {
            Self::Put(value) => Some(value),
            Self::Delete => None,
        }
    }
}

/// A batch of per-field changes, in field order.
pub type Changes = BTreeMap<String, Change>;

/// A loaded session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Every field of the session.
    pub fields: Fields,
    /// When the session expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// What a write requires of the session's existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The session must not exist yet (a freshly generated id).
    New,
    /// The session must exist (an id from a cookie or written earlier).
    Existing,
}

impl Presence {
    /// Whether a write with this condition may go ahead, given whether a live
    /// session exists under its key.
    ///
    /// ```
    /// use nex_session::store::Presence;
    /// assert!(Presence::New.holds(false) && Presence::Existing.holds(true));
    /// assert!(!Presence::New.holds(true) && !Presence::Existing.holds(false));
    /// ```
    pub fn holds(self, live: bool) -> bool {
        match self {
            Self::New => !live,
            Self::Existing => live,
        }
    }
}

/// What an update closure decides, given the field's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateAction {
    /// Store these bytes as the field's new value.
    Set(Vec<u8>),
    /// Remove the field.
    Delete,
    /// Leave the session exactly as it is (no write, no expiry change).
    Keep,
}

/// The closure of [`SessionStore::update`]: current value in, decision out.
pub type UpdateFn<'a> = &'a mut (dyn FnMut(Option<&[u8]>) -> UpdateAction + Send);

/// The outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write (or the closure's `Keep`) took effect.
    Done,
    /// The presence condition failed: the session was missing (`Existing`) or
    /// already there (`New`). Nothing changed.
    PresenceFailed,
}

/// What [`SessionStore::load_now`] knows without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadNow {
    /// The session's fields, exactly what `load` would give.
    Found(Snapshot),
    /// No live session has this key (`load` would give `None`).
    Missing,
    /// Not known without asking the backend: call `load`.
    Unknown,
}

/// One session as listed for operators: hashed key, field count, expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The hashed key (never usable as a cookie).
    pub key: StoreKey,
    /// Number of fields.
    pub fields: usize,
    /// Expiry in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// A place to keep sessions. See the [module docs](self) for the contract and
/// a complete example.
///
/// Implementations must be cheap to share (`Arc` inside); the layer holds one.
pub trait SessionStore: Send + Sync + 'static {
    /// Reads every field of a live session, or `None` if there is none.
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;

    /// Applies a batch of per-field puts and deletes atomically and sets the
    /// expiry, if `presence` holds.
    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>>;

    /// Atomically replaces one field with what `f` decides from its current
    /// value, and sets the expiry (unless `f` says `Keep`), if `presence` holds.
    /// `f` may run more than once.
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

    /// [`load`](Self::load)'s fields as a [`Snapshot`]: what the session layer
    /// reads when [`load_now`](Self::load_now) does not know. The default converts
    /// `load`'s record; a store that keeps snapshots (a cache) overrides it to hand
    /// them out without building a map per request.
    ///
    /// ```
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// use nex_session::store::{Change, MemoryStore, Presence, SessionStore};
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

    /// What [`load`](Self::load) would give, when it is known without waiting
    /// (an in-memory store, or a cache that is known to be current). The default
    /// is [`LoadNow::Unknown`]: "call `load`".
    ///
    /// This is the hottest path, the first `get` of a request: no future, and the
    /// fields as a [`Snapshot`] rather than a map built per request. `now_ms` is
    /// the request's clock reading (ms since the Unix epoch), the same one the
    /// layer judged the cookie by, so a request reads the clock once.
    ///
    /// ```
    /// use nex_session::store::{LoadNow, MemoryStore, SessionStore};
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

    /// Lists live sessions, at most `limit` of them.
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>>;
}

impl<T: SessionStore + ?Sized> SessionStore for std::sync::Arc<T> {
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        (**self).load(key)
    }
    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        (**self).apply(key, changes, expires_at_ms, presence)
    }
    fn update<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        f: UpdateFn<'a>,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        (**self).update(key, field, f, expires_at_ms, presence)
    }
    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        (**self).rename(from, to, expires_at_ms)
    }
    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).remove(key)
    }
    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        (**self).touch(key, expires_at_ms)
    }
    fn load_snapshot(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
        (**self).load_snapshot(key)
    }
    fn load_now(&self, key: StoreKey, now_ms: i64) -> LoadNow {
        (**self).load_now(key, now_ms)
    }
    fn admin(&self) -> Option<&dyn SessionAdmin> {
        (**self).admin()
    }
    fn users(&self) -> Option<&dyn UserIndex> {
        (**self).users()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).health()
    }
}
