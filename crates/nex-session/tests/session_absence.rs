//! The expired-session signal over real HTTP on 127.0.0.1: `absence()` tells a
//! stranger, a forged cookie, an expired one, a revoked session and a cleared one
//! apart, on the memory, SQLite and Redis stores, at no extra store access.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use nex_session::store::{MemoryStore, SessionStore};
use nex_session::token::{now_ms, Keyring, SecretKeyBase, Signer};
use nex_session::{NoSession, Session, SessionConfig, SessionError, SessionId, SessionLayer};
use nex_testkit::http::{serve, HttpClient};
use nex_testkit::store::Instrumented;
use support::stores;

const SECRET: &str = "absence-secret-absence-secret-absence-0";

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new(SECRET).unwrap())
}

fn answer(absence: Result<Option<NoSession>, SessionError>) -> String {
    match absence {
        Ok(None) => "session".into(),
        Ok(Some(reason)) => format!("{reason:?}"),
        Err(err) => format!("error: {err}"),
    }
}

fn routes() -> Router {
    Router::new()
        .route("/login", post(|| async { nex_session::put("user", 1).await.map(|()| "ok") }))
        .route("/logout", post(|| async { nex_session::clear().await.map(|()| "ok") }))
        // The ambient API.
        .route("/absence", get(|| async { answer(nex_session::absence().await) }))
        // The extractor, after a read: asking costs no second load.
        .route(
            "/user-then-absence",
            get(|session: Session| async move {
                let user: Option<u64> = session.get("user").await.unwrap();
                format!("{user:?} {}", answer(session.absence().await))
            }),
        )
        .route(
            "/logout-then-absence",
            post(|| async {
                nex_session::clear().await.unwrap();
                answer(nex_session::absence().await)
            }),
        )
        .route(
            "/logout-put-absence",
            post(|| async {
                nex_session::clear().await.unwrap();
                nex_session::put("fresh", 1).await.unwrap();
                answer(nex_session::absence().await)
            }),
        )
        .route("/id", get(|| async { nex_session::id().await.unwrap().unwrap_or_default() }))
}

struct App {
    client: HttpClient,
    store: Instrumented,
}

async fn serve_on(store: Arc<dyn SessionStore>, config: SessionConfig) -> App {
    let store = Instrumented::new(store);
    let addr = serve(routes().layer(SessionLayer::new(store.clone(), config))).await;
    App { client: HttpClient::new(addr), store }
}

impl App {
    async fn login(&self) -> String {
        self.client.post("/login", None).await.session_cookie().expect("a login sets the session cookie")
    }

    async fn absence(&self, cookie: Option<&str>) -> String {
        self.client.get("/absence", cookie).await.body
    }

    async fn store_key(&self, cookie: &str) -> nex_session::StoreKey {
        SessionId::parse(&self.client.get("/id", Some(cookie)).await.body).unwrap().store_key()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cookie_a_forged_one_and_an_expired_one_are_told_apart_without_store_access() {
    let app = serve_on(Arc::new(MemoryStore::new()), config()).await;
    let genuine = app.login().await;
    let forged = format!("{}{}", &genuine[..genuine.len() - 1], if genuine.ends_with('A') { 'B' } else { 'A' });
    let other_secret = Keyring::new(SecretKeyBase::new([9u8; 40]).unwrap(), [], "nex.session")
        .sign(b"kl_MB987yMhqOw6Ve43B16YssSK0TlOp");
    let no_id = Signer::new(&SecretKeyBase::new(SECRET).unwrap(), "nex.session").sign(b"not an id");
    let expired = Signer::new(&SecretKeyBase::new(SECRET).unwrap(), "nex.session").sign_at(
        b"kl_MB987yMhqOw6Ve43B16YssSK0TlOp",
        1_000,
        604_800,
    );
    let cases: [(Option<&str>, &str); 7] = [
        (None, "NotSent"),
        (Some(&forged), "Invalid"),
        (Some(&other_secret), "Invalid"),
        (Some(&no_id), "Invalid"),
        (Some("garbage"), "Invalid"),
        (Some(""), "Invalid"),
        (Some(&expired), "Expired"),
    ];
    for (cookie, reason) in cases {
        app.store.reset();
        assert_eq!(app.absence(cookie).await, reason, "cookie {cookie:?}");
        assert_eq!(app.store.counts(), (0, 0), "no store access for cookie {cookie:?}");
    }
    // Several cookies of that name: a genuine one wins; else an expired one says most.
    let both = format!("_nex_session={forged}; _nex_session={expired}");
    assert_eq!(app.client.request_with_cookie_header("GET", "/absence", &both).await.body, "Expired");
    let with_live = format!("_nex_session={expired}; _nex_session={genuine}");
    assert_eq!(app.client.request_with_cookie_header("GET", "/absence", &with_live).await.body, "session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_has_no_absence_and_asking_after_a_read_costs_no_second_read() {
    let stores = stores("nex-absence", "live").await;
    for (name, store) in stores.list.iter().cloned() {
        let app = serve_on(store, config()).await;
        let cookie = app.login().await;
        app.store.reset();
        assert_eq!(app.client.get("/user-then-absence", Some(&cookie)).await.body, "Some(1) session", "{name}");
        assert_eq!(app.store.counts(), (1, 0), "{name}: one load serves the read and the question");
        app.store.reset();
        assert_eq!(app.absence(Some(&cookie)).await, "session", "{name}");
        assert_eq!(app.store.counts(), (1, 0), "{name}: asking alone is the request's one load");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_cookie_past_its_ttl_reads_as_expired_on_every_store() {
    let stores = stores("nex-absence", "ttl").await;
    for (name, store) in stores.list.iter().cloned() {
        let app = serve_on(store, config().with_ttl(Duration::from_secs(1))).await;
        let cookie = app.login().await;
        assert_eq!(app.absence(Some(&cookie)).await, "session", "{name}");
        // Poll (the answer changes once the TTL has passed; never timed).
        let mut answer = String::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = app.absence(Some(&cookie)).await;
            if answer != "session" {
                break;
            }
        }
        assert_eq!(answer, "Expired", "{name}");
        let r = app.client.get("/user-then-absence", Some(&cookie)).await;
        assert_eq!(r.body, "None Expired", "{name}: no data, and still expired");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_store_let_expire_in_its_cookies_last_refresh_interval_reads_as_expired() {
    let stores = stores("nex-absence", "store-expired").await;
    for (name, store) in stores.list.iter().cloned() {
        // TTL 4 s, refresh after 2 s: a cookie is fresh (gone = revoked) for its first 2 s.
        let config = config().with_ttl(Duration::from_secs(4)).with_refresh_interval(Duration::from_secs(2));
        let app = serve_on(store, config).await;
        let early = app.login().await;
        let late = app.login().await;
        let (early_key, late_key) = (app.store_key(&early).await, app.store_key(&late).await);

        // The store ends `early` at its own expiry while the cookie is young: as a
        // store whose clock ran ahead would. That is before its time: revoked.
        assert!(app.store.touch(early_key, now_ms() - 1).await.unwrap(), "{name}");
        assert_eq!(app.absence(Some(&early)).await, "Revoked", "{name}");

        // Once the cookie is in its last refresh interval, the same reads as expired.
        tokio::time::sleep(Duration::from_millis(2300)).await;
        assert!(app.store.touch(late_key, now_ms() - 1).await.unwrap(), "{name}");
        assert_eq!(app.absence(Some(&late)).await, "Expired", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_removed_from_outside_reads_as_revoked_on_every_store() {
    let stores = stores("nex-absence", "revoked").await;
    for (name, store) in &stores.list {
        let app = serve_on(store.clone(), config()).await;
        // An operator's revoke: the store's `remove`, from outside the app.
        let cookie = app.login().await;
        let key = app.store_key(&cookie).await;
        store.remove(key).await.unwrap();
        assert_eq!(app.absence(Some(&cookie)).await, "Revoked", "{name}");
        let r = app.client.get("/user-then-absence", Some(&cookie)).await;
        assert_eq!(r.body, "None Revoked", "{name}");

        // Another browser's logout with a copied cookie.
        let cookie = app.login().await;
        assert_eq!(app.client.post("/logout", Some(&cookie)).await.body, "ok", "{name}");
        assert_eq!(app.absence(Some(&cookie)).await, "Revoked", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_that_clears_its_session_reads_cleared_until_it_starts_a_new_one() {
    let stores = stores("nex-absence", "cleared").await;
    for (name, store) in stores.list.iter().cloned() {
        let app = serve_on(store, config()).await;
        let cookie = app.login().await;
        let r = app.client.post("/logout-then-absence", Some(&cookie)).await;
        assert_eq!(r.body, "Cleared", "{name}");
        assert!(r.session_set_cookie_header().unwrap().contains("Max-Age=0"), "{name}: the cookie is deleted");

        let cookie = app.login().await;
        let r = app.client.post("/logout-put-absence", Some(&cookie)).await;
        assert_eq!(r.body, "session", "{name}: a put after clear starts a new session");
        assert_ne!(r.session_cookie().unwrap(), cookie, "{name}");
    }
}
