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
//!
//! Results go to `<out-dir>/results.md` and `<out-dir>/ratio.svg` (default `target/bench`).

mod apps;
mod chart;
mod load;
mod lost;
mod memory;
mod server;

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
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        rounds: 5,
        seconds: 5,
        connections: 32,
        out_dir: "target/bench".into(),
        variants: apps::variants().iter().map(|v| v.name.to_owned()).collect(),
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
            _ => {
                return Err("usage: nex-bench [--rounds N] [--seconds S] [--connections C] \
                     [--variants bare,nex-memory,nex-sqlite,nex-redis,ts-memory,ts-redis] [--out-dir DIR]\n\
                     \x20      nex-bench memory --store nex|ts [--sessions N]"
                    .into())
            }
        }
    }
    Ok(opts)
}

struct Sample {
    variant: &'static str,
    route: &'static str,
    round: usize,
    result: LoadResult,
    cpu_us_per_request: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("memory") {
        if let Err(e) = memory::run(&args) {
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
        let cookie = load::login(server.addr).unwrap_or_else(|e| exit(&format!("{name}: login failed: {e}")));
        cookies.push(cookie);
    }
    let generator = load::Generator::detect();
    println!(
        "load generator: {}, {} connections, {} s per run, {} rounds",
        generator.name(),
        opts.connections,
        opts.seconds,
        opts.rounds
    );
    for ((_, server), cookie) in servers.iter().zip(&cookies) {
        for route in ["/read", "/write"] {
            let _ = generator.run(server.addr, route, cookie, opts.connections, Duration::from_secs(1));
        }
    }
    let mut samples = Vec::new();
    for round in 0..opts.rounds {
        for route in ["/read", "/write"] {
            for ((variant, server), cookie) in servers.iter().zip(&cookies) {
                let cpu_before = server.cpu_time();
                let result = generator
                    .run(server.addr, route, cookie, opts.connections, Duration::from_secs(opts.seconds))
                    .unwrap_or_else(|e| exit(&format!("load run failed: {e}")));
                let cpu = server.cpu_time().saturating_sub(cpu_before);
                let cpu_us_per_request = cpu.as_secs_f64() * 1e6 / result.requests.max(1) as f64;
                println!(
                    "round {round} {route:<6} {variant:<12} {:>9.0} req/s  {:>7.2} µs CPU/req  ({} non-2xx)",
                    result.requests_per_sec, cpu_us_per_request, result.errors
                );
                samples.push(Sample { variant, route, round, result, cpu_us_per_request });
            }
        }
    }

    // 2. Lost updates.
    let mut lost_rows = Vec::new();
    for v in selected.iter().filter(|v| !matches!(v.kind, apps::Kind::Bare)) {
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
    for (variant, store) in [("nex-memory", "nex"), ("ts-memory", "ts")] {
        if !opts.variants.iter().any(|n| n == variant) {
            continue;
        }
        let exe = std::env::current_exe().unwrap_or_else(|e| exit(&e.to_string()));
        let out = std::process::Command::new(exe).args(["memory", "--store", store]).output();
        let bytes = out.ok().and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse::<f64>().ok());
        println!("memory {variant}: {bytes:?} bytes per idle session");
        memory_rows.push((variant, bytes));
    }

    let names: Vec<&'static str> = servers.iter().map(|(n, _)| *n).collect();
    let (report, chart_rows) = report(&samples, &names, &lost_rows, &memory_rows, &opts, generator.name());
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
) -> (String, Vec<(&'a str, f64, f64)>) {
    let mut out = String::new();
    let _ = writeln!(out, "### Throughput\n");
    let _ = writeln!(out, "| route | variant | median req/s | median ratio to bare (same round) | server CPU µs/request | added CPU µs/request |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
    let mut ratios_by_variant: Vec<(&'a str, f64, f64)> =
        variants.iter().filter(|v| **v != "bare").map(|v| (*v, 0.0, 0.0)).collect();
    for route in ["/read", "/write"] {
        let of = |variant: &str| {
            let variant = variant.to_owned();
            samples.iter().filter(move |s| s.route == route && s.variant == variant)
        };
        let bare_cpu = median(of("bare").map(|s| s.cpu_us_per_request).collect());
        for variant in variants {
            let rps = median(of(variant).map(|s| s.result.requests_per_sec).collect());
            let ratio = median(
                of(variant)
                    .filter_map(|s| {
                        let bare = of("bare").find(|b| b.round == s.round)?;
                        Some(s.result.requests_per_sec / bare.result.requests_per_sec)
                    })
                    .collect(),
            );
            let cpu = median(of(variant).map(|s| s.cpu_us_per_request).collect());
            let _ =
                writeln!(out, "| `{route}` | {variant} | {rps:.0} | {ratio:.3} | {cpu:.2} | {:+.2} |", cpu - bare_cpu);
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
        "\n{} rounds × {} s per variant and route, interleaved; one-thread server; load: {generator}, {} connections.\n",
        opts.rounds, opts.seconds, opts.connections
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

fn exit(message: &str) -> ! {
    eprintln!("nex-bench: {message}");
    std::process::exit(1)
}
