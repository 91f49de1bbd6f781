//! Load generation: wrk when installed, else a small in-repo HTTP/1.1 client.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

pub(crate) struct LoadResult {
    pub(crate) requests: u64,
    pub(crate) requests_per_sec: f64,
    pub(crate) errors: u64,
}

pub(crate) enum Generator {
    Wrk,
    InRepo,
}

impl Generator {
    pub(crate) fn detect() -> Self {
        let wrk = Command::new("wrk").arg("--version").output().is_ok();
        if wrk {
            Self::Wrk
        } else {
            Self::InRepo
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Wrk => "wrk (1 thread)",
            Self::InRepo => "in-repo hyper client (1 thread)",
        }
    }

    pub(crate) fn run(
        &self,
        addr: SocketAddr,
        route: &str,
        cookie: &str,
        connections: usize,
        duration: Duration,
        core: Option<usize>,
    ) -> Result<LoadResult, String> {
        match self {
            Self::Wrk => run_wrk(addr, route, cookie, connections, duration, core),
            Self::InRepo => {
                // A thread of its own, so pinning it leaves the main thread (and the
                // servers it starts later) free to run anywhere.
                let (route, cookie) = (route.to_owned(), cookie.to_owned());
                std::thread::spawn(move || {
                    if let (Some(core), Some(tid)) = (core, crate::pin::current_tid()) {
                        crate::pin::pin_thread(tid, core)?;
                    }
                    run_in_repo(addr, &route, &cookie, connections, duration)
                })
                .join()
                .map_err(|_| "the load thread panicked".to_owned())?
            }
        }
    }
}

fn run_wrk(
    addr: SocketAddr,
    route: &str,
    cookie: &str,
    connections: usize,
    duration: Duration,
    core: Option<usize>,
) -> Result<LoadResult, String> {
    let mut command = match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &core.to_string(), "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    let output = command
        .args(["-t1", &format!("-c{connections}"), &format!("-d{}s", duration.as_secs().max(1))])
        .args(["-H", &format!("Cookie: {cookie}")])
        .arg(format!("http://{addr}{route}"))
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .ok_or(format!("could not read wrk output: {text}"))?;
    let requests_per_sec = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or(format!("could not read wrk output: {text}"))?;
    let errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(LoadResult { requests, requests_per_sec, errors })
}

fn run_in_repo(
    addr: SocketAddr,
    route: &str,
    cookie: &str,
    connections: usize,
    duration: Duration,
) -> Result<LoadResult, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (route, cookie) = (route.to_owned(), cookie.to_owned());
            tasks.push(tokio::spawn(async move { connection_loop(addr, &route, &cookie, deadline).await }));
        }
        let (mut requests, mut errors) = (0, 0);
        for task in tasks {
            let (ok, bad) = task.await.map_err(|e| e.to_string())??;
            requests += ok + bad;
            errors += bad;
        }
        let elapsed = start.elapsed().as_secs_f64();
        Ok(LoadResult { requests, requests_per_sec: requests as f64 / elapsed, errors })
    })
}

async fn connection_loop(addr: SocketAddr, route: &str, cookie: &str, deadline: Instant) -> Result<(u64, u64), String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let (mut ok, mut bad) = (0, 0);
    while Instant::now() < deadline {
        let request = hyper::Request::get(route)
            .header("host", addr.to_string())
            .header("cookie", cookie)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let success = response.status().is_success();
        let _ = response.into_body().collect().await;
        if success {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    Ok((ok, bad))
}

/// Creates a session (POST /login) and returns its cookie as `name=value`
/// (`nex=none` for the bare app, which sets none, so every variant gets a Cookie header).
pub(crate) fn login(addr: SocketAddr) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = hyper::Request::post("/login")
            .header("host", addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .next()
            .unwrap_or_else(|| "nex=none".to_owned());
        Ok(cookie)
    })
}
