//! The benchmarked app, bare and with nex-session: same routes, same bodies.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::routing::{get, post};
use axum::Router;
use nex_session::token::SecretKeyBase;
use nex_session::{SessionConfig, SessionError, SessionLayer};

/// Builds one variant's router.
pub(crate) type MakeApp = fn() -> Router;

/// Every variant the harness knows, by name.
pub(crate) const VARIANTS: &[(&str, MakeApp)] = &[("bare", bare), ("nex-memory", nex_memory)];

/// No session layer: the ceiling.
pub(crate) fn bare() -> Router {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    Router::new()
        .route("/login", post(|| async { "ok" }))
        .route("/read", get(|| async { format!("user {}", std::hint::black_box(42u64)) }))
        .route(
            "/write",
            post(|| async { format!("counter {}", COUNTER.fetch_add(1, Ordering::Relaxed) + 1) })
                .get(|| async { format!("counter {}", COUNTER.fetch_add(1, Ordering::Relaxed) + 1) }),
        )
}

/// `SessionLayer` with the in-memory store.
pub(crate) fn nex_memory() -> Router {
    let secret = SecretKeyBase::new("benchmark-secret-benchmark-secret-benchmark")
        .unwrap_or_else(|_| SecretKeyBase::development());
    nex_routes().layer(SessionLayer::memory(SessionConfig::new(secret).with_secure_cookie(false)))
}

fn nex_routes() -> Router {
    async fn login() -> Result<&'static str, SessionError> {
        nex_session::put("user_id", 42u64).await?;
        nex_session::put("counter", 0u64).await?;
        Ok("ok")
    }
    async fn read() -> Result<String, SessionError> {
        let user: Option<u64> = nex_session::get("user_id").await?;
        Ok(format!("user {}", user.unwrap_or(0)))
    }
    async fn write() -> Result<String, SessionError> {
        let n = nex_session::update("counter", 0u64, |n| n + 1).await?;
        Ok(format!("counter {n}"))
    }
    Router::new().route("/login", post(login)).route("/read", get(read)).route("/write", post(write).get(write))
}
