//! Small signed cookies that carry state for a visitor who has no stored
//! session: flash messages (`_nex_flash`) and the CSRF secret (`_nex_csrf`).
//!
//! Why they exist: an anonymous request that shows a flash ("please sign in") or
//! renders a form (a CSRF token) must not create a stored session, or a flood of
//! anonymous requests fills the store (one 7-day session per request). Their
//! state rides in the browser instead, signed with the layer's secret under a
//! salt of its own, so it can be neither forged nor confused with a session cookie.

use http::HeaderValue;

use super::COOKIE_NAME;
use crate::config::SessionConfig;
use crate::cookie_header;
use crate::error::SessionError;
use crate::token::Keyring;

/// The cookie that carries flash messages of a visitor without a stored session
/// (with the default session cookie name; otherwise `<session cookie name>_flash`).
pub const FLASH_COOKIE: &str = "_nex_flash";
/// Salt of the flash cookie's token.
pub(crate) const FLASH_SALT: &str = "nex.flash";
/// How long a flash cookie lives: a flash is meant for the next page, so a few
/// minutes cover any redirect.
pub(crate) const FLASH_MAX_AGE_S: i64 = 300;

/// The cookie that carries the CSRF secret of a visitor without a stored session
/// (with the default session cookie name; otherwise `<session cookie name>_csrf`).
pub const CSRF_COOKIE: &str = "_nex_csrf";
/// Salt of the CSRF cookie's token.
pub(crate) const CSRF_SALT: &str = "nex.csrf";

/// One kind of side cookie: its name, signing keys and attributes.
pub(crate) struct SideCookie {
    /// Derived from the session cookie's name, so two layers never share one.
    name: Box<str>,
    keyring: Keyring,
    /// The token's max age (and the cookie's `Max-Age` when persistent).
    max_age_s: i64,
    /// `; Path=…; …` as the layer's session cookie has them (but always
    /// `HttpOnly`: no script needs them), computed once.
    attributes: String,
    deletion: HeaderValue,
}

impl SideCookie {
    /// The flash cookie of a layer with `config`.
    pub(crate) fn flash(config: &SessionConfig) -> Result<Self, SessionError> {
        let name = side_name(config.cookie_name(), FLASH_COOKIE, "_flash");
        Self::new(config, name, FLASH_SALT, FLASH_MAX_AGE_S, true)
    }

    /// The CSRF cookie of a layer with `config`: a browser-session cookie whose
    /// token stays valid as long as a session would.
    pub(crate) fn csrf(config: &SessionConfig) -> Result<Self, SessionError> {
        let name = side_name(config.cookie_name(), CSRF_COOKIE, "_csrf");
        Self::new(config, name, CSRF_SALT, config.ttl_s(), false)
    }

    fn new(
        config: &SessionConfig,
        name: String,
        salt: &str,
        max_age_s: i64,
        persistent: bool,
    ) -> Result<Self, SessionError> {
        let keyring = Keyring::new(config.secret.clone(), config.previous_secrets.iter().cloned(), salt);
        // The session cookie's path, domain, SameSite and Secure, so both reach the same pages.
        let mut opts = config.cookie_options().with_http_only(true);
        let deletion = cookie_header::set_cookie_value(&name, "", &opts.clone().with_max_age(0))?;
        if persistent {
            opts = opts.with_max_age(max_age_s);
        }
        let full = cookie_header::set_cookie_value(&name, "", &opts)?;
        let attributes = full
            .to_str()
            .ok()
            .and_then(|f| f.strip_prefix(name.as_str())?.strip_prefix('='))
            .ok_or_else(|| SessionError::InvalidCookie(name.clone()))?
            .to_owned();
        Ok(Self { name: name.into(), keyring, max_age_s, attributes, deletion })
    }

    /// The cookie's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The data of a genuine, unexpired cookie value; `None` for anything else.
    pub(crate) fn verify(&self, value: &str, now_ms: i64) -> Option<Vec<u8>> {
        match self.keyring.verify_at(value, Some(self.max_age_s), now_ms) {
            Ok(verified) => Some(verified.data),
            Err(_) => {
                tracing::debug!(target: "nex_session", cookie = &*self.name, "forged, foreign or expired cookie ignored");
                None
            }
        }
    }

    /// The signed value carrying `data` (what the cookie helper queues).
    pub(crate) fn sign(&self, data: &[u8], now_ms: i64) -> String {
        self.keyring.sign_at(data, now_ms, self.max_age_s)
    }

    /// The `Set-Cookie` value for a signed `token` from [`SideCookie::sign`].
    ///
    /// # Errors
    /// [`SessionError::InvalidCookie`] if it cannot go into a header (cannot happen
    /// with a token and attributes checked at creation).
    pub(crate) fn header(&self, token: &str) -> Result<HeaderValue, SessionError> {
        HeaderValue::try_from([&self.name, "=", token, &self.attributes].concat())
            .map_err(|_| SessionError::InvalidCookie(self.name.to_string()))
    }

    /// The `Set-Cookie` value that deletes the cookie.
    pub(crate) fn deletion(&self) -> HeaderValue {
        self.deletion.clone()
    }
}

/// A side cookie's name: `default` for the default session cookie (as Nex), else
/// the session cookie's name plus `suffix`. Appending keeps a `__Host-` or
/// `__Secure-` prefix, and the rules that come with it hold for the side cookie
/// too, since it shares the session cookie's attributes.
fn side_name(session_cookie: &str, default: &str, suffix: &str) -> String {
    if session_cookie == COOKIE_NAME {
        default.to_owned()
    } else {
        [session_cookie, suffix].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SecretKeyBase;

    fn config() -> SessionConfig {
        SessionConfig::new(SecretKeyBase::development())
    }

    #[test]
    fn a_signed_value_verifies_and_a_tampered_one_does_not() {
        let flash = SideCookie::flash(&config()).unwrap();
        let token = flash.sign(b"{\"info\":\"hi\"}", 1_000_000);
        assert_eq!(flash.verify(&token, 1_000_000).as_deref(), Some(&b"{\"info\":\"hi\"}"[..]));
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(flash.verify(&tampered, 1_000_000), None);
        // Expired after its max age.
        assert_eq!(flash.verify(&token, 1_000_000 + (FLASH_MAX_AGE_S + 1) * 1000), None);
    }

    #[test]
    fn salts_keep_the_kinds_apart() {
        let flash = SideCookie::flash(&config()).unwrap();
        let csrf = SideCookie::csrf(&config()).unwrap();
        let token = flash.sign(b"data", 1_000_000);
        assert_eq!(csrf.verify(&token, 1_000_000), None);
    }

    #[test]
    fn the_flash_cookie_is_short_lived_and_the_csrf_cookie_ends_with_the_browser() {
        let flash = SideCookie::flash(&config()).unwrap();
        let csrf = SideCookie::csrf(&config()).unwrap();
        let header = flash.header("t").unwrap();
        let header = header.to_str().unwrap();
        assert!(header.starts_with("_nex_flash=t; Path=/"), "{header}");
        assert!(header.contains("Max-Age=300") && header.contains("HttpOnly") && header.contains("Secure"));
        let header = csrf.header("t").unwrap();
        assert!(!header.to_str().unwrap().contains("Max-Age"), "{header:?}");
        assert!(csrf.deletion().to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn side_cookies_follow_the_session_cookies_name_and_attributes() {
        use crate::cookie_header::SameSite;
        let config = config().with_cookie_name("__Host-admin").with_same_site(SameSite::Strict).with_http_only(false);
        let flash = SideCookie::flash(&config).unwrap();
        let csrf = SideCookie::csrf(&config).unwrap();
        assert_eq!(flash.name(), "__Host-admin_flash");
        assert_eq!(csrf.name(), "__Host-admin_csrf");
        assert_eq!(
            flash.header("t").unwrap(),
            "__Host-admin_flash=t; Path=/; Max-Age=300; HttpOnly; Secure; SameSite=Strict"
        );
        let config =
            self::config().with_cookie_path("/admin").with_cookie_domain("example.com").with_secure_cookie(false);
        let csrf = SideCookie::csrf(&config).unwrap();
        assert_eq!(csrf.name(), "_nex_csrf", "the default session name keeps the default side names");
        assert_eq!(csrf.header("t").unwrap(), "_nex_csrf=t; Path=/admin; Domain=example.com; HttpOnly; SameSite=Lax");
        assert_eq!(csrf.deletion(), "_nex_csrf=; Path=/admin; Domain=example.com; Max-Age=0; HttpOnly; SameSite=Lax");
    }
}
