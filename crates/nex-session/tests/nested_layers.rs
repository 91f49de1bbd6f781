//! Session layers and a `CsrfLayer` stacked directly on one service (a tuple of
//! layers, as tower's `ServiceBuilder` stacks them), over real HTTP on
//! 127.0.0.1. Stacked so, an inner layer is called before the outer one has set
//! its session as the ambient one; it must still find it (the layers find each
//! other through the ambient session, not the request's extensions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use nex_session::csrf::CsrfLayer;
use nex_session::token::SecretKeyBase;
use nex_session::{Session, SessionConfig, SessionError, SessionLayer};
use nex_testkit::http::{serve, Browser};

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new("test-secret-test-secret-test-secret-42").unwrap())
}

fn routes() -> Router {
    Router::new()
        .route("/who", get(|session: Session| async move { session.cookie_name().to_owned() }))
        .route("/form", get(|| async { nex_session::csrf::token().await.unwrap() }))
        .route(
            "/site/{k}",
            get(|Path(k): Path<String>| async move {
                let site = async { nex_session::named("_nex_session")?.get::<String>(&k).await };
                match site.await {
                    Ok(value) => format!("{value:?}"),
                    Err(err) => format!("error: {err}"),
                }
            }),
        )
        .route(
            "/site-put/{k}/{v}",
            post(|Path((k, v)): Path<(String, String)>| async move {
                nex_session::named("_nex_session")?.put(&k, v).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
}

#[tokio::test]
async fn layers_stacked_directly_find_the_session_around_them() {
    let site = SessionLayer::memory(config());
    let admin = SessionLayer::memory(config().with_cookie_name("admin_session"));
    let addr = serve(routes().layer((site, admin, CsrfLayer::new()))).await;
    let browser = Browser::new(addr);

    // The extractor gives the innermost layer's session.
    let who = browser.get("/who").await;
    assert_eq!((who.status, who.body.as_str()), (200, "admin_session"));
    // The CSRF layer, called before any session layer set its session, finds the innermost.
    let form = browser.get("/form").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let token = form.body;
    assert_eq!(browser.post_with_headers("/site-put/theme/dark", &[]).await.status, 403);
    let put = browser.post_with_headers("/site-put/theme/dark", &[("x-csrf-token", &token)]).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert!(put.set_cookies.iter().any(|c| c.starts_with("_nex_session=")), "{:?}", put.set_cookies);
    // The outer session, reached by name from inside, kept the write.
    assert_eq!(browser.get("/site/theme").await.body, "Some(\"dark\")");
}

#[tokio::test]
async fn a_csrf_layer_stacked_outside_the_session_layer_says_so() {
    let addr = serve(routes().layer((CsrfLayer::new(), SessionLayer::memory(config())))).await;
    let reply = Browser::new(addr).get("/who").await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("SessionLayer must wrap it"), "{}", reply.body);
}
