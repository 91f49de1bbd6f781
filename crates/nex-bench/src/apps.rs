//! The benchmarked app, bare and with nex-session: same routes, same bodies.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::routing::{get, post};
use axum::Router;
use nex_session::token::SecretKeyBase;
use nex_session::{SessionConfig, SessionError, SessionLayer};

/// A benchmarked variant: its name and, for nex-session, the store URL.
pub(crate) struct Variant {
    pub(crate) name: &'static str,
    pub(crate) store: Option<String>,
}

/// Every variant the harness knows. The Redis URL comes from `NEX_BENCH_REDIS_URL`
/// (default `redis://127.0.0.1:6379`).
pub(crate) fn variants() -> Vec<Variant> {
    let redis = std::env::var("NEX_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    vec![
        Variant { name: "bare", store: None },
        Variant { name: "nex-memory", store: Some("memory".into()) },
        Variant { name: "nex-sqlite", store: Some("sqlite://target/bench/nex-bench.db".into()) },
        Variant { name: "nex-redis", store: Some(redis) },
    ]
}

/// The router of a variant (inside the server's runtime, so stores can connect).
pub(crate) async fn build(variant_store: Option<&str>) -> Result<Router, String> {
    let Some(url) = variant_store else { return Ok(bare()) };
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    let store = nex_session::store::open(url).await.map_err(|e| format!("store {url}: {e}"))?;
    let secret = SecretKeyBase::new("benchmark-secret-benchmark-secret-benchmark")
        .unwrap_or_else(|_| SecretKeyBase::development());
    let config = SessionConfig::new(secret).with_secure_cookie(false);
    Ok(nex_routes().layer(SessionLayer::with_shared_store(store, config)))
}

/// No session layer: the ceiling.
fn bare() -> Router {
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
