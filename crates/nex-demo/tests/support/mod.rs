//! Demo test support: the demo on a real loopback port (through the workspace's
//! one HTTP harness, `nex_testkit::http`), and the headless-Chromium driver.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod process;
pub mod webdriver;

use std::net::SocketAddr;
use std::sync::Arc;

use nex_session::store::MemoryStore;
use nex_session::token::SecretKeyBase;
use nex_session::SessionConfig;

pub const SECRET: &str = "demo-test-secret-demo-test-secret-0123";

pub fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new(SECRET).unwrap()).with_secure_cookie(false)
}

/// Serves the demo app on 127.0.0.1 (a free port) until the runtime ends.
pub async fn serve_demo(config: SessionConfig) -> SocketAddr {
    nex_testkit::http::serve(nex_demo::app(config, Arc::new(MemoryStore::new()))).await
}

/// Visits /login for a CSRF token, as a browser does, then posts the demo account's
/// email with `password`.
pub async fn sign_in_with(b: &nex_testkit::http::Browser, password: &str) -> nex_testkit::http::Reply {
    let token = b.get("/login").await.csrf_token();
    b.post_form("/login", &[("email", "demo@example.com"), ("password", password), ("_csrf_token", &token)]).await
}

/// Signs in with the demo account; the answer must be the redirect to the dashboard.
pub async fn sign_in(b: &nex_testkit::http::Browser) {
    let page = sign_in_with(b, "nex-demo").await;
    assert_eq!(page.location.as_deref(), Some("/dashboard"));
}
