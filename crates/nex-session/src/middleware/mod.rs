//! The session middleware: one request's lifecycle, top to bottom.
//!
//! ```
//! use axum::{routing::get, Router};
//! use nex_session::{SessionConfig, SessionLayer, token::SecretKeyBase};
//! use tower::ServiceBuilder;
//! # fn secret() -> SecretKeyBase { SecretKeyBase::new("a-secret-of-at-least-32-bytes-len").unwrap() }
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async {
//!         let n = nex_session::update("visits", 0u64, |n| n + 1).await.unwrap_or(0);
//!         format!("visit {n}")
//!     }))
//!     .layer(ServiceBuilder::new().layer(SessionLayer::memory(SessionConfig::new(secret()))));
//! ```
//!
//! 1. **load**: verify the `_nex_session` cookie (no store access; a missing,
//!    forged, foreign or expired cookie means "no session").
//! 2. **call** the inner service with the [`Session`] available ambiently
//!    (task-local) and as a request extension (the extractor).
//! 3. **persist** before the response head leaves: write pending changes, slide
//!    the expiry when due, set or delete the cookie, add queued cookies. If saving
//!    fails the response becomes a 503 and the error is logged.
//! 4. **clean up**: the state belongs to this request's future alone; it is dropped
//!    with it, also when the handler panics or the future is cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use http::header::COOKIE;
use http::{Request, Response};
use tower_service::Service;

use crate::ambient;
use crate::config::SessionConfig;
use crate::cookie::request_values;
use crate::id::SessionId;
use crate::session::{Session, COOKIE_NAME};
use crate::store::SessionStore;
use crate::token::{now_ms, Keyring, TokenError};

mod future;
mod layer;
mod verified;

pub(crate) use verified::{VerifiedCookie, VerifiedCookies};

pub use future::ResponseFuture;
pub use layer::{SessionLayer, SESSION_SALT};

/// What every request of one layer shares: store, keys, config.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) keyring: Keyring,
    pub(crate) config: SessionConfig,
    pub(crate) sweeper_started: AtomicBool,
    /// `; Path=/; Max-Age=…; HttpOnly; SameSite=Lax[; Secure][; Domain=…]`.
    pub(crate) cookie_attributes: String,
    /// The `Set-Cookie` value that deletes the session cookie.
    pub(crate) deletion_cookie: http::HeaderValue,
    /// Cookies verified recently, so repeat visits skip the HMAC.
    pub(crate) verified: VerifiedCookies,
}

/// The service made by [`SessionLayer`].
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionService(..)")
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        self.shared.start_sweeper();
        // 1. load: verify the cookie; the store is read lazily, on the first `get`.
        let session = self.shared.begin(&request);
        request.extensions_mut().insert(session.clone());
        // 2. call: the inner future runs with the ambient session set. Calling the
        //    inner service here (not in a spawned future) needs no clone of it.
        let inner = ambient::scope(session.clone(), self.inner.call(request));
        // 3. persist happens in ResponseFuture once the inner future is done;
        // 4. clean up: the state lives in `session`, dropped with the future.
        ResponseFuture::new(inner, session)
    }
}

impl Shared {
    /// Reads the session cookie. Costs no store access.
    fn begin<B>(self: &Arc<Self>, request: &Request<B>) -> Session {
        let headers = request.headers();
        let now = now_ms();
        let cookie = request_values(headers, COOKIE_NAME).find_map(|value| self.verify_cookie(value, now));
        let mut cookie_headers = headers.get_all(COOKIE).iter();
        let first = cookie_headers.next().cloned();
        // Usually one Cookie header: keep it without allocating a Vec.
        let rest = cookie_headers.cloned().collect();
        Session::begin(self.clone(), now, cookie, first, rest)
    }

    /// The session a cookie value names, if it is genuine, unexpired and holds an id.
    fn verify_cookie(&self, value: &str, now: i64) -> Option<VerifiedCookie> {
        if let Some(known) = self.verified.get(value, self.config.ttl_s(), now) {
            return Some(known);
        }
        self.verify_cookie_fully(value, now)
    }

    /// The full verification, once per cookie (and per refresh interval). Kept out
    /// of line so the per-request path above stays a few cache lines of code: under
    /// load, instruction-cache misses cost more than the instructions themselves.
    #[cold]
    #[inline(never)]
    fn verify_cookie_fully(&self, value: &str, now: i64) -> Option<VerifiedCookie> {
        let ttl_s = self.config.ttl_s();
        match self.keyring.verify_at(value, Some(ttl_s), now) {
            Ok(verified) => {
                let Some(id) = std::str::from_utf8(&verified.data).ok().and_then(SessionId::parse) else {
                    tracing::debug!(target: "nex_session", "signed cookie holds no session id");
                    return None;
                };
                let cookie =
                    VerifiedCookie { id, signed_at_ms: verified.signed_at_ms, current_key: verified.key_index == 0 };
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

    /// Starts the background sweep of expired sessions once, on the first request
    /// (when a tokio runtime surely exists). It stops when the layer is dropped.
    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeper_started.load(Ordering::Relaxed) || self.sweeper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.config.purge_interval;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(shared) = weak.upgrade() else { break };
                match shared.store.purge_expired(now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(target: "nex_session", purged = n, "expired sessions removed"),
                    Err(err) => tracing::warn!(target: "nex_session", error = %err, "purging expired sessions failed"),
                }
            }
        });
    }
}
