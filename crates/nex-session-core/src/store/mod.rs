//! The store interface: where session data lives, keyed by [`StoreKey`](crate::StoreKey).
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
//! [`SessionStore::fast_reads`] (answering reads without waiting, for stores that
//! keep sessions in memory: [`FastReads`]), [`SessionStore::admin`] (listing and purging) and
//! [`SessionStore::users`] (the per-user index, see [`users`]), and
//! [`SessionStore::kind`] and [`SessionStore::health`] for operators ([`crate::observe`]).
//!
//! The machinery the built-in networked stores share (group commit of
//! `update`s, a client-side read cache, sharded maps, credential redaction) is
//! public in [`toolkit`], for your store as much as for ours.

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod contract;
mod forward;
mod memory;
mod record;
mod snapshot;
pub mod toolkit;
pub mod users;

pub use contract::{FastReads, LoadNow, SessionAdmin, SessionStore};
pub use memory::{MemoryStore, DEFAULT_MAX_SESSIONS};
pub use record::{BoxFuture, Change, Changes, Fields, Presence, Record, Summary, UpdateAction, UpdateFn, WriteOutcome};
pub use snapshot::Snapshot;
pub use toolkit::redact::RedactedUrl;
pub use users::{Binding, Keep, SessionCap, SessionHandle, UserIndex, UserSession};
