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
