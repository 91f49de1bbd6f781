//! `nex-bench`: nex-session against bare axum and tower-sessions, measured in one
//! run with the variants interleaved round by round.
//!
//! ```sh
//! cargo run --release -p nex-bench -- --rounds 5 --seconds 5
//! ```
//!
//! 1. **Throughput**: each variant's server runs on its own one-thread tokio runtime;
//!    the load comes from `wrk` (`apt-get install wrk`) with 32 connections on the
//!    other core, or from the in-repo client when wrk is missing. Ratios are taken
//!    within a round (variant req/s over bare req/s of the same round), then the
//!    median over rounds, so a noisy machine moves both sides together. Server CPU
//!    time per request comes from the server thread's `/proc` counters.
//! 2. **Lost updates**: 200 concurrent puts of distinct keys and 200 concurrent
//!    increments on one session, with 1 and 2 server threads.
//! 3. **Memory**: resident bytes per idle session after creating 100,000 sessions in
//!    each memory store, each in a fresh process (`nex-bench memory --store nex|ts`).
//! 4. **Instructions** (on demand): `nex-bench inproc` runs requests in process for
//!    callgrind (see `inproc.rs`).
//! 5. **Per-user sessions at scale** (on demand): `nex-bench users --store URL`
//!    times a sign-in and a revoke-all against the sessions a user has (`users.rs`).
//! 6. **Cores** (on demand): `nex-bench cores` runs requests in process with one
//!    worker thread and with more, and compares the throughput (`cores.rs`).
//! 7. **One update** (on demand): `nex-bench update --store URL` times an `update`
//!    with no chain on its field, after a load and without one (`update.rs`).
//! 8. **Group-commit batches** (on demand): `nex-bench batches --variant NAME`
//!    serves the write route under load with a recorder installed and prints the
//!    members and store time of the group commit's batches (`batches.rs`).
//!
//! Results go to `<out-dir>/results.md` and `<out-dir>/ratio.svg` (default `target/bench`).

mod apps;
mod batches;
mod chart;
mod cores;
mod host;
mod inproc;
mod load;
mod lost;
mod memory;
mod passthrough;
mod pin;
mod server;
mod update;
mod users;

use std::fmt::Write as _;
use std::time::Duration;

use load::LoadResult;
use server::Server;

struct Options {
    rounds: usize,
    seconds: u64,
    connections: usize,
    out_dir: String,
    variants: Vec<String>,
    /// Pin the server thread and the load generator to separate cores.
    pin: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        rounds: 5,
        seconds: 5,
        connections: 32,
        out_dir: "target/bench".into(),
        variants: apps::variants().iter().filter(|v| v.default).map(|v| v.name.to_owned()).collect(),
        pin: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => opts.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--seconds" => opts.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => opts.connections = value()?.parse().map_err(|e| format!("--connections: {e}"))?,
            "--out-dir" => opts.out_dir = value()?,
            "--variants" => opts.variants = value()?.split(',').map(str::to_owned).collect(),
            "--no-pin" => opts.pin = false,
            _ => {
                return Err("usage: nex-bench [--rounds N] [--seconds S] [--connections C] \
                     [--variants bare,bare-cookie,bare-layer,nex-memory,nex-sqlite,nex-sqlite-exclusive,nex-redis,nex-postgres,nex-memory-around,nex-sqlite-around,nex-sqlite-exclusive-around,nex-redis-around,nex-postgres-around,ts-memory,ts-redis] [--out-dir DIR] [--no-pin]\n\
                     \x20      nex-bench memory --store nex|nex-bounded|ts [--sessions N]\n\
                     \x20      nex-bench inproc [--variant NAME] [--route /read|/write|/login] [--method GET|POST] [--requests N] [--concurrency C] [--recorder]\n\
                     \x20      nex-bench cores [--variants a,b] [--route /read|/write] [--seconds S] [--rounds N] [--workers 1,2]\n\
                     \x20      nex-bench update --store URL [--sessions N]\n\
                     \x20      nex-bench batches [--variant NAME] [--seconds S] [--connections C]"
                    .into())
            }
        }
    }
    Ok(opts)
}

struct Sample {
    variant: &'static str,
    route: &'static str,
    result: LoadResult,
    cpu_us_per_request: f64,
    /// The mean of the bare runs right before and after this one (`None` for bare itself).
    bare_rps: Option<f64>,
    /// Their mean server CPU µs per request.
    bare_cpu: Option<f64>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("memory") {
        if let Err(e) = memory::run(&args) {
            exit(&e);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("users") {
        if let Err(e) = users::run(&args) {
            exit(&e);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("cores") {
        if let Err(e) = cores::run(&args) {
            exit(&e);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("update") {
        if let Err(e) = update::run(&args) {
            exit(&e);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("batches") {
        if let Err(e) = batches::run(&args) {
            exit(&e);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("inproc") {
        if let Err(e) = inproc::run(&args) {
            exit(&e);
        }
        return;
    }
    let opts = parse_args(&args).unwrap_or_else(|e| exit(&e));
    let selected: Vec<apps::Variant> =
        apps::variants().into_iter().filter(|v| opts.variants.iter().any(|n| n == v.name)).collect();

    // 1. Throughput.
    let servers: Vec<(&'static str, Server)> =
        selected.iter().map(|v| (v.name, Server::start(v.name, v.kind.clone(), 1))).collect();
    let mut cookies = Vec::new();
    for (name, server) in &servers {
        let cookie = if apps::sends_session_sized_cookie(name) {
            apps::session_sized_cookie()
        } else {
            load::login(server.addr).unwrap_or_else(|e| exit(&format!("{name}: login failed: {e}")))
        };
        cookies.push(cookie);
    }
    let generator = load::Generator::detect();
    let cores = match (opts.pin, pin::cores()) {
        (false, _) => None,
        (true, Ok(cores)) => Some(cores),
        (true, Err(why)) => {
            println!("not pinning to cores: {why}");
            None
        }
    };
    if let Some(cores) = cores {
        for (name, server) in &servers {
            server.pin(cores.server).unwrap_or_else(|e| exit(&format!("{name}: {e}")));
        }
        println!("server threads pinned to core {}, load generator to core {}", cores.server, cores.load);
    }
    let load_core = cores.map(|c| c.load);
    println!(
        "load generator: {}, {} connections, {} s per run, {} rounds",
        generator.name(),
        opts.connections,
        opts.seconds,
        opts.rounds
    );
    for ((_, server), cookie) in servers.iter().zip(&cookies) {
        for route in ["/read", "/write"] {
            let _ = generator.run(server.addr, route, cookie, opts.connections, Duration::from_secs(1), load_core);
        }
    }
    let mut samples = Vec::new();
    let bare = servers.iter().position(|(name, _)| *name == "bare");
    for round in 0..opts.rounds {
        for route in ["/read", "/write"] {
            // bare, v1, bare, v2, …, bare: every variant is compared with the bare runs
            // right before and after it, so slow drifts of a shared machine cancel out.
            let mut measure = |index: usize| {
                let (Some((variant, server)), Some(cookie)) = (servers.get(index), cookies.get(index)) else {
                    exit("no such server")
                };
                let cpu_before = server.cpu_time();
                let result = generator
                    .run(server.addr, route, cookie, opts.connections, Duration::from_secs(opts.seconds), load_core)
                    .unwrap_or_else(|e| exit(&format!("load run failed: {e}")));
                let cpu = server.cpu_time().saturating_sub(cpu_before);
                let cpu_us_per_request = cpu.as_secs_f64() * 1e6 / result.requests.max(1) as f64;
                println!(
                    "round {round} {route:<6} {variant:<12} {:>9.0} req/s  {:>7.2} µs CPU/req  ({} non-2xx)",
                    result.requests_per_sec, cpu_us_per_request, result.errors
                );
                Sample { variant, route, result, cpu_us_per_request, bare_rps: None, bare_cpu: None }
            };
            let mut before = bare.map(&mut measure);
            for index in (0..servers.len()).filter(|i| Some(*i) != bare) {
                let mut sample = measure(index);
                let after = bare.map(&mut measure);
                if let (Some(b), Some(a)) = (&before, &after) {
                    sample.bare_rps = Some((b.result.requests_per_sec + a.result.requests_per_sec) / 2.0);
                    sample.bare_cpu = Some((b.cpu_us_per_request + a.cpu_us_per_request) / 2.0);
                }
                samples.push(sample);
                samples.extend(std::mem::replace(&mut before, after));
            }
            samples.extend(before);
        }
    }

    // 2. Lost updates.
    let mut lost_rows = Vec::new();
    for v in selected
        .iter()
        .filter(|v| !matches!(v.kind, apps::Kind::Bare | apps::Kind::BareSpin(_) | apps::Kind::BareLayer))
    {
        for threads in [1, 2] {
            let server = Server::start(v.name, v.kind.clone(), threads);
            match lost::check(server.addr) {
                Ok(s) => {
                    println!(
                        "lost updates {:<12} {threads} thread(s): {}/200 keys, {}/200 increments",
                        v.name, s.keys, s.increments
                    );
                    lost_rows.push((v.name, threads, Some(s)));
                }
                Err(e) => {
                    println!("lost updates {:<12} {threads} thread(s): failed: {e}", v.name);
                    lost_rows.push((v.name, threads, None));
                }
            }
        }
    }

    // 3. Memory per idle session, each store in a fresh process.
    let mut memory_rows = Vec::new();
    let stores = [
        ("nex-memory", "nex", "nex-memory, `MemoryStore::new()`"),
        ("nex-memory", "nex-bounded", "nex-memory, bounded (`store::open(\"memory\")`, the demo's)"),
        ("ts-memory", "ts", "ts-memory"),
    ];
    for (variant, store, label) in stores {
        if !opts.variants.iter().any(|n| n == variant) {
            continue;
        }
        let exe = std::env::current_exe().unwrap_or_else(|e| exit(&e.to_string()));
        let out = std::process::Command::new(exe).args(["memory", "--store", store]).output();
        let bytes = out.ok().and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse::<f64>().ok());
        println!("memory {store}: {bytes:?} bytes per idle session");
        memory_rows.push((label, bytes));
    }

    let names: Vec<&'static str> = servers.iter().map(|(n, _)| *n).collect();
    let (report, chart_rows) = report(&samples, &names, &lost_rows, &memory_rows, &opts, generator.name(), cores);
    println!("\n{report}");
    let _ = std::fs::create_dir_all(&opts.out_dir);
    let results = format!("{}/results.md", opts.out_dir);
    let chart = format!("{}/ratio.svg", opts.out_dir);
    for (path, text) in [(&results, report), (&chart, chart::ratio_chart(&chart_rows))] {
        match std::fs::write(path, text) {
            Ok(()) => println!("written to {path}"),
            Err(e) => eprintln!("could not write {path}: {e}"),
        }
    }
}

/// The first and third quartiles (linear interpolation), `NaN` when empty.
fn quartiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let pos = q * (values.len().max(1) - 1) as f64;
        let (low, high) = (pos.floor() as usize, pos.ceil() as usize);
        let (Some(a), Some(b)) = (values.get(low), values.get(high)) else { return f64::NAN };
        a + (b - a) * (pos - low as f64)
    };
    (at(0.25), at(0.75))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values.get(n / 2).copied().unwrap_or(f64::NAN),
        n => {
            (values.get(n / 2 - 1).copied().unwrap_or(f64::NAN) + values.get(n / 2).copied().unwrap_or(f64::NAN)) / 2.0
        }
    }
}

type LostRow = (&'static str, usize, Option<lost::Survived>);

fn report<'a>(
    samples: &[Sample],
    variants: &[&'a str],
    lost_rows: &[LostRow],
    memory_rows: &[(&str, Option<f64>)],
    opts: &Options,
    generator: &str,
    pinned: Option<pin::Cores>,
) -> (String, Vec<(&'a str, f64, f64)>) {
    let mut out = String::new();
    let _ = writeln!(out, "### Throughput\n");
    let _ = writeln!(
        out,
        "| route | variant | median req/s | median ratio to bare | ratio, middle half of runs | server CPU µs/request | added CPU µs/request (paired) |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    let mut ratios_by_variant: Vec<(&'a str, f64, f64)> =
        variants.iter().filter(|v| **v != "bare").map(|v| (*v, 0.0, 0.0)).collect();
    for route in ["/read", "/write"] {
        let of = |variant: &str| {
            let variant = variant.to_owned();
            samples.iter().filter(move |s| s.route == route && s.variant == variant)
        };
        for variant in variants {
            let rps = median(of(variant).map(|s| s.result.requests_per_sec).collect());
            let ratios: Vec<f64> = if *variant == "bare" {
                vec![1.0]
            } else {
                of(variant).filter_map(|s| Some(s.result.requests_per_sec / s.bare_rps?)).collect()
            };
            let ratio = median(ratios.clone());
            let (q1, q3) = quartiles(ratios);
            let cpu = median(of(variant).map(|s| s.cpu_us_per_request).collect());
            // Paired like the ratio: each run against the bare runs around it.
            let added = if *variant == "bare" {
                0.0
            } else {
                median(of(variant).filter_map(|s| Some(s.cpu_us_per_request - s.bare_cpu?)).collect())
            };
            let _ = writeln!(
                out,
                "| `{route}` | {variant} | {rps:.0} | {ratio:.3} | {q1:.3}–{q3:.3} | {cpu:.2} | {added:+.2} |"
            );
            if let Some(row) = ratios_by_variant.iter_mut().find(|r| r.0 == *variant) {
                if route == "/read" {
                    row.1 = ratio;
                } else {
                    row.2 = ratio;
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} rounds × {} s per run, each variant run between two bare runs (bare, v1, bare, v2, …, bare) and \
         compared with their mean; one-thread server{}; load: {generator}, {} connections; host: {}.\n",
        opts.rounds,
        opts.seconds,
        match pinned {
            Some(c) => format!(" pinned to core {}, load generator to core {}", c.server, c.load),
            None => String::new(),
        },
        opts.connections,
        host::describe()
    );
    let _ = writeln!(
        out,
        "### Lost updates (one session; 200 concurrent puts of distinct keys, then 200 concurrent increments)\n"
    );
    let _ = writeln!(out, "| variant | server threads | keys kept (of 200) | increments kept (of 200) |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (variant, threads, survived) in lost_rows {
        match survived {
            Some(s) => {
                let _ = writeln!(out, "| {variant} | {threads} | {} | {} |", s.keys, s.increments);
            }
            None => {
                let _ = writeln!(out, "| {variant} | {threads} | failed | failed |");
            }
        }
    }
    let _ = writeln!(out, "\n### Memory per idle session (one small key, 100,000 sessions, resident memory growth)\n");
    let _ = writeln!(out, "| store | bytes per session |");
    let _ = writeln!(out, "|---|---:|");
    for (variant, bytes) in memory_rows {
        match bytes {
            Some(b) => {
                let _ = writeln!(out, "| {variant} | {b:.0} |");
            }
            None => {
                let _ = writeln!(out, "| {variant} | failed |");
            }
        }
    }
    (out, ratios_by_variant)
}

/// A subcommand's argument list as `main` hands it over (`cores --rounds 3` is
/// `["cores", "--rounds", "3"]`), for the option parsers' tests.
#[cfg(test)]
pub(crate) fn command_line(subcommand: &str, list: &[&str]) -> Vec<String> {
    std::iter::once(subcommand).chain(list.iter().copied()).map(str::to_owned).collect()
}

fn exit(message: &str) -> ! {
    eprintln!("nex-bench: {message}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::{median, quartiles};

    #[test]
    fn median_and_quartiles_interpolate() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
        assert_eq!(quartiles(vec![5.0, 1.0, 4.0, 2.0, 3.0]), (2.0, 4.0));
        assert_eq!(quartiles(vec![1.0, 2.0, 3.0, 4.0]), (1.75, 3.25));
        assert_eq!(quartiles(vec![0.9]), (0.9, 0.9));
        let (q1, q3) = quartiles(Vec::new());
        assert!(q1.is_nan() && q3.is_nan());
    }
}
