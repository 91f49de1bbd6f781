//! `nex-bench update --store URL [--sessions N]`: what one `update` of a field
//! costs on a store, when no chain is on that field (the usual case in an app with
//! many sessions: each shard of the group commit holds one chain at a time).
//!
//! Per round, two fresh sessions are written. One is loaded first, as a request
//! that reads its session before it updates a field: the store's client cache then
//! holds it, and the update starts from that copy. The other is updated without a
//! load, so the store reads the field before its compare-and-set. Each update is
//! timed alone, one after another (no concurrency). Prints a Markdown table of the
//! median and 90th percentile; the numbers are wall-clock times on this machine
//! (compare the two rows of one run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nex_session::store::{Change, Changes, Presence, SessionStore, UpdateAction};
use nex_session::token::now_ms;
use nex_session::{SessionId, StoreKey};

/// The options of `nex-bench update`.
#[derive(Debug, PartialEq)]
struct Options {
    url: String,
    sessions: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut url = None;
    let mut sessions = 500;
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let value = rest.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--store" => url = Some(value.clone()),
            "--sessions" => sessions = value.parse().map_err(|e| format!("--sessions: {e}"))?,
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    let url = url.ok_or("--store URL is required")?;
    if sessions == 0 {
        return Err("--sessions must be at least 1".into());
    }
    Ok(Options { url, sessions })
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let open = nex_session::store::OpenOptions::new().create_missing(true);
        let store: Arc<dyn SessionStore> =
            nex_session::store::open_with(&options.url, open).await.map_err(|e| format!("{}: {e}", options.url))?;
        let (mut loaded, mut unloaded) = (Vec::new(), Vec::new());
        for _ in 0..options.sessions {
            let (first, second) = (fresh(&*store).await?, fresh(&*store).await?);
            store.load(first).await.map_err(|e| e.to_string())?;
            loaded.push(timed_update(&*store, first).await?);
            unloaded.push(timed_update(&*store, second).await?);
        }
        println!("| one `update`, no chain on the field ({} each) | median | 90th percentile |", options.sessions);
        println!("|---|---:|---:|");
        for (what, times) in [("after a load (client cache holds the session)", loaded), ("without a load", unloaded)] {
            let (median, p90) = percentiles(times);
            println!("| {what} | {} | {} |", micros(median), micros(p90));
        }
        Ok(())
    })
}

/// A new session with one field, as a sign-in writes it.
async fn fresh(store: &dyn SessionStore) -> Result<StoreKey, String> {
    let key = SessionId::generate().map_err(|e| e.to_string())?.store_key();
    let mut changes = Changes::new();
    changes.insert("visits".to_owned(), Change::Put(b"0".to_vec()));
    store.apply(key, &changes, now_ms() + 3_600_000, Presence::New).await.map_err(|e| e.to_string())?;
    Ok(key)
}

/// Times one increment of the session's `visits`.
async fn timed_update(store: &dyn SessionStore, key: StoreKey) -> Result<Duration, String> {
    let mut plus_one = |current: Option<&[u8]>| {
        let n: u64 = current.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
        UpdateAction::Set((n + 1).to_string().into_bytes())
    };
    let started = Instant::now();
    store
        .update(key, "visits", &mut plus_one, now_ms() + 3_600_000, Presence::Existing)
        .await
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

/// The median and the 90th percentile (nearest rank) of `times`.
fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| {
        let rank = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len().max(1));
        times.get(rank - 1).copied().unwrap_or_default()
    };
    (at(0.5), at(0.9))
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_line;

    #[test]
    fn the_options_need_a_store_and_a_positive_count() {
        let parsed = parse(&command_line("update", &["--store", "memory", "--sessions", "3"]));
        assert_eq!(parsed, Ok(Options { url: "memory".into(), sessions: 3 }));
        assert_eq!(parse(&command_line("update", &[])), Err("--store URL is required".into()));
        assert!(parse(&command_line("update", &["--store", "memory", "--sessions", "0"])).is_err());
        assert!(parse(&command_line("update", &["--rounds", "3"])).is_err());
    }

    #[test]
    fn percentiles_are_nearest_ranks() {
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(percentiles((1..=10).rev().map(ms).collect()), (ms(5), ms(9)));
        assert_eq!(percentiles(vec![ms(7)]), (ms(7), ms(7)));
        assert_eq!(percentiles(Vec::new()), (Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn a_run_on_the_memory_store_updates_every_session() {
        assert_eq!(run(&command_line("update", &["--store", "memory", "--sessions", "5"])), Ok(()));
    }
}
