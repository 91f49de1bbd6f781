//! [`SessionLayer`]: holds the configuration, wraps services in [`SessionService`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use http::Request;
use tower_layer::Layer;

use super::load::begin;
use super::service::SessionService;
use super::shared::Shared;
use crate::config::SessionConfig;
use crate::error::{SessionError, StoreError};
use crate::observe::{Health, Operation, HEALTH_TIMEOUT};
use crate::session::{Context, Session};
use crate::store::{MemoryStore, SessionStore};

/// The tower layer that gives every request a session.
///
/// ```
/// use axum::{routing::get, Router};
/// use nex_session::{store::MemoryStore, token::SecretKeyBase, SessionConfig, SessionLayer};
///
/// let config = SessionConfig::new(SecretKeyBase::new("a-secret-of-at-least-32-bytes-len").unwrap());
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(SessionLayer::new(MemoryStore::new(), config));
/// ```
///
/// # On the routes, or around the router
///
/// `Router::layer`, above, puts the layer on each route (and the fallback). axum
/// then boxes every layered route again and clones that box per request: about
/// 800 instructions per request that any layer applied this way costs, whatever it
/// does (`nex-bench inproc`, BENCHMARKS.md). When every route of the router may use the session,
/// wrap the whole router instead: the sessions are the same (the extractor, the
/// ambient API, a `CsrfLayer` or a nested session layer on the routes inside), and
/// each request costs those instructions less. Serve it with `into_make_service`,
/// as axum's docs do for any middleware around a router:
///
/// ```no_run
/// use axum::{extract::Request, routing::get, Router, ServiceExt};
/// use nex_session::{store::MemoryStore, token::SecretKeyBase, SessionConfig, SessionLayer};
/// use tower_layer::Layer; // or `tower::Layer`
///
/// # async fn run() -> std::io::Result<()> {
/// let config = SessionConfig::new(SecretKeyBase::new("a-secret-of-at-least-32-bytes-len").unwrap());
/// let router = Router::new().route("/", get(|| async { "hello" }));
/// let app = SessionLayer::new(MemoryStore::new(), config).layer(router);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
/// axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
/// # }
/// ```
///
/// Keep `Router::layer` when only part of an app should have sessions (the
/// router you `nest` or `merge` under another), or when a layer you apply with
/// `Router::layer` must run outside the session layer.
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl SessionLayer {
    /// A layer over `store` with `config`. Derives the cookie signing keys here,
    /// once (PBKDF2 per secret), never per request.
    ///
    /// # Panics
    /// As [`SessionLayer::with_shared_store`]: only for cookie options that break a
    /// rule ([`SessionConfig::validate`]).
    pub fn new(store: impl SessionStore, config: SessionConfig) -> Self {
        Self::with_shared_store(Arc::new(store), config)
    }

    /// Like [`SessionLayer::new`], with bad cookie options as an error instead of
    /// a panic: what an app that reads its settings at start-up calls, to exit
    /// with the reason before it listens.
    ///
    /// ```
    /// use nex_session::{cookie::SameSite, store::MemoryStore, token::SecretKeyBase, SessionConfig, SessionLayer};
    ///
    /// let good = SessionConfig::new(SecretKeyBase::development());
    /// assert!(SessionLayer::try_new(MemoryStore::new(), good).is_ok());
    /// let bad = SessionConfig::new(SecretKeyBase::development()).with_same_site(SameSite::None).with_secure_cookie(false);
    /// assert!(SessionLayer::try_new(MemoryStore::new(), bad).is_err());
    /// ```
    ///
    /// # Errors
    /// As [`SessionLayer::try_with_shared_store`].
    pub fn try_new(store: impl SessionStore, config: SessionConfig) -> Result<Self, SessionError> {
        Self::try_with_shared_store(Arc::new(store), config)
    }

    /// A layer over an already shared (possibly `dyn`) store.
    ///
    /// # Panics
    /// Only for cookie options that break a rule ([`SessionConfig::validate`]: a
    /// name, path or domain a cookie cannot carry, `SameSite=None` without
    /// `Secure`, a `__Host-`/`__Secure-` name without its requirements), with the
    /// message of that rule, at start-up, never at a request. Use
    /// [`SessionLayer::try_with_shared_store`] to get it as an error.
    pub fn with_shared_store(store: Arc<dyn SessionStore>, config: SessionConfig) -> Self {
        match Self::try_with_shared_store(store, config) {
            Ok(layer) => layer,
            #[allow(clippy::panic)]
            Err(err) => panic!("invalid session configuration: {err}"),
        }
    }

    /// Like [`SessionLayer::with_shared_store`], with bad cookie options as an error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nex_session::{cookie::SameSite, store::MemoryStore, token::SecretKeyBase, SessionConfig, SessionLayer};
    ///
    /// let config = SessionConfig::new(SecretKeyBase::development())
    ///     .with_same_site(SameSite::None)
    ///     .with_secure_cookie(false);
    /// let err = SessionLayer::try_with_shared_store(Arc::new(MemoryStore::new()), config).unwrap_err();
    /// assert!(err.to_string().contains("SameSite=None needs a Secure cookie"), "{err}");
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Config`] when the cookie options break a rule
    /// ([`SessionConfig::validate`]); [`SessionError::InvalidCookie`] when an
    /// attribute cannot go into a header.
    pub fn try_with_shared_store(store: Arc<dyn SessionStore>, config: SessionConfig) -> Result<Self, SessionError> {
        let context = Context::new(store, &config)?;
        let shared = Shared { context: Arc::new(context), config, sweeper_started: AtomicBool::new(false) };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The session a service of this layer gives `request` (step 1 of the
    /// lifecycle alone, for [`crate::testing`]).
    pub(crate) fn begin<B>(&self, request: &Request<B>) -> Session {
        begin(&self.shared, request)
    }

    /// Whether the layer's store answers: a readiness check for a health route
    /// ([`crate::observe`] has a complete route). Asks the store's
    /// [`SessionStore::health`] (a Redis `PING`, a SQLite `SELECT 1`; the memory
    /// store is always up), reads and writes no session, and answers within the
    /// store's own timeout and at most [`HEALTH_TIMEOUT`] (2 s). Its latency is
    /// also recorded as the `health` operation of the store latency histogram.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use nex_session::{token::SecretKeyBase, SessionConfig, SessionLayer};
    ///
    /// let layer = SessionLayer::memory(SessionConfig::new(SecretKeyBase::development()));
    /// let health = layer.health().await;
    /// assert!(health.ok && health.error.is_none());
    /// assert_eq!(health.store, "memory");
    /// # });
    /// ```
    pub async fn health(&self) -> Health {
        let context = &self.shared.context;
        let started = Instant::now();
        let check = tokio::time::timeout(HEALTH_TIMEOUT, context.store.health());
        let result = check.await.unwrap_or(Err(StoreError::Timeout(HEALTH_TIMEOUT)));
        let latency = started.elapsed();
        context.instruments.record(Operation::Health, latency, result.as_ref().err());
        Health::new(context.instruments.store(), latency, result, context.store.endpoint())
    }

    /// A layer over a fresh [`MemoryStore`].
    ///
    /// # Panics
    /// As [`SessionLayer::with_shared_store`].
    pub fn memory(config: SessionConfig) -> Self {
        Self::new(MemoryStore::new(), config)
    }
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService { inner, shared: self.shared.clone() }
    }
}
