//! Shared test harness: a real HTTP server on 127.0.0.1 and a small client.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use nex_session::store::{BoxFuture, Changes, Presence, Record, SessionStore, Summary, UpdateFn, WriteOutcome};
use nex_session::{StoreError, StoreKey};

/// Serves `app` on a free loopback port until the test's runtime ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One HTTP exchange's result.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Reply {
    /// The `_nex_session` value this reply sets (`Some("")` for a deletion).
    pub fn session_cookie(&self) -> Option<String> {
        self.set_cookies
            .iter()
            .find_map(|c| c.strip_prefix("_nex_session=").map(|rest| rest.split(';').next().unwrap().to_owned()))
    }

    pub fn session_set_cookie_header(&self) -> Option<&String> {
        self.set_cookies.iter().find(|c| c.starts_with("_nex_session="))
    }
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http(), addr }
    }

    pub async fn request(&self, method: &str, path: &str, cookie: Option<&str>) -> Reply {
        let mut builder = http::Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", format!("_nex_session={cookie}"));
        }
        self.send(builder.body(Empty::new()).unwrap()).await
    }

    pub async fn request_with_cookie_header(&self, method: &str, path: &str, header: &str) -> Reply {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("cookie", header)
            .body(Empty::new())
            .unwrap();
        self.send(req).await
    }

    async fn send(&self, req: http::Request<Empty<Bytes>>) -> Reply {
        let res = self.client.request(req).await.expect("HTTP request to the test server");
        let status = res.status().as_u16();
        let set_cookies = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Reply { status, set_cookies, body }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.request("GET", path, cookie).await
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.request("POST", path, cookie).await
    }
}

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
        }
    }

    pub fn reset(&self) {
        self.loads.store(0, Ordering::SeqCst);
        self.writes.store(0, Ordering::SeqCst);
    }

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
}

impl SessionStore for Instrumented {
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.fail_reads.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Unavailable("injected read failure".into())) });
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
            return Box::pin(async { Err(StoreError::Unavailable("injected apply failure".into())) });
        }
        match self.write_gate() {
            Ok(()) => self.inner.apply(key, changes, exp, presence),
            Err(e) => Box::pin(async { Err(e) }),
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
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn touch(&self, key: StoreKey, exp: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        match self.write_gate() {
            Ok(()) => self.inner.touch(key, exp),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn rename(&self, from: StoreKey, to: StoreKey, exp: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        match self.write_gate() {
            Ok(()) => self.inner.rename(from, to, exp),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        match self.write_gate() {
            Ok(()) => self.inner.remove(key),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.purge_expired(now_ms)
    }
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        self.inner.list(limit)
    }
}

/// Two app servers on loopback over stores that share one backend: 200 concurrent
/// puts of distinct keys and 1000 concurrent increments, split between the
/// servers, all survive.
pub async fn two_servers_lose_nothing(a: Arc<dyn SessionStore>, b: Arc<dyn SessionStore>) {
    use axum::extract::Path;
    use axum::routing::{get, post};
    use nex_session::{SessionConfig, SessionLayer};

    let routes = || {
        Router::new()
            .route(
                "/put/{k}",
                post(|Path(k): Path<String>| async move { nex_session::put(&k, 1).await.map(|()| "ok") }),
            )
            .route("/incr", post(|| async { nex_session::update("n", 0u64, |n| n + 1).await.map(|n| n.to_string()) }))
            .route(
                "/count",
                get(|| async {
                    let s = nex_session::current().unwrap();
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
    let secret = nex_session::token::SecretKeyBase::new("two-servers-secret-two-servers-secret").unwrap();
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
