//! The operator's routes: `GET /metrics` (Prometheus text format) and
//! `GET /healthz` (the session store's readiness). Both sit outside the session
//! and CSRF layers: a probe or a scrape never reads, writes or sets a session.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use nex_session::SessionLayer;

/// Buckets of the store latency histogram (seconds): 50 µs (memory, a client-cache
/// miss on loopback) up to the Redis store's 1 s timeout and past it.
const LATENCY_BUCKETS: [f64; 14] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// How often the recorder drains recorded histogram samples into its buckets
/// (also done before each scrape), so memory stays bounded between scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, installed on first use (a process has one
/// global recorder). `None` when another recorder was installed first: then
/// `/metrics` answers 503.
///
/// ```
/// let handle = nex_demo::operations::prometheus().expect("no other recorder in this process");
/// assert!(handle.render().is_empty() || handle.render().contains("# TYPE"));
/// ```
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let metric = Matcher::Full(nex_session::observe::STORE_OPERATION_SECONDS.to_owned());
            let builder = PrometheusBuilder::new().set_buckets_for_metric(metric, &LATENCY_BUCKETS);
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => {
                    nex_session::observe::describe_metrics();
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the Prometheus recorder could not be installed; /metrics is off");
                    None
                }
            }
        })
        .clone()
}

/// Drains the recorder's histogram samples every [`UPKEEP_INTERVAL`], for as
/// long as the runtime runs (the binary calls it once at start).
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// What the operator routes share.
#[derive(Clone)]
pub(crate) struct Operations {
    /// The app's session layer: its health check asks the same store the pages use.
    pub(crate) sessions: SessionLayer,
    pub(crate) metrics: Option<PrometheusHandle>,
}

/// `GET /metrics`: every metric of the process in Prometheus text format.
pub(crate) async fn metrics(State(ops): State<Operations>) -> Response {
    let Some(handle) = ops.metrics else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no Prometheus recorder in this process\n".to_owned());
    };
    handle.run_upkeep();
    let mut response = text(StatusCode::OK, handle.render());
    // The exposition format's media type, version 0.0.4.
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// `GET /healthz`: 200 when the session store answers, 503 when it does not,
/// within the store's timeout; the body says which store and how long it took.
pub(crate) async fn healthz(State(ops): State<Operations>) -> Response {
    let health = ops.sessions.health().await;
    // A failed check is logged (WARN) and counted by the library already.
    let status = if health.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    text(status, format!("{health}\n"))
}

fn text(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
