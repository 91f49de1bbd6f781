//! The demo tells a returning user why they are signed out, over real HTTP on
//! 127.0.0.1, on the memory, SQLite and Redis stores: "Your session has expired"
//! after the TTL, "You were signed out" after a revocation, and nothing special
//! for a stranger or a forged cookie.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use nex_session::store::SessionStore;
use nex_session::token::{SecretKeyBase, Signer};
use nex_session::SessionId;
use nex_testkit::http::Browser;
use support::{config, store_urls, SECRET};

const EXPIRED: &str = "Your session has expired, please sign in again.";
const REVOKED: &str = "You were signed out, please sign in again.";
const STRANGER: &str = "Please sign in to see your dashboard.";

async fn serve(url: &str, ttl: Duration) -> (Browser, Arc<dyn SessionStore>) {
    let store = nex_session::store::open(url).await.unwrap();
    let app = nex_demo::app(config().with_ttl(ttl), store.clone());
    (Browser::new(nex_testkit::http::serve(app).await), store)
}

async fn sign_in(b: &Browser) {
    support::sign_in(b).await;
    assert!(b.get("/dashboard").await.body.contains("Signed in as"));
}

/// The dashboard of a browser without a live session redirects to /login; what /login then says.
async fn dashboard_then_login(b: &Browser) -> String {
    let page = b.get("/dashboard").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")));
    b.get("/login").await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_ttl_the_login_page_says_the_session_expired() {
    let stores = store_urls("expired");
    for url in &stores.urls {
        let (b, _store) = serve(url, Duration::from_secs(1)).await;
        sign_in(&b).await;
        // Let the TTL pass untouched (any visit would slide it), then come back.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let page = b.get("/dashboard").await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")), "{url}");
        let login = b.get("/login").await.body;
        assert!(login.contains(EXPIRED), "{url}: {login}");
        assert!(!login.contains(STRANGER), "{url}: one message, not two");
        // Coming straight to /login with the expired cookie says so too.
        let again = b.get("/login").await.body;
        assert!(again.contains(EXPIRED), "{url}: {again}");
        // Signing in again works and the message is gone.
        sign_in(&b).await;
        assert!(!b.get("/login").await.body.contains(EXPIRED), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_revocation_the_login_page_says_the_user_was_signed_out() {
    let stores = store_urls("revoked");
    for url in &stores.urls {
        let (b, store) = serve(url, Duration::from_secs(3600)).await;
        // Revoked by an operator: the store's `remove`, from outside the app.
        sign_in(&b).await;
        let signer = Signer::new(&SecretKeyBase::new(SECRET).unwrap(), "nex.session");
        let id = signer.verify(&b.cookie("_nex_session").unwrap(), None).unwrap();
        let key = SessionId::parse(std::str::from_utf8(&id).unwrap()).unwrap().store_key();
        store.remove(key).await.unwrap();
        let login = dashboard_then_login(&b).await;
        assert!(login.contains(REVOKED), "{url}: {login}");
        assert!(!login.contains(EXPIRED) && !login.contains(STRANGER), "{url}: {login}");

        // Signed out by another browser's logout, with a copied cookie.
        sign_in(&b).await;
        let other = b.clone_with_cookies(&b);
        let token = other.get("/dashboard").await.csrf_token();
        assert_eq!(other.post_form("/logout", &[("_csrf_token", &token)]).await.status, 303);
        let login = dashboard_then_login(&b).await;
        assert!(login.contains(REVOKED), "{url}: {login}");
        // The browser that logged out itself is simply a stranger now.
        let login = dashboard_then_login(&other).await;
        assert!(login.contains(STRANGER) && !login.contains(REVOKED), "{url}: {login}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_or_a_forged_cookie_gets_nothing_special() {
    let (b, _store) = serve("memory", Duration::from_secs(3600)).await;
    let login = b.get("/login").await.body;
    assert!(!login.contains(EXPIRED) && !login.contains(REVOKED), "{login}");
    let login = dashboard_then_login(&b).await;
    assert!(login.contains(STRANGER) && !login.contains(EXPIRED) && !login.contains(REVOKED), "{login}");

    let forged = Browser::new(b.addr());
    forged.set_cookie("_nex_session", "SFMyNTY.forged.cookie");
    let login = forged.get("/login").await.body;
    assert!(!login.contains(EXPIRED) && !login.contains(REVOKED), "{login}");
    let login = dashboard_then_login(&forged).await;
    assert!(login.contains(STRANGER), "{login}");
}
