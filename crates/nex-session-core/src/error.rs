//! Errors a handler can see.
//!
//! Every public error's `Debug` is its message followed by its variant in
//! parentheses (`… (StoreError::Timeout)`), not the derived field dump: Rust
//! prints `Error: {err:?}` when `fn main() -> Result<(), E>` returns an error,
//! and that line should tell an operator what to do. `VariantPath` and
//! `debug_as_message!` make it one pattern for all of them.

use std::fmt;
use std::time::Duration;

/// Writes which variant an error is, as a path: `StoreError::Timeout`, or with a
/// wrapped error of this crate `ConfigError::Secret(SecretError::Missing)`.
pub(crate) trait VariantPath {
    /// Writes the path to `f`.
    fn write_variant(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// Writes `outer(inner's path)`, for a variant that wraps another error of this crate.
pub(crate) fn write_nested(f: &mut fmt::Formatter<'_>, outer: &str, inner: &dyn VariantPath) -> fmt::Result {
    f.write_str(outer)?;
    f.write_str("(")?;
    inner.write_variant(f)?;
    f.write_str(")")
}

/// Implements `Debug` for an error as `{message} ({variant path})`, the line Rust
/// prints after `Error: ` when `main` returns it.
macro_rules! debug_as_message {
    ($error:ty) => {
        impl ::std::fmt::Debug for $error {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{self} (")?;
                $crate::error::VariantPath::write_variant(self, f)?;
                f.write_str(")")
            }
        }
    };
}
pub(crate) use debug_as_message;

/// A boxed error from a store's backend, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
///
/// A failed *write* either was certainly not applied ([`Unavailable`], [`Timeout`],
/// [`Corrupt`]: nothing of it reached the data) or may have been
/// ([`OutcomeUnknown`]: it was sent, and no answer came back). Tell them apart with
/// [`StoreError::may_have_applied`] before inviting a user to repeat an action that
/// is not idempotent (an increment, a payment): retrying an applied write applies
/// it twice.
///
/// ```
/// use nex_session::StoreError;
/// use std::time::Duration;
///
/// let unanswered = StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(Duration::from_secs(1))));
/// assert!(unanswered.may_have_applied());
/// assert!(unanswered.to_string().contains("may or may not have been saved"));
/// assert!(!StoreError::Timeout(Duration::from_secs(1)).may_have_applied());
/// ```
///
/// [`Unavailable`]: StoreError::Unavailable
/// [`Timeout`]: StoreError::Timeout
/// [`Corrupt`]: StoreError::Corrupt
/// [`OutcomeUnknown`]: StoreError::OutcomeUnknown
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or refused the operation; a write was not applied.
    #[error("session store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The backend did not answer in time, and a write had not been sent yet: it
    /// was not applied. (A write that was sent and then timed out is
    /// [`StoreError::OutcomeUnknown`].)
    #[error("session store did not answer within {0:?}")]
    Timeout(Duration),
    /// Stored bytes that the store itself cannot read.
    #[error("session store data is corrupt: {0}")]
    Corrupt(#[source] BoxError),
    /// A write was sent to the backend but its answer never came (a timeout, a
    /// connection lost after sending): it may have been applied, or not. The
    /// inner error says what happened.
    #[error("session store did not confirm the write, which may or may not have been saved: {0}")]
    OutcomeUnknown(#[source] Box<StoreError>),
}

debug_as_message!(StoreError);

impl VariantPath for StoreError {
    fn write_variant(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(_) => f.write_str("StoreError::Unavailable"),
            Self::Timeout(_) => f.write_str("StoreError::Timeout"),
            Self::Corrupt(_) => f.write_str("StoreError::Corrupt"),
            Self::OutcomeUnknown(inner) => write_nested(f, "StoreError::OutcomeUnknown", &**inner),
        }
    }
}

impl StoreError {
    /// Whether the failed operation may nevertheless have changed the store: `true`
    /// only for [`StoreError::OutcomeUnknown`]. Reads never change anything.
    ///
    /// ```
    /// use nex_session::StoreError;
    /// let refused = StoreError::Unavailable("connection refused".into());
    /// assert!(!refused.may_have_applied(), "safe to try again");
    /// ```
    #[must_use]
    pub fn may_have_applied(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_))
    }
}

/// Why a session operation failed.
///
/// ```
/// # async fn demo() {
/// // Outside a request that went through `SessionLayer`:
/// let err = nex_session::get::<String>("user_id").await.unwrap_err();
/// assert!(err.to_string().contains("SessionLayer"));
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo());
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The ambient API was called outside a request handled by `SessionLayer`.
    #[error(
        "no session here: nex-session's ambient API works only while handling a request \
         that went through SessionLayer. Add `.layer(SessionLayer::new(..))` to the router; \
         tasks started with tokio::spawn do not inherit the session, so pass them the \
         `Session` handle (the extractor) instead"
    )]
    NoLayer,
    /// The store failed. Nothing of this operation was saved, unless
    /// [`SessionError::may_have_applied`] says it may have been.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The value could not be serialized.
    #[error("could not encode the value for session key {key:?}: {source}")]
    Encode {
        /// The session key.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// The stored value of this key does not decode as the requested type.
    /// Other keys are unaffected.
    #[error("the stored value of session key {key:?} does not decode as the requested type: {source}")]
    Decode {
        /// The session key.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// A cookie name or value that cannot go into a `Set-Cookie` header.
    #[error("invalid cookie {0:?}: names must be tokens and values cookie-octets (RFC 6265)")]
    InvalidCookie(String),
    /// A buffered write (`put`, `delete`, a cookie) after the response was already
    /// given its cookies, e.g. from a task that outlived the request: it could never
    /// be saved. Use `update` (written at once) or write before the handler returns.
    #[error(
        "the response for this session was already sent; a put/delete/cookie now could never be saved \
         (write before the handler returns, or use `update`, which writes at once)"
    )]
    ResponseSent,
    /// The OS random number generator failed while making a session id.
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
    /// A flash for a visitor without a session does not fit in its cookie. It is
    /// refused rather than stored: a stored session per anonymous request is what
    /// lets a flood fill the store. Keep flash messages short (and do not echo
    /// unbounded user input into them).
    #[error("the flash of a visitor without a session is {bytes} bytes, over the cookie's limit of {limit}")]
    FlashTooLarge {
        /// The size of the encoded messages.
        bytes: usize,
        /// The most a flash cookie carries.
        limit: usize,
    },
    /// The cookie options break a rule ([`SessionConfig::validate`](crate::SessionConfig::validate)):
    /// the layer was not built.
    #[error(transparent)]
    Config(#[from] CookieConfigError),
    /// [`Session::named`](crate::Session::named) found no session layer with that
    /// cookie name around this request.
    #[error(
        "no session layer with cookie name {0:?} handles this request: add \
         `SessionLayer::new(store, config.with_cookie_name({0:?}))` outside this route, \
         or check the name"
    )]
    NoNamedLayer(String),
    /// A user id or metadata that a session cannot be bound with.
    #[error(transparent)]
    Binding(#[from] BindingError),
    /// The store keeps no per-user index (`SessionStore::users`
    /// is `None`), so sessions cannot be bound to users. Every store of this crate has one.
    #[error("this session store keeps no per-user index, so sessions cannot be bound to users")]
    NoUserIndex,
    /// A handler wrote a key the session layer reserves (`_nex_user`, `_nex_seen`:
    /// the user binding, written only by `bind_user`).
    #[error("session key {0:?} is reserved for nex-session's user binding; use bind_user / sign_in")]
    ReservedKey(String),
}

debug_as_message!(SessionError);

impl VariantPath for SessionError {
    fn write_variant(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Store(inner) => return write_nested(f, "SessionError::Store", inner),
            Self::Config(inner) => return write_nested(f, "SessionError::Config", inner),
            Self::Binding(inner) => return write_nested(f, "SessionError::Binding", inner),
            Self::NoLayer => "NoLayer",
            Self::Encode { .. } => "Encode",
            Self::Decode { .. } => "Decode",
            Self::InvalidCookie(_) => "InvalidCookie",
            Self::ResponseSent => "ResponseSent",
            Self::Random(_) => "Random",
            Self::FlashTooLarge { .. } => "FlashTooLarge",
            Self::NoNamedLayer(_) => "NoNamedLayer",
            Self::NoUserIndex => "NoUserIndex",
            Self::ReservedKey(_) => "ReservedKey",
        };
        write!(f, "SessionError::{name}")
    }
}

impl SessionError {
    /// Whether the failed operation may nevertheless have been saved: the store
    /// was sent a write and never confirmed it ([`StoreError::OutcomeUnknown`]).
    /// Then telling the user "nothing was changed, try again" could make them do
    /// it twice; say that the outcome is unknown instead.
    ///
    /// ```
    /// use nex_session::{SessionError, StoreError};
    /// use std::time::Duration;
    ///
    /// let sent = StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(Duration::from_secs(1))));
    /// assert!(SessionError::Store(sent).may_have_applied());
    /// assert!(!SessionError::NoLayer.may_have_applied());
    /// ```
    #[must_use]
    pub fn may_have_applied(&self) -> bool {
        matches!(self, Self::Store(err) if err.may_have_applied())
    }
}

/// The longest user id a session can be bound with, in bytes.
pub const MAX_USER_LEN: usize = 256;

/// The longest metadata a session can be bound with, in bytes.
pub const MAX_META_LEN: usize = 512;

/// A user id or metadata the per-user index cannot hold ([`Binding::new`](crate::users::Binding::new)).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The user id is empty.
    #[error("a user id must not be empty")]
    EmptyUser,
    /// The user id is longer than [`MAX_USER_LEN`] bytes.
    #[error("a user id is at most {max} bytes, this one has {0}", max = MAX_USER_LEN)]
    UserTooLong(usize),
    /// The metadata is longer than [`MAX_META_LEN`] bytes.
    #[error("session metadata is at most {max} bytes, this has {0}", max = MAX_META_LEN)]
    MetaTooLong(usize),
}

debug_as_message!(BindingError);

impl VariantPath for BindingError {
    fn write_variant(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyUser => "BindingError::EmptyUser",
            Self::UserTooLong(_) => "BindingError::UserTooLong",
            Self::MetaTooLong(_) => "BindingError::MetaTooLong",
        })
    }
}

/// Why a session cookie configuration is refused.
///
/// ```
/// use nex_session::{cookie::SameSite, token::SecretKeyBase, CookieConfigError, SessionConfig};
///
/// let config = SessionConfig::new(SecretKeyBase::development())
///     .with_same_site(SameSite::None)
///     .with_secure_cookie(false);
/// let err = config.validate().unwrap_err();
/// assert!(matches!(err, CookieConfigError::SameSiteNoneWithoutSecure));
/// assert!(err.to_string().contains("Secure"));
/// // `Debug`, what `fn main() -> Result<(), CookieConfigError>` prints: the message, then the variant.
/// assert!(format!("{err:?}").ends_with("SameSite=Lax (CookieConfigError::SameSiteNoneWithoutSecure)"));
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieConfigError {
    /// The name is empty or holds a character outside an RFC 6265 token.
    #[error(
        "invalid session cookie name {0:?}: a cookie name must be a non-empty RFC 6265 token \
         (letters, digits and !#$%&'*+-.^_`|~; no spaces, `=`, `;`, quotes or control characters)"
    )]
    InvalidName(String),
    /// The path does not start with `/` or holds a character a cookie path cannot carry.
    #[error(
        "invalid session cookie path {0:?}: it must start with `/` and hold only printable ASCII \
         without `;` (RFC 6265 path-value)"
    )]
    InvalidPath(String),
    /// The domain is empty or holds a character a host name cannot have.
    #[error(
        "invalid session cookie domain {0:?}: use a host name (letters, digits, `-`, `.`; \
         no scheme, port or path; IDNs in punycode)"
    )]
    InvalidDomain(String),
    /// `SameSite=None` on a cookie without `Secure`: browsers reject it.
    #[error(
        "SameSite=None needs a Secure cookie: browsers drop a SameSite=None cookie without Secure. \
         Turn Secure on (with_secure_cookie(true) / NEX_SESSION_SECURE_COOKIE=true) or use SameSite=Lax"
    )]
    SameSiteNoneWithoutSecure,
    /// A `__Secure-` or `__Host-` name on a cookie without `Secure`.
    #[error(
        "the cookie name {0:?} has a `__Secure-`/`__Host-` prefix, which browsers accept only on a \
         Secure cookie: turn Secure on or choose another name"
    )]
    PrefixWithoutSecure(String),
    /// A `__Host-` name with a `Domain`.
    #[error(
        "the cookie name {0:?} has the `__Host-` prefix, which browsers accept only without a Domain \
         attribute: remove the cookie domain or use the `__Secure-` prefix"
    )]
    HostPrefixWithDomain(String),
    /// A `__Host-` name with a path other than `/`.
    #[error(
        "the cookie name {name:?} has the `__Host-` prefix, which browsers accept only with Path=/ \
         (the path is {path:?}): use path `/` or the `__Secure-` prefix"
    )]
    HostPrefixWithPath {
        /// The cookie name.
        name: String,
        /// The configured path.
        path: String,
    },
}

debug_as_message!(CookieConfigError);

impl VariantPath for CookieConfigError {
    fn write_variant(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidName(_) => "CookieConfigError::InvalidName",
            Self::InvalidPath(_) => "CookieConfigError::InvalidPath",
            Self::InvalidDomain(_) => "CookieConfigError::InvalidDomain",
            Self::SameSiteNoneWithoutSecure => "CookieConfigError::SameSiteNoneWithoutSecure",
            Self::PrefixWithoutSecure(_) => "CookieConfigError::PrefixWithoutSecure",
            Self::HostPrefixWithDomain(_) => "CookieConfigError::HostPrefixWithDomain",
            Self::HostPrefixWithPath { .. } => "CookieConfigError::HostPrefixWithPath",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_the_message_then_the_variant_path() {
        let timeout = StoreError::Timeout(Duration::from_secs(1));
        assert_eq!(format!("{timeout:?}"), "session store did not answer within 1s (StoreError::Timeout)");
        let unknown = StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(Duration::from_secs(1))));
        assert_eq!(format!("{unknown:?}"), format!("{unknown} (StoreError::OutcomeUnknown(StoreError::Timeout))"));
        let nested = SessionError::Store(unknown);
        assert!(
            format!("{nested:?}").ends_with(" (SessionError::Store(StoreError::OutcomeUnknown(StoreError::Timeout)))")
        );
        let config = SessionError::Config(CookieConfigError::InvalidName("a b".into()));
        assert_eq!(format!("{config:?}"), format!("{config} (SessionError::Config(CookieConfigError::InvalidName))"));
        assert_eq!(
            format!("{:?}", SessionError::Binding(BindingError::EmptyUser)),
            "a user id must not be empty (SessionError::Binding(BindingError::EmptyUser))"
        );
        let no_layer = format!("{:?}", SessionError::NoLayer);
        assert!(no_layer.starts_with("no session here") && no_layer.ends_with("(SessionError::NoLayer)"));
        // `{:#?}` (pretty) is the same line: there is no field dump to spread out.
        assert_eq!(format!("{timeout:#?}"), format!("{timeout:?}"));
    }

    #[test]
    fn the_named_layer_message_has_no_run_of_spaces() {
        let message = SessionError::NoNamedLayer("admin".into()).to_string();
        assert!(!message.contains("  "), "{message}");
        assert!(message.contains("add `SessionLayer::new(store, config.with_cookie_name(\"admin\"))` outside"));
    }
}
