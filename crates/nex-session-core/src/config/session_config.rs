//! [`SessionConfig`]: secrets, TTL, cookie attributes, expiry modes, background
//! sweep; built with `with_*` methods (reading the environment is `env.rs`).

use std::time::Duration;

use crate::cookie_header::{CookieOptions, SameSite};
use crate::cookie_rules::{self, CookieSettings};
use crate::error::CookieConfigError;
use crate::store::SessionCap;
use crate::token::SecretKeyBase;

/// The default name of the session cookie (as Nex); see [`SessionConfig::with_cookie_name`].
pub const COOKIE_NAME: &str = "_nex_session";
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
    // Expiry modes.
    pub(crate) expiry: Expiry,
    pub(crate) absolute_lifetime: Option<Duration>,
    pub(crate) max_persistent_ttl: Duration,
    // Cookie options: checked by `validate` when a layer is built.
    pub(crate) cookie_name: String,
    pub(crate) cookie_path: String,
    pub(crate) same_site: SameSite,
    pub(crate) http_only: bool,
    // Per-user sessions.
    pub(crate) max_sessions_per_user: Option<SessionCap>,
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
            cookie_name: COOKIE_NAME.to_owned(),
            cookie_path: "/".to_owned(),
            same_site: SameSite::Lax,
            http_only: true,
            max_sessions_per_user: Some(SessionCap::DEFAULT),
        }
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

    /// The most sessions one user may be signed in with at once. Default: 100
    /// ([`SessionCap::DEFAULT`]); `None` turns the limit off. A sign-in beyond it
    /// ends the user's least recently seen other sessions, in the same atomic
    /// step as the sign-in, so a stolen password cannot pile up sessions that
    /// "sign out everywhere" then has to chew through, and a user's device list
    /// stays short. Set with `NEX_SESSION_MAX_SESSIONS_PER_USER` too.
    ///
    /// ```
    /// use nex_session::{store::SessionCap, token::SecretKeyBase, SessionConfig};
    ///
    /// let config = SessionConfig::new(SecretKeyBase::new("a-secret-of-at-least-32-bytes-len")?)
    ///     .with_max_sessions_per_user(SessionCap::new(10));
    /// assert_eq!(config.max_sessions_per_user(), SessionCap::new(10));
    /// # Ok::<(), nex_session::token::SecretError>(())
    /// ```
    #[must_use]
    pub fn with_max_sessions_per_user(mut self, cap: Option<SessionCap>) -> Self {
        self.max_sessions_per_user = cap;
        self
    }

    /// The per-user session cap ([`SessionConfig::with_max_sessions_per_user`]);
    /// `None` when there is no limit.
    pub fn max_sessions_per_user(&self) -> Option<SessionCap> {
        self.max_sessions_per_user
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

    /// The session cookie's name. Default: `_nex_session` ([`COOKIE_NAME`](crate::COOKIE_NAME)).
    ///
    /// Give each app (or each [`SessionLayer`](crate::SessionLayer) of one app) on a
    /// host its own name, so their cookies never overwrite each other. The side
    /// cookies of visitors without a session follow it: `<name>_flash` and
    /// `<name>_csrf` (`_nex_flash` and `_nex_csrf` for the default name).
    ///
    /// A `__Host-` name (the strongest: `Secure`, no `Domain`, `Path=/`, so no
    /// subdomain can set or shadow it) or a `__Secure-` name is checked against
    /// those rules when the layer is built ([`SessionConfig::validate`]).
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development()).with_cookie_name("__Host-shop");
    /// assert_eq!(config.cookie_name(), "__Host-shop");
    /// assert!(config.validate().is_ok());
    /// ```
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// The cookie's `Path` attribute. Default: `/` (the whole site). Must start
    /// with `/`. A narrower path (e.g. `/admin`) keeps the browser from sending the
    /// cookie anywhere else.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development()).with_cookie_path("/admin");
    /// assert!(config.validate().is_ok());
    /// assert!(config.with_cookie_path("admin").validate().is_err(), "no leading slash");
    /// ```
    #[must_use]
    pub fn with_cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie_path = path.into();
        self
    }

    /// The cookie's `SameSite` attribute. Default: [`SameSite::Lax`].
    ///
    /// `Strict` keeps the cookie off every cross-site request, even a link
    /// followed from another site (the user arrives signed out there). `None`
    /// sends it everywhere, which an embedded widget needs; browsers require
    /// `Secure` with it, so `None` without `Secure` is refused when the layer is built.
    ///
    /// ```
    /// use nex_session::{cookie::SameSite, token::SecretKeyBase, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development()).with_same_site(SameSite::Strict);
    /// assert_eq!(config.same_site(), SameSite::Strict);
    /// ```
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Whether the cookie gets the `HttpOnly` attribute. Default: `true`.
    ///
    /// **Danger:** without `HttpOnly`, any script on the page, including one
    /// injected through an XSS hole, can read the session cookie and send it
    /// elsewhere: one XSS becomes a stolen session. Scripts never need the cookie
    /// (the browser sends it with `fetch` anyway); give them what they need in the
    /// page instead. The side cookies (flash, CSRF) stay `HttpOnly` regardless.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development()).with_http_only(false);
    /// assert!(!config.http_only());
    /// ```
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// Checks the cookie options, as building a layer does: a name, path or domain
    /// a cookie cannot carry; `SameSite=None` without `Secure`; a `__Secure-` or
    /// `__Host-` name without `Secure`; a `__Host-` name with a `Domain` or a path
    /// other than `/`.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// let config = SessionConfig::new(SecretKeyBase::development())
    ///     .with_cookie_name("__Host-sid")
    ///     .with_cookie_domain("example.com");
    /// let err = config.validate().unwrap_err();
    /// assert!(err.to_string().contains("Domain"), "{err}");
    /// ```
    ///
    /// # Errors
    /// The first rule broken, with a message that says why and what to do.
    pub fn validate(&self) -> Result<(), CookieConfigError> {
        cookie_rules::check(&CookieSettings {
            name: &self.cookie_name,
            path: &self.cookie_path,
            domain: self.domain.as_deref(),
            same_site: self.same_site,
            secure: self.secure,
        })
    }

    /// The session cookie's name.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// assert_eq!(SessionConfig::new(SecretKeyBase::development()).cookie_name(), "_nex_session");
    /// ```
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// The cookie's `SameSite` attribute.
    ///
    /// ```
    /// use nex_session::{cookie::SameSite, token::SecretKeyBase, SessionConfig};
    /// assert_eq!(SessionConfig::new(SecretKeyBase::development()).same_site(), SameSite::Lax);
    /// ```
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }

    /// Whether the cookie gets the `HttpOnly` attribute.
    ///
    /// ```
    /// use nex_session::{token::SecretKeyBase, SessionConfig};
    /// assert!(SessionConfig::new(SecretKeyBase::development()).http_only());
    /// ```
    pub fn http_only(&self) -> bool {
        self.http_only
    }

    /// The attributes every cookie of the layer shares (path, domain, SameSite,
    /// Secure, HttpOnly), without `Max-Age`: the session cookie and its side
    /// cookies add their own lifetime.
    pub(crate) fn cookie_options(&self) -> CookieOptions {
        let opts = CookieOptions::default()
            .with_path(self.cookie_path.clone())
            .with_same_site(self.same_site)
            .with_secure(self.secure)
            .with_http_only(self.http_only);
        match &self.domain {
            Some(domain) => opts.with_domain(domain.clone()),
            None => opts,
        }
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
