//! The apps several test suites drive: the shape of a login flow, as the demo has it.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use nex_session_core::csrf::CsrfLayer;
use nex_session_core::store::SessionStore;
use nex_session_core::{SessionConfig, SessionError, SessionLayer};

use crate::http::Browser;

fn text(r: Result<String, SessionError>) -> String {
    r.unwrap_or_else(|e| format!("error: {e}"))
}

/// The shape of a login flow, as the demo has it.
pub fn login_flow(store: Arc<dyn SessionStore>, config: SessionConfig) -> Router {
    Router::new()
        // An anonymous visit to a protected page: a flash, then a redirect.
        .route(
            "/dashboard",
            get(|| async {
                match nex_session_core::get::<String>("user").await {
                    Ok(Some(user)) => format!("dashboard of {user}"),
                    Ok(None) => {
                        text(nex_session_core::flash::put("error", "Please sign in.").await.map(|()| "redirect".into()))
                    }
                    Err(e) => format!("error: {e}"),
                }
            }),
        )
        // The login form: pending flashes, a CSRF token.
        .route(
            "/login",
            get(|| async {
                let flash = nex_session_core::flash::pop_all().await.unwrap();
                let token = nex_session_core::csrf::token().await.unwrap();
                format!(
                    "flash={}\n<input type=\"hidden\" name=\"_csrf_token\" value=\"{token}\">",
                    flash.values().cloned().collect::<Vec<_>>().join("|")
                )
            })
            .post(|body: String| async move {
                // "alice" signs in; anything else fails with a flash.
                if body.contains("user=alice") {
                    nex_session_core::renew().await.unwrap();
                    nex_session_core::put("user", "alice").await.unwrap();
                    "signed in".to_owned()
                } else {
                    text(nex_session_core::flash::put("error", "Invalid credentials").await.map(|()| "failed".into()))
                }
            }),
        )
        .route("/token", get(|| async { text(nex_session_core::csrf::token().await) }))
        // A form rendered before the request's first write (an anonymous cart).
        .route(
            "/token-then-put",
            get(|| async {
                let token = nex_session_core::csrf::token().await.unwrap();
                nex_session_core::put("cart", vec!["book"]).await.unwrap();
                token
            }),
        )
        .route(
            "/big-flash",
            get(|| async { text(nex_session_core::flash::put("error", "x".repeat(3000)).await.map(|()| "ok".into())) }),
        )
        .route("/logout", post(|| async { text(nex_session_core::clear().await.map(|()| "bye".into())) }))
        .route(
            "/counter",
            post(|| async { text(nex_session_core::update("n", 0u64, |n| n + 1).await.map(|n| n.to_string())) }),
        )
        .route("/plain", get(|| async { "no session used" }))
        .route(
            "/cached",
            get(|| async {
                nex_session_core::put("seen", true).await.unwrap();
                ([(axum::http::header::CACHE_CONTROL, "public, max-age=60")], "handler's own caching")
            }),
        )
        .layer(CsrfLayer::new())
        .layer(SessionLayer::with_shared_store(store, config))
}

/// Drives the anonymous flow `rounds` times, each as a new visitor, the way a
/// flood does: protected page, login form, failed login.
pub async fn anonymous_flood(addr: std::net::SocketAddr, rounds: usize) {
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
