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
//! 1. **load** ([`SessionService::call`], below): verify the `_nex_session` cookie
//!    (no store access; a missing, forged, foreign or expired cookie means "no session").
//! 2. **call** the inner service with the [`Session`] available ambiently
//!    (task-local) and as a request extension (the extractor).
//! 3. **persist** before the response head leaves (`future.rs` waits for the inner
//!    service, `persist.rs` does the step): write pending changes, slide the expiry
//!    when due, set or delete the cookie, add queued cookies. If saving fails the
//!    response becomes a 503 and the error is logged.
//! 4. **clean up**: the state belongs to this request's future alone; it is dropped
//!    with it, also when the handler panics or the future is cancelled.
//!
//! The layer's state (`Shared`) is built once per layer (`layer.rs`); expired
//! sessions are purged in the background (`sweep.rs`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use tracing::Span;

use crate::ambient;
use crate::config::SessionConfig;
use crate::session::{self, Session};
use crate::token::now_ms;

mod future;
mod layer;
mod persist;
mod sweep;

pub use future::ResponseFuture;
pub use layer::SessionLayer;
pub(crate) use persist::persist;

/// What every request of one layer shares.
struct Shared {
    /// The store, the expiry rules and the cookie codec, shared with every session.
    context: Arc<session::Context>,
    config: SessionConfig,
    sweeper_started: AtomicBool,
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
        sweep::start_once(&self.shared);
        // 1. load: verify the cookie; the store is read lazily, on the first `get`.
        let session = begin(&self.shared, &request);
        request.extensions_mut().insert(session.clone());
        // 2. call: the inner future runs with the ambient session set. Calling the
        //    inner service here (not in a spawned future) needs no clone of it.
        let inner = ambient::scope(session.clone(), self.inner.call(request));
        // 3. persist happens in ResponseFuture once the inner future is done;
        // 4. clean up: the state lives in `session`, dropped with the future.
        ResponseFuture::new(inner, session)
    }
}

/// The request's span (fields in the `observe` docs), or `None` when no
/// subscriber wants it: then it costs one check of the level, and nothing to
/// enter, leave or drop on the request's path. (A disabled `Span` is not free:
/// with tracing's `log` feature on, which another crate may turn on, it still
/// feeds the `log` crate on every enter, exit and drop.)
fn request_span(shared: &Shared) -> Option<Span> {
    // The cheapest check first: does any subscriber enable DEBUG at all?
    if tracing::level_filters::LevelFilter::current() < tracing::level_filters::LevelFilter::DEBUG {
        return None;
    }
    let span = tracing::debug_span!(
        target: "nex_session",
        "session",
        store = shared.context.instruments.store(),
        session = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    (!span.is_disabled()).then_some(span)
}

/// The handle of the session the request's cookie names, in its span.
#[cold]
#[inline(never)]
fn record_session(span: &Span, session: &Session) {
    if let Some(handle) = session.log_handle() {
        span.record("session", handle);
    }
}

/// The session of a request, from its cookie. Costs no store access.
///
/// When another session layer already handled the request (nested layers, each
/// with its own cookie name), its session stays reachable from this one by name
/// ([`Session::named`]); the extension and the ambient session become this
/// layer's, so handlers get the innermost by default.
///
/// The request's span is made here and kept by the session (on the heap it
/// already has, so the response future stays as small as it was).
fn begin<B>(shared: &Shared, request: &Request<B>) -> Session {
    let span = request_span(shared);
    let headers = request.headers();
    let now = now_ms();
    let cookie = match &span {
        Some(span) => span.in_scope(|| shared.context.cookie.read(headers, now)),
        None => shared.context.cookie.read(headers, now),
    };
    let outer = request.extensions().get::<Session>().cloned();
    let session = Session::begin(shared.context.clone(), now, cookie, headers, outer, span);
    if let Some(span) = session.span() {
        record_session(span, &session);
    }
    session
}
