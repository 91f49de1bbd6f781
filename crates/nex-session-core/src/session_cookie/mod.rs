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

use http::header::GetAll;
use http::HeaderValue;

use crate::absence::{self, NoSession};
use crate::config::{Expiry, SessionConfig};
use crate::cookie_header::{self, CookieOptions};
use crate::error::SessionError;
use crate::id::SessionId;
use crate::observe::{self, Rejected};
use crate::token::{Keyring, TokenError};

mod data;
mod expiry;
mod request;
mod side;
mod verified;

pub use data::{CookieExpiry, SessionCookieData};
pub use expiry::SessionExpiry;
pub(crate) use expiry::{ExpiryRules, Lifetime, Mode};
pub(crate) use request::RequestCookie;
pub(crate) use side::SideCookie;
pub use side::{CSRF_COOKIE, FLASH_COOKIE};
use verified::VerifiedCookies;

// The default cookie name is the configuration's default; it is re-exported
// here, next to the cookie it names.
pub use crate::config::COOKIE_NAME;

/// Salt of the session cookie token, as Nex (`Phoenix.Token.sign(secret, "nex.session", id)`).
pub const SESSION_SALT: &str = "nex.session";

/// Reads and writes one layer's session cookies.
pub(crate) struct CookieCodec {
    /// The cookie's name (`_nex_session` unless configured).
    name: Box<str>,
    keyring: Keyring,
    /// The expiry modes: a session's max age, `Max-Age` and absolute end.
    rules: ExpiryRules,
    /// `; Path=…[; Domain=…]; Max-Age=…[; HttpOnly][; Secure]; SameSite=…`, computed
    /// once for the default lifetime (no `Max-Age` for [`crate::Expiry::BrowserSession`]).
    attributes: String,
    /// The attributes without `Max-Age`, for cookies of other lifetimes.
    options: CookieOptions,
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
        let rules = ExpiryRules::new(config);
        let options = config.cookie_options();
        let opts = match config.expiry {
            Expiry::BrowserSession => options.clone(),
            _ => options.clone().with_max_age(ttl_s),
        };
        let invalid = || SessionError::InvalidCookie(name.to_owned());
        let full = cookie_header::set_cookie_value(name, "", &opts)?;
        // `<name>=` then the attributes: keep the attributes, once.
        let attributes =
            full.to_str().ok().and_then(|f| f.strip_prefix(name)?.strip_prefix('=')).ok_or_else(invalid)?;
        let attributes = attributes.to_owned();
        let deletion = cookie_header::set_cookie_value(name, "", &opts.with_max_age(0))?;
        Ok(Self { name: name.into(), keyring, rules, attributes, options, deletion, verified: VerifiedCookies::new() })
    }

    /// The cookie's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The session a request's cookies name: the first cookie of this layer's
    /// name that is genuine, unexpired and holds an id (other layers' cookies are
    /// not looked at). Without one, why not: no such cookie
    /// ([`NoSession::NotSent`]), only forged or unreadable ones
    /// ([`NoSession::Invalid`]), or a genuine one that expired ([`NoSession::Expired`]).
    ///
    /// `cookie_headers` are the request's `Cookie` headers (looked up once per
    /// request: the session's cookie helper keeps them too).
    pub(crate) fn read(
        &self,
        cookie_headers: &GetAll<'_, HeaderValue>,
        now_ms: i64,
    ) -> Result<RequestCookie, NoSession> {
        let mut why = NoSession::NotSent;
        for value in cookie_header::request_values(cookie_headers, &self.name) {
            match self.verify(value, now_ms) {
                Ok(cookie) => return Ok(cookie),
                Err(reason) => why = absence::stronger(why, reason),
            }
        }
        Err(why)
    }

    /// The session a cookie value names, if it is genuine, unexpired and holds an id.
    fn verify(&self, value: &[u8], now_ms: i64) -> Result<RequestCookie, NoSession> {
        let cookie = match self.verified.get(value, now_ms) {
            Some(known) => known,
            None => self.verify_fully(value, now_ms)?,
        };
        if self.rules.past_absolute(cookie.lifetime.created_ms, now_ms) {
            return Err(self.past_absolute_lifetime());
        }
        Ok(cookie)
    }

    /// A genuine cookie whose session is past its absolute lifetime: no session,
    /// without asking the store (which forgets it at the same moment). The single
    /// place where a session ends because of its absolute lifetime: it expired.
    #[cold]
    #[inline(never)]
    fn past_absolute_lifetime(&self) -> NoSession {
        observe::cookie_rejected(Rejected::Expired);
        tracing::debug!(target: "nex_session", reason = Rejected::Expired.as_str(), "session cookie past its absolute lifetime");
        NoSession::Expired
    }

    /// The full verification, once per cookie (and per refresh interval). Kept out
    /// of line so the per-request path above stays a few cache lines of code: under
    /// load, instruction-cache misses cost more than the instructions themselves.
    #[cold]
    #[inline(never)]
    fn verify_fully(&self, value: &[u8], now_ms: i64) -> Result<RequestCookie, NoSession> {
        // A token is base64url and dots: bytes that are not even UTF-8 are malformed.
        let checked = std::str::from_utf8(value).map_err(|_| Rejected::Malformed);
        match checked.and_then(|value| self.check(value, now_ms)) {
            Ok(cookie) => {
                self.verified.insert(value, &cookie);
                Ok(cookie)
            }
            Err(reason) => {
                observe::cookie_rejected(reason);
                tracing::debug!(target: "nex_session", reason = reason.as_str(), "session cookie rejected");
                Err(match reason {
                    Rejected::Expired => NoSession::Expired,
                    Rejected::Forged | Rejected::Malformed => NoSession::Invalid,
                })
            }
        }
    }

    /// The full verification of one cookie value, with why it fails (the
    /// classification documented in [`crate::observe`]).
    fn check(&self, value: &str, now_ms: i64) -> Result<RequestCookie, Rejected> {
        // Bounded first by the longest max age this layer gives any cookie, then
        // by the session's own (known once the data is read).
        let verified =
            self.keyring.verify_at(value, Some(self.rules.longest_s()), now_ms).map_err(|err| match err {
                TokenError::Expired => Rejected::Expired,
                // The signature did not match (or, in practice never, a genuine
                // payload did not decode): only the shape tells forged from garbage.
                _ if crate::token::well_formed(value) => Rejected::Forged,
                _ => Rejected::Malformed,
            })?;
        let Some((id, lifetime)) = expiry::parse_token_data(&verified.data) else {
            return Err(Rejected::Malformed);
        };
        let lifetime = lifetime.unwrap_or(Lifetime { mode: Mode::Default, created_ms: verified.signed_at_ms });
        let max_age_s = self.rules.inactivity_s(lifetime.mode);
        crate::token::check_age(verified.signed_at_ms, Some(max_age_s), now_ms).map_err(|_| Rejected::Expired)?;
        let current_key = verified.key_index == 0;
        Ok(RequestCookie { id, signed_at_ms: verified.signed_at_ms, current_key, max_age_s, lifetime })
    }

    /// A freshly signed session cookie for `id`, as of `signed_at_ms` (at most once
    /// per refresh interval per browser, so out of line: see `verify_fully`).
    ///
    /// # Errors
    /// [`SessionError::InvalidCookie`] if the result cannot go into a header
    /// (cannot happen with a token and attributes checked at creation).
    #[cold]
    #[inline(never)]
    pub(crate) fn issue(
        &self,
        id: &SessionId,
        lifetime: Lifetime,
        signed_at_ms: i64,
    ) -> Result<HeaderValue, SessionError> {
        let max_age_s = self.rules.inactivity_s(lifetime.mode);
        if !self.rules.needs_lifetime_in_token(lifetime.mode) {
            // The defaults: the bare id and the attributes made once (as Nex).
            let token = self.keyring.sign_at(id.as_str().as_bytes(), signed_at_ms, max_age_s);
            let value = [&*self.name, "=", &token, &self.attributes].concat();
            return HeaderValue::try_from(value).map_err(|_| SessionError::InvalidCookie(self.name.to_string()));
        }
        let token = self.keyring.sign_at(self.rules.token_data(id, lifetime).as_bytes(), signed_at_ms, max_age_s);
        let options = match self.rules.cookie_max_age(lifetime, signed_at_ms) {
            Some(age) => self.options.clone().with_max_age(age),
            None => self.options.clone(),
        };
        cookie_header::set_cookie_value(&self.name, &token, &options)
    }

    /// The layer's expiry rules.
    pub(crate) fn rules(&self) -> &ExpiryRules {
        &self.rules
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    pub(crate) fn deletion(&self) -> HeaderValue {
        self.deletion.clone()
    }
}
