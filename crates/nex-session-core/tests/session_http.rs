//! The session lifecycle over real HTTP on 127.0.0.1, on a multi-thread runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use nex_session::cookie::CookieOptions;
use nex_session::store::{MemoryStore, SessionStore};
use nex_session::token::{Keyring, SecretKeyBase, Signer};
use nex_session::{Session, SessionConfig, SessionError, SessionLayer};
use nex_testkit::http::{serve, HttpClient};
use nex_testkit::store::Instrumented;
use serde_json::Value;

const SECRET: &str = "test-secret-test-secret-test-secret-42";

fn secret() -> SecretKeyBase {
    SecretKeyBase::new(SECRET).unwrap()
}

fn config() -> SessionConfig {
    SessionConfig::new(secret())
}

fn text(r: Result<String, SessionError>) -> String {
    r.unwrap_or_else(|e| format!("error: {e}"))
}

fn routes() -> Router {
    Router::new()
        .route(
            "/put-then-renew/{key}/{value}",
            post(|Path((k, v)): Path<(String, String)>| async move {
                nex_session::put(&k, &v).await.unwrap();
                text(nex_session::renew().await.map(|()| "ok".into()))
            }),
        )
        .route(
            "/renew-then-put",
            post(|| async {
                nex_session::renew().await.unwrap();
                nex_session::put("after", 1).await.unwrap();
                "ok"
            }),
        )
        .route(
            "/late-put",
            post(|session: Session| async move {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let late = session.put("late", 1).await;
                    LATE_PUT_REFUSED
                        .store(matches!(late, Err(SessionError::ResponseSent)), std::sync::atomic::Ordering::SeqCst);
                    LATE_PUT_DONE.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                "ok"
            }),
        )
        .route(
            "/strict/{key}",
            get(|Path(key): Path<String>| async move {
                let value: Option<Value> = nex_session::get(&key).await?;
                Ok::<_, SessionError>(value.map_or("none".into(), |v| v.to_string()))
            }),
        )
        .route(
            "/get/{key}",
            get(|Path(key): Path<String>| async move {
                text(nex_session::get::<Value>(&key).await.map(|v| v.map_or("none".into(), |v| v.to_string())))
            }),
        )
        .route(
            "/put/{key}/{value}",
            post(|Path((k, v)): Path<(String, String)>| async move {
                text(nex_session::put(&k, &v).await.map(|()| "ok".into()))
            }),
        )
        .route(
            "/put-then-get/{key}/{value}",
            post(|Path((k, v)): Path<(String, String)>| async move {
                nex_session::put(&k, &v).await.unwrap();
                text(nex_session::get::<String>(&k).await.map(|v| v.unwrap_or_default()))
            }),
        )
        .route(
            "/incr",
            post(|| async { text(nex_session::update("counter", 0u64, |n| n + 1).await.map(|n| n.to_string())) }),
        )
        .route(
            "/delete/{key}",
            post(|Path(k): Path<String>| async move { text(nex_session::delete(&k).await.map(|()| "ok".into())) }),
        )
        .route("/clear", post(|| async { text(nex_session::clear().await.map(|()| "ok".into())) }))
        .route(
            "/clear-then-put",
            post(|| async {
                nex_session::clear().await.unwrap();
                nex_session::put("fresh", true).await.unwrap();
                nex_session::id().await.unwrap().unwrap_or_default()
            }),
        )
        .route("/renew", post(|| async { text(nex_session::renew().await.map(|()| "ok".into())) }))
        .route("/id", get(|| async { nex_session::id().await.unwrap().unwrap_or_else(|| "none".into()) }))
        .route(
            "/delete-then-get/{key}",
            post(|Path(k): Path<String>| async move {
                nex_session::delete(&k).await.unwrap();
                text(nex_session::get::<String>("other").await.map(|v| format!("{v:?}")))
            }),
        )
        .route(
            "/count",
            get(|| async {
                let s = nex_session::current().unwrap();
                let mut n = 0;
                for i in 0..1000 {
                    if s.get::<Value>(&format!("k{i}")).await.unwrap().is_some() {
                        n += 1;
                    }
                }
                n.to_string()
            }),
        )
        .route(
            "/many-gets",
            get(|| async {
                for _ in 0..20 {
                    nex_session::get::<Value>("a").await.unwrap();
                    nex_session::get::<Value>("b").await.unwrap();
                }
                "ok"
            }),
        )
        .route(
            "/many-puts",
            post(|| async {
                for i in 0..20 {
                    nex_session::put(&format!("p{i}"), i).await.unwrap();
                }
                nex_session::delete("p3").await.unwrap();
                nex_session::delete("p4").await.unwrap();
                "ok"
            }),
        )
        .route(
            "/extractor/put/{key}/{value}",
            post(|session: Session, Path((k, v)): Path<(String, String)>| async move {
                session.put(&k, &v).await.unwrap();
                session.get::<String>(&k).await.unwrap().unwrap_or_default()
            }),
        )
        .route(
            "/typed",
            get(|| async {
                nex_session::put("n", "not a number").await.unwrap();
                nex_session::put("ok", 5).await.unwrap();
                let bad = nex_session::get::<u64>("n").await;
                let good = nex_session::get::<u64>("ok").await.unwrap();
                format!("{}|{good:?}", matches!(bad, Err(SessionError::Decode { .. })))
            }),
        )
        .route(
            "/flash/put/{kind}/{msg}",
            post(|Path((k, m)): Path<(String, String)>| async move {
                text(nex_session::flash::put(&k, m).await.map(|()| "ok".into()))
            }),
        )
        .route(
            "/flash/pop",
            get(|| async {
                let all = nex_session::flash::pop_all().await.unwrap();
                serde_json::to_string(&all).unwrap()
            }),
        )
        .route(
            "/flash/peek",
            get(|| async { serde_json::to_string(&nex_session::flash::peek_all().await.unwrap()).unwrap() }),
        )
        .route(
            "/cookie",
            post(|| async {
                let before = nex_session::cookie::get("theme").await.unwrap();
                nex_session::cookie::put("theme", "dark", CookieOptions::default().with_max_age(60)).await.unwrap();
                nex_session::cookie::delete("old").await.unwrap();
                let after = nex_session::cookie::get("theme").await.unwrap();
                let all = nex_session::cookie::all().await.unwrap();
                format!("{before:?}|{after:?}|{all:?}")
            }),
        )
        .route(
            "/panic",
            post(|| async {
                nex_session::put("doomed", 1).await.unwrap();
                panic!("handler panics after a put");
                #[allow(unreachable_code)]
                "never"
            }),
        )
}

static LATE_PUT_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static LATE_PUT_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Removes the session behind `cookie` from the store, as another tab's logout would.
async fn remove_behind_the_back(f: &Fixture, cookie: &str) {
    let id = f.client.get("/id", Some(cookie)).await.body;
    let key = nex_session::SessionId::parse(&id).unwrap().store_key();
    f.store.remove(key).await.unwrap();
}

struct Fixture {
    client: HttpClient,
    store: Instrumented,
}

async fn start_with(config: SessionConfig) -> Fixture {
    let store = Instrumented::new(Arc::new(MemoryStore::new()));
    let app = routes().layer(SessionLayer::new(store.clone(), config));
    let addr = serve(app).await;
    Fixture { client: HttpClient::new(addr), store }
}

async fn start() -> Fixture {
    start_with(config()).await
}

/// Logs in a session holding `seed=1` and returns its cookie.
async fn new_session(f: &Fixture) -> String {
    f.client.post("/put/seed/1", None).await.session_cookie().expect("a put sets the session cookie")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_request_creates_no_session_and_sends_no_cookie() {
    let f = start().await;
    let r = f.client.get("/get/user_id", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "none"));
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    assert_eq!(f.store.counts(), (0, 0), "no store access without a cookie");
    let r = f.client.get("/id", None).await;
    assert_eq!(r.body, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_sets_a_signed_cookie_with_the_nex_attributes() {
    let f = start().await;
    let r = f.client.post("/put/user_id/7", None).await;
    assert_eq!(r.status, 200);
    let header = r.session_set_cookie_header().expect("Set-Cookie for the new session");
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=604800", "Secure"] {
        assert!(header.contains(attr), "{attr} missing in {header}");
    }
    let token = r.session_cookie().unwrap();
    assert!(token.starts_with("SFMyNTY."));
    let id = Signer::new(&secret(), "nex.session").verify(&token, Some(604_800)).unwrap();
    assert_eq!(id.len(), 32, "the cookie carries a 32-character id");
    let r = f.client.get("/get/user_id", Some(&token)).await;
    assert_eq!(r.body, "\"7\"");
    assert!(r.set_cookies.is_empty(), "a fresh cookie is not re-sent on a read: {:?}", r.set_cookies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_attribute_follows_config() {
    let f = start_with(config().with_secure_cookie(false)).await;
    let r = f.client.post("/put/a/1", None).await;
    assert!(!r.session_set_cookie_header().unwrap().contains("Secure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sees_its_own_writes_through_both_apis() {
    let f = start().await;
    assert_eq!(f.client.post("/put-then-get/k/v", None).await.body, "v");
    assert_eq!(f.client.post("/extractor/put/k/w", None).await.body, "w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_puts_of_different_keys_all_survive() {
    let f = start().await;
    let cookie = new_session(&f).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (client, cookie) = (f.client.clone(), cookie.clone());
            tokio::spawn(async move { client.post(&format!("/put/k{i}/v"), Some(&cookie)).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(f.client.get("/count", Some(&cookie)).await.body, "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_updates_give_a_thousand() {
    let f = start().await;
    let cookie = new_session(&f).await;
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (client, cookie) = (f.client.clone(), cookie.clone());
            tokio::spawn(async move { client.post("/incr", Some(&cookie)).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(f.client.get("/get/counter", Some(&cookie)).await.body, "1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_gets_cost_one_read_and_many_puts_one_write() {
    let f = start().await;
    let cookie = new_session(&f).await;
    f.store.reset();
    assert_eq!(f.client.get("/many-gets", Some(&cookie)).await.status, 200);
    assert_eq!(f.store.counts(), (1, 0), "40 gets: one load, no write");
    f.store.reset();
    assert_eq!(f.client.post("/many-puts", Some(&cookie)).await.status, 200);
    assert_eq!(f.store.counts(), (0, 1), "20 puts and 2 deletes: no load, one write");
    let r = f.client.get("/get/p5", Some(&cookie)).await;
    assert_eq!(r.body, "5");
    assert_eq!(f.client.get("/get/p3", Some(&cookie)).await.body, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_moves_the_data_to_a_new_id_and_the_old_cookie_stops_working() {
    let f = start().await;
    let old = new_session(&f).await;
    f.client.post("/put/user_id/9", Some(&old)).await;
    let old_id = f.client.get("/id", Some(&old)).await.body;
    let r = f.client.post("/renew", Some(&old)).await;
    let new = r.session_cookie().expect("renew sets a new cookie");
    assert_ne!(new, old);
    let new_id = f.client.get("/id", Some(&new)).await.body;
    assert_ne!(new_id, old_id);
    assert_eq!(f.client.get("/get/user_id", Some(&new)).await.body, "\"9\"");
    let stale = f.client.get("/get/user_id", Some(&old)).await;
    assert_eq!(stale.body, "none", "the old cookie must not reach the data");
    assert_eq!(stale.session_cookie().as_deref(), Some(""), "the stale cookie is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_removes_everything_and_deletes_the_cookie() {
    let f = start().await;
    let cookie = new_session(&f).await;
    let r = f.client.post("/clear", Some(&cookie)).await;
    let header = r.session_set_cookie_header().expect("a deletion cookie");
    assert!(header.starts_with("_nex_session=;") && header.contains("Max-Age=0"), "{header}");
    assert_eq!(f.client.get("/get/seed", Some(&cookie)).await.body, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_after_clear_starts_a_fresh_session_with_a_new_id() {
    let f = start().await;
    let cookie = new_session(&f).await;
    let old_id = f.client.get("/id", Some(&cookie)).await.body;
    let r = f.client.post("/clear-then-put", Some(&cookie)).await;
    assert_ne!(r.body, old_id);
    let fresh = r.session_cookie().expect("the fresh session's cookie");
    assert!(!fresh.is_empty());
    assert_eq!(f.client.get("/get/fresh", Some(&fresh)).await.body, "true");
    assert_eq!(f.client.get("/get/seed", Some(&fresh)).await.body, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_foreign_and_expired_cookies_mean_no_session_without_store_access() {
    let f = start().await;
    let genuine = new_session(&f).await;
    let forged = format!("{}{}", &genuine[..genuine.len() - 1], if genuine.ends_with('A') { 'B' } else { 'A' });
    let other_secret = Keyring::new(SecretKeyBase::new([9u8; 40]).unwrap(), [], "nex.session")
        .sign(b"kl_MB987yMhqOw6Ve43B16YssSK0TlOp");
    let other_salt = Signer::new(&secret(), "other.salt").sign(b"kl_MB987yMhqOw6Ve43B16YssSK0TlOp");
    let expired = Signer::new(&secret(), "nex.session").sign_at(b"kl_MB987yMhqOw6Ve43B16YssSK0TlOp", 1_000, 604_800);
    for bad in [forged.as_str(), &other_secret, &other_salt, &expired, "garbage", ""] {
        f.store.reset();
        let r = f.client.get("/get/seed", Some(bad)).await;
        assert_eq!((r.status, r.body.as_str()), (200, "none"), "cookie {bad:?}");
        assert_eq!(f.store.counts(), (0, 0), "no store access for cookie {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_save_turns_the_response_into_503() {
    let f = start().await;
    let cookie = new_session(&f).await;
    f.store.fail_writes.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = f.client.post("/put/k/v", Some(&cookie)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.set_cookies.is_empty());
    let r = f.client.post("/incr", Some(&cookie)).await;
    assert!(r.body.starts_with("error:"), "update reports the store error to the handler: {}", r.body);
    f.store.fail_writes.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(f.client.get("/get/k", Some(&cookie)).await.body, "none", "nothing half-saved");
    f.store.fail_reads.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = f.client.get("/get/seed", Some(&cookie)).await;
    assert!(r.body.starts_with("error: session store unavailable"), "a read error reaches the handler: {}", r.body);
    let r = f.client.get("/strict/seed", Some(&cookie)).await;
    assert_eq!(r.status, 503, "a handler returning the error with `?` answers 503: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_layer_the_ambient_api_errs_and_the_extractor_rejects() {
    let app = Router::new()
        .route("/ambient", get(|| async { text(nex_session::get::<String>("x").await.map(|_| "?".into())) }))
        .route("/extractor", get(|_s: Session| async { "unreachable" }));
    let client = HttpClient::new(serve(app).await);
    let r = client.get("/ambient", None).await;
    assert!(r.body.contains("SessionLayer"), "{}", r.body);
    let r = client.get("/extractor", None).await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("SessionLayer"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_saves_nothing_and_leaks_nothing() {
    let f = start().await;
    let cookie = new_session(&f).await;
    let (client, k) = (f.client.clone(), cookie.clone());
    // hyper drops the connection when the service future panics.
    let app_panicked = tokio::spawn(async move { client.post("/panic", Some(&k)).await });
    let outcome = tokio::time::timeout(Duration::from_secs(5), app_panicked).await.unwrap();
    assert!(outcome.is_err(), "the panic reaches the connection task");
    assert_eq!(f.client.get("/get/doomed", Some(&cookie)).await.body, "none");
    let anonymous = f.client.get("/id", None).await;
    assert_eq!(anonymous.body, "none", "no state of the panicked request leaks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_the_wrong_type_is_an_error_for_that_key_only() {
    let f = start().await;
    assert_eq!(f.client.get("/typed", None).await.body, "true|Some(5)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_is_shown_once_even_when_two_requests_race_to_pop_it() {
    let f = start().await;
    let cookie = new_session(&f).await;
    for round in 0..20 {
        assert_eq!(f.client.post(&format!("/flash/put/info/hello{round}"), Some(&cookie)).await.status, 200);
        assert!(f.client.get("/flash/peek", Some(&cookie)).await.body.contains("hello"));
        let a = tokio::spawn({
            let (c, k) = (f.client.clone(), cookie.clone());
            async move { c.get("/flash/pop", Some(&k)).await.body }
        });
        let b = tokio::spawn({
            let (c, k) = (f.client.clone(), cookie.clone());
            async move { c.get("/flash/pop", Some(&k)).await.body }
        });
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let shown = [&a, &b].iter().filter(|body| body.contains("hello")).count();
        assert_eq!(shown, 1, "round {round}: shown {shown} times ({a} / {b})");
        assert_eq!(f.client.get("/flash/pop", Some(&cookie)).await.body, "{}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_helper_reads_request_cookies_and_queues_response_cookies() {
    let f = start().await;
    let r = f.client.request_with_cookie_header("POST", "/cookie", "theme=light; old=1").await;
    assert_eq!(r.body, r#"Some("light")|Some("dark")|[("theme", "dark")]"#);
    assert!(
        r.set_cookies.iter().any(|c| c.starts_with("theme=dark;") && c.contains("Max-Age=60")),
        "{:?}",
        r.set_cookies
    );
    assert!(r.set_cookies.iter().any(|c| c.starts_with("old=;") && c.contains("Max-Age=0")), "{:?}", r.set_cookies);
    assert!(r.session_cookie().is_none(), "cookie helper alone creates no session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_refreshes_cookie_and_expiry_only_when_the_refresh_is_due() {
    let f = start_with(config().with_refresh_interval(Duration::from_millis(300))).await;
    let cookie = new_session(&f).await;
    f.store.reset();
    let r = f.client.get("/get/seed", Some(&cookie)).await;
    assert!(r.session_cookie().is_none(), "fresh cookie: no refresh");
    assert_eq!(f.store.counts(), (1, 0));
    tokio::time::sleep(Duration::from_millis(400)).await;
    f.store.reset();
    let r = f.client.get("/id", Some(&cookie)).await;
    let refreshed = r.session_cookie().expect("refresh due: the cookie is re-signed");
    assert_ne!(refreshed, cookie);
    assert_eq!(f.store.counts(), (0, 1), "one touch, no load");
    assert_eq!(f.client.get("/get/seed", Some(&refreshed)).await.body, "\"1\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_re_signs_the_cookie_only_when_the_refresh_is_due() {
    let f = start_with(config().with_refresh_interval(Duration::from_millis(300))).await;
    let cookie = new_session(&f).await;
    let r = f.client.post("/put/a/2", Some(&cookie)).await;
    assert!(r.session_cookie().is_none(), "fresh cookie: a write sends none: {:?}", r.set_cookies);
    assert_eq!(f.client.get("/get/a", Some(&cookie)).await.body, "\"2\"");
    tokio::time::sleep(Duration::from_millis(400)).await;
    f.store.reset();
    let r = f.client.post("/put/a/3", Some(&cookie)).await;
    let refreshed = r.session_cookie().expect("refresh due: the write re-signs the cookie");
    assert_ne!(refreshed, cookie);
    assert_eq!(f.store.counts(), (0, 1), "the write slides the expiry: no extra touch");
    assert_eq!(f.client.get("/get/a", Some(&refreshed)).await.body, "\"3\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_cookie_still_dies_with_its_session_and_its_ttl() {
    let store = Arc::new(MemoryStore::new());
    let app = routes().layer(SessionLayer::with_shared_store(store.clone(), config().with_ttl(Duration::from_secs(1))));
    let client = HttpClient::new(serve(app).await);
    let cookie = client.post("/put/a/1", None).await.session_cookie().unwrap();
    // Verified (and remembered) twice, then the session is removed behind the layer's back.
    assert_eq!(client.get("/get/a", Some(&cookie)).await.body, "\"1\"");
    assert_eq!(client.get("/get/a", Some(&cookie)).await.body, "\"1\"");
    let id = client.get("/id", Some(&cookie)).await.body;
    store.remove(nex_session::SessionId::parse(&id).unwrap().store_key()).await.unwrap();
    assert_eq!(client.get("/get/a", Some(&cookie)).await.body, "none", "the store decides, not the cache");
    // A remembered cookie past its max age is expired like any other.
    let other = client.post("/put/b/1", None).await.session_cookie().unwrap();
    assert_eq!(client.get("/get/b", Some(&other)).await.body, "\"1\"");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = client.get("/id", Some(&other)).await;
    assert_eq!(r.body, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_after_its_ttl() {
    let store = Arc::new(MemoryStore::new());
    let app = routes().layer(SessionLayer::with_shared_store(store.clone(), config().with_ttl(Duration::from_secs(1))));
    let client = HttpClient::new(serve(app).await);
    let cookie = client.post("/put/a/1", None).await.session_cookie().unwrap();
    assert!(client.post("/put/a/1", None).await.session_set_cookie_header().unwrap().contains("Max-Age=1"));
    assert_eq!(client.get("/get/a", Some(&cookie)).await.body, "\"1\"");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(client.get("/get/a", Some(&cookie)).await.body, "none");
    let purged = store.admin().unwrap().purge_expired(nex_session::token::now_ms()).await.unwrap();
    assert_eq!(purged, 2, "both sessions swept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_keeps_old_cookies_working() {
    let store = Arc::new(MemoryStore::new());
    let old_secret = SecretKeyBase::new([3u8; 40]).unwrap();
    let before = routes().layer(SessionLayer::with_shared_store(store.clone(), SessionConfig::new(old_secret.clone())));
    let cookie = HttpClient::new(serve(before).await).post("/put/a/1", None).await.session_cookie().unwrap();
    let after =
        routes().layer(SessionLayer::with_shared_store(store.clone(), config().with_previous_secrets([old_secret])));
    let client = HttpClient::new(serve(after).await);
    let r = client.get("/get/a", Some(&cookie)).await;
    assert_eq!(r.body, "\"1\"");
    let resigned = r.session_cookie().expect("an old-secret cookie is re-signed with the current secret at once");
    let dropped = HttpClient::new(serve(routes().layer(SessionLayer::with_shared_store(store, config()))).await);
    assert_eq!(dropped.get("/get/a", Some(&cookie)).await.body, "none");
    assert_eq!(dropped.get("/get/a", Some(&resigned)).await.body, "\"1\"", "the re-signed cookie needs no old secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_of_a_vanished_session_keeps_the_requests_puts() {
    let f = start().await;
    let cookie = new_session(&f).await;
    remove_behind_the_back(&f, &cookie).await;
    let r = f.client.post("/put-then-renew/user_id/5", Some(&cookie)).await;
    let fresh = r.session_cookie().expect("a cookie for the fresh session");
    assert!(!fresh.is_empty(), "the put is saved under a new id, not dropped");
    assert_eq!(f.client.get("/get/user_id", Some(&fresh)).await.body, "\"5\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_a_session_removed_meanwhile_creates_no_new_session() {
    let f = start().await;
    let cookie = new_session(&f).await;
    remove_behind_the_back(&f, &cookie).await;
    let r = f.client.post("/delete/seed", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert!(r.session_cookie().is_none_or(|c| c.is_empty()), "no new session cookie: {:?}", r.set_cookies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_then_a_read_of_a_session_removed_meanwhile_write_nothing() {
    let f = start().await;
    let cookie = new_session(&f).await;
    remove_behind_the_back(&f, &cookie).await;
    f.store.reset();
    // The read finds the session gone while the delete is still pending.
    let r = f.client.post("/delete-then-get/seed", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (200, "None"));
    assert_eq!(f.store.counts().1, 0, "deletes alone must not create a new session");
    assert_eq!(r.session_cookie().as_deref(), Some(""), "the dead cookie is deleted: {:?}", r.set_cookies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_save_after_renew_still_moves_the_browser_to_the_new_id() {
    let f = start().await;
    let cookie = new_session(&f).await;
    f.store.fail_applies.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = f.client.post("/renew-then-put", Some(&cookie)).await;
    f.store.fail_applies.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(r.status, 503);
    let moved = r.session_cookie().expect("the renewed id's cookie comes with the 503");
    assert_eq!(f.client.get("/get/seed", Some(&moved)).await.body, "\"1\"", "the session is reachable");
    assert_eq!(f.client.get("/get/after", Some(&moved)).await.body, "none", "the failed put is not reported saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_after_the_response_was_sent_is_refused_not_silently_lost() {
    let f = start().await;
    let cookie = new_session(&f).await;
    assert_eq!(f.client.post("/late-put", Some(&cookie)).await.status, 200);
    for _ in 0..50 {
        if LATE_PUT_DONE.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(LATE_PUT_REFUSED.load(std::sync::atomic::Ordering::SeqCst), "the late put returns ResponseSent");
}

/// The layer's cap on sessions per user: signing in a third browser with a cap
/// of two ends the least recently seen one, which is signed out on its next
/// request; the other two stay signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_beyond_the_cap_signs_out_the_least_recently_seen_browser() {
    let app = Router::new()
        .route(
            "/login",
            post(|session: Session| async move { text(session.sign_in("alice", None).await.map(|()| "ok".into())) }),
        )
        .route(
            "/whoami",
            get(|session: Session| async move { text(session.user().await.map(|u| u.unwrap_or_default())) }),
        );
    let config = config().with_secure_cookie(false).with_max_sessions_per_user(nex_session::store::SessionCap::new(2));
    let app = app.layer(SessionLayer::new(Arc::new(MemoryStore::new()), config));
    let client = HttpClient::new(serve(app).await);
    let mut cookies = Vec::new();
    for _ in 0..3 {
        let reply = client.post("/login", None).await;
        assert_eq!(reply.body, "ok");
        cookies.push(reply.session_cookie().unwrap());
        // Distinct sign-in (and so last-seen) times.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let whoami = |cookie: String| {
        let client = client.clone();
        async move { client.get("/whoami", Some(&cookie)).await.body }
    };
    assert_eq!(whoami(cookies[0].clone()).await, "", "the least recently seen browser is signed out");
    assert_eq!(whoami(cookies[1].clone()).await, "alice");
    assert_eq!(whoami(cookies[2].clone()).await, "alice");
}
