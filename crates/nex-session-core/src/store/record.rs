//! The values stores and the session layer exchange: a session's fields and
//! expiry ([`Record`]), a batch of changes, the conditions and outcomes of
//! writes, and the boxed future every store method returns.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::id::StoreKey;

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

/// The closure of [`SessionStore::update`](super::SessionStore::update): current value in, decision out.
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
