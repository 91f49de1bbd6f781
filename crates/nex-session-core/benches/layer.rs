//! In-process cost of `SessionLayer` per request (no network): the same axum
//! router bare and layered, driven with `oneshot` on a current-thread runtime.
//!
//! Run: `cargo bench -p nex-session --bench layer`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use nex_session::token::SecretKeyBase;
use nex_session::{SessionConfig, SessionLayer};
use tower::ServiceExt;

fn routes() -> Router {
    Router::new()
        .route(
            "/login",
            get(|| async {
                nex_session::put("user_id", 42u64).await.unwrap();
                "ok"
            }),
        )
        .route(
            "/read",
            get(|| async {
                let user: Option<u64> = nex_session::get("user_id").await.unwrap_or(None);
                format!("user {}", user.unwrap_or(0))
            }),
        )
        .route(
            "/write",
            get(|| async { format!("counter {}", nex_session::update("counter", 0u64, |n| n + 1).await.unwrap_or(0)) }),
        )
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let config = SessionConfig::new(SecretKeyBase::new([5u8; 40]).unwrap());
    // `with_state` turns the handlers into services once, as `axum::serve` does;
    // without it every `oneshot` would rebuild the route (and apply the layer) again.
    let layered = routes().layer(SessionLayer::memory(config)).with_state(());
    let bare = Router::new()
        .route("/read", get(|| async { format!("user {}", std::hint::black_box(42u64)) }))
        .route("/write", get(|| async { format!("counter {}", std::hint::black_box(1u64)) }))
        .with_state(());
    let login = rt.block_on(layered.clone().oneshot(Request::get("/login").body(Body::empty()).unwrap())).unwrap();
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let request = |path: &str| Request::get(path).header("cookie", &cookie).body(Body::empty()).unwrap();

    let mut group = c.benchmark_group("layer");
    for path in ["/read", "/write"] {
        group.bench_function(format!("bare{path}"), |b| {
            b.iter(|| rt.block_on(bare.clone().oneshot(request(path))).unwrap());
        });
        group.bench_function(format!("nex-memory{path}"), |b| {
            b.iter(|| rt.block_on(layered.clone().oneshot(request(path))).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
