//! Store wrappers and multi-server checks for tests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::Router;
use nex_session_core::store::users::{Binding, Keep, SessionCap, SessionHandle, UserIndex, UserSession};
use nex_session_core::store::{
    BoxFuture, Changes, Presence, Record, SessionAdmin, SessionStore, UpdateFn, WriteOutcome,
};
use nex_session_core::{StoreError, StoreKey};

use crate::http::{serve, HttpClient};

/// A real store wrapped to count operations and to fail on demand (fault injection).
#[derive(Clone)]
pub struct Instrumented {
    inner: Arc<dyn SessionStore>,
    pub loads: Arc<AtomicUsize>,
    pub writes: Arc<AtomicUsize>,
    pub fail_writes: Arc<AtomicBool>,
    pub fail_reads: Arc<AtomicBool>,
    /// Fails only batch writes (`apply`), leaving `rename`/`update` working.
    pub fail_applies: Arc<AtomicBool>,
    /// Calls of the per-user index (bind, list, revokes).
    pub index_ops: Arc<AtomicUsize>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        Self {
            inner,
            loads: Default::default(),
            writes: Default::default(),
            fail_writes: Default::default(),
            fail_reads: Default::default(),
            fail_applies: Default::default(),
            index_ops: Default::default(),
        }
    }

    pub fn reset(&self) {
        self.loads.store(0, Ordering::SeqCst);
        self.writes.store(0, Ordering::SeqCst);
        self.index_ops.store(0, Ordering::SeqCst);
    }

    /// Calls of the per-user index since the last reset.
    pub fn index_count(&self) -> usize {
        self.index_ops.load(Ordering::SeqCst)
    }

    /// The wrapped store's index, counting the call.
    fn index(&self) -> Result<&dyn UserIndex, StoreError> {
        self.index_ops.fetch_add(1, Ordering::SeqCst);
        self.inner.users().ok_or_else(|| StoreError::Unavailable("the wrapped store has no user index".into()))
    }

    /// `(loads, writes)` since the last reset.
    pub fn counts(&self) -> (usize, usize) {
        (self.loads.load(Ordering::SeqCst), self.writes.load(Ordering::SeqCst))
    }

    fn write_gate(&self) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected write failure".into()));
        }
        Ok(())
    }

    fn failed<'a, T: Send + 'a>(err: StoreError) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async { Err(err) })
    }
}

impl SessionStore for Instrumented {
    // `load_now` keeps its default (`Unknown`): every read goes through `load`,
    // so the counts see it.
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.fail_reads.load(Ordering::SeqCst) {
            return Self::failed(StoreError::Unavailable("injected read failure".into()));
        }
        self.inner.load(key)
    }

    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        exp: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        if self.fail_applies.load(Ordering::SeqCst) {
            return Self::failed(StoreError::Unavailable("injected apply failure".into()));
        }
        match self.write_gate() {
            Ok(()) => self.inner.apply(key, changes, exp, presence),
            Err(e) => Self::failed(e),
        }
    }

    fn update<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        f: UpdateFn<'a>,
        exp: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        match self.write_gate() {
            Ok(()) => self.inner.update(key, field, f, exp, presence),
            Err(e) => Self::failed(e),
        }
    }

    fn touch(&self, key: StoreKey, exp: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        match self.write_gate() {
            Ok(()) => self.inner.touch(key, exp),
            Err(e) => Self::failed(e),
        }
    }

    fn rename(&self, from: StoreKey, to: StoreKey, exp: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        match self.write_gate() {
            Ok(()) => self.inner.rename(from, to, exp),
            Err(e) => Self::failed(e),
        }
    }

    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        match self.write_gate() {
            Ok(()) => self.inner.remove(key),
            Err(e) => Self::failed(e),
        }
    }

    fn admin(&self) -> Option<&dyn SessionAdmin> {
        self.inner.admin()
    }

    fn users(&self) -> Option<&dyn UserIndex> {
        self.inner.users().map(|_| self as &dyn UserIndex)
    }
}

impl UserIndex for Instrumented {
    fn bind<'a>(
        &'a self,
        key: StoreKey,
        binding: &'a Binding,
        exp: i64,
        cap: Option<SessionCap>,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        if let Err(e) = self.write_gate() {
            return Self::failed(e);
        }
        match self.index() {
            Ok(index) => index.bind(key, binding, exp, cap),
            Err(e) => Self::failed(e),
        }
    }

    fn seen<'a>(&'a self, key: StoreKey, user: &'a str, seen_ms: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        match self.index() {
            Ok(index) => index.seen(key, user, seen_ms),
            Err(e) => Self::failed(e),
        }
    }

    fn sessions<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<UserSession>, StoreError>> {
        match self.index() {
            Ok(index) => index.sessions(user),
            Err(e) => Self::failed(e),
        }
    }

    fn revoke<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> BoxFuture<'a, Result<bool, StoreError>> {
        match self.index() {
            Ok(index) => index.revoke(user, handle),
            Err(e) => Self::failed(e),
        }
    }

    fn revoke_all<'a>(&'a self, user: &'a str, keep: Keep) -> BoxFuture<'a, Result<u64, StoreError>> {
        match self.index() {
            Ok(index) => index.revoke_all(user, keep),
            Err(e) => Self::failed(e),
        }
    }
}

/// Two app servers on loopback over stores that share one backend: 200 concurrent
/// puts of distinct keys and 1000 concurrent increments, split between the
/// servers, all survive.
pub async fn two_servers_lose_nothing(a: Arc<dyn SessionStore>, b: Arc<dyn SessionStore>) {
    use axum::extract::Path;
    use axum::routing::{get, post};
    use nex_session_core::{SessionConfig, SessionLayer};

    // Errors as text: the harness must not need nex-session's `axum` feature
    // (`IntoResponse for SessionError`), so that feature-matrix tests stay honest.
    let unavailable = |e: nex_session_core::SessionError| (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    let routes = move || {
        Router::new()
            .route(
                "/put/{k}",
                post(move |Path(k): Path<String>| async move {
                    nex_session_core::put(&k, 1).await.map(|()| "ok").map_err(unavailable)
                }),
            )
            .route(
                "/incr",
                post(move || async move {
                    nex_session_core::update("n", 0u64, |n| n + 1).await.map(|n| n.to_string()).map_err(unavailable)
                }),
            )
            .route(
                "/count",
                get(|| async {
                    let s = nex_session_core::current().unwrap();
                    let mut n = 0;
                    for i in 0..200 {
                        if s.get::<u64>(&format!("k{i}")).await.unwrap().is_some() {
                            n += 1;
                        }
                    }
                    let counter: u64 = s.get_or("n", 0).await.unwrap();
                    format!("{n} {counter}")
                }),
            )
    };
    let secret = nex_session_core::token::SecretKeyBase::new("two-servers-secret-two-servers-secret").unwrap();
    let config = || SessionConfig::new(secret.clone());
    let server_a = HttpClient::new(serve(routes().layer(SessionLayer::with_shared_store(a, config()))).await);
    let server_b = HttpClient::new(serve(routes().layer(SessionLayer::with_shared_store(b, config()))).await);
    let cookie = server_a.post("/put/seed", None).await.session_cookie().expect("a session cookie");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = if i % 2 == 0 { server_a.clone() } else { server_b.clone() };
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move { client.post(&format!("/put/k{i}"), Some(&cookie)).await.status }));
    }
    for i in 0..1000 {
        let client = if i % 2 == 0 { server_a.clone() } else { server_b.clone() };
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move { client.post("/incr", Some(&cookie)).await.status }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(server_b.get("/count", Some(&cookie)).await.body, "200 1000", "200 keys and 1000 increments");
}
