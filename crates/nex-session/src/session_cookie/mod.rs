//! The session cookie itself: finding and verifying it in a request, signing and
//! formatting it for a response.
//!
//! The cookie `_nex_session` carries a Phoenix.Token (salt [`SESSION_SALT`])
//! whose data is the session id. Reading it costs no store access; whether its
//! session still exists is the store's answer, later. Verified cookies are
//! remembered (`verified.rs`), so a browser's repeat requests skip the HMAC.
//!
//! Visitors without a stored session get two small signed side cookies instead
//! of a session when a handler shows them a flash or a CSRF token (`side.rs`).

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::config::SessionConfig;
use crate::cookie_header;
use crate::error::SessionError;
use crate::id::SessionId;
use crate::token::{Keyring, TokenError};

mod side;
mod verified;

pub(crate) use side::SideCookie;
pub use side::{CSRF_COOKIE, FLASH_COOKIE};
use verified::VerifiedCookies;

// The default cookie name is the configuration's default; it is re-exported
// here, next to the cookie it names.
pub use crate::config::COOKIE_NAME;

/// Salt of the session cookie token, as Nex (`Phoenix.Token.sign(secret, "nex.session", id)`).
pub const SESSION_SALT: &str = "nex.session";

/// What a genuine session cookie of a request said.
#[derive(Clone)]
pub(crate) struct RequestCookie {
    /// The session id the cookie carries.
    pub(crate) id: SessionId,
    /// When the cookie was signed (ms since the Unix epoch).
    pub(crate) signed_at_ms: i64,
    /// Signed with the current secret (not a previous one of the keyring).
    pub(crate) current_key: bool,
}

/// Reads and writes one layer's session cookies.
pub(crate) struct CookieCodec {
    /// The cookie's name (`_nex_session` unless configured).
    name: Box<str>,
    keyring: Keyring,
    /// The cookie's lifetime: its `Max-Age`, and the max age it is verified with.
    ttl_s: i64,
    /// `; Path=…[; Domain=…]; Max-Age=…[; HttpOnly][; Secure]; SameSite=…`, computed once.
    attributes: String,
    /// The `Set-Cookie` value that deletes the session cookie.
    deletion: HeaderValue,
    /// Cookies verified recently, so repeat visits skip the HMAC.
    verified: VerifiedCookies,
}

impl CookieCodec {
    /// The codec for `config`. Derives the signing keys here, once (PBKDF2 per
    /// secret), never per request.
    ///
    /// # Errors
    /// [`SessionError::Config`] when the cookie options break a rule
    /// ([`SessionConfig::validate`]); [`SessionError::InvalidCookie`] when an
    /// attribute cannot go into a header.
    pub(crate) fn new(config: &SessionConfig) -> Result<Self, SessionError> {
        config.validate()?;
        let name = config.cookie_name();
        let keyring = Keyring::new(config.secret.clone(), config.previous_secrets.iter().cloned(), SESSION_SALT);
        let ttl_s = config.ttl_s();
        let opts = config.cookie_options().with_max_age(ttl_s);
        let invalid = || SessionError::InvalidCookie(name.to_owned());
        let full = cookie_header::set_cookie_value(name, "", &opts)?;
        // `<name>=` then the attributes: keep the attributes, once.
        let attributes =
            full.to_str().ok().and_then(|f| f.strip_prefix(name)?.strip_prefix('=')).ok_or_else(invalid)?;
        let attributes = attributes.to_owned();
        let deletion = cookie_header::set_cookie_value(name, "", &opts.with_max_age(0))?;
        Ok(Self { name: name.into(), keyring, ttl_s, attributes, deletion, verified: VerifiedCookies::new() })
    }

    /// The cookie's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The session a request's cookies name: the first cookie of this layer's name
    /// that is genuine, unexpired and holds an id. Other cookies (another layer's)
    /// are not looked at.
    pub(crate) fn read(&self, headers: &HeaderMap, now_ms: i64) -> Option<RequestCookie> {
        cookie_header::request_values(headers.get_all(COOKIE), &self.name).find_map(|value| self.verify(value, now_ms))
    }

    /// The session a cookie value names, if it is genuine, unexpired and holds an id.
    fn verify(&self, value: &str, now_ms: i64) -> Option<RequestCookie> {
        if let Some(known) = self.verified.get(value, self.ttl_s, now_ms) {
            return Some(known);
        }
        self.verify_fully(value, now_ms)
    }

    /// The full verification, once per cookie (and per refresh interval). Kept out
    /// of line so the per-request path above stays a few cache lines of code: under
    /// load, instruction-cache misses cost more than the instructions themselves.
    #[cold]
    #[inline(never)]
    fn verify_fully(&self, value: &str, now_ms: i64) -> Option<RequestCookie> {
        match self.keyring.verify_at(value, Some(self.ttl_s), now_ms) {
            Ok(verified) => {
                let Some(id) = std::str::from_utf8(&verified.data).ok().and_then(SessionId::parse) else {
                    tracing::debug!(target: "nex_session", "signed cookie holds no session id");
                    return None;
                };
                let cookie =
                    RequestCookie { id, signed_at_ms: verified.signed_at_ms, current_key: verified.key_index == 0 };
                self.verified.insert(value, &cookie);
                Some(cookie)
            }
            Err(TokenError::Expired) => {
                tracing::debug!(target: "nex_session", "session cookie expired");
                None
            }
            Err(_) => {
                tracing::debug!(target: "nex_session", "forged or foreign session cookie ignored");
                None
            }
        }
    }

    /// A freshly signed session cookie for `id`, as of `signed_at_ms` (at most once
    /// per refresh interval per browser, so out of line: see `verify_fully`).
    ///
    /// # Errors
    /// [`SessionError::InvalidCookie`] if the result cannot go into a header
    /// (cannot happen with a token and attributes checked at creation).
    #[cold]
    #[inline(never)]
    pub(crate) fn issue(&self, id: &SessionId, signed_at_ms: i64) -> Result<HeaderValue, SessionError> {
        let token = self.keyring.sign_at(id.as_str().as_bytes(), signed_at_ms, self.ttl_s);
        let value = [&self.name, "=", &token, &self.attributes].concat();
        HeaderValue::try_from(value).map_err(|_| SessionError::InvalidCookie(self.name.to_string()))
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    pub(crate) fn deletion(&self) -> HeaderValue {
        self.deletion.clone()
    }
}
