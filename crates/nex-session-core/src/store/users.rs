//! The per-user index: which sessions a user is signed in with, so an app can
//! list them ("your devices"), sign one out, or sign out everywhere. See
//! [`UserIndex`] for the contract every store keeps.
//!
//! # How a binding is stored
//!
//! A session bound to a user carries two reserved fields, written by the session
//! layer and read by stores (so every store agrees on them):
//!
//! - [`USER_FIELD`] (`_nex_user`): the [`Binding`] as JSON: the user id, when the
//!   session was bound (signed in), and the app's optional metadata;
//! - [`SEEN_FIELD`] (`_nex_seen`): when a request last used the session (ms since
//!   the Unix epoch, JSON), written at sign-in, then refreshed at most once per
//!   refresh interval and only for bound sessions: in the request's batch write
//!   when it makes one, else in one small write that also slides the expiry (in
//!   place of the touch when one is due).
//!
//! Besides the fields, each store keeps an index from a user to the keys of their
//! sessions, changed only by [`UserIndex::bind`], `rename`, `remove`, the revokes
//! and the purge: a session without a user never touches it.
//!
//! # Handles
//!
//! Lists show a [`SessionHandle`] per session: 22 characters derived one way from
//! the session's store key (itself a SHA-256 of the id), so a handle is safe to
//! put in a page or a log and useless as a cookie.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{BoxFuture, Fields, Snapshot, WriteOutcome};
use crate::error::{BindingError, StoreError};
pub use crate::error::{MAX_META_LEN, MAX_USER_LEN};
use crate::id::StoreKey;

/// The reserved session field holding a session's [`Binding`] (JSON).
pub const USER_FIELD: &str = "_nex_user";

/// The reserved session field holding when a bound session was last used (ms, JSON).
pub const SEEN_FIELD: &str = "_nex_seen";

/// Bytes of the store key's digest a handle keeps: 128 bits, 22 characters.
const HANDLE_BYTES: usize = 16;
const HANDLE_CHARS: usize = 22;
/// Domain separation: a handle is never the same digest as anything else.
const HANDLE_CONTEXT: &[u8] = b"nex-session handle v1\0";

/// What ties a session to a user: stored in the session's [`USER_FIELD`].
///
/// ```
/// use nex_session::store::users::Binding;
///
/// let binding = Binding::new("alice", 1_700_000_000_000, Some("Firefox on Linux".into())).unwrap();
/// let stored = binding.encode();
/// assert_eq!(Binding::decode(&stored), Some(binding.clone()));
/// // Each sign-in has its own id, even for the same user at the same instant.
/// let again = Binding::new("alice", 1_700_000_000_000, Some("Firefox on Linux".into())).unwrap();
/// assert_ne!(again.sign_in_id, binding.sign_in_id);
/// // A binding stored before sign-in ids existed still reads.
/// let old = Binding::decode(br#"{"user":"alice","signed_in_ms":1}"#).unwrap();
/// assert_eq!((old.user.as_str(), old.sign_in_id), ("alice", None));
/// assert!(Binding::new("", 0, None).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The user id the app chose (not secret, not a credential).
    pub user: String,
    /// When the session was bound: the sign-in (ms since the Unix epoch).
    pub signed_in_ms: i64,
    /// What the app recorded at sign-in, for the user's list (a device summary, say).
    pub meta: Option<String>,
    /// A random number drawn at sign-in, naming the sign-in for as long as it
    /// lasts: a `renew` gives the session a new id and handle but moves its
    /// binding unchanged, so the session layer can still find a session renewed
    /// under its feet (revoking your own session while another request of the
    /// same browser renews it). `None` in bindings stored before it existed, and
    /// if the system could not give randomness.
    pub sign_in_id: Option<u64>,
}

impl Binding {
    /// A binding of a session to `user`, signed in at `signed_in_ms`.
    ///
    /// # Errors
    /// An empty or overlong user id, or overlong metadata.
    pub fn new(user: &str, signed_in_ms: i64, meta: Option<String>) -> Result<Self, BindingError> {
        check_user(user)?;
        if let Some(meta) = &meta {
            if meta.len() > MAX_META_LEN {
                return Err(BindingError::MetaTooLong(meta.len()));
            }
        }
        let mut random = [0_u8; 8];
        // Without randomness a binding still works; only the renew race above is
        // then not followed, so this is not worth failing a sign-in for.
        let sign_in_id = getrandom::fill(&mut random).ok().map(|()| u64::from_le_bytes(random));
        Ok(Self { user: user.to_owned(), signed_in_ms, meta, sign_in_id })
    }

    /// The stored form: JSON `{"user":…,"signed_in_ms":…,"meta":…,"sign_in_id":…}`
    /// (no `meta` or `sign_in_id` when none).
    pub fn encode(&self) -> Vec<u8> {
        let mut object = json!({ "user": self.user, "signed_in_ms": self.signed_in_ms });
        if let Value::Object(map) = &mut object {
            if let Some(meta) = &self.meta {
                map.insert("meta".to_owned(), Value::String(meta.clone()));
            }
            if let Some(id) = self.sign_in_id {
                map.insert("sign_in_id".to_owned(), Value::from(id));
            }
        }
        object.to_string().into_bytes()
    }

    /// Reads a stored binding; `None` if the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let user = value.get("user")?.as_str()?.to_owned();
        let signed_in_ms = value.get("signed_in_ms")?.as_i64()?;
        let meta = match value.get("meta") {
            None | Some(Value::Null) => None,
            Some(meta) => Some(meta.as_str()?.to_owned()),
        };
        let sign_in_id = match value.get("sign_in_id") {
            None | Some(Value::Null) => None,
            Some(id) => Some(id.as_u64()?),
        };
        Some(Self { user, signed_in_ms, meta, sign_in_id })
    }

    /// The binding in a session's fields, if it has one.
    pub fn of_fields(fields: &Fields) -> Option<Self> {
        fields.get(USER_FIELD).and_then(|bytes| Self::decode(bytes))
    }

    /// The binding in a session's fields as a [`Snapshot`], if it has one.
    pub fn of_snapshot(fields: &Snapshot) -> Option<Self> {
        fields.get(USER_FIELD).and_then(Self::decode)
    }
}

/// Checks a user id: not empty, at most [`MAX_USER_LEN`] bytes.
///
/// # Errors
/// [`BindingError::EmptyUser`] or [`BindingError::UserTooLong`].
pub fn check_user(user: &str) -> Result<(), BindingError> {
    match user.len() {
        0 => Err(BindingError::EmptyUser),
        n if n > MAX_USER_LEN => Err(BindingError::UserTooLong(n)),
        _ => Ok(()),
    }
}

/// Whether `field` is one of the reserved binding fields, which only the
/// session layer's `bind_user` and its last-seen bookkeeping write.
///
/// ```
/// use nex_session::store::users::is_reserved;
/// assert!(is_reserved("_nex_user") && is_reserved("_nex_seen"));
/// assert!(!is_reserved("user"));
/// ```
pub fn is_reserved(field: &str) -> bool {
    field == USER_FIELD || field == SEEN_FIELD
}

/// Reads a stored [`SEEN_FIELD`] value: when the session was last seen, in
/// milliseconds since the Unix epoch; `None` if the bytes are not one.
pub fn decode_seen(bytes: &[u8]) -> Option<i64> {
    serde_json::from_slice(bytes).ok()
}

/// The stored form of a [`SEEN_FIELD`] value.
pub fn encode_seen(ms: i64) -> Vec<u8> {
    ms.to_string().into_bytes()
}

/// A non-secret name for one session in a user's list: derived one way from its
/// store key, so it can be shown, logged and posted back in a form, and never
/// works as a cookie. It is stable for as long as the session keeps its id: a
/// `renew` (a new id) gives the session a new handle.
///
/// ```
/// use nex_session::store::users::SessionHandle;
/// use nex_session::SessionId;
///
/// let id = SessionId::generate().unwrap();
/// let handle = SessionHandle::of(id.store_key());
/// assert_eq!(handle.as_str().len(), 22);
/// assert_eq!(handle.as_str().parse::<SessionHandle>().unwrap(), handle);
/// assert!(!id.as_str().contains(handle.as_str()));
/// assert!("not a handle".parse::<SessionHandle>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle([u8; HANDLE_CHARS]);

impl SessionHandle {
    /// The handle of the session filed under `key`.
    pub fn of(key: StoreKey) -> Self {
        let digest = Sha256::new().chain_update(HANDLE_CONTEXT).chain_update(key.as_bytes()).finalize();
        let mut text = [0u8; HANDLE_CHARS];
        let prefix = digest.get(..HANDLE_BYTES).unwrap_or_default();
        // 16 bytes always encode to 22 base64url characters.
        let _ = URL_SAFE_NO_PAD.encode_slice(prefix, &mut text);
        Self(text)
    }

    /// The handle as text.
    pub fn as_str(&self) -> &str {
        // Only base64url characters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Text that is not a session handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session handle (22 base64url characters)")]
pub struct InvalidHandle;

impl std::str::FromStr for SessionHandle {
    type Err = InvalidHandle;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text: [u8; HANDLE_CHARS] = text.as_bytes().try_into().map_err(|_| InvalidHandle)?;
        let well_formed = text.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        well_formed.then_some(Self(text)).ok_or(InvalidHandle)
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({})", self.as_str())
    }
}

/// One session of a user, as listed: never its id or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// Names the session in revokes; not a secret.
    pub handle: SessionHandle,
    /// When the session was bound to the user (ms since the Unix epoch).
    pub signed_in_ms: i64,
    /// When a request last used it (ms), to within the layer's refresh interval.
    pub last_seen_ms: i64,
    /// When it expires unless used again (ms).
    pub expires_at_ms: i64,
    /// What the app recorded at sign-in.
    pub meta: Option<String>,
    /// The binding's [`Binding::sign_in_id`]: the same across a `renew`, which
    /// changes the handle.
    pub sign_in_id: Option<u64>,
    /// It is the session of the request that asked (set by the session layer;
    /// always `false` in a store's answer).
    pub current: bool,
}

impl UserSession {
    /// The listing of the session under `key` whose fields carry `binding`.
    pub fn new(key: StoreKey, binding: Binding, seen: Option<&[u8]>, expires_at_ms: i64) -> Self {
        let last_seen_ms = seen.and_then(decode_seen).unwrap_or(binding.signed_in_ms).max(binding.signed_in_ms);
        Self {
            handle: SessionHandle::of(key),
            signed_in_ms: binding.signed_in_ms,
            last_seen_ms,
            expires_at_ms,
            meta: binding.meta,
            sign_in_id: binding.sign_in_id,
            current: false,
        }
    }

    /// The listing of the session under `key` with these `fields`, if it is bound to `user`.
    pub fn of_fields(key: StoreKey, fields: &Fields, expires_at_ms: i64, user: &str) -> Option<Self> {
        let binding = Binding::of_fields(fields).filter(|b| b.user == user)?;
        Some(Self::new(key, binding, fields.get(SEEN_FIELD).map(Vec::as_slice), expires_at_ms))
    }
}

/// Whether a revoke-all spares one session ("sign out my other devices").
///
/// ```
/// use nex_session::store::users::{Keep, SessionHandle};
///
/// let key = nex_session::SessionId::generate().unwrap().store_key();
/// assert!(Keep::Session(key).spares(key));
/// assert!(Keep::Handle(SessionHandle::of(key)).spares(key));
/// assert!(!Keep::None.spares(key));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// Revoke every session of the user ("log out everywhere").
    None,
    /// Revoke every session of the user but this one (the request's own).
    Session(StoreKey),
    /// Revoke every session of the user but the one with this handle (an
    /// operator's `revoke-user --except HANDLE`).
    Handle(SessionHandle),
}

impl Keep {
    /// Whether the session under `key` is the one spared.
    pub fn spares(&self, key: StoreKey) -> bool {
        match self {
            Self::None => false,
            Self::Session(kept) => *kept == key,
            Self::Handle(handle) => SessionHandle::of(key) == *handle,
        }
    }
}

/// The most sessions one user may hold at once ([`UserIndex::bind`] ends the
/// least recently seen beyond it): [`SessionConfig::with_max_sessions_per_user`](crate::SessionConfig::with_max_sessions_per_user).
///
/// ```
/// use nex_session::store::users::SessionCap;
///
/// let cap = SessionCap::new(100).unwrap();
/// assert_eq!(cap.get(), 100);
/// assert_eq!(SessionCap::new(0), None);
/// assert_eq!(SessionCap::DEFAULT.get(), 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionCap(std::num::NonZeroU32);

impl SessionCap {
    /// The default cap: 100 sessions per user.
    pub const DEFAULT: Self = Self(std::num::NonZeroU32::MIN.saturating_add(99));

    /// A cap of `sessions`; `None` for 0 (a user must keep the session they sign in with).
    pub const fn new(sessions: u32) -> Option<Self> {
        match std::num::NonZeroU32::new(sessions) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// How many sessions it allows.
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// How many sessions it allows, as a count.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0.get()).unwrap_or(usize::MAX)
    }
}

/// A store's per-user index, offered through [`SessionStore::users`](super::SessionStore::users).
///
/// # Contract
///
/// - [`bind`](Self::bind) ties a live session to one user (moving it from another
///   user if it had one) by writing its [`USER_FIELD`] and indexing its key.
/// - The binding moves with `rename` (the index follows the new key) and ends
///   with `remove` and with the session's expiry: [`sessions`](Self::sessions)
///   never lists a removed or expired session, and the index drops them without a
///   scan of all sessions (lazily, when a user's sessions are read, and in the purge).
/// - **Revocation is final**: every session bound to the user before
///   [`revoke_all`](Self::revoke_all) starts (but the one kept) is gone when it
///   returns, whatever requests of those sessions do meanwhile, on this store
///   handle or another one sharing the backend: no write can bring a revoked
///   session back (writes to it need it to exist), and a `rename` racing with the
///   revoke either moves the session before it (and the new key is revoked) or
///   finds nothing to move.
/// - Nothing here returns an id or a store key: sessions are named by [`SessionHandle`].
///
/// The conformance suite checks all of it, including the races.
///
/// # Errors
/// As [`SessionStore`](super::SessionStore)'s: a [`StoreError`]
/// that says whether a write may have landed; a user with no sessions is no error.
pub trait UserIndex: Send + Sync {
    /// Binds the live session `key` to `binding.user`, setting its expiry.
    /// [`WriteOutcome::PresenceFailed`] (and no change) if there is no such session.
    ///
    /// With a `cap`, the same atomic step ends the user's least recently seen
    /// other sessions (by their [`SEEN_FIELD`], or what [`seen`](Self::seen)
    /// reported; ties in an order of the store's choosing) until at most `cap`
    /// remain, this one included; the session being bound is never the one ended.
    /// A store may count sessions that ended since the user's sessions were last
    /// read (logged out, expired) towards the cap until it drops them (they go
    /// first). Ending sessions costs work bounded by the cap, not by how many
    /// sessions the user ever had; a user far over the cap (a cap lowered or
    /// turned on later) may come down over several sign-ins, each ending a
    /// bounded batch (1,000 in this crate's stores), or at once by `revoke_all`.
    fn bind<'a>(
        &'a self,
        key: StoreKey,
        binding: &'a Binding,
        expires_at_ms: i64,
        cap: Option<SessionCap>,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>>;

    /// Tells the index that the session `key` of `user` was seen at `seen_ms` (the
    /// session layer calls it after writing the session's [`SEEN_FIELD`]), for a
    /// store whose index orders sessions by last use apart from the sessions
    /// themselves. The default does nothing: the SQL and memory stores read
    /// [`SEEN_FIELD`] where they need it. A failure here loses nothing but order.
    fn seen<'a>(&'a self, key: StoreKey, user: &'a str, seen_ms: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (key, user, seen_ms);
        Box::pin(std::future::ready(Ok(())))
    }

    /// The live sessions bound to `user`, oldest sign-in first.
    fn sessions<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<UserSession>, StoreError>>;

    /// Removes the session of `user` named by `handle`; `Ok(false)` if `user` has
    /// no such live session (a handle of another user's session revokes nothing).
    fn revoke<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Removes every session bound to `user`, but the one `keep` names; returns
    /// how many live sessions it removed.
    fn revoke_all<'a>(&'a self, user: &'a str, keep: Keep) -> BoxFuture<'a, Result<u64, StoreError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;

    #[test]
    fn handles_are_stable_distinct_and_not_the_key() {
        let key = SessionId::generate().unwrap().store_key();
        let other = SessionId::generate().unwrap().store_key();
        assert_eq!(SessionHandle::of(key), SessionHandle::of(key));
        assert_ne!(SessionHandle::of(key), SessionHandle::of(other));
        assert!(!key.to_hex().contains(SessionHandle::of(key).as_str()));
    }

    #[test]
    fn bindings_check_their_sizes() {
        assert_eq!(Binding::new(&"u".repeat(MAX_USER_LEN + 1), 0, None), Err(BindingError::UserTooLong(257)));
        assert_eq!(Binding::new("u", 0, Some("m".repeat(MAX_META_LEN + 1))), Err(BindingError::MetaTooLong(513)));
        assert!(Binding::new(&"u".repeat(MAX_USER_LEN), 0, Some("m".repeat(MAX_META_LEN))).is_ok());
        assert_eq!(Binding::decode(b"not json"), None);
    }

    #[test]
    fn last_seen_is_never_before_the_sign_in() {
        let key = SessionId::generate().unwrap().store_key();
        let binding = Binding::new("alice", 1_000, None).unwrap();
        assert_eq!(UserSession::new(key, binding.clone(), None, 9_000).last_seen_ms, 1_000);
        assert_eq!(UserSession::new(key, binding.clone(), Some(b"5000"), 9_000).last_seen_ms, 5_000);
        assert_eq!(UserSession::new(key, binding, Some(b"500"), 9_000).last_seen_ms, 1_000);
    }
}
