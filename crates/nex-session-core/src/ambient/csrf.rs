//! The CSRF functions of the ambient API. Public as
//! [`nex_session::csrf`](crate::csrf); each acts on [`Session::csrf`](crate::Session::csrf).

use super::current;
use crate::error::SessionError;

/// A fresh masked CSRF token for the response being built; see
/// [`Csrf::token`](crate::csrf::Csrf::token).
///
/// ```
/// # async fn handler() -> Result<String, nex_session::SessionError> {
/// let token = nex_session::csrf::token().await?;
/// Ok(format!(r#"<input type="hidden" name="_csrf_token" value="{token}">"#))
/// # }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request, or as [`Csrf::token`](crate::csrf::Csrf::token).
pub async fn token() -> Result<String, SessionError> {
    current()?.csrf().token().await
}

/// Whether `token` is valid for the current request's session; see
/// [`Csrf::verify`](crate::csrf::Csrf::verify).
///
/// # Errors
/// As [`token`].
pub async fn verify(token: &str) -> Result<bool, SessionError> {
    current()?.csrf().verify(token).await
}
