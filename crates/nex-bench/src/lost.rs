//! Lost-update check: on one session, 200 concurrent requests each putting its own
//! key, then 200 concurrent increments. A library that saves whole records at the
//! end of a request loses most of them.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// What survived: distinct keys (of 200) and the counter (of 200).
pub(crate) struct Survived {
    pub(crate) keys: u64,
    pub(crate) increments: u64,
}

/// One request on a fresh connection; returns status and body.
async fn request(addr: SocketAddr, method: &str, path: &str, cookie: &str) -> Result<(u16, String), String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut builder = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    if !cookie.is_empty() {
        builder = builder.header("cookie", cookie);
    }
    let response = sender
        .send_request(builder.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let set_cookie = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    // For /login the caller wants the cookie: return it in place of the body.
    Ok((status, if path == "/login" { set_cookie.unwrap_or_default() } else { body }))
}

/// Runs the check against a server.
pub(crate) fn check(addr: SocketAddr) -> Result<Survived, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let (_, set_cookie) = request(addr, "POST", "/login", "").await?;
        let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
        if cookie.is_empty() {
            return Err("login set no cookie".into());
        }
        let puts: Vec<_> = (0..200)
            .map(|i| {
                let cookie = cookie.clone();
                tokio::spawn(async move { request(addr, "POST", &format!("/put/k{i}"), &cookie).await })
            })
            .collect();
        for put in puts {
            put.await.map_err(|e| e.to_string())??;
        }
        let increments: Vec<_> = (0..200)
            .map(|_| {
                let cookie = cookie.clone();
                tokio::spawn(async move { request(addr, "POST", "/write", &cookie).await })
            })
            .collect();
        for inc in increments {
            inc.await.map_err(|e| e.to_string())??;
        }
        let (_, body) = request(addr, "GET", "/count", &cookie).await?;
        let mut parts = body.split_whitespace().map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(keys)), Some(Ok(increments))) => Ok(Survived { keys, increments }),
            _ => Err(format!("unexpected /count answer {body:?}")),
        }
    })
}
