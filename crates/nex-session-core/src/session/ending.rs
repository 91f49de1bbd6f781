//! What a request did with its session, and what its response needs.

use http::HeaderValue;

use crate::id::SessionId;
use crate::session_cookie::Lifetime;

/// What the response needs at the end of a request.
pub(crate) struct Ending {
    pub(crate) session_cookie: SessionCookie,
    /// `Set-Cookie` headers queued with the cookie helper.
    pub(crate) queued: Vec<HeaderValue>,
    /// This request wrote the session to the store.
    pub(crate) saved: bool,
    /// The handler used the session (read, wrote, or asked for its id, flash or
    /// CSRF token): the response depends on the request's cookies.
    pub(crate) accessed: bool,
}

/// What a request did with its session: the `outcome` field of the request's
/// span (see [`crate::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It had no session and made none.
    None,
    /// It had a stored session and did not use it.
    Unused,
    /// It used its stored session (read it, asked for its id, flash or CSRF
    /// token) and wrote nothing.
    Read,
    /// It wrote a new session to the store.
    Created,
    /// It wrote its session.
    Saved,
    /// It moved its session to a new id (and may have written it).
    Renewed,
    /// It cleared its session.
    Cleared,
    /// Its cookie named a session the store no longer has: the cookie is deleted.
    Ended,
}

impl Outcome {
    /// The span field's value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Unused => "unused",
            Self::Read => "read",
            Self::Created => "created",
            Self::Saved => "saved",
            Self::Renewed => "renewed",
            Self::Cleared => "cleared",
            Self::Ended => "ended",
        }
    }
}

/// What to do with the browser's session cookie.
pub(crate) enum SessionCookie {
    /// Nothing: the browser's cookie is right (or there is none and none is needed).
    Unchanged,
    /// Sign and send a cookie for this id (a new id, or a refresh that is due).
    /// Boxed: it is rare (and then a signature costs far more than the box),
    /// while every request moves an `Ending` around.
    Issue(Box<IssueCookie>),
    /// Delete the browser's cookie: its session is gone.
    Delete,
}

/// A session cookie to sign: the id and the lifetime the token carries.
pub(crate) struct IssueCookie {
    pub(crate) id: SessionId,
    pub(crate) lifetime: Lifetime,
}
