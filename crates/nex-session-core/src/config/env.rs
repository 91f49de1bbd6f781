//! Reading a [`SessionConfig`] from the environment, and why it can fail
//! ([`ConfigError`]).

use std::time::Duration;

use super::run_mode::RunMode;
use super::session_config::{Expiry, SessionConfig};
use crate::cookie_header::SameSite;
use crate::cookie_rules;
use crate::error::{debug_as_message, write_nested, CookieConfigError, VariantPath};
use crate::store::SessionCap;
use crate::token::{SecretError, SecretKeyBase};

/// Why the configuration could not be read from the environment.
///
/// Its `Debug` is the message, then the variant in parentheses, so an app whose
/// `main` returns it with `?` prints what to do, not `Error: Secret(Missing)`:
///
/// ```
/// use nex_session::{token::SecretError, ConfigError};
/// let err = ConfigError::from(SecretError::Missing);
/// // What Rust prints when `fn main() -> Result<(), ConfigError>` returns it:
/// assert_eq!(
///     format!("Error: {err:?}"),
///     "Error: SECRET_KEY_BASE is not set; generate one with `nex-session gen-secret` \
///      (or `mix phx.gen.secret`) and export it (ConfigError::Secret(SecretError::Missing))"
/// );
/// ```
#[derive(thiserror::Error)]
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
    /// Each cookie variable is valid alone, but together they break a rule
    /// ([`SessionConfig::validate`]), such as `NEX_SESSION_SAME_SITE=none` with
    /// `NEX_SESSION_SECURE_COOKIE=false`: reported here, at start, rather than
    /// by a panic when the layer is built.
    #[error("the session cookie settings from the environment do not go together: {0}")]
    Cookie(#[source] CookieConfigError),
}

debug_as_message!(ConfigError);

impl VariantPath for ConfigError {
    fn write_variant(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(inner) => write_nested(f, "ConfigError::Secret", inner),
            Self::Invalid { .. } => f.write_str("ConfigError::Invalid"),
            Self::NotUnicode { .. } => f.write_str("ConfigError::NotUnicode"),
            Self::Cookie(_) => f.write_str("ConfigError::Cookie"),
        }
    }
}

impl SessionConfig {
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
    /// | `NEX_SESSION_COOKIE_NAME` | the session cookie's name (an RFC 6265 token) | `_nex_session` |
    /// | `NEX_SESSION_COOKIE_PATH` | the cookie's `Path` (starts with `/`) | `/` |
    /// | `NEX_SESSION_COOKIE_DOMAIN` | the cookie's `Domain` | none (host-only) |
    /// | `NEX_SESSION_SAME_SITE` | `lax`, `strict` or `none` | `lax` |
    /// | `NEX_SESSION_HTTP_ONLY` | `true`/`false`: mark the cookie `HttpOnly` (turning it off is dangerous) | `true` |
    /// | `NEX_SESSION_MAX_SESSIONS_PER_USER` | the most sessions one user holds at once ([`SessionConfig::with_max_sessions_per_user`]); `none` for no limit | `100` |
    ///
    /// A name, path or domain a cookie cannot carry is an error naming the variable;
    /// combinations (`SameSite=None` without `Secure`, `__Host-` rules) are checked
    /// by [`SessionConfig::validate`] when the layer is built.
    ///
    /// # Errors
    /// A missing or short secret outside development mode, a secret that is not
    /// UTF-8 (in every mode), an unreadable value, or cookie settings that do
    /// not go together ([`ConfigError::Cookie`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with_mode(RunMode::from_env(RunMode::Production))
    }

    /// Like [`SessionConfig::from_env`], with development mode decided by the caller
    /// instead of `NEX_ENV` (for apps whose default for an unset `NEX_ENV` differs:
    /// pass `RunMode::from_env(RunMode::Development)`).
    ///
    /// In development mode a missing `SECRET_KEY_BASE` falls back to the public
    /// development secret, with a `WARN` event (target `nex_session`); install a
    /// `tracing` subscriber to see it. The library prints nothing itself.
    ///
    /// ```
    /// use nex_session::{RunMode, SessionConfig};
    ///
    /// // A local tool: unset NEX_ENV means development.
    /// let config = SessionConfig::from_env_with_mode(RunMode::from_env(RunMode::Development));
    /// # let _ = config;
    /// ```
    ///
    /// # Errors
    /// As [`SessionConfig::from_env`].
    pub fn from_env_with_mode(mode: RunMode) -> Result<Self, ConfigError> {
        let dev = mode.is_development();
        let secret = match SecretKeyBase::from_env() {
            Ok(secret) => secret,
            Err(SecretError::Missing) if dev => {
                let warning = "nex-session: SECRET_KEY_BASE is not set; using the PUBLIC development secret. \
                               Anyone can forge these session cookies. Never run like this in production: \
                               leave development mode and set SECRET_KEY_BASE (e.g. from `nex-session gen-secret`).";
                tracing::warn!(target: "nex_session", "{warning}");
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
        if let Some(cap) = var("NEX_SESSION_MAX_SESSIONS_PER_USER")? {
            config = config.with_max_sessions_per_user(parse_cap(&cap)?);
        }
        config = expiry_from_env(config)?;
        config = cookie_options_from_env(config, var)?;
        // The layer would refuse these (with a panic from `SessionLayer::new`): say so now.
        config.validate().map_err(ConfigError::Cookie)?;
        Ok(config)
    }
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

/// Reads `NEX_SESSION_MAX_SESSIONS_PER_USER`: a positive number, or `none` for no limit.
fn parse_cap(value: &str) -> Result<Option<SessionCap>, ConfigError> {
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match trimmed.parse::<u32>().ok().and_then(SessionCap::new) {
        Some(cap) => Ok(Some(cap)),
        None => Err(ConfigError::Invalid {
            name: "NEX_SESSION_MAX_SESSIONS_PER_USER",
            value: value.to_owned(),
            expected: "a positive number of sessions, or none",
        }),
    }
}

/// The variable's value; set but not UTF-8 is an error, never "unset".
fn var(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(value) => value.into_string().map(Some).map_err(|_| ConfigError::NotUnicode { name }),
    }
}

/// The cookie options of [`SessionConfig::from_env`], read with `var` (the
/// environment; a map in tests, which must not change the process's environment
/// under other tests). Each value is checked on its own here, so an error names the
/// variable (combinations: [`SessionConfig::validate`]).
fn cookie_options_from_env(
    mut config: SessionConfig,
    var: impl Fn(&'static str) -> Result<Option<String>, ConfigError>,
) -> Result<SessionConfig, ConfigError> {
    if let Some(name) = var("NEX_SESSION_COOKIE_NAME")? {
        if cookie_rules::check_name(&name).is_err() {
            let expected = "an RFC 6265 token (letters, digits, !#$%&'*+-.^_`|~)";
            return Err(ConfigError::Invalid { name: "NEX_SESSION_COOKIE_NAME", value: name, expected });
        }
        config = config.with_cookie_name(name);
    }
    if let Some(path) = var("NEX_SESSION_COOKIE_PATH")? {
        if cookie_rules::check_path(&path).is_err() {
            let expected = "a path starting with / (printable ASCII, no ;)";
            return Err(ConfigError::Invalid { name: "NEX_SESSION_COOKIE_PATH", value: path, expected });
        }
        config = config.with_cookie_path(path);
    }
    if let Some(domain) = var("NEX_SESSION_COOKIE_DOMAIN")? {
        if cookie_rules::check_domain(&domain).is_err() {
            let expected = "a host name (letters, digits, -, .)";
            return Err(ConfigError::Invalid { name: "NEX_SESSION_COOKIE_DOMAIN", value: domain, expected });
        }
        config = config.with_cookie_domain(domain);
    }
    if let Some(same_site) = var("NEX_SESSION_SAME_SITE")? {
        let parsed = match same_site.trim().to_ascii_lowercase().as_str() {
            "lax" => SameSite::Lax,
            "strict" => SameSite::Strict,
            "none" => SameSite::None,
            _ => {
                let expected = "lax, strict or none";
                return Err(ConfigError::Invalid { name: "NEX_SESSION_SAME_SITE", value: same_site, expected });
            }
        };
        config = config.with_same_site(parsed);
    }
    if let Some(http_only) = var("NEX_SESSION_HTTP_ONLY")? {
        let flag = parse_bool(&http_only).ok_or(ConfigError::Invalid {
            name: "NEX_SESSION_HTTP_ONLY",
            value: http_only.clone(),
            expected: "true or false",
        })?;
        config = config.with_http_only(flag);
    }
    Ok(config)
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
    use std::ffi::OsStr;

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

    fn cookie_env(vars: &[(&'static str, &str)]) -> Result<SessionConfig, ConfigError> {
        let vars: Vec<(&'static str, String)> = vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let config = SessionConfig::new(SecretKeyBase::development());
        cookie_options_from_env(config, |name| Ok(vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())))
    }

    #[test]
    fn cookie_options_are_read_from_the_environment() {
        let config = cookie_env(&[
            ("NEX_SESSION_COOKIE_NAME", "__Secure-shop"),
            ("NEX_SESSION_COOKIE_PATH", "/shop"),
            ("NEX_SESSION_COOKIE_DOMAIN", "example.com"),
            ("NEX_SESSION_SAME_SITE", "Strict"),
            ("NEX_SESSION_HTTP_ONLY", "false"),
        ])
        .unwrap();
        assert_eq!(config.cookie_name(), "__Secure-shop");
        assert_eq!(config.cookie_path, "/shop");
        assert_eq!(config.domain.as_deref(), Some("example.com"));
        assert_eq!(config.same_site(), SameSite::Strict);
        assert!(!config.http_only());
        assert_eq!(cookie_env(&[("NEX_SESSION_SAME_SITE", "none")]).unwrap().same_site(), SameSite::None);
        let unset = cookie_env(&[]).unwrap();
        assert_eq!((unset.cookie_name(), unset.same_site(), unset.http_only()), ("_nex_session", SameSite::Lax, true));
    }

    #[test]
    fn an_invalid_cookie_option_in_the_environment_names_the_variable() {
        for (name, value) in [
            ("NEX_SESSION_COOKIE_NAME", "my session"),
            ("NEX_SESSION_COOKIE_PATH", "admin"),
            ("NEX_SESSION_COOKIE_DOMAIN", "example.com:8080"),
            ("NEX_SESSION_SAME_SITE", "sometimes"),
            ("NEX_SESSION_HTTP_ONLY", "maybe"),
        ] {
            let err = cookie_env(&[(name, value)]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name: n, .. } if n == name), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_nex_env_is_production() {
        use std::os::unix::ffi::OsStrExt;
        let value = OsStr::from_bytes(b"dev\xff");
        assert_eq!(RunMode::from_nex_env(Some(value), RunMode::Development), RunMode::Production);
    }

    #[test]
    fn the_session_cap_reads_a_positive_number_or_none() {
        assert_eq!(parse_cap("25").unwrap(), SessionCap::new(25));
        assert_eq!(parse_cap(" None ").unwrap(), None);
        for bad in ["0", "-1", "many", ""] {
            assert!(
                matches!(parse_cap(bad), Err(ConfigError::Invalid { name: "NEX_SESSION_MAX_SESSIONS_PER_USER", .. })),
                "{bad}"
            );
        }
    }
}
