//! What every session of one layer shares (see the module docs of `session`).

use std::sync::Arc;

use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::observe::Instruments;
use crate::session_cookie::{CookieCodec, SideCookie};
use crate::store::SessionStore;

/// What every session of one layer shares: the store, the expiry rules, and the
/// layer's cookie codec.
pub(crate) struct Context {
    pub(crate) store: Arc<dyn SessionStore>,
    /// Times the store's calls and counts their failures, labelled with its kind.
    pub(crate) instruments: Instruments,
    /// How old a cookie may get before a request re-signs it (ms).
    pub(crate) refresh_after_ms: i64,
    /// Reads and writes the session cookie (used by the layer, not by the session).
    pub(crate) cookie: CookieCodec,
    /// Carries the flash of a visitor without a stored session.
    pub(crate) flash_cookie: SideCookie,
    /// Carries the CSRF secret of a visitor without a stored session.
    pub(crate) csrf_cookie: SideCookie,
    /// Mark responses that depend on the session so shared caches keep them private.
    pub(crate) cache_protection: bool,
    /// The most sessions one user may hold; a sign-in beyond it ends the least
    /// recently seen (`None`: no limit).
    pub(crate) user_cap: Option<crate::store::SessionCap>,
}

impl Context {
    /// The context of a layer over `store` with `config`. Derives every signing
    /// key here, once (PBKDF2 per secret and salt), never per request.
    ///
    /// # Errors
    /// [`SessionError::InvalidCookie`] when a cookie attribute cannot go into a header.
    pub(crate) fn new(store: Arc<dyn SessionStore>, config: &SessionConfig) -> Result<Self, SessionError> {
        Ok(Self {
            instruments: Instruments::new(store.kind()),
            store,
            refresh_after_ms: config.refresh_after_ms(),
            cookie: CookieCodec::new(config)?,
            flash_cookie: SideCookie::flash(config)?,
            csrf_cookie: SideCookie::csrf(config)?,
            cache_protection: config.cache_protection,
            user_cap: config.max_sessions_per_user,
        })
    }
}
