//! Hardening over real HTTP on 127.0.0.1 (issue 12): anonymous traffic never
//! writes to the store, CSRF protection bound to the session, and responses that
//! depend on the session kept out of shared caches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use nex_session::csrf::CsrfLayer;
use nex_session::store::{MemoryStore, SessionStore};
use nex_session::token::SecretKeyBase;
use nex_session::{SessionConfig, SessionError, SessionLayer};
use nex_testkit::http::{serve, Browser, HttpClient};
use nex_testkit::store::Instrumented;

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new("test-secret-test-secret-test-secret-42").unwrap()).with_secure_cookie(false)
}

fn text(r: Result<String, SessionError>) -> String {
    r.unwrap_or_else(|e| format!("error: {e}"))
}

/// The shape of a login flow, as the demo has it.
fn app(store: Arc<dyn SessionStore>, config: SessionConfig) -> Router {
    Router::new()
        // An anonymous visit to a protected page: a flash, then a redirect.
        .route(
            "/dashboard",
            get(|| async {
                match nex_session::get::<String>("user").await {
                    Ok(Some(user)) => format!("dashboard of {user}"),
                    Ok(None) => {
                        text(nex_session::flash::put("error", "Please sign in.").await.map(|()| "redirect".into()))
                    }
                    Err(e) => format!("error: {e}"),
                }
            }),
        )
        // The login form: pending flashes, a CSRF token.
        .route(
            "/login",
            get(|| async {
                let flash = nex_session::flash::pop_all().await.unwrap();
                let token = nex_session::csrf::token().await.unwrap();
                format!(
                    "flash={}\n<input type=\"hidden\" name=\"_csrf_token\" value=\"{token}\">",
                    flash.values().cloned().collect::<Vec<_>>().join("|")
                )
            })
            .post(|body: String| async move {
                // "alice" signs in; anything else fails with a flash.
                if body.contains("user=alice") {
                    nex_session::renew().await.unwrap();
                    nex_session::put("user", "alice").await.unwrap();
                    "signed in".to_owned()
                } else {
                    text(nex_session::flash::put("error", "Invalid credentials").await.map(|()| "failed".into()))
                }
            }),
        )
        .route("/token", get(|| async { text(nex_session::csrf::token().await) }))
        // A form rendered before the request's first write (an anonymous cart).
        .route(
            "/token-then-put",
            get(|| async {
                let token = nex_session::csrf::token().await.unwrap();
                nex_session::put("cart", vec!["book"]).await.unwrap();
                token
            }),
        )
        .route(
            "/big-flash",
            get(|| async { text(nex_session::flash::put("error", "x".repeat(3000)).await.map(|()| "ok".into())) }),
        )
        .route("/logout", post(|| async { text(nex_session::clear().await.map(|()| "bye".into())) }))
        .route(
            "/counter",
            post(|| async { text(nex_session::update("n", 0u64, |n| n + 1).await.map(|n| n.to_string())) }),
        )
        .route("/plain", get(|| async { "no session used" }))
        .route(
            "/cached",
            get(|| async {
                nex_session::put("seen", true).await.unwrap();
                ([(http::header::CACHE_CONTROL, "public, max-age=60")], "handler's own caching")
            }),
        )
        .layer(CsrfLayer::new())
        .layer(SessionLayer::with_shared_store(store, config))
}

/// Drives the anonymous flow `rounds` times, each as a new visitor, the way a
/// flood does: protected page, login form, failed login.
async fn anonymous_flood(addr: std::net::SocketAddr, rounds: usize) {
    for _ in 0..rounds {
        let b = Browser::new(addr);
        assert_eq!(b.get("/dashboard").await.body, "redirect");
        let form = b.get("/login").await;
        assert_eq!(form.status, 200);
        let failed = b.post_form("/login", &[("user", "mallory"), ("_csrf_token", &form.csrf_token())]).await;
        assert_eq!(failed.body, "failed");
        assert!(failed.session_cookie().is_none(), "a failed login must not create a session");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_flash_and_csrf_never_write_the_store() {
    let memory = Arc::new(MemoryStore::new());
    let store = Instrumented::new(memory.clone());
    let addr = serve(app(Arc::new(store.clone()), config())).await;
    anonymous_flood(addr, 200).await;
    let (_, writes) = store.counts();
    assert_eq!(writes, 0, "anonymous flashes and CSRF tokens wrote to the store");
    assert!(memory.is_empty(), "{} sessions left by anonymous visitors", memory.len());
}

#[tokio::test]
async fn a_flash_without_a_session_is_shown_once_after_the_redirect() {
    let addr = serve(app(Arc::new(MemoryStore::new()), config())).await;
    let b = Browser::new(addr);
    let redirect = b.get("/dashboard").await;
    assert!(redirect.set_cookie_value("_nex_flash").is_some(), "{:?}", redirect.set_cookies);
    assert!(redirect.session_cookie().is_none());
    assert!(b.get("/login").await.body.starts_with("flash=Please sign in.\n"));
    assert!(b.get("/login").await.body.starts_with("flash=\n"), "a flash is shown once");
}

#[tokio::test]
async fn an_oversized_anonymous_flash_is_an_error_never_a_stored_session() {
    let memory = Arc::new(MemoryStore::new());
    let addr = serve(app(memory.clone(), config())).await;
    let reply = Browser::new(addr).get("/big-flash").await;
    assert!(reply.body.contains("over the cookie's limit"), "{}", reply.body);
    assert!(memory.is_empty(), "a large flash created a stored session");
}

#[tokio::test]
async fn a_token_rendered_before_the_first_write_of_a_request_keeps_working() {
    let addr = serve(app(Arc::new(MemoryStore::new()), config())).await;
    let b = Browser::new(addr);
    let token = b.get("/token-then-put").await.body;
    assert!(b.cookie("_nex_session").is_some());
    assert_eq!(b.post_with_headers("/counter", &[("x-csrf-token", &token)]).await.body, "1");
}

#[tokio::test]
async fn a_forged_flash_cookie_shows_nothing() {
    let addr = serve(app(Arc::new(MemoryStore::new()), config())).await;
    let client = HttpClient::new(addr);
    let forged = client.request_with_cookie_header("GET", "/login", "_nex_flash=SFMyNTY.eyJlcnJvciI6Imhp.Zm9v").await;
    assert_eq!(forged.status, 200);
    assert!(forged.body.starts_with("flash=\n"), "{}", forged.body);
}

#[tokio::test]
async fn a_replayed_cookie_of_a_forgotten_session_creates_no_session_per_request() {
    let memory = Arc::new(MemoryStore::new());
    let addr = serve(app(memory.clone(), config())).await;
    let b = Browser::new(addr);
    let token = b.get("/login").await.csrf_token();
    assert_eq!(b.post_form("/login", &[("user", "alice"), ("_csrf_token", &token)]).await.body, "signed in");
    let stale = b.cookie("_nex_session").unwrap();
    // The session is forgotten (revoked, expired), its genuine cookie replayed.
    let client = HttpClient::new(addr);
    let token = b.get("/token").await.body;
    assert_eq!(
        client.request_with_cookie_header("POST", "/logout", &format!("_nex_session={stale}")).await.status,
        403
    );
    b.post_with_headers("/logout", &[("x-csrf-token", &token)]).await;
    assert!(memory.is_empty());
    for _ in 0..50 {
        assert_eq!(client.get("/dashboard", Some(&stale)).await.body, "redirect");
    }
    assert!(memory.is_empty(), "{} sessions made from a replayed cookie", memory.len());
}

#[tokio::test]
async fn unsafe_requests_without_a_valid_token_are_refused_before_the_handler() {
    let store = Instrumented::new(Arc::new(MemoryStore::new()));
    let addr = serve(app(Arc::new(store.clone()), config())).await;
    let b = Browser::new(addr);
    let token = b.get("/login").await.csrf_token();
    assert_eq!(b.post_form("/login", &[("user", "alice"), ("_csrf_token", &token)]).await.body, "signed in");
    store.reset();
    // No token, a malformed one, a tampered one, one of another browser.
    assert_eq!(b.post_form("/counter", &[]).await.status, 403);
    assert_eq!(b.post_form("/counter", &[("_csrf_token", "nope")]).await.status, 403);
    let mut tampered = b.get("/token").await.body;
    tampered.replace_range(0..1, if tampered.starts_with('A') { "B" } else { "A" });
    assert_eq!(b.post_with_headers("/counter", &[("x-csrf-token", &tampered)]).await.status, 403);
    let other = Browser::new(addr);
    let foreign = other.get("/token").await.body;
    assert_eq!(b.post_with_headers("/counter", &[("x-csrf-token", &foreign)]).await.status, 403);
    let (_, writes) = store.counts();
    assert_eq!(writes, 1, "only the token's secret was written; refused requests wrote nothing");
    // Valid: the form field and the header; every token differs, all verify.
    let (t1, t2) = (b.get("/token").await.body, b.get("/token").await.body);
    assert_ne!(t1, t2, "tokens are masked afresh per response");
    assert_eq!(b.post_form("/counter", &[("_csrf_token", &t1)]).await.body, "1");
    assert_eq!(b.post_with_headers("/counter", &[("x-csrf-token", &t2)]).await.body, "2");
    assert_eq!(b.post_with_headers("/counter", &[("x-csrf-token", &t1)]).await.body, "3");
}

#[tokio::test]
async fn renew_and_clear_rotate_the_secret() {
    let addr = serve(app(Arc::new(MemoryStore::new()), config())).await;
    let b = Browser::new(addr);
    let anonymous = b.get("/login").await.csrf_token();
    assert!(b.cookie("_nex_csrf").is_some(), "an anonymous visitor's secret rides in a cookie");
    assert_eq!(b.post_form("/login", &[("user", "alice"), ("_csrf_token", &anonymous)]).await.body, "signed in");
    assert!(b.cookie("_nex_csrf").is_none(), "login (renew) deletes the anonymous secret");
    assert_eq!(b.post_with_headers("/counter", &[("x-csrf-token", &anonymous)]).await.status, 403);
    let before_logout = b.get("/token").await.body;
    assert_eq!(b.post_with_headers("/counter", &[("x-csrf-token", &before_logout)]).await.body, "1");
    assert_eq!(b.post_with_headers("/logout", &[("x-csrf-token", &before_logout)]).await.body, "bye");
    // After logout the old token is dead, also for the next login.
    assert_eq!(b.post_form("/login", &[("user", "alice"), ("_csrf_token", &before_logout)]).await.status, 403);
}

#[tokio::test]
async fn a_planted_csrf_cookie_does_not_stand_in_for_the_session_secret() {
    let addr = serve(app(Arc::new(MemoryStore::new()), config())).await;
    let attacker = Browser::new(addr);
    let attacker_token = attacker.get("/login").await.csrf_token();
    let planted = attacker.cookie("_nex_csrf").unwrap();
    let victim = Browser::new(addr);
    let token = victim.get("/login").await.csrf_token();
    assert_eq!(victim.post_form("/login", &[("user", "alice"), ("_csrf_token", &token)]).await.body, "signed in");
    victim.set_cookie("_nex_csrf", &planted);
    assert_eq!(victim.post_with_headers("/counter", &[("x-csrf-token", &attacker_token)]).await.status, 403);
}

#[tokio::test]
async fn an_oversized_form_without_the_header_is_refused() {
    let addr = serve(app(Arc::new(MemoryStore::new()), config())).await;
    let b = Browser::new(addr);
    let big = "x".repeat(2 << 20);
    assert_eq!(b.post_form("/counter", &[("junk", &big)]).await.status, 413);
}

#[tokio::test]
async fn responses_that_depend_on_the_session_stay_out_of_shared_caches() {
    let addr = serve(app(Arc::new(MemoryStore::new()), config())).await;
    let b = Browser::new(addr);
    let plain = b.get("/plain").await;
    assert_eq!((plain.header("vary"), plain.header("cache-control")), (None, None), "nothing used the session");
    // Sets a cookie (the flash): private, and varies by cookie.
    let redirect = b.get("/dashboard").await;
    assert_eq!(redirect.header("vary").as_deref(), Some("Cookie"));
    assert_eq!(redirect.header("cache-control").as_deref(), Some("private, no-cache"));
    let token = b.get("/login").await.csrf_token();
    b.post_form("/login", &[("user", "alice"), ("_csrf_token", &token)]).await;
    // Reads the session, sets nothing: varies by cookie only.
    let page = b.get("/dashboard").await;
    assert_eq!(page.body, "dashboard of alice");
    assert!(page.set_cookies.is_empty(), "{:?}", page.set_cookies);
    assert_eq!(page.header("vary").as_deref(), Some("Cookie"));
    assert_eq!(page.header("cache-control"), None);
    // The handler's own Cache-Control is its call.
    let fresh = Browser::new(addr);
    let cached = fresh.get("/cached").await;
    assert!(cached.session_cookie().is_some());
    assert_eq!(cached.header("cache-control").as_deref(), Some("public, max-age=60"));
    assert_eq!(cached.header("vary").as_deref(), Some("Cookie"));
}

#[tokio::test]
async fn cache_protection_can_be_turned_off() {
    let addr = serve(app(Arc::new(MemoryStore::new()), config().with_cache_protection(false))).await;
    let redirect = Browser::new(addr).get("/dashboard").await;
    assert!(redirect.set_cookie_value("_nex_flash").is_some());
    assert_eq!((redirect.header("vary"), redirect.header("cache-control")), (None, None));
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_adds_no_sqlite_rows() {
    let db = nex_testkit::TempDb::new("anonymous-flood");
    let path = db.0.clone();
    let store = Arc::new(nex_session::store::SqliteStore::open(&path).await.unwrap());
    let addr = serve(app(store.clone(), config())).await;
    anonymous_flood(addr, 100).await;
    let count = |table: &str| -> i64 {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    };
    assert_eq!((count("nex_sessions"), count("nex_session_fields")), (0, 0), "anonymous visitors left rows");
    drop(store);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_adds_no_redis_keys() {
    // A private server, so DBSIZE counts this test's keys alone.
    let server = nex_testkit::redis::RedisServer::start_private();
    let store = Arc::new(nex_session::store::RedisStore::open(&server.url()).await.unwrap());
    let addr = serve(app(store, config())).await;
    anonymous_flood(addr, 100).await;
    let mut conn = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let keys: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(keys, 0, "anonymous visitors left {keys} Redis keys");
}
