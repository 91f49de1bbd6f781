//! CSRF protection: a double-submit token signed with the project's token module.
//!
//! The browser gets a random `_nex_csrf` cookie (HttpOnly, SameSite=Lax) the first
//! time it is shown a form; each form carries `_csrf_token` = Phoenix.Token of that
//! cookie value with the salt `nex.csrf` (as Nex.CSRF signs with its own salt).
//! A POST passes when the token is genuine, at most [`CSRF_MAX_AGE_S`] old, and
//! signs the value of the cookie the same browser sent. A page from another site
//! can neither read the cookie nor forge the signature. The check needs no session,
//! so the login form creates none.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use nex_session::cookie::CookieOptions;
use nex_session::token::Signer;
use nex_session::SessionError;

/// The cookie that binds CSRF tokens to one browser.
pub const CSRF_COOKIE: &str = "_nex_csrf";
/// The salt of CSRF tokens.
pub const CSRF_SALT: &str = "nex.csrf";
/// How long a form's token stays valid: 4 hours, so a page left open still posts.
pub const CSRF_MAX_AGE_S: i64 = 4 * 3600;

/// A token for the forms of the page being rendered; sets the cookie if needed.
pub async fn form_token(signer: &Signer, secure: bool) -> Result<String, SessionError> {
    let binding = match nex_session::cookie::get(CSRF_COOKIE).await? {
        Some(value) if !value.is_empty() => value,
        _ => {
            let mut bytes = [0u8; 24];
            getrandom::fill(&mut bytes).map_err(SessionError::Random)?;
            let value = URL_SAFE_NO_PAD.encode(bytes);
            let opts = CookieOptions::default().with_secure(secure);
            nex_session::cookie::put(CSRF_COOKIE, &value, opts).await?;
            value
        }
    };
    Ok(signer.sign_at(binding.as_bytes(), nex_session::token::now_ms(), CSRF_MAX_AGE_S))
}

/// Whether `token` is a genuine, fresh token for this browser's cookie.
pub async fn is_valid(signer: &Signer, token: Option<&str>) -> Result<bool, SessionError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(false) };
    let Some(cookie) = nex_session::cookie::get(CSRF_COOKIE).await? else { return Ok(false) };
    Ok(signer.verify(token, Some(CSRF_MAX_AGE_S)).is_ok_and(|data| data == cookie.as_bytes()))
}
