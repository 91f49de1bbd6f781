//! The session layer wrapped around a whole router (`Layer::layer(&layer, router)`,
//! served with `ServiceExt::<Request>::into_make_service`) instead of applied to
//! its routes with `Router::layer`: the same sessions (the extractor, the ambient
//! API, a fallback, a nested part with its own session layer and a `CsrfLayer`),
//! over real HTTP on 127.0.0.1.
//! (The mounting the README's "Sessions in an axum app" recommends for speed.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::SocketAddr;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Router, ServiceExt};
use nex_session::csrf::CsrfLayer;
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
    // A part with its own session layer (cookie `admin_session`) and CSRF
    // protection, on its routes, inside the site's layer around the router.
    let admin = Router::new()
        .route("/who", get(|session: Session| async move { session.cookie_name().to_owned() }))
        .route("/form", get(|| async { nex_session::csrf::token().await.unwrap() }))
        .route(
            "/site-user",
            post(|| async {
                let site: Option<String> = nex_session::named("_nex_session")?.get("user").await?;
                nex_session::put("seen_site_user", site.clone()).await?;
                Ok::<_, SessionError>(format!("{site:?}"))
            }),
        )
        .layer((SessionLayer::memory(config().with_cookie_name("admin_session")), CsrfLayer::new()));
    // Requests no route matches pass the layer too: this fallback reads the session.
    let not_found = || async {
        let user: Option<String> = nex_session::get("user").await.unwrap_or_default();
        (StatusCode::NOT_FOUND, format!("no such page, {user:?}"))
    };
    Router::new()
        .route("/login", post(login))
        .route("/whoami", get(whoami))
        .route("/count", post(count))
        .nest("/admin", admin)
        .fallback(not_found)
}

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new("around-the-router-around-the-router").unwrap()).with_secure_cookie(false)
}

/// Serves `routes()` inside the session layer on a free loopback port.
async fn serve_around() -> SocketAddr {
    let app = SessionLayer::new(MemoryStore::new(), config()).layer(routes());
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

    // A path no route matches still passes the layer: the fallback sees the session,
    // and its answer is marked as depending on the cookie.
    let missing = browser.get("/no-such-page").await;
    assert_eq!((missing.status, missing.body.as_str()), (404, "no such page, Some(\"alice\")"));
    assert_eq!(missing.header("vary").as_deref(), Some("Cookie"));

    // The nested part's own session layer is the innermost one, its CSRF layer finds
    // it, and the site's session stays reachable by name.
    let who = browser.get("/admin/who").await;
    assert_eq!((who.status, who.body.as_str()), (200, "admin_session"));
    let token = browser.get("/admin/form").await.body;
    assert_eq!(browser.post_with_headers("/admin/site-user", &[]).await.status, 403, "no CSRF token");
    let site_user = browser.post_with_headers("/admin/site-user", &[("x-csrf-token", &token)]).await;
    assert_eq!((site_user.status, site_user.body.as_str()), (200, "Some(\"alice\")"));
    assert!(site_user.set_cookies.iter().any(|c| c.starts_with("admin_session=")), "{:?}", site_user.set_cookies);

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
