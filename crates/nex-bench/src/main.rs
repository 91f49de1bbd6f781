//! `nex-bench`: req/s and server CPU per request of one axum app, bare and with
//! `SessionLayer`, measured in one run with the variants interleaved round by round.
//!
//! ```sh
//! cargo run --release -p nex-bench -- --rounds 5 --seconds 5
//! ```
//!
//! Each server runs on its own one-thread tokio runtime; the load comes from `wrk`
//! (`apt-get install wrk`) with 32 connections on the other core, or from the
//! in-repo client when wrk is missing. Ratios are taken within a round (variant
//! req/s over bare req/s of the same round), then the median over rounds, so a
//! noisy machine moves both sides together.

mod apps;
mod load;
mod server;

use std::fmt::Write as _;
use std::time::Duration;

use load::LoadResult;
use server::Server;

struct Options {
    rounds: usize,
    seconds: u64,
    connections: usize,
    out: String,
    variants: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        rounds: 5,
        seconds: 5,
        connections: 32,
        out: "target/bench/http.md".into(),
        variants: ["bare", "nex-memory", "nex-sqlite", "nex-redis"].map(String::from).to_vec(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => opts.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--seconds" => opts.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => opts.connections = value()?.parse().map_err(|e| format!("--connections: {e}"))?,
            "--out" => opts.out = value()?,
            "--variants" => opts.variants = value()?.split(',').map(str::to_owned).collect(),
            "--help" | "-h" => return Err("usage: nex-bench [--rounds N] [--seconds S] [--connections C] [--variants bare,nex-memory,nex-sqlite,nex-redis] [--out FILE]".into()),
            other => return Err(format!("unknown argument {other}")),
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
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let servers: Vec<(&'static str, Server)> = apps::variants()
        .into_iter()
        .filter(|v| opts.variants.iter().any(|name| name == v.name))
        .map(|v| (v.name, Server::start(v.name, v.store)))
        .collect();
    let mut cookies = Vec::new();
    for (name, server) in &servers {
        let cookie =
            load::login(server.addr).unwrap_or_else(|e| panic_free_exit(&format!("{name}: login failed: {e}")));
        println!("{name}: http://{} cookie {cookie:?}", server.addr);
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
    let mut samples = Vec::new();
    // Warm-up: one short run per variant and route.
    for ((_, server), cookie) in servers.iter().zip(&cookies) {
        for route in ["/read", "/write"] {
            let _ = generator.run(server.addr, route, cookie, opts.connections, Duration::from_secs(1));
        }
    }
    for round in 0..opts.rounds {
        for route in ["/read", "/write"] {
            for ((variant, server), cookie) in servers.iter().zip(&cookies) {
                let cpu_before = server.cpu_time();
                let result = match generator.run(
                    server.addr,
                    route,
                    cookie,
                    opts.connections,
                    Duration::from_secs(opts.seconds),
                ) {
                    Ok(result) => result,
                    Err(e) => panic_free_exit(&format!("load run failed: {e}")),
                };
                let cpu = server.cpu_time().saturating_sub(cpu_before);
                let cpu_us_per_request = cpu.as_secs_f64() * 1e6 / result.requests.max(1) as f64;
                println!(
                    "round {round} {route:<6} {variant:<12} {:>9.0} req/s  {:>6.2} µs CPU/req  ({} errors)",
                    result.requests_per_sec, cpu_us_per_request, result.errors
                );
                samples.push(Sample { variant, route, round, result, cpu_us_per_request });
            }
        }
    }
    let report = report(&samples, &servers.iter().map(|(n, _)| *n).collect::<Vec<_>>(), &opts, generator.name());
    println!("\n{report}");
    if let Some(dir) = std::path::Path::new(&opts.out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&opts.out, &report) {
        Ok(()) => println!("written to {}", opts.out),
        Err(e) => eprintln!("could not write {}: {e}", opts.out),
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

fn report(samples: &[Sample], variants: &[&'static str], opts: &Options, generator: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| route | variant | median req/s | median ratio to bare (same round) | server CPU µs/request | added CPU µs/request |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
    for route in ["/read", "/write"] {
        let of = |variant: &'static str| samples.iter().filter(move |s| s.route == route && s.variant == variant);
        let bare_cpu = median(of("bare").map(|s| s.cpu_us_per_request).collect());
        for variant in variants {
            let rps = median(of(variant).map(|s| s.result.requests_per_sec).collect());
            let ratios = of(variant)
                .filter_map(|s| {
                    let bare = of("bare").find(|b| b.round == s.round)?;
                    Some(s.result.requests_per_sec / bare.result.requests_per_sec)
                })
                .collect();
            let cpu = median(of(variant).map(|s| s.cpu_us_per_request).collect());
            let _ = writeln!(
                out,
                "| `{route}` | {variant} | {rps:.0} | {:.3} | {cpu:.2} | {:+.2} |",
                median(ratios),
                cpu - bare_cpu
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} rounds × {} s per variant and route, interleaved; one-thread server; load: {generator}, {} connections.",
        opts.rounds, opts.seconds, opts.connections
    );
    out
}

fn panic_free_exit(message: &str) -> ! {
    eprintln!("nex-bench: {message}");
    std::process::exit(1)
}
