//! The flash's ambient functions (Nex.Flash). Public as
//! [`nex_session::flash`](crate::flash); each acts on [`Session::flash`](crate::Session::flash).

use super::current;
use crate::error::SessionError;
use crate::session::Messages;

/// Sets the flash message of `kind` in the current request's session.
///
/// ```
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// nex_session::flash::put("info", "Saved.").await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Flash::put`](crate::flash::Flash::put).
pub async fn put(kind: &str, message: impl Into<String>) -> Result<(), SessionError> {
    current()?.flash().put(kind, message).await
}

/// The message of `kind`, left in place; `None` when there is none.
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Flash::get`](crate::flash::Flash::get).
pub async fn get(kind: &str) -> Result<Option<String>, SessionError> {
    current()?.flash().get(kind).await
}

/// Every message, left in place.
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Flash::peek_all`](crate::flash::Flash::peek_all).
pub async fn peek_all() -> Result<Messages, SessionError> {
    current()?.flash().peek_all().await
}

/// Every message, removed: shown once.
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Flash::pop_all`](crate::flash::Flash::pop_all).
pub async fn pop_all() -> Result<Messages, SessionError> {
    current()?.flash().pop_all().await
}

/// Removes every message.
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Flash::clear`](crate::flash::Flash::clear).
pub async fn clear() -> Result<(), SessionError> {
    current()?.flash().clear().await
}
