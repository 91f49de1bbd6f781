//! `nex-bench batches [--variant NAME] [--seconds S] [--connections C]`: what a
//! durable store's hot write is made of under load. One server (one thread,
//! pinned as in the throughput runs) serves the write route to C connections for
//! S seconds, with a Prometheus recorder installed; the group commit's own
//! metrics then say how many updates each compare-and-set served
//! (`nex_session_update_batch_members`) and how long each took from send to
//! answer (`nex_session_update_batch_seconds`).
//!
//! From those, the cycle of one batch: its members' server time is the part
//! the store does not explain (see "What bounds a durable store's hot write"
//! in BENCHMARKS.md). The recorder adds a little CPU per request, so the rate
//! printed here is a little below the one of a throughput run.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

use crate::{apps, load, pin, server::Server};

/// The options of `nex-bench batches`.
#[derive(Debug, PartialEq)]
struct Options {
    variant: String,
    seconds: u64,
    connections: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options { variant: "nex-postgres".into(), seconds: 4, connections: 32 };
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let value = rest.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--variant" => options.variant = value.clone(),
            "--seconds" => options.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => options.connections = value.parse().map_err(|e| format!("--connections: {e}"))?,
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    if options.seconds == 0 || options.connections == 0 {
        return Err("--seconds and --connections must be at least 1".into());
    }
    Ok(options)
}

/// What one run measured.
#[derive(Debug)]
struct Measured {
    requests_per_sec: f64,
    cpu_us_per_request: f64,
    /// Times the server thread went to sleep, over the measured run.
    sleeps: f64,
    /// Batches, their members and their store time, over the measured run only.
    batches: f64,
    members: f64,
    batch_seconds: f64,
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let measured = measure(&options)?;
    let Measured { requests_per_sec, cpu_us_per_request, sleeps, batches, members, batch_seconds } = measured;
    if batches == 0.0 {
        return Err(format!("{}: no compare-and-set was sent (a store without a group commit?)", options.variant));
    }
    let per_batch = members / batches;
    let store_us = batch_seconds / batches * 1e6;
    let cycle_us = per_batch / requests_per_sec * 1e6;
    println!("| {} /write, {} connections | value |", options.variant, options.connections);
    println!("|---|---:|");
    println!("| requests/s (with a recorder) | {requests_per_sec:.0} |");
    println!("| server CPU per request | {cpu_us_per_request:.2} µs |");
    println!("| batches/s | {:.0} |", batches / options.seconds as f64);
    println!("| members per batch (mean) | {per_batch:.1} |");
    println!("| times the server thread slept, per batch | {:.1} |", sleeps / batches);
    println!("| compare-and-set, send to answer (mean) | {store_us:.0} µs |");
    println!("| one batch's cycle (members ÷ rate) | {cycle_us:.0} µs |");
    println!("| the cycle less the compare-and-set | {:.0} µs |", cycle_us - store_us);
    Ok(())
}

fn measure(options: &Options) -> Result<Measured, String> {
    let variant = apps::variants()
        .into_iter()
        .find(|v| v.name == options.variant)
        .ok_or(format!("no variant {}", options.variant))?;
    measure_variant(&variant, options)
}

/// [`measure`] on `variant`, whatever its name.
fn measure_variant(variant: &apps::Variant, options: &Options) -> Result<Measured, String> {
    let recorder = PrometheusBuilder::new().install_recorder().map_err(|e| format!("recorder: {e}"))?;
    let server = Server::start(variant.name, variant.kind.clone(), 1);
    let cookie = load::login(server.addr)?;
    let load_core = match pin::cores() {
        Ok(cores) => {
            server.pin(cores.server)?;
            Some(cores.load)
        }
        Err(_) => None,
    };
    let generator = load::Generator::detect();
    let (connections, seconds) = (options.connections, Duration::from_secs(options.seconds));
    // A warm-up, left out of the totals below.
    generator.run(server.addr, "/write", &cookie, connections, Duration::from_secs(1), load_core)?;
    let before = Totals::of(&recorder.render());
    let (cpu_before, sleeps_before) = (server.cpu_time(), server.sleeps());
    let result = generator.run(server.addr, "/write", &cookie, connections, seconds, load_core)?;
    let cpu = server.cpu_time().saturating_sub(cpu_before);
    let sleeps = server.sleeps().saturating_sub(sleeps_before);
    let after = Totals::of(&recorder.render());
    Ok(Measured {
        requests_per_sec: result.requests_per_sec,
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / result.requests.max(1) as f64,
        sleeps: sleeps as f64,
        batches: after.batches - before.batches,
        members: after.members - before.members,
        batch_seconds: after.seconds - before.seconds,
    })
}

/// The group commit's running totals, read from the Prometheus text.
#[derive(Debug, Default, PartialEq)]
struct Totals {
    batches: f64,
    members: f64,
    seconds: f64,
}

impl Totals {
    fn of(text: &str) -> Self {
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Self {
            batches: value("nex_session_update_batch_members_count"),
            members: value("nex_session_update_batch_members_sum"),
            seconds: value("nex_session_update_batch_seconds_sum"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_line;

    #[test]
    fn the_options_have_defaults_and_refuse_zero() {
        let parsed = parse(&command_line("batches", &[]));
        assert_eq!(parsed, Ok(Options { variant: "nex-postgres".into(), seconds: 4, connections: 32 }));
        let parsed = parse(&command_line("batches", &["--variant", "nex-redis", "--seconds", "2"]));
        assert_eq!(parsed, Ok(Options { variant: "nex-redis".into(), seconds: 2, connections: 32 }));
        assert!(parse(&command_line("batches", &["--connections", "0"])).is_err());
        assert!(parse(&command_line("batches", &["--rounds", "3"])).is_err());
    }

    #[test]
    fn the_totals_are_read_from_the_summaries_sums_and_counts() {
        let text = "# TYPE nex_session_update_batch_members summary\n\
            nex_session_update_batch_members{quantile=\"0.5\"} 32\n\
            nex_session_update_batch_members_sum 640\n\
            nex_session_update_batch_members_count 20\n\
            nex_session_update_batch_seconds_sum 0.008\n\
            nex_session_update_batch_seconds_count 20\n";
        assert_eq!(Totals::of(text), Totals { batches: 20.0, members: 640.0, seconds: 0.008 });
        assert_eq!(Totals::of(""), Totals::default(), "nothing recorded yet");
    }

    /// The whole run against a real SQLite file of its own in the temporary
    /// directory (removed after): 32 connections on one session's counter make
    /// batches of several members.
    #[test]
    fn a_run_on_sqlite_sees_batches_of_several_members() {
        let dir = std::env::temp_dir().join(format!("nex-bench-batches-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?locking=exclusive", dir.join("sessions.db").display());
        let variant = apps::Variant { name: "nex-sqlite-exclusive", kind: apps::Kind::Nex(url), default: false };
        let options = Options { variant: variant.name.into(), seconds: 1, connections: 32 };
        let measured = measure_variant(&variant, &options);
        let _ = std::fs::remove_dir_all(&dir);
        let measured = measured.expect("a run on a SQLite file");
        assert!(measured.requests_per_sec > 0.0, "{measured:?}");
        assert!(measured.batches >= 1.0, "{measured:?}");
        assert!(measured.members / measured.batches > 1.0, "32 writers share batches: {measured:?}");
        assert!(measured.batch_seconds > 0.0, "{measured:?}");
        assert!(measured.sleeps >= 1.0, "the thread waits for the file's answers: {measured:?}");
    }
}
