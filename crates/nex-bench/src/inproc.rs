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
//! `--recorder` installs a Prometheus recorder (`metrics-exporter-prometheus`, as
//! the demo does) before the app is built, so nex-session's metrics are recorded:
//! the cost of the metrics with a recorder, against their cost without one.

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower_service::Service;

use crate::apps;

struct Options {
    variant: String,
    route: String,
    requests: usize,
    recorder: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options { variant: "nex-memory".into(), route: "/read".into(), requests: 1000, recorder: false };
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--variant" => opts.variant = value()?,
            "--route" => opts.route = value()?,
            "--requests" => opts.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--recorder" => opts.recorder = true,
            _ => {
                return Err(
                    "usage: nex-bench inproc [--variant NAME] [--route /read|/write] [--requests N] [--recorder]"
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
        // `with_state` turns the handlers into services once, as `axum::serve` does.
        let mut app = apps::build(&variant.kind).await?.with_state(());
        let cookie = match apps::sends_session_sized_cookie(variant.name) {
            true => apps::session_sized_cookie(),
            false => sign_in(&mut app).await?,
        };
        for _ in 0..=opts.requests {
            let response = app.call(request("GET", &opts.route, Some(&cookie))?).await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("{} answered {}", opts.route, response.status()));
            }
        }
        Ok(())
    })
}

/// `POST /login` through `app`: the cookie to send from then on (`nex=none` when
/// the variant sets none, as bare axum).
pub(crate) async fn sign_in(app: &mut axum::Router) -> Result<String, String> {
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
