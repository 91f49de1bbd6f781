//! The cookie helper's ambient functions (Nex.Cookie): read request cookies,
//! queue response cookies. Public as [`nex_session::cookie`](crate::cookie).

use super::current;
use crate::cookie_header::CookieOptions;
use crate::error::SessionError;

/// Queues a cookie for the response (Nex.Cookie.put/3); see [`Session::put_cookie`](crate::Session::put_cookie).
///
/// ```
/// use nex_session::cookie::{self, CookieOptions};
/// # async fn handler() -> Result<(), nex_session::SessionError> {
/// cookie::put("theme", "dark", CookieOptions::default().with_max_age(86_400)).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request; [`SessionError::InvalidCookie`]
/// for a name or value that cannot go into a header.
pub async fn put(name: &str, value: &str, opts: CookieOptions) -> Result<(), SessionError> {
    current()?.put_cookie(name, value, opts).await
}

/// Queues the deletion of a cookie (`Max-Age=0`, `Path=/`).
///
/// # Errors
/// As [`put`].
pub async fn delete(name: &str) -> Result<(), SessionError> {
    current()?.delete_cookie(name).await
}

/// A cookie's value: as queued in this request if it was, else as the request sent it.
/// `None` when the request sent no such cookie, or this request queued its deletion.
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request.
pub async fn get(name: &str) -> Result<Option<String>, SessionError> {
    Ok(current()?.get_cookie(name).await)
}

/// Every request cookie as `(name, value)`, in the order sent, with this request's
/// queued changes applied: deleted ones left out, queued ones last.
///
/// # Errors
/// [`SessionError::NoLayer`] outside a request.
pub async fn all() -> Result<Vec<(String, String)>, SessionError> {
    Ok(current()?.all_cookies().await)
}
