//! Session configuration: secrets, TTL, cookie attributes, background sweep.

use std::ffi::OsStr;
use std::time::Duration;

use crate::token::{SecretError, SecretKeyBase};

/// The session TTL when none is configured: 7 days, as Nex.
pub const DEFAULT_TTL: Duration = Duration::from_secs(604_800);
/// How often expired sessions are swept when not configured: 10 minutes, as Nex.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// How the session layer behaves. Build with [`SessionConfig::new`] and `with_*`
/// methods, or read the environment with [`SessionConfig::from_env`].
///
/// ```
/// use std::time::Duration;
/// use nex_session::{token::SecretKeyBase, SessionConfig};
///
/// let config = SessionConfig::new(SecretKeyBase::new("a-secret-of-at-least-32-bytes-len")?)
///     .with_ttl(Duration::from_secs(3600))
///     .with_secure_cookie(false);
/// assert_eq!(config.ttl(), Duration::from_secs(3600));
/// # Ok::<(), nex_session::token::SecretError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub(crate) secret: SecretKeyBase,
    pub(crate) previous_secrets: Vec<SecretKeyBase>,
    pub(crate) ttl: Duration,
    pub(crate) refresh_interval: Option<Duration>,
    pub(crate) secure: bool,
    pub(crate) domain: Option<String>,
    pub(crate) purge_interval: Duration,
    pub(crate) cache_protection: bool,
    // Expiry modes (issue 13, part B).
    pub(crate) expiry: Expiry,
    pub(crate) absolute_lifetime: Option<Duration>,
    pub(crate) max_persistent_ttl: Duration,
}

/// The environment variable that selects the [`RunMode`].
pub const NEX_ENV: &str = "NEX_ENV";

/// Development or production: development alone may use the public development
/// secret and cookies without `Secure`.
///
/// The one rule, for the library and the demo alike: a set `NEX_ENV` means
/// development only when it is exactly `dev` or `development` (lowercase, as
/// written); any other set value (`prod`, `PROD`, `staging`, `Dev`, empty, not
/// UTF-8) means production, so a misspelling fails closed. What an *unset*
/// `NEX_ENV` means is the application's documented choice: production for
/// [`SessionConfig::from_env`], development for a tool meant to run locally
/// with no setup (the demo).
///
/// ```
/// use std::ffi::OsStr;
/// use nex_session::RunMode;
///
/// assert_eq!(RunMode::from_nex_env(Some(OsStr::new("dev")), RunMode::Production), RunMode::Development);
/// assert_eq!(RunMode::from_nex_env(Some(OsStr::new("PROD")), RunMode::Development), RunMode::Production);
/// assert_eq!(RunMode::from_nex_env(Some(OsStr::new("staging")), RunMode::Development), RunMode::Production);
/// assert_eq!(RunMode::from_nex_env(None, RunMode::Production), RunMode::Production);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Local development: a missing secret falls back to the public development one (with a loud warning).
    Development,
    /// Anything else: a valid `SECRET_KEY_BASE` is required and cookies are `Secure` by default.
    Production,
}

impl RunMode {
    /// The mode a `NEX_ENV` value selects (`None`: unset), `when_unset` if it is not set.
    pub fn from_nex_env(value: Option<&OsStr>, when_unset: RunMode) -> RunMode {
        match value {
            None => when_unset,
            Some(value) if value == "dev" || value == "development" => RunMode::Development,
            Some(_) => RunMode::Production,
        }
    }

    /// The mode `NEX_ENV` in this process's environment selects, `when_unset` if it is not set.
    ///
    /// ```
    /// let mode = nex_session::RunMode::from_env(nex_session::RunMode::Production);
    /// # let _ = mode;
    /// ```
    pub fn from_env(when_unset: RunMode) -> RunMode {
        Self::from_nex_env(std::env::var_os(NEX_ENV).as_deref(), when_unset)
    }

    /// True for [`RunMode::Development`].
    ///
    /// ```
    /// assert!(nex_session::RunMode::Development.is_development());
    /// ```
    pub fn is_development(self) -> bool {
        self == RunMode::Development
    }
}

/// Why the configuration could not be read from the environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `SECRET_KEY_BASE` (or an old secret) is missing or too short.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A variable holds something we cannot use.
    #[error("environment variable {name}={value:?} is invalid: {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
    /// A variable is set but is not valid UTF-8 (its value is not shown: it may be a secret).
    #[error("environment variable {name} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        name: &'static str,
    },
}

impl SessionConfig {
    /// Defaults: TTL 7 days, `Secure` cookies on, refresh after 1/100 of the TTL,
    /// sweep every 10 minutes, no older secrets, host-only cookie.
    pub fn new(secret: SecretKeyBase) -> Self {
        Self {
            secret,
            previous_secrets: Vec::new(),
            ttl: DEFAULT_TTL,
            refresh_interval: None,
            secure: true,
            domain: None,
            purge_interval: DEFAULT_PURGE_INTERVAL,
            cache_protection: true,
            expiry: Expiry::Sliding,
            absolute_lifetime: None,
            max_persistent_ttl: DEFAULT_MAX_PERSISTENT_TTL,
        }
    }

    /// Reads the environment:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `NEX_ENV` | exactly `dev` or `development` enables development mode; any other value is production ([`RunMode`]) | production |
    /// | `SECRET_KEY_BASE` | the secret, at least 32 bytes | required; in development mode a public dev secret with a loud warning |
    /// | `SECRET_KEY_BASE_OLD` | comma-separated older secrets that still verify (rotation) | none |
    /// | `NEX_SESSION_TTL` | session lifetime in seconds | 604800 |
    /// | `NEX_SESSION_SECURE_COOKIE` | `true`/`false`: mark the cookie `Secure` | `true`, `false` in development mode |
    /// | `NEX_SESSION_EXPIRY` | `sliding` or `browser-session` ([`Expiry`]) | `sliding` |
    /// | `NEX_SESSION_ABSOLUTE_LIFETIME` | absolute lifetime in seconds ([`SessionConfig::with_absolute_lifetime`]) | none |
    ///
    /// # Errors
    /// A missing or short secret outside development mode, a secret that is not
    /// UTF-8 (in every mode), or an unreadable value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with_mode(RunMode::from_env(RunMode::Production).is_development())
    }

    /// Like [`SessionConfig::from_env`], with development mode decided by the caller
    /// instead of `NEX_ENV` (for apps whose default for an unset `NEX_ENV` differs:
    /// pass `RunMode::from_env(RunMode::Development).is_development()`).
    ///
    /// # Errors
    /// As [`SessionConfig::from_env`].
    pub fn from_env_with_mode(dev: bool) -> Result<Self, ConfigError> {
        let secret = match SecretKeyBase::from_env() {
            Ok(secret) => secret,
            Err(SecretError::Missing) if dev => {
                let warning = "nex-session: SECRET_KEY_BASE is not set; using the PUBLIC development secret. \
                               Anyone can forge these session cookies. Never run like this in production: \
                               leave development mode and set SECRET_KEY_BASE (e.g. from `nex-session gen-secret`).";
                tracing::warn!(target: "nex_session", "{warning}");
                eprintln!("WARNING: {warning}");
                SecretKeyBase::development()
            }
            Err(err) => return Err(err.into()),
        };
        let mut config = Self::new(secret).with_secure_cookie(!dev);
        if let Some(old) = var("SECRET_KEY_BASE_OLD")? {
            let previous =
                old.split(',').filter(|s| !s.is_empty()).map(SecretKeyBase::new).collect::<Result<Vec<_>, _>>()?;
            config = config.with_previous_secrets(previous);
        }
        if let Some(ttl) = var("NEX_SESSION_TTL")? {
            let seconds = ttl.trim().parse::<u64>().ok().filter(|s| *s > 0).ok_or(ConfigError::Invalid {
                name: "NEX_SESSION_TTL",
                value: ttl.clone(),
                expected: "a positive number of seconds",
            })?;
            config = config.with_ttl(Duration::from_secs(seconds));
        }
        if let Some(secure) = var("NEX_SESSION_SECURE_COOKIE")? {
            let flag = parse_bool(&secure).ok_or(ConfigError::Invalid {
                name: "NEX_SESSION_SECURE_COOKIE",
                value: secure.clone(),
                expected: "true or false",
            })?;
            config = config.with_secure_cookie(flag);
        }
        config = expiry_from_env(config)?;
        Ok(config)
    }

    /// Older secrets that still verify cookies (secret rotation). Default: none.
    /// New cookies are always signed with the current secret.
    #[must_use]
    pub fn with_previous_secrets(mut self, previous: impl IntoIterator<Item = SecretKeyBase>) -> Self {
        self.previous_secrets = previous.into_iter().collect();
        self
    }

    /// How long a session lives without use. Default: 7 days ([`DEFAULT_TTL`]).
    /// Whole seconds count; less than one second is raised to one.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// How old a cookie may get before a request re-signs it (a read-only request
    /// also slides the store expiry then; a write always does). Default: 1/100 of the TTL (about
    /// 100 minutes for 7 days), so busy sessions cost no write per request while
    /// the effective idle timeout stays within 1% of the TTL.
    #[must_use]
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval);
        self
    }

    /// Whether the cookie gets the `Secure` attribute. Default: `true` (and
    /// `false` in development mode with [`SessionConfig::from_env`]).
    ///
    /// **Warning:** without `Secure`, the cookie is sent over plain HTTP too, where
    /// anyone on the path can steal the session. Turn it off only for local development.
    #[must_use]
    pub fn with_secure_cookie(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The cookie's `Domain` attribute. Default: none (host-only cookie, the safest).
    #[must_use]
    pub fn with_cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// How often expired sessions are removed in the background. Default: 10 minutes.
    #[must_use]
    pub fn with_purge_interval(mut self, interval: Duration) -> Self {
        self.purge_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Whether responses that depend on the session are kept out of shared caches
    /// (default: on). When on, the layer adds `Vary: Cookie` to every response
    /// whose handler used the session, and `Cache-Control: private, no-cache` to
    /// every response that sets a cookie, unless the handler set its own
    /// `Cache-Control` (then it is the handler's call). Turn it off only when
    /// something else (a framework, the proxy) sets these headers.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development()).with_cache_protection(false);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn with_cache_protection(mut self, on: bool) -> Self {
        self.cache_protection = on;
        self
    }

    /// Whether the session cookie outlives the browser ([`Expiry::Sliding`], the
    /// default: `Max-Age` = the TTL) or is a browser-session cookie
    /// ([`Expiry::BrowserSession`]: no `Max-Age`, the browser drops it when it
    /// closes). Either way the store ends a session after the TTL of inactivity.
    /// Handlers can choose per session with [`Session::set_expiry`](crate::Session::set_expiry).
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, Expiry, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development()).with_expiry(Expiry::BrowserSession);
    /// assert_eq!(config.expiry(), Expiry::BrowserSession);
    /// ```
    #[must_use]
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Ends every session a fixed time after it was created, however active it is
    /// (OWASP's absolute timeout). Default: none. [`Session::renew`](crate::Session::renew)
    /// keeps the creation time, so rotating the id at login does not extend it.
    /// Whole seconds count; less than one second is raised to one.
    ///
    /// Enforced on every request without a store access: the creation time rides
    /// in the signed cookie, so a cookie past the lifetime means "no session" even
    /// for a request that never reads; the store is told to forget the session at
    /// the same moment. A session whose cookie was signed before this option was
    /// turned on counts from the time that cookie was signed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development())
    ///     .with_absolute_lifetime(Duration::from_secs(8 * 3600));
    /// assert_eq!(config.absolute_lifetime(), Some(Duration::from_secs(8 * 3600)));
    /// ```
    #[must_use]
    pub fn with_absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime = Some(lifetime.max(Duration::from_secs(1)));
        self
    }

    /// The longest inactivity TTL a handler may give one session with
    /// [`SessionExpiry::Persistent`](crate::SessionExpiry::Persistent); longer
    /// requests are lowered to it, and cookies claiming longer are verified with
    /// it. Default: 400 days ([`DEFAULT_MAX_PERSISTENT_TTL`], the most browsers
    /// keep a cookie). Whole seconds count; less than one second is raised to one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development())
    ///     .with_max_persistent_ttl(Duration::from_secs(30 * 86_400));
    /// assert_eq!(config.max_persistent_ttl(), Duration::from_secs(30 * 86_400));
    /// ```
    #[must_use]
    pub fn with_max_persistent_ttl(mut self, max: Duration) -> Self {
        self.max_persistent_ttl = max.max(Duration::from_secs(1));
        self
    }

    /// The configured [`Expiry`] mode.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, Expiry, SessionConfig};
    /// assert_eq!(SessionConfig::new(SecretKeyBase::development()).expiry(), Expiry::Sliding);
    /// ```
    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The configured absolute lifetime, if any.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// assert_eq!(SessionConfig::new(SecretKeyBase::development()).absolute_lifetime(), None);
    /// ```
    pub fn absolute_lifetime(&self) -> Option<Duration> {
        self.absolute_lifetime
    }

    /// The longest per-session TTL a handler may set.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig, DEFAULT_MAX_PERSISTENT_TTL};
    /// let config = SessionConfig::new(SecretKeyBase::development());
    /// assert_eq!(config.max_persistent_ttl(), DEFAULT_MAX_PERSISTENT_TTL);
    /// ```
    pub fn max_persistent_ttl(&self) -> Duration {
        self.max_persistent_ttl
    }

    /// The current secret (for apps that sign their own tokens, e.g. CSRF, with another salt).
    pub fn secret(&self) -> &SecretKeyBase {
        &self.secret
    }

    /// Whether the cookie gets the `Secure` attribute.
    pub fn secure_cookie(&self) -> bool {
        self.secure
    }

    /// The configured TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(crate) fn ttl_s(&self) -> i64 {
        i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 1000)
    }

    pub(crate) fn refresh_after_ms(&self) -> i64 {
        let interval = self.refresh_interval.unwrap_or(self.ttl / 100);
        i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The longest per-session TTL by default: 400 days, the longest `Max-Age`
/// browsers honour (Chrome caps cookies there; RFC 6265bis recommends it).
pub const DEFAULT_MAX_PERSISTENT_TTL: Duration = Duration::from_secs(400 * 86_400);

/// Whether the session cookie outlives the browser. Set for the layer with
/// [`SessionConfig::with_expiry`] (or `NEX_SESSION_EXPIRY`); a handler can choose
/// per session with [`Session::set_expiry`](crate::Session::set_expiry).
///
/// In both modes the store forgets a session after the TTL of inactivity (and
/// after the absolute lifetime, when one is set).
///
/// ```
/// use nex_session::Expiry;
/// assert_eq!(Expiry::default(), Expiry::Sliding);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Expiry {
    /// The cookie carries `Max-Age` = the TTL and survives browser restarts; each
    /// use slides the expiry (today's behaviour, as Nex).
    #[default]
    Sliding,
    /// The cookie carries no `Max-Age`/`Expires`: the browser drops it when it
    /// closes. The store still ends the session after the TTL of inactivity.
    BrowserSession,
}

/// Reads `NEX_SESSION_EXPIRY` and `NEX_SESSION_ABSOLUTE_LIFETIME` into `config`.
fn expiry_from_env(mut config: SessionConfig) -> Result<SessionConfig, ConfigError> {
    if let Some(expiry) = var("NEX_SESSION_EXPIRY")? {
        let mode = match expiry.trim().to_ascii_lowercase().as_str() {
            "sliding" => Expiry::Sliding,
            "browser-session" => Expiry::BrowserSession,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "NEX_SESSION_EXPIRY",
                    value: expiry.clone(),
                    expected: "sliding or browser-session",
                })
            }
        };
        config = config.with_expiry(mode);
    }
    if let Some(lifetime) = var("NEX_SESSION_ABSOLUTE_LIFETIME")? {
        let seconds = lifetime.trim().parse::<u64>().ok().filter(|s| *s > 0).ok_or(ConfigError::Invalid {
            name: "NEX_SESSION_ABSOLUTE_LIFETIME",
            value: lifetime.clone(),
            expected: "a positive number of seconds",
        })?;
        config = config.with_absolute_lifetime(Duration::from_secs(seconds));
    }
    Ok(config)
}

/// The variable's value; set but not UTF-8 is an error, never "unset".
fn var(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(value) => value.into_string().map(Some).map_err(|_| ConfigError::NotUnicode { name }),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(value: Option<&str>, when_unset: RunMode) -> RunMode {
        RunMode::from_nex_env(value.map(OsStr::new), when_unset)
    }

    #[test]
    fn only_exact_lowercase_dev_values_select_development() {
        for unset in [RunMode::Development, RunMode::Production] {
            assert_eq!(mode(Some("dev"), unset), RunMode::Development);
            assert_eq!(mode(Some("development"), unset), RunMode::Development);
            for other in ["prod", "production", "PROD", "Dev", "DEVELOPMENT", "staging", "test", " dev", "dev ", ""] {
                assert_eq!(mode(Some(other), unset), RunMode::Production, "NEX_ENV={other:?}");
            }
        }
    }

    #[test]
    fn an_unset_nex_env_takes_the_callers_default() {
        assert_eq!(mode(None, RunMode::Production), RunMode::Production);
        assert_eq!(mode(None, RunMode::Development), RunMode::Development);
    }

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_nex_env_is_production() {
        use std::os::unix::ffi::OsStrExt;
        let value = OsStr::from_bytes(b"dev\xff");
        assert_eq!(RunMode::from_nex_env(Some(value), RunMode::Development), RunMode::Production);
    }
}
