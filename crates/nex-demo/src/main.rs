//! `nex-demo`: serves the demo on `http://127.0.0.1:4000` (env `HOST`, `PORT`; the store:
//! `NEX_SESSION_STORE`, default `memory`, bounded by `NEX_SESSION_MAX_SESSIONS`, default 100000).

use std::net::SocketAddr;

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("nex-demo: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = nex_demo::config_from_env()?;
    let store = nex_demo::store_from_env().await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 4000,
    };
    let addr: SocketAddr =
        format!("{host}:{port}").parse().map_err(|_| format!("HOST={host:?} is not an IP address"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("nex-demo listening on http://{addr}  (sign in as demo@example.com / nex-demo)");
    axum::serve(listener, nex_demo::app(config, store))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
