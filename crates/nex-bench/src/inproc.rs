//! `nex-bench inproc`: requests through a variant's app in process, without a
//! network, for counting instructions per request with callgrind.
//!
//! Instruction counts repeat exactly for the same binary and input, whatever the
//! rest of the machine is doing, so they show small changes of the layer's cost
//! that the HTTP runs (noisy on a shared machine) cannot. Run a variant with 0 and
//! with N requests; the difference of the two totals over N is the cost of one
//! request (the login, the warm-up request and the setup cancel out):
//!
//! ```sh
//! cargo build --release -p nex-bench
//! for n in 0 2000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/nex-bench inproc --variant nex-memory --route /read --requests $n 2>&1 | grep Collected
//! done
//! ```
//!
//! `--concurrency C` keeps C requests in flight at once (C tasks on the one
//! thread, as wrk's 32 connections are), so a hot write goes through the group
//! commit of the durable stores as under load: members join batches, wait, and
//! are woken. One request at a time, every `update` is a batch of one and pays the
//! whole store round trip, which no loaded server does. Instructions of other
//! threads (the SQLite store's connection thread) count too; the Redis and
//! PostgreSQL servers are other processes and do not. Under valgrind the program
//! runs some 50 times slower than the servers it talks to, so batch sizes differ
//! from a real run; the per-member costs (joining, waiting, waking) do not.
//!
//! ```sh
//! for n in 0 4000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/nex-bench inproc \
//!     --variant nex-sqlite-exclusive --route /write --requests $n --concurrency 32 2>&1 | grep Collected
//! done
//! ```
//!
//! `--route /login --method POST` measures buffered puts and their save at the end
//! of the request (the nex apps' login puts two fields into the signed-in session).
//!
//! `--recorder` installs a Prometheus recorder (`metrics-exporter-prometheus`, as
//! the demo does) before the app is built, so nex-session's metrics are recorded:
//! the cost of the metrics with a recorder, against their cost without one.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower_service::Service;

use crate::apps;

#[derive(Debug)]
struct Options {
    variant: String,
    route: String,
    /// The requests' method: `GET`, or `POST` for a route that only takes that
    /// (`/login` puts two fields: the cost of buffered puts and their save).
    method: String,
    requests: usize,
    recorder: bool,
    /// Requests in flight at once (tasks on the one thread), as wrk's connections:
    /// 1 runs them one after another.
    concurrency: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        variant: "nex-memory".into(),
        route: "/read".into(),
        method: "GET".into(),
        requests: 1000,
        recorder: false,
        concurrency: 1,
    };
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--variant" => opts.variant = value()?,
            "--route" => opts.route = value()?,
            "--method" => {
                opts.method = value()?;
                if opts.method != "GET" && opts.method != "POST" {
                    return Err("--method must be GET or POST".into());
                }
            }
            "--requests" => opts.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--recorder" => opts.recorder = true,
            "--concurrency" => {
                opts.concurrency = value()?.parse().map_err(|e| format!("--concurrency: {e}"))?;
                if opts.concurrency == 0 {
                    return Err("--concurrency must be at least 1".into());
                }
            }
            _ => {
                return Err(
                    "usage: nex-bench inproc [--variant NAME] [--route /read|/write|/login] [--method GET|POST] [--requests N] [--concurrency C] [--recorder]"
                        .into(),
                )
            }
        }
    }
    Ok(opts)
}

/// Runs `--requests` requests of `--route` (after a login and one warm-up request).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let variant = apps::variants()
        .into_iter()
        .find(|v| v.name == opts.variant)
        .ok_or_else(|| format!("unknown variant {:?}", opts.variant))?;
    // Kept alive for the run: the recorder's handle (the rendered text is never asked for).
    let _recorder = match opts.recorder {
        true => Some(PrometheusBuilder::new().install_recorder().map_err(|e| format!("--recorder: {e}"))?),
        false => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        match apps::build(&variant.kind).await? {
            apps::App::Routed(router) => drive(router, variant.name, &opts).await,
            apps::App::Around(service) => drive(service, variant.name, &opts).await,
        }
    })
}

/// Signs in (or takes the session-sized cookie), sends one warm-up request, then
/// `--requests` spread over `--concurrency` tasks.
async fn drive<S>(mut app: S, variant: &str, opts: &Options) -> Result<(), String>
where
    S: AppService + Clone + Send + 'static,
    S::Future: Send,
{
    let cookie = match apps::sends_session_sized_cookie(variant) {
        true => apps::session_sized_cookie(),
        false => sign_in(&mut app).await?,
    };
    // One warm-up request, then the rest spread over the tasks.
    send(&mut app, &opts.method, &opts.route, &cookie, 1).await?;
    let tasks: Vec<_> = (0..opts.concurrency)
        .map(|task| {
            let share = share(opts.requests, opts.concurrency, task);
            let (mut app, method, route, cookie) =
                (app.clone(), opts.method.clone(), opts.route.clone(), cookie.clone());
            tokio::spawn(async move { send(&mut app, &method, &route, &cookie, share).await })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// What `inproc` and `cores` drive: a variant's app, a router or a router inside
/// the session layer.
pub(crate) trait AppService:
    Service<Request<Body>, Response = axum::response::Response, Error = Infallible>
{
}

impl<S> AppService for S where S: Service<Request<Body>, Response = axum::response::Response, Error = Infallible> {}

/// Task `task`'s part of `requests` spread over `tasks` (the first ones take one
/// more when it does not divide evenly).
fn share(requests: usize, tasks: usize, task: usize) -> usize {
    requests / tasks + usize::from(task < requests % tasks)
}

/// Sends `count` requests of `route` with `cookie`, one after another.
async fn send<S: AppService>(app: &mut S, method: &str, route: &str, cookie: &str, count: usize) -> Result<(), String> {
    for _ in 0..count {
        let response = app.call(request(method, route, Some(cookie))?).await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{route} answered {}", response.status()));
        }
    }
    Ok(())
}

/// `POST /login` through `app`: the cookie to send from then on (`nex=none` when
/// the variant sets none, as bare axum).
pub(crate) async fn sign_in<S: AppService>(app: &mut S) -> Result<String, String> {
    let login = app.call(request("POST", "/login", None)?).await.map_err(|e| e.to_string())?;
    Ok(login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| "nex=none".to_owned()))
}

/// A request of `path` with no body, sending `cookie` if any.
///
/// The `Cookie` header is made as hyper makes every header it parses: a slice of
/// a shared read buffer (`BytesMut::split_to(..).freeze()`), so cloning it is a
/// counter increment, as in a real server. (A `HeaderValue` built from a `&str`
/// would allocate on its first clone, a cost no server request has.)
pub(crate) fn request(method: &str, path: &str, cookie: Option<&str>) -> Result<Request<Body>, String> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        let mut read_buffer = bytes::BytesMut::from(cookie.as_bytes());
        let parsed = read_buffer.split_to(cookie.len()).freeze();
        builder = builder.header("cookie", HeaderValue::from_maybe_shared(parsed).map_err(|e| e.to_string())?);
    }
    builder.body(Body::empty()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        crate::command_line("inproc", list)
    }

    #[test]
    fn the_requests_are_spread_over_the_tasks_without_losing_one() {
        for (requests, tasks) in [(10, 4), (4000, 32), (3, 8), (0, 5)] {
            let total: usize = (0..tasks).map(|task| share(requests, tasks, task)).sum();
            assert_eq!(total, requests, "{requests} over {tasks}");
        }
        assert_eq!(share(10, 4, 0), 3);
        assert_eq!(share(10, 4, 3), 2);
    }

    #[test]
    fn concurrent_requests_through_a_real_app_all_succeed() {
        // Bare axum needs no store server; every request must answer 2xx, or `run` fails.
        run(&args(&["--variant", "bare", "--route", "/write", "--requests", "40", "--concurrency", "8"])).unwrap();
        // The session layer around the router: signs in, then every update answers 2xx.
        run(&args(&["--variant", "nex-memory-around", "--route", "/write", "--requests", "40", "--concurrency", "4"]))
            .unwrap();
        // Buffered puts and their save: `POST /login` on a signed-in session.
        run(&args(&["--variant", "nex-memory", "--route", "/login", "--method", "POST", "--requests", "10"])).unwrap();
        assert!(parse(&args(&["--method", "PUT"])).unwrap_err().contains("GET or POST"));
        assert!(parse(&args(&["--concurrency", "0"])).unwrap_err().contains("at least 1"));
        assert!(parse(&args(&["--concurrency", "x"])).is_err());
    }
}
