//! `nex-demo`: serves the demo on `http://127.0.0.1:4000` (env `HOST`, `PORT`; the store:
//! `NEX_SESSION_STORE`, default `memory`, bounded by `NEX_SESSION_MAX_SESSIONS`, default 100000).
//! Logs go to stderr, filtered by `RUST_LOG` (default [`DEFAULT_LOG_FILTER`]);
//! `GET /metrics` serves Prometheus metrics and `GET /healthz` the store's health.

use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

/// What is logged when `RUST_LOG` is unset: start-up, warnings, and every store
/// error behind a 503 (the library and the demo log those at `error`).
const DEFAULT_LOG_FILTER: &str = "info";

#[tokio::main]
async fn main() {
    init_logging();
    if let Err(err) = run().await {
        eprintln!("nex-demo: {err}");
        std::process::exit(1);
    }
}

/// Installs the `tracing` subscriber: without one, the library's events (store
/// errors, the development-secret warning) and the demo's go nowhere.
fn init_logging() {
    let (filter, bad_rust_log) = match std::env::var_os(EnvFilter::DEFAULT_ENV) {
        None => (EnvFilter::new(DEFAULT_LOG_FILTER), None),
        Some(value) => match EnvFilter::try_from_default_env() {
            Ok(filter) => (filter, None),
            Err(err) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some((value, err))),
        },
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Some((value, err)) = bad_rust_log {
        tracing::warn!(?value, error = %err, "RUST_LOG is invalid; logging with the default filter {DEFAULT_LOG_FILTER:?}");
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Before the app records anything: `/metrics` shows everything from the start.
    if let Some(handle) = nex_demo::operations::prometheus() {
        nex_demo::operations::spawn_upkeep(handle);
    }
    let config = nex_demo::config_from_env()?;
    let store = nex_demo::store_from_env().await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 4000,
    };
    let addr: SocketAddr =
        format!("{host}:{port}").parse().map_err(|_| format!("HOST={host:?} is not an IP address"))?;
    // Built before binding: a configuration the session layer refuses exits 1 here.
    let app = nex_demo::try_app(config.clone(), store)?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, secure_cookie = config.secure_cookie(), "nex-demo listening");
    println!("nex-demo listening on http://{addr}  (sign in as demo@example.com / nex-demo)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
