//! The store interface: where session data lives, keyed by [`StoreKey`].
//!
//! One trait, [`SessionStore`], small and with a precise contract, so that the
//! in-memory, SQLite and Redis stores all give the guarantees the middleware
//! relies on. Values are opaque bytes here; the session layer encodes them (JSON).
//!
//! # Contract
//!
//! A session is a set of `(field, value)` pairs plus an expiry (milliseconds since
//! the Unix epoch). For every method:
//!
//! - A session whose expiry is not after the store's current time does not
//!   exist: `load` returns `None`, and `Presence::Existing` writes see it as missing,
//!   whether or not `purge_expired` has removed it yet.
//! - Writes are **per field**: `apply` changes only the fields in its batch, so two
//!   requests writing different fields of one session never overwrite each other.
//!   A batch is applied atomically: all of it or none of it.
//! - `update` is an atomic read-modify-write of one field. The closure may be
//!   called more than once (stores that use compare-and-set retry); only the last
//!   call's result is stored.
//! - Every successful write sets the session's expiry to the given one (sliding expiry).
//! - An error means the operation had no effect that a later `load` can see
//!   (no half-applied batch), or the store cannot tell; it is never silently dropped.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::error::StoreError;
use crate::id::StoreKey;

#[cfg(any(feature = "redis", feature = "sqlite"))]
mod cas;
pub mod conformance;
mod memory;
mod packed;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
mod url;

#[cfg(feature = "redis")]
pub use self::redis::{RedisOptions, RedisStore};
pub use memory::MemoryStore;
pub use packed::PackedFields;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use url::{open, StoreUrl};

/// A boxed, `Send` future: what store methods return, so the trait works as `dyn SessionStore`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A session's fields as loaded from a store.
pub type Fields = BTreeMap<String, Vec<u8>>;

/// One field's change in a batch: `Some(bytes)` puts, `None` deletes.
pub type Changes = BTreeMap<String, Option<Vec<u8>>>;

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

/// A place to keep sessions. See the [module docs](self) for the contract.
///
/// Implementations must be cheap to share (`Arc` inside); the layer holds one.
pub trait SessionStore: Send + Sync + 'static {
    /// Reads every field of a live session, or `None` if there is none.
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;

    /// The fields [`load`](Self::load) would give, without waiting, when the
    /// answer is at hand (an in-memory store, or a cache that is known to be
    /// current); `None` means "call `load`". The default answers `None`. It is
    /// the hottest path, the first `get` of a request: no boxed future, and the
    /// fields as a shared buffer rather than a map built per request. `now_ms`
    /// is the request's clock reading (ms since the Unix epoch), the same one
    /// the layer judged the cookie by, so a request reads the clock once.
    ///
    /// ```
    /// use nex_session::store::{MemoryStore, SessionStore};
    ///
    /// let key = nex_session::SessionId::generate().unwrap().store_key();
    /// // An in-memory store always knows at once: here, that there is no such session.
    /// let now = nex_session::token::now_ms();
    /// assert!(matches!(MemoryStore::new().load_now(key, now), Some(Ok(None))));
    /// ```
    fn load_now(&self, key: StoreKey, now_ms: i64) -> Option<Result<Option<PackedFields>, StoreError>> {
        let _ = (key, now_ms);
        None
    }

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

    /// Sets a live session's expiry. `Ok(false)` if there is no such session.
    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Moves a live session's fields to `to` atomically, setting the expiry;
    /// `from` stops existing at once. `Ok(false)` (and no change) if `from` is
    /// missing or `to` exists.
    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Removes a session. Removing a missing session is not an error.
    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Removes every session expired at `now_ms`; returns how many. Must not
    /// stall concurrent requests for long (work in bounded batches).
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Lists live sessions for operators, at most `limit` of them.
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>>;
}

impl<T: SessionStore + ?Sized> SessionStore for std::sync::Arc<T> {
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        (**self).load(key)
    }
    fn load_now(&self, key: StoreKey, now_ms: i64) -> Option<Result<Option<PackedFields>, StoreError>> {
        (**self).load_now(key, now_ms)
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
    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        (**self).touch(key, expires_at_ms)
    }
    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        (**self).rename(from, to, expires_at_ms)
    }
    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).remove(key)
    }
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        (**self).purge_expired(now_ms)
    }
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        (**self).list(limit)
    }
}
