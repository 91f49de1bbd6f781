//! Unit-testing handlers that use the session, without an HTTP server.
//!
//! A [`TestSession`] plays one browser in front of a store: each
//! [`run`](TestSession::run) is one request, going through the same lifecycle as
//! [`SessionLayer`] (the cookie is verified, the handler runs with the ambient
//! session, pending writes are saved and the cookie is updated at the end), so
//! what a handler does to the session in a test is what it does in the app.
//!
//! ```
//! use nex_session::{store::MemoryStore, testing::TestSession, SessionError};
//!
//! async fn login() -> Result<&'static str, SessionError> {
//!     nex_session::renew().await?;
//!     nex_session::put("user_id", 42).await?;
//!     Ok("welcome")
//! }
//!
//! async fn whoami() -> Result<String, SessionError> {
//!     Ok(format!("{:?}", nex_session::get::<u64>("user_id").await?))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let browser = TestSession::new(MemoryStore::new());
//! assert_eq!(browser.run(whoami()).await??, "None");
//! assert_eq!(browser.run(login()).await??, "welcome");
//! assert_eq!(browser.run(whoami()).await??, "Some(42)");
//! assert!(browser.cookie().is_some(), "the browser holds the session cookie");
//! # Ok::<(), SessionError>(()) }).unwrap();
//! ```

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use http::header::COOKIE;
use http::{HeaderValue, Request};

use crate::ambient;
use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::middleware::{persist, SessionLayer};
use crate::session::Session;
use crate::session_cookie::COOKIE_NAME;
use crate::store::SessionStore;
use crate::token::SecretKeyBase;

/// One browser in front of a store: runs handlers as requests of one session.
#[derive(Debug)]
pub struct TestSession {
    layer: SessionLayer,
    /// The session cookie's value (the signed token) the browser holds.
    cookie: Mutex<Option<String>>,
}

impl TestSession {
    /// A browser with no cookie yet, in front of `store`, with the default
    /// configuration and the public development secret (fine in a test, never
    /// in an app).
    pub fn new(store: impl SessionStore) -> Self {
        Self::with_config(store, SessionConfig::new(SecretKeyBase::development()))
    }

    /// Like [`TestSession::new`], with your configuration (a TTL, a refresh interval…).
    ///
    /// # Panics
    /// As [`SessionLayer::new`]: only for a cookie domain that cannot go into a header.
    pub fn with_config(store: impl SessionStore, config: SessionConfig) -> Self {
        Self { layer: SessionLayer::new(store, config), cookie: Mutex::new(None) }
    }

    /// Runs `handler` as one request of this browser, with the ambient session
    /// set (`nex_session::get`, …), and saves the session as the layer would.
    ///
    /// # Errors
    /// What the layer would answer with a 503: the session could not be saved.
    /// The handler's own output, errors included, is the `Ok` value.
    pub async fn run<F: Future>(&self, handler: F) -> Result<F::Output, SessionError> {
        self.run_with(|_| handler).await
    }

    /// Like [`TestSession::run`], for handlers that take the [`Session`] handle
    /// (the extractor) instead of using the ambient API.
    ///
    /// ```
    /// # use nex_session::{store::MemoryStore, testing::TestSession, Session};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let browser = TestSession::new(MemoryStore::new());
    /// let n = browser.run_with(|session: Session| async move { session.update("n", 0u64, |n| n + 1).await }).await??;
    /// assert_eq!(n, 1);
    /// # Ok::<(), nex_session::SessionError>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`TestSession::run`].
    pub async fn run_with<H, F>(&self, handler: H) -> Result<F::Output, SessionError>
    where
        H: FnOnce(Session) -> F,
        F: Future,
    {
        let mut request = Request::new(());
        if let Some(cookie) = self.cookie() {
            let header = HeaderValue::try_from(format!("{COOKIE_NAME}={cookie}"))
                .map_err(|_| SessionError::InvalidCookie(COOKIE_NAME.to_owned()))?;
            request.headers_mut().insert(COOKIE, header);
        }
        let session = self.layer.begin(&request);
        let output = ambient::scope(session.clone(), handler(session.clone())).await;
        for header in persist(&session).await?.set_cookies {
            self.remember(&header);
        }
        Ok(output)
    }

    /// The session cookie's value (the signed token) this browser holds, if any.
    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Keeps a `Set-Cookie` of the session cookie, as a browser would.
    fn remember(&self, set_cookie: &HeaderValue) {
        let Some(rest) = set_cookie.to_str().ok().and_then(|h| h.strip_prefix(COOKIE_NAME)?.strip_prefix('=')) else {
            return;
        };
        let mut attributes = rest.split(';');
        let value = attributes.next().unwrap_or_default().to_owned();
        let deleted = attributes.any(|a| a.trim() == "Max-Age=0");
        *self.cookie.lock().unwrap_or_else(PoisonError::into_inner) = (!deleted).then_some(value);
    }
}
