//! The session layer wrapped around a whole router (`Layer::layer(&layer, router)`,
//! served with `ServiceExt::<Request>::into_make_service`) instead of applied to
//! its routes with `Router::layer`: the same sessions, over real HTTP on 127.0.0.1.
//! (The mounting the README's "Sessions in an axum app" recommends for speed.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::SocketAddr;

use axum::extract::Request;
use axum::routing::{get, post};
use axum::{Router, ServiceExt};
use nex_session::store::MemoryStore;
use nex_session::token::SecretKeyBase;
use nex_session::{Session, SessionConfig, SessionError, SessionLayer};
use nex_testkit::http::{Browser, HttpClient};
use tower_layer::Layer as _;

fn routes() -> Router {
    async fn login() -> Result<&'static str, SessionError> {
        nex_session::renew().await?;
        nex_session::put("user", "alice").await?;
        Ok("welcome")
    }
    // The extractor and the ambient API reach the same session.
    async fn whoami(session: Session) -> Result<String, SessionError> {
        let explicit: Option<String> = session.get("user").await?;
        let ambient: Option<String> = nex_session::get("user").await?;
        Ok(format!("{explicit:?} {ambient:?}"))
    }
    async fn count() -> Result<String, SessionError> {
        Ok(nex_session::update("n", 0u64, |n| n + 1).await?.to_string())
    }
    Router::new().route("/login", post(login)).route("/whoami", get(whoami)).route("/count", post(count))
}

/// Serves `routes()` inside the session layer on a free loopback port.
async fn serve_around() -> SocketAddr {
    let config = SessionConfig::new(SecretKeyBase::new("around-the-router-around-the-router").unwrap())
        .with_secure_cookie(false);
    let app = SessionLayer::new(MemoryStore::new(), config).layer(routes());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_around_the_router_keeps_sessions_as_one_on_its_routes() {
    let addr = serve_around().await;
    let browser = Browser::new(addr);
    assert_eq!(browser.get("/whoami").await.body, "None None");
    let login = browser.post_form("/login", &[]).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.session_cookie().is_some(), "login sets the session cookie");
    assert_eq!(browser.get("/whoami").await.body, "Some(\"alice\") Some(\"alice\")");

    // A path no route matches still passes the layer: a 404 that touches no session
    // sets no cookie and is not marked as depending on it.
    let missing = browser.get("/no-such-page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.set_cookies.is_empty(), "{:?}", missing.set_cookies);
    assert!(missing.header("vary").is_none(), "{:?}", missing.header("vary"));

    // Concurrent updates of one session through this mounting lose nothing.
    let cookie = browser.cookie("_nex_session").expect("the browser keeps the session cookie");
    let mut updates = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (client, cookie) = (HttpClient::new(addr), cookie.clone());
        updates.spawn(async move { client.post("/count", Some(&cookie)).await.status });
    }
    assert!(updates.join_all().await.iter().all(|status| *status == 200));
    assert_eq!(HttpClient::new(addr).post("/count", Some(&cookie)).await.body, "41");
}
