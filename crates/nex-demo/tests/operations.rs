//! The operator's routes over real HTTP: `/metrics` in Prometheus text format
//! with nex-session's documented metrics, `/healthz` 200 while the store answers
//! and 503 (within the store's timeout) when Redis is down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nex_session::observe;
use nex_session::store::{MemoryStore, SessionStore};
use nex_testkit::http::Browser;
use nex_testkit::RedisServer;
use support::{config, sign_in};

async fn serve_on(store: Arc<dyn SessionStore>) -> Browser {
    Browser::new(nex_testkit::http::serve(nex_demo::app(config(), store)).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_shows_the_documented_session_metrics_after_some_requests() {
    let b = serve_on(Arc::new(MemoryStore::new())).await;
    sign_in(&b).await;
    sign_in(&b).await; // signed in already: the session gets a new id
    let token = b.get("/dashboard").await.csrf_token();
    assert_eq!(b.post_form("/counter", &[("_csrf_token", &token)]).await.status, 303);
    // A forged cookie, from another browser.
    let forger = Browser::new(b.addr());
    forger.set_cookie("_nex_session", "SFMyNTY.g2gDbQAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(forger.get("/").await.status, 200);

    let scrape = b.get("/metrics").await;
    assert_eq!(scrape.status, 200);
    assert!(scrape.content_type.as_deref().unwrap_or_default().starts_with("text/plain; version=0.0.4"));
    assert!(scrape.set_cookies.is_empty(), "a scrape never touches a session");
    let text = scrape.body;
    for line in [
        "# TYPE nex_session_created_total counter",
        "# TYPE nex_session_saved_total counter",
        "# TYPE nex_session_renewed_total counter",
        "# TYPE nex_session_store_operation_seconds histogram",
        "nex_session_loads_total{outcome=\"found\"}",
        "nex_session_cookies_rejected_total{reason=\"forged\"}",
        "nex_session_store_operation_seconds_bucket{store=\"memory\",operation=\"update\",le=\"0.001\"}",
        "# HELP nex_session_loads_total Sessions loaded",
    ] {
        assert!(text.contains(line), "{line:?} missing from /metrics:\n{text}");
    }
    // Every nex-session series is one of the documented metrics.
    for line in text.lines().filter(|l| l.starts_with("nex_session_")) {
        let name = line.split(['{', ' ']).next().unwrap();
        let base = ["_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
        assert!(observe::METRICS.iter().any(|m| m.name == base || m.name == name), "undocumented series {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_200_while_the_store_answers() {
    let b = serve_on(Arc::new(MemoryStore::new())).await;
    let health = b.get("/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(health.body.starts_with("ok: memory store answered in "), "{}", health.body);
    assert_eq!(health.header("cache-control").as_deref(), Some("no-store"));
    assert!(health.set_cookies.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_within_the_timeout_while_redis_is_down_and_200_when_it_is_back() {
    let mut server = RedisServer::start_private();
    let b = serve_on(nex_session::store::open(&server.url()).await.unwrap()).await;
    let up = b.get("/healthz").await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert!(up.body.starts_with("ok: redis store answered in "), "{}", up.body);

    server.stop();
    let started = Instant::now();
    let down = b.get("/healthz").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.starts_with("unavailable: redis store: "), "{}", down.body);
    assert!(started.elapsed() < Duration::from_millis(1600), "took {:?}", started.elapsed());
    let frozen_or_not = b.get("/metrics").await.body;
    assert!(
        frozen_or_not.contains("nex_session_store_errors_total{store=\"redis\",operation=\"health\""),
        "the failed check is counted:\n{frozen_or_not}"
    );

    server.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.get("/healthz").await.status != 200 {
        assert!(Instant::now() < deadline, "/healthz did not recover after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
