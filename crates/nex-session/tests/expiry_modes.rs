//! Expiry modes over real HTTP on 127.0.0.1, on the memory, SQLite and Redis
//! stores: browser-session cookies, the absolute lifetime, and "remember me".
//!
//! Lifetimes are seconds long and observed by time passing: the tests poll with
//! generous overall limits and never assert how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use nex_session::store::{MemoryStore, RedisStore, SessionStore, SqliteStore};
use nex_session::token::{SecretKeyBase, Signer};
use nex_session::{Expiry, SessionConfig, SessionError, SessionExpiry, SessionId, SessionLayer};
use nex_testkit::http::{serve, HttpClient, Reply};
use nex_testkit::TempDb;
use nex_testkit::{single_node, RedisServer};

const SECRET: &str = "expiry-secret-expiry-secret-expiry-secret";
/// The persistent TTL of "remember me" in these tests: far beyond the short defaults.
const REMEMBER_S: u64 = 3600;
/// How long a test waits at most for a session to end.
const PATIENCE: Duration = Duration::from_secs(30);

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new(SECRET).unwrap())
}

fn text(r: Result<String, SessionError>) -> String {
    r.unwrap_or_else(|e| format!("error: {e}"))
}

fn routes() -> Router {
    Router::new()
        .route(
            "/put/{key}/{value}",
            post(|Path((k, v)): Path<(String, String)>| async move {
                text(nex_session::put(&k, &v).await.map(|()| "ok".into()))
            }),
        )
        .route(
            "/get/{key}",
            get(|Path(k): Path<String>| async move {
                text(nex_session::get::<String>(&k).await.map(|v| v.unwrap_or_else(|| "none".into())))
            }),
        )
        .route("/id", get(|| async { nex_session::id().await.unwrap().unwrap_or_else(|| "none".into()) }))
        .route(
            "/renew-put/{key}/{value}",
            post(|Path((k, v)): Path<(String, String)>| async move {
                nex_session::renew().await.unwrap();
                text(nex_session::put(&k, &v).await.map(|()| "ok".into()))
            }),
        )
        .route(
            "/expiry/{mode}",
            post(|Path(mode): Path<String>| async move {
                let expiry = match mode.as_str() {
                    "remember" => SessionExpiry::Persistent(Duration::from_secs(REMEMBER_S)),
                    "browser" => SessionExpiry::BrowserSession,
                    _ => SessionExpiry::Default,
                };
                text(nex_session::set_expiry(expiry).await.map(|()| "ok".into()))
            }),
        )
        .route(
            "/update-then-remember",
            post(|| async {
                nex_session::update("visits", 0u64, |n| n + 1).await.unwrap();
                let remember = SessionExpiry::Persistent(Duration::from_secs(REMEMBER_S));
                text(nex_session::set_expiry(remember).await.map(|()| "ok".into()))
            }),
        )
        .route(
            "/login/{remember}",
            post(|Path(remember): Path<bool>, session: nex_session::Session| async move {
                session.renew().await.unwrap();
                session.put("user", "ada").await.unwrap();
                if remember {
                    session.set_expiry(SessionExpiry::Persistent(Duration::from_secs(REMEMBER_S))).await.unwrap();
                }
                "ok"
            }),
        )
}

/// The stores every test runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    Sqlite,
    Redis,
}

const KINDS: [Kind; 3] = [Kind::Memory, Kind::Sqlite, Kind::Redis];

/// An app with one store, kept alive (files, servers) as long as the value.
struct App {
    client: HttpClient,
    store: Arc<dyn SessionStore>,
    _db: Option<TempDb>,
    _redis: Option<RedisServer>,
}

async fn start(kind: Kind, test: &str, config: SessionConfig) -> App {
    let (store, db, redis): (Arc<dyn SessionStore>, _, _) = match kind {
        Kind::Memory => (Arc::new(MemoryStore::new()), None, None),
        Kind::Sqlite => {
            let db = TempDb::new(test);
            (Arc::new(SqliteStore::open(&db.0).await.unwrap()), Some(db), None)
        }
        Kind::Redis => {
            let (url, server) = single_node();
            let prefix = format!("nex-expiry:{}:{test}:{}:", std::process::id(), nex_session::token::now_ms());
            (Arc::new(RedisStore::open_with(&url, &prefix, Duration::from_secs(2)).await.unwrap()), None, server)
        }
    };
    let app = routes().layer(SessionLayer::with_shared_store(store.clone(), config));
    App { client: HttpClient::new(serve(app).await), store, _db: db, _redis: redis }
}

/// The `Set-Cookie` header of the session cookie, with its token replaced by `T`
/// so the attributes can be compared exactly.
fn attributes(reply: &Reply) -> String {
    let header = reply.session_set_cookie_header().expect("a session Set-Cookie");
    let (_, rest) = header.split_once(';').expect("attributes");
    format!("_nex_session=T;{rest}")
}

/// Whether the store still holds the session with `id`.
async fn stored(app: &App, id: &str) -> bool {
    app.store.load(SessionId::parse(id).unwrap().store_key()).await.unwrap().is_some()
}

/// Polls `check` until it holds, for at most [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_cookie_has_no_max_age_and_the_store_still_ends_the_session_after_the_ttl() {
    for kind in KINDS {
        let config = config().with_expiry(Expiry::BrowserSession).with_ttl(Duration::from_secs(1));
        let app = start(kind, "browser-session", config).await;
        let reply = app.client.post("/put/a/1", None).await;
        assert_eq!(attributes(&reply), "_nex_session=T; Path=/; HttpOnly; Secure; SameSite=Lax", "{kind:?}");
        let cookie = reply.session_cookie().unwrap();
        // The token is still the bare id, as Nex signs it.
        let data = Signer::new(&SecretKeyBase::new(SECRET).unwrap(), "nex.session").verify(&cookie, None).unwrap();
        assert_eq!(data.len(), 32, "{kind:?}");
        let id = app.client.get("/id", Some(&cookie)).await.body;
        assert!(stored(&app, &id).await, "{kind:?}");
        eventually("the store forgets the idle session", || async { !stored(&app, &id).await }).await;
        assert_eq!(app.client.get("/get/a", Some(&cookie)).await.body, "none", "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_absolute_lifetime_ends_an_active_session_and_renew_does_not_extend_it() {
    for kind in KINDS {
        let config = config()
            .with_ttl(Duration::from_secs(3600))
            .with_absolute_lifetime(Duration::from_secs(3))
            .with_refresh_interval(Duration::from_millis(100));
        let app = start(kind, "absolute", config).await;
        let reply = app.client.post("/put/origin/first", None).await;
        let max_age = attributes(&reply);
        assert!(
            max_age == "_nex_session=T; Path=/; Max-Age=3; HttpOnly; Secure; SameSite=Lax",
            "{kind:?}: the cookie never outlives the session: {max_age}"
        );
        let mut cookie = reply.session_cookie().unwrap();
        let mut ids = Vec::new();
        // Active all along: every step renews the id and writes. A renew that reset
        // the creation time would keep the session alive forever.
        let deadline = Instant::now() + PATIENCE;
        let mut step = 0;
        loop {
            step += 1;
            let reply = app.client.post(&format!("/renew-put/a/{step}"), Some(&cookie)).await;
            assert_eq!(reply.status, 200, "{kind:?}");
            let next = reply.session_cookie().expect("a new id: renewed, or a fresh session");
            // A fresh session (the old one ended) lacks the first request's key.
            if app.client.get("/get/origin", Some(&next)).await.body == "none" {
                break;
            }
            // Still alive: this step's write is there, under a new id.
            assert_eq!(app.client.get("/get/a", Some(&next)).await.body, step.to_string(), "{kind:?}");
            let id = app.client.get("/id", Some(&next)).await.body;
            assert!(!ids.contains(&id), "{kind:?}: renew gives a new id");
            ids.push(id);
            cookie = next;
            assert!(Instant::now() < deadline, "{kind:?}: an active, renewed session never ended");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(ids.len() >= 2, "{kind:?}: the session lived through several renewals first");
        // The last cookie is refused on a request that never reads, and the store forgot it.
        assert_eq!(app.client.get("/id", Some(&cookie)).await.body, "none", "{kind:?}");
        let last = ids.last().unwrap();
        eventually("the store forgets the session at its absolute end", || async { !stored(&app, last).await }).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_sets_a_long_max_age_and_outlives_the_default_ttl_while_other_sessions_do_not() {
    for kind in KINDS {
        let app = start(kind, "remember-me", config().with_ttl(Duration::from_secs(1))).await;
        let remembered = app.client.post("/login/true", None).await;
        assert_eq!(
            attributes(&remembered),
            format!("_nex_session=T; Path=/; Max-Age={REMEMBER_S}; HttpOnly; Secure; SameSite=Lax"),
            "{kind:?}"
        );
        let remembered = remembered.session_cookie().unwrap();
        // Chosen after the request already wrote to the store: the store still follows.
        let late = app.client.post("/update-then-remember", None).await;
        assert!(late.session_set_cookie_header().unwrap().contains(&format!("Max-Age={REMEMBER_S}")), "{kind:?}");
        let late = late.session_cookie().unwrap();
        let plain = app.client.post("/login/false", None).await;
        assert_eq!(attributes(&plain), "_nex_session=T; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=Lax", "{kind:?}");
        let plain = plain.session_cookie().unwrap();
        let plain_id = app.client.get("/id", Some(&plain)).await.body;
        eventually("the default session ends after its TTL", || async {
            app.client.get("/get/user", Some(&plain)).await.body == "none" && !stored(&app, &plain_id).await
        })
        .await;
        // Well past the default TTL: the remembered session is alive, in the store too.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(app.client.get("/get/user", Some(&remembered)).await.body, "ada", "{kind:?}");
        let late_id = app.client.get("/id", Some(&late)).await.body;
        assert!(stored(&app, &late_id).await, "{kind:?}: a choice made after a write moves the store's expiry");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_expiry_later_changes_the_cookie_and_the_store_follows() {
    for kind in KINDS {
        // No periodic refresh within the test, so every Set-Cookie below is the expiry change.
        let config = config().with_ttl(Duration::from_secs(1)).with_refresh_interval(Duration::from_secs(3600));
        let app = start(kind, "change-later", config).await;
        let first = app.client.post("/put/a/1", None).await;
        assert_eq!(attributes(&first), "_nex_session=T; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=Lax");
        let cookie = first.session_cookie().unwrap();
        let id = app.client.get("/id", Some(&cookie)).await.body;
        // A request that only changes the expiry re-issues the cookie, same id.
        let remember = app.client.post("/expiry/remember", Some(&cookie)).await;
        assert_eq!(
            attributes(&remember),
            format!("_nex_session=T; Path=/; Max-Age={REMEMBER_S}; HttpOnly; Secure; SameSite=Lax"),
            "{kind:?}"
        );
        let cookie = remember.session_cookie().unwrap();
        assert_eq!(app.client.get("/id", Some(&cookie)).await.body, id, "{kind:?}: same session");
        // The store followed: the session outlives the default TTL without any use.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(app.client.get("/get/a", Some(&cookie)).await.body, "1", "{kind:?}");
        // Asking again for the same choice sends nothing new.
        assert!(app.client.post("/expiry/remember", Some(&cookie)).await.session_cookie().is_none(), "{kind:?}");
        // Later a browser-session cookie: no Max-Age, and the default TTL again.
        let browser = app.client.post("/expiry/browser", Some(&cookie)).await;
        assert_eq!(attributes(&browser), "_nex_session=T; Path=/; HttpOnly; Secure; SameSite=Lax", "{kind:?}");
        let cookie = browser.session_cookie().unwrap();
        assert_eq!(app.client.get("/id", Some(&cookie)).await.body, id, "{kind:?}");
        eventually("the store forgets it after the default TTL again", || async { !stored(&app, &id).await }).await;
        // And back to the layer's default, for a new session.
        let fresh = app.client.post("/put/b/1", None).await.session_cookie().unwrap();
        let remember = app.client.post("/expiry/remember", Some(&fresh)).await.session_cookie().unwrap();
        let back = app.client.post("/expiry/default", Some(&remember)).await;
        assert_eq!(attributes(&back), "_nex_session=T; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=Lax");
    }
}
