//! The per-user functions' ambient twins. Public as
//! [`nex_session::users`](crate::users); each acts on the current request's
//! [`Session`](crate::Session) and has the same meaning as its method.

use super::current;
use crate::error::SessionError;
use crate::store::users::{SessionHandle, UserSession};

/// Binds the current session to `user` ([`Session::bind_user`](crate::Session::bind_user)).
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// nex_session::renew().await?;
/// nex_session::users::bind("alice", Some("Firefox on Linux")).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as the method.
pub async fn bind(user: &str, meta: Option<&str>) -> Result<(), SessionError> {
    current()?.bind_user(user, meta).await
}

/// Renews the session and binds it to `user` ([`Session::sign_in`](crate::Session::sign_in)).
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// nex_session::users::sign_in("alice", None).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`bind`].
pub async fn sign_in(user: &str, meta: Option<&str>) -> Result<(), SessionError> {
    current()?.sign_in(user, meta).await
}

/// The user the current session is bound to, or `None` when it is bound to none
/// ([`Session::user`](crate::Session::user)).
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// let signed_in = nex_session::users::current_user().await?.is_some();
/// # let _ = signed_in; Ok(()) }
/// ```
///
/// # Errors
/// As [`bind`].
pub async fn current_user() -> Result<Option<String>, SessionError> {
    current()?.user().await
}

/// The sessions of the current session's user, oldest sign-in first; empty
/// without a user ([`Session::user_sessions`](crate::Session::user_sessions)).
///
/// # Errors
/// As [`bind`].
pub async fn sessions() -> Result<Vec<UserSession>, SessionError> {
    current()?.user_sessions().await
}

/// Signs out one session of the current user ([`Session::revoke_session`](crate::Session::revoke_session)).
/// `Ok(true)` if it ended a session, `Ok(false)` if the user has no live session
/// with that handle (already ended, or another user's).
///
/// ```
/// # async fn handler(posted: &str) -> Result<(), nex_session::SessionError> {
/// if let Ok(handle) = posted.parse::<nex_session::users::SessionHandle>() {
///     nex_session::users::revoke(&handle).await?;
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`bind`].
pub async fn revoke(handle: &SessionHandle) -> Result<bool, SessionError> {
    current()?.revoke_session(handle).await
}

/// Signs out the current user's other sessions ([`Session::revoke_other_sessions`](crate::Session::revoke_other_sessions));
/// returns how many it ended (this session is kept, so not counted). `Ok(0)` without a user.
///
/// ```
/// async fn after_password_change() -> Result<String, nex_session::SessionError> {
///     let ended = nex_session::users::revoke_others().await?;
///     let noun = if ended == 1 { "device" } else { "devices" };
///     Ok(format!("Signed out {ended} other {noun}"))
/// }
/// ```
///
/// # Errors
/// As [`bind`].
pub async fn revoke_others() -> Result<u64, SessionError> {
    current()?.revoke_other_sessions().await
}

/// Signs out all of the current user's sessions, this one included
/// ([`Session::revoke_all_sessions`](crate::Session::revoke_all_sessions)).
/// Returns how many **other** sessions it ended: this one ends too but is not
/// counted, so a user signed in on two devices gets `Ok(1)`, and one on this
/// device only `Ok(0)`. `Ok(0)` without a user.
///
/// ```
/// async fn log_out_everywhere() -> Result<String, nex_session::SessionError> {
///     let others = nex_session::users::revoke_all().await?;
///     // This session ended too: count it for the user.
///     let ended = others + 1;
///     let noun = if ended == 1 { "session" } else { "sessions" };
///     Ok(format!("Logged out of {ended} {noun}"))
/// }
/// ```
///
/// # Errors
/// As [`bind`].
pub async fn revoke_all() -> Result<u64, SessionError> {
    current()?.revoke_all_sessions().await
}
