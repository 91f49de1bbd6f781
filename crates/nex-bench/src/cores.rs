//! `nex-bench cores`: does the layer scale with cores? Requests run in process
//! (no sockets, so no kernel time to share) on a multi-thread tokio runtime with
//! one worker thread, then with more, and the throughput of each is compared.
//!
//! Every task signs in first and then sends only its own cookie, as browsers
//! do: a layer that serializes requests on a global lock or a shared atomic
//! shows up as a ratio well under the number of workers. Bare axum, run the same
//! way, gives the ceiling this machine allows (other tenants of a shared host
//! take their share of the cores too).
//!
//! ```sh
//! cargo build --release -p nex-bench
//! target/release/nex-bench cores --variants bare,nex-memory --route /read --seconds 2 --rounds 5
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apps;
use crate::inproc::{request, sign_in, AppService};

#[derive(Debug)]
struct Options {
    variants: Vec<String>,
    route: String,
    seconds: f64,
    rounds: usize,
    workers: Vec<usize>,
    tasks_per_worker: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        variants: vec!["bare".into(), "nex-memory".into()],
        route: "/read".into(),
        seconds: 2.0,
        rounds: 5,
        workers: vec![1, 2],
        tasks_per_worker: 4,
    };
    let usage =
        "usage: nex-bench cores [--variants a,b] [--route /read|/write] [--seconds S] [--rounds N] [--workers 1,2]";
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value; {usage}"))?;
        let list = || value.split(',').map(str::to_owned).collect::<Vec<_>>();
        match arg.as_str() {
            "--variants" => opts.variants = list(),
            "--route" => opts.route = value.clone(),
            "--seconds" => opts.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--rounds" => opts.rounds = value.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--workers" => {
                opts.workers = list()
                    .iter()
                    .map(|w| w.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--workers: {e}"))?;
            }
            _ => return Err(usage.into()),
        }
    }
    Ok(opts)
}

/// Runs each variant with each worker count, interleaved round by round, and
/// prints requests per second and the ratio to one worker (median over rounds).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let variants = apps::variants();
    println!(
        "in-process {} on a multi-thread runtime, {} tasks per worker, {} s x {} rounds; host: {}",
        opts.route,
        opts.tasks_per_worker,
        opts.seconds,
        opts.rounds,
        crate::host::describe()
    );
    println!("| variant | workers | requests/s (median) | vs 1 worker (median of per-round ratios) |");
    println!("|---|---:|---:|---:|");
    let mut ceilings = Vec::new();
    for name in &opts.variants {
        let variant = variants.iter().find(|v| v.name == name).ok_or_else(|| format!("unknown variant {name:?}"))?;
        // One list of per-round rates per worker count, in the order of `opts.workers`.
        let mut rates: Vec<(usize, Vec<f64>)> = opts.workers.iter().map(|w| (*w, Vec::new())).collect();
        for _ in 0..opts.rounds {
            for (workers, list) in &mut rates {
                list.push(measure(&variant.kind, &opts, *workers)?);
            }
        }
        // The ratios are taken against the first of `--workers` (`base` workers).
        let (base, first) = rates.first().map_or((1, Vec::new()), |(workers, list)| (*workers, list.clone()));
        for (workers, list) in &rates {
            let ratios: Vec<f64> = list.iter().zip(&first).map(|(r, one)| r / one).collect();
            let ratio = median(&ratios);
            println!("| {name} | {workers} | {:.0} | {ratio:.2} |", median(list));
            if name == "bare" {
                ceilings.extend(ceiling_warning(base, *workers, ratio));
            }
        }
    }
    for warning in ceilings {
        println!("\n{warning}");
    }
    Ok(())
}

/// A warning when bare axum, which shares nothing between its workers, scales
/// far below the worker count (`bare_ratio`: its rate with `workers` over its
/// rate with `base` workers): then the host's CPUs may not run as separate cores
/// (hyperthreads of one core, a busy neighbour), and a variant's factor says
/// little on its own; compare it with bare axum's.
fn ceiling_warning(base: usize, workers: usize, bare_ratio: f64) -> Option<String> {
    // Worker counts are small: the quotient is exact enough for a warning.
    #[allow(clippy::cast_precision_loss)]
    let ideal = workers as f64 / base.max(1) as f64;
    (workers > base && bare_ratio < 0.75 * ideal).then(|| {
        format!(
            "note: bare axum reaches only {bare_ratio:.2}x with {workers} workers against {base} on this host, so \
             its CPUs may not scale as separate cores; compare each variant with bare axum, not with {ideal:.2}"
        )
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Requests per second of `route` with `workers` worker threads.
fn measure(kind: &apps::Kind, opts: &Options, workers: usize) -> Result<f64, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        match apps::build(kind).await? {
            apps::App::Routed(router) => load(router, opts, workers).await,
            apps::App::Around(service) => load(service, opts, workers).await,
        }
    })
}

/// Requests per second of `opts.route` through `app`, from `workers` ×
/// `tasks_per_worker` tasks, each with its own session.
async fn load<S>(app: S, opts: &Options, workers: usize) -> Result<f64, String>
where
    S: AppService + Clone + Send + 'static,
    S::Future: Send,
{
    let tasks = workers * opts.tasks_per_worker;
    let mut clients = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let mut app = app.clone();
        let cookie = sign_in(&mut app).await?;
        clients.push((app, cookie));
    }
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(opts.seconds);
    let handles: Vec<_> = clients
        .into_iter()
        .map(|(mut app, cookie)| {
            let (done, route) = (done.clone(), opts.route.clone());
            tokio::spawn(async move {
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let response = app.call(request("GET", &route, Some(&cookie))?).await.map_err(|e| e.to_string())?;
                    if !response.status().is_success() {
                        return Err(format!("{route} answered {}", response.status()));
                    }
                    count += 1;
                    // Let the other tasks of this worker in now and then.
                    if count.is_multiple_of(64) {
                        tokio::task::yield_now().await;
                    }
                }
                done.fetch_add(count, Ordering::Relaxed);
                Ok::<(), String>(())
            })
        })
        .collect();
    for handle in handles {
        handle.await.map_err(|e| e.to_string())??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        crate::command_line("cores", list)
    }

    #[test]
    fn options_parse_and_bad_ones_say_how() {
        let opts = parse(&args(&["--variants", "bare,nex-redis", "--workers", "1,4", "--route", "/write"])).unwrap();
        assert_eq!((opts.variants.len(), opts.workers.as_slice(), opts.route.as_str()), (2, &[1, 4][..], "/write"));
        assert!(parse(&args(&["--workers", "one"])).is_err());
        assert!(parse(&args(&["--rounds"])).unwrap_err().contains("needs a value"));
        assert!(parse(&args(&["--bogus", "1"])).unwrap_err().starts_with("usage"));
    }

    #[test]
    fn a_host_whose_cpus_do_not_scale_is_named() {
        assert!(ceiling_warning(1, 2, 1.25).unwrap().contains("only 1.25x with 2 workers against 1"));
        assert!(ceiling_warning(1, 2, 1.73).is_none());
        assert!(ceiling_warning(1, 1, 1.0).is_none());
        // Against 2 workers, 4 should give about 2x, not 4x.
        assert!(ceiling_warning(2, 4, 1.8).is_none());
        assert!(ceiling_warning(2, 4, 1.2).unwrap().contains("not with 2.00"));
    }

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
    }
}
