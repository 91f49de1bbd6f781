//! Hardening over real HTTP on 127.0.0.1 : anonymous traffic never
//! writes to the store, CSRF protection bound to the session, and responses that
//! depend on the session kept out of shared caches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use nex_session::store::MemoryStore;
use nex_session::token::SecretKeyBase;
use nex_session::SessionConfig;
use nex_testkit::apps::{anonymous_flood, login_flow as app};
use nex_testkit::http::{serve, Browser, HttpClient};
use nex_testkit::store::Instrumented;

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new("test-secret-test-secret-test-secret-42").unwrap()).with_secure_cookie(false)
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
