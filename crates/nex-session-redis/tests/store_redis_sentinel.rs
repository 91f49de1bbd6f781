//! The Redis store through Redis Sentinel, against real processes: a master, a
//! replica and three sentinels on loopback, and a real failover (the master
//! killed, the sentinels promote the replica).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nex_session::store::{LoadNow, Presence, RedisOptions, RedisStore, SessionStore, UpdateAction};
use nex_session::{SessionId, StoreError, StoreKey};
use nex_testkit::SentinelSet;

fn options(prefix: &str) -> RedisOptions {
    RedisOptions { prefix: prefix.to_owned(), timeout: Duration::from_secs(1), ..RedisOptions::default() }
}

async fn increment(store: &RedisStore, key: StoreKey, later: i64) -> Result<u64, StoreError> {
    let mut value = 0;
    let mut plus_one = |cur: Option<&[u8]>| {
        let n: u64 = cur.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0);
        value = n + 1;
        UpdateAction::Set(value.to_string().into_bytes())
    };
    store.update(key, "n", &mut plus_one, later, Presence::Existing).await?;
    Ok(value)
}

async fn counter(store: &RedisStore, key: StoreKey) -> Result<u64, StoreError> {
    let found = store.load(key).await?.expect("the session survives the failover");
    Ok(String::from_utf8(found.fields["n"].clone()).unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_finds_the_master_and_passes_the_conformance_suite() {
    let set = SentinelSet::start();
    let store = Arc::new(RedisStore::open_with_options(&set.url(), options("nex:sentinel:")).await.unwrap());
    let endpoint = store.endpoint().unwrap();
    let master = set.master_port().unwrap();
    assert!(endpoint.contains(&format!("127.0.0.1:{master}")) && endpoint.contains("sentinel"), "{endpoint}");
    let can = nex_session::store::conformance::Capabilities::all().without_purge_counts();
    nex_session::store::conformance::run_all_with(store, can).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentinels_are_polled_on_one_kept_connection() {
    let set = SentinelSet::start();
    let store = RedisStore::open_with_options(&set.url(), options("nex:poll:")).await.unwrap();
    // Let the first polls settle, then count what five more seconds of polling cost.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = set.connections_received();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let opened = set.connections_received() - before;
    // Each of the 3 sentinels' own `INFO` asks above count once per call on their side too;
    // a connection per poll would add 5 more.
    assert!(opened <= 3 + 1, "{opened} connections in 5 s of polls: one per poll?");
    store.health().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_the_sentinels_do_not_know_is_a_start_up_error_that_says_so() {
    let set = SentinelSet::start();
    let url = set.url().replace(nex_testkit::sentinel::SERVICE, "no-such-service");
    let err = RedisStore::open_with_options(&url, options("nex:x:")).await.unwrap_err().to_string();
    assert!(err.contains("does not know the service name") && err.contains("no-such-service"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_master_dies_the_store_follows_the_promoted_replica_and_loses_no_replicated_increment() {
    let mut set = SentinelSet::start();
    let a = RedisStore::open_with_options(&set.url(), options("nex:failover:")).await.unwrap();
    let b = RedisStore::open_with_options(&set.url(), options("nex:failover:")).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 600_000;
    a.apply(key, &nex_session::store::conformance::fixtures::changes(&[("n", Some(&b"0"[..]))]), later, Presence::New)
        .await
        .unwrap();
    // Both instances increment, and read through their client caches.
    let mut acknowledged = 0;
    for round in 0..100 {
        let store = if round % 2 == 0 { &a } else { &b };
        acknowledged = increment(store, key, later).await.unwrap();
        assert_eq!(counter(&b, key).await.unwrap(), acknowledged);
    }
    // b's client cache holds the session now (read from the old master). A read
    // caches only if no invalidation came in while it ran, and the one for b's own
    // last write may arrive late on a loaded machine: read again until it sticks.
    let mut cached = LoadNow::Unknown;
    for _ in 0..50 {
        assert_eq!(counter(&b, key).await.unwrap(), acknowledged);
        cached = b.fast_reads().unwrap().load_now(key, nex_session::token::now_ms());
        if matches!(cached, LoadNow::Found(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(cached, LoadNow::Found(_)), "the client cache is on through Sentinel");
    assert_eq!(acknowledged, 100);
    set.wait_replicated(0);

    let old = set.servers[0].port;
    let killed_at = Instant::now();
    set.servers[0].stop();
    let new = set.await_failover(old, Duration::from_secs(30));
    assert_ne!(new, old);

    // Within 15 s of the kill, the same session is served and incremented again, on both instances.
    let mut errors = 0;
    let value = loop {
        match increment(&a, key, later).await {
            Ok(value) => break value,
            Err(err) => {
                errors += 1;
                assert!(killed_at.elapsed() < Duration::from_secs(15), "not back within 15 s: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Every increment acknowledged and replicated before the kill is counted (a
    // write whose outcome was unknown during the switch may have landed too).
    assert!(value > acknowledged, "{value} after {acknowledged} acknowledged");
    let deadline = Instant::now() + Duration::from_secs(15);
    let seen_by_b = loop {
        match counter(&b, key).await {
            Ok(n) => break n,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(err) => panic!("instance b did not follow the failover: {err}"),
        }
    };
    assert!(seen_by_b >= value, "b must read the new master: {seen_by_b} < {value}");
    // And b's client cache, filled from the old master before the kill, answers nothing older.
    let now = nex_session::token::now_ms();
    if let LoadNow::Found(snapshot) = b.fast_reads().unwrap().load_now(key, now) {
        let n: u64 = std::str::from_utf8(snapshot.get("n").unwrap()).unwrap().parse().unwrap();
        assert!(n >= value, "a cached value from before the failover: {n} < {value}");
    }
    let endpoint = a.endpoint().unwrap();
    assert!(endpoint.contains(&format!(":{new}")) && endpoint.contains("1 failover"), "{endpoint}");
    eprintln!("failover followed {:?} after the kill, {errors} failed attempts meanwhile", killed_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_switchover_is_followed_and_loses_nothing() {
    let set = SentinelSet::start();
    let store = RedisStore::open_with_options(&set.url(), options("nex:switch:")).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 600_000;
    let zero = nex_session::store::conformance::fixtures::changes(&[("n", Some(&b"0"[..]))]);
    store.apply(key, &zero, later, Presence::New).await.unwrap();
    for _ in 0..50 {
        increment(&store, key, later).await.unwrap();
    }
    let old = set.master_port().unwrap();
    // The old master stays up and becomes a replica: writes sent to it now meet
    // `READONLY`, which must make the store ask the sentinels at once. (Between the
    // promotion and that demotion the old master still takes writes, and drops them
    // at its resync: Redis' own window, which `min-replicas-to-write` bounds. This
    // test writes once the demotion is done.)
    set.failover();
    set.await_failover(old, Duration::from_secs(30));
    set.await_role(old, "slave", Duration::from_secs(30));
    let started = Instant::now();
    let value = loop {
        match increment(&store, key, later).await {
            Ok(value) => break value,
            Err(err) => {
                assert!(started.elapsed() < Duration::from_secs(15), "not back within 15 s: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // A planned switchover waits for the replica: every acknowledged increment is there.
    assert!(value >= 51, "{value}");
    let endpoint = store.endpoint().unwrap();
    assert!(!endpoint.contains(&format!(":{old} ")) && endpoint.contains("1 failover"), "{endpoint}");
}
