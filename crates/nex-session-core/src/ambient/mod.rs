//! The ambient API: the session of the request being handled, reachable from
//! anywhere inside it without passing anything around.
//!
//! Nex keeps the session in the process dictionary; the Rust analog is a tokio
//! task-local, set by [`SessionLayer`](crate::SessionLayer) around the inner
//! service's future. Like a process dictionary it does not cross into other tasks:
//! in a `tokio::spawn`ed task, use the [`Session`] handle (the extractor) instead.
//!
//! Every ambient function is here: the session's (this file), the cookie
//! helper's (`cookie.rs`, public as `nex_session::cookie`), the flash's
//! (`flash.rs`, public as `nex_session::flash`), the CSRF token's (`csrf.rs`) and
//! the per-user functions (`users.rs`, public as `nex_session::users`). Each finds the request's
//! [`Session`] and calls the method of the same name.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::absence::NoSession;
use crate::error::SessionError;
use crate::session::Session;

pub(crate) mod cookie;
pub(crate) mod csrf;
pub(crate) mod flash;
pub(crate) mod users;

tokio::task_local! {
    static CURRENT: Session;
}

/// Runs `future` with `session` as the ambient session.
pub(crate) fn scope<F: std::future::Future>(
    session: Session,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<Session, F> {
    CURRENT.scope(session, future)
}

/// The ambient session, `None` outside a session layer: how the extractor, a
/// `CsrfLayer` and a nested session layer find the request's session.
pub(crate) fn try_current() -> Option<Session> {
    CURRENT.try_with(Session::clone).ok()
}

/// Whether a session layer runs around the current task (no clone). Only
/// `CsrfLayer` asks, which comes with the `axum` feature.
#[cfg(feature = "axum")]
pub(crate) fn is_set() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// The session of the request being handled.
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request that went through `SessionLayer`.
pub fn current() -> Result<Session, SessionError> {
    CURRENT.try_with(Session::clone).map_err(|_| SessionError::NoLayer)
}

/// The session of the layer whose cookie is called `cookie_name`, when session
/// layers are nested; see [`Session::named`]. The other ambient functions use the
/// innermost layer's session.
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// let admin = nex_session::named("admin_session")?;
/// admin.put("last_seen", "/admin/users").await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request; [`SessionError::NoNamedLayer`]
/// when no session layer around this request has that cookie name.
pub fn named(cookie_name: &str) -> Result<Session, SessionError> {
    current()?.named(cookie_name)
}

/// The value of `key` in the current session, or `None` when absent or when
/// there is no session; see [`Session::get`].
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// let user_id: Option<u64> = nex_session::get("user_id").await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Session::get`].
pub async fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, SessionError> {
    current()?.get(key).await
}

/// The value of `key`, or `default`; see [`Session::get_or`].
///
/// # Errors
/// As [`get`].
pub async fn get_or<T: DeserializeOwned>(key: &str, default: T) -> Result<T, SessionError> {
    current()?.get_or(key, default).await
}

/// Stores `value` under `key`; see [`Session::put`].
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// nex_session::put("user_id", 42).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Session::put`].
pub async fn put<T: Serialize>(key: &str, value: T) -> Result<(), SessionError> {
    current()?.put(key, value).await
}

/// Atomically updates `key` and returns the new value; see [`Session::update`]
/// (`f` may run more than once).
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// let count = nex_session::update("counter", 0u64, |n| n + 1).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Session::update`].
pub async fn update<T, F>(key: &str, default: T, f: F) -> Result<T, SessionError>
where
    T: Serialize + DeserializeOwned + Clone + Send,
    F: FnMut(T) -> T + Send,
{
    current()?.update(key, default, f).await
}

/// Removes `key`; see [`Session::delete`].
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Session::delete`].
pub async fn delete(key: &str) -> Result<(), SessionError> {
    current()?.delete(key).await
}

/// Removes the whole session and its cookie; see [`Session::clear`].
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Session::clear`].
pub async fn clear() -> Result<(), SessionError> {
    current()?.clear().await
}

/// Why the current request has no session (`None`: it has one); see [`Session::absence`].
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// if nex_session::absence().await? == Some(nex_session::NoSession::Expired) {
///     nex_session::flash::put("error", "Your session has expired, please sign in again.").await?;
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Session::absence`].
pub async fn absence() -> Result<Option<NoSession>, SessionError> {
    current()?.absence().await
}

/// The current session id, if there is a session; see [`Session::id`].
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request.
pub async fn id() -> Result<Option<String>, SessionError> {
    Ok(current()?.id().await)
}

/// Gives the session a new id, keeping its data; see [`Session::renew`].
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Session::renew`].
pub async fn renew() -> Result<(), SessionError> {
    current()?.renew().await
}

/// Chooses how long the current session lives ("remember me"); see [`Session::set_expiry`].
///
/// ```
/// use std::time::Duration;
/// use nex_session::SessionExpiry;
///
/// async fn remember_me() -> Result<(), nex_session::SessionError> {
///     nex_session::set_expiry(SessionExpiry::Persistent(Duration::from_secs(30 * 86_400))).await
/// }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Session::set_expiry`].
pub async fn set_expiry(expiry: crate::session_cookie::SessionExpiry) -> Result<(), SessionError> {
    current()?.set_expiry(expiry).await
}
