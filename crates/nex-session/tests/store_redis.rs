//! The Redis store against real servers: a private redis-server and a private
//! 3-master Redis Cluster, started by the test and torn down after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nex_session::store::{conformance, Presence, RedisStore, SessionStore};
use nex_session::{SessionId, StoreError};
use nex_testkit::{single_node, RedisCluster, RedisServer};

/// A unique prefix, so tests sharing a server (env URL) never see each other's keys.
fn prefix(test: &str) -> String {
    format!("nex-test:{}:{test}:{}:", std::process::id(), nex_session::token::now_ms())
}

async fn store(url: &str, test: &str) -> Arc<dyn SessionStore> {
    Arc::new(RedisStore::open_with(url, &prefix(test), Duration::from_secs(1)).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_conformance_suite() {
    let (url, _server) = single_node();
    let can = conformance::Capabilities { purge_counts: false, list: true };
    conformance::run_all_with(store(&url, "conformance").await, can).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_passes_the_conformance_suite() {
    let cluster = RedisCluster::start();
    let store = Arc::new(RedisStore::open_with(&cluster.url(), "nex:c:", Duration::from_secs(2)).await.unwrap());
    let can = conformance::Capabilities { purge_counts: false, list: false };
    conformance::run_all_with(store.clone(), can).await;
    assert!(store.list(10).await.is_err(), "list on a cluster says it is unsupported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_redis_lose_no_update() {
    let (url, _server) = single_node();
    let p = prefix("two-servers");
    let a: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with(&url, &p, Duration::from_secs(1)).await.unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with(&url, &p, Duration::from_secs(1)).await.unwrap());
    common::two_servers_lose_nothing(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_cluster_lose_no_update() {
    let cluster = RedisCluster::start();
    let a: Arc<dyn SessionStore> =
        Arc::new(RedisStore::open_with(&cluster.url(), "nex:two:", Duration::from_secs(2)).await.unwrap());
    let b: Arc<dyn SessionStore> =
        Arc::new(RedisStore::open_with(&cluster.url(), "nex:two:", Duration::from_secs(2)).await.unwrap());
    common::two_servers_lose_nothing(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_applies_nothing_and_recovers_without_restart() {
    let mut server = RedisServer::start_private();
    let store = RedisStore::open_with(&server.url(), "nex:outage:", Duration::from_millis(500)).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let mut batch = std::collections::BTreeMap::new();
    batch.insert("a".to_owned(), Some(b"1".to_vec()));
    let later = nex_session::token::now_ms() + 60_000;
    store.apply(key, &batch, later, Presence::New).await.unwrap();

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.load(key).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_) | StoreError::Timeout(_)), "{err:?}");
        let mut b2 = batch.clone();
        b2.insert("b".to_owned(), Some(b"2".to_vec()));
        assert!(store.apply(key, &b2, later, Presence::Existing).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(2500), "failed in {:?}, not fast", started.elapsed());
    }

    server.start();
    // The connection heals in the background; within a few seconds calls succeed again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.load(key).await {
            Ok(loaded) => {
                // The private server keeps nothing on disk: the restart lost the data, and
                // nothing of the failed batch was half-applied.
                assert!(loaded.is_none() || !loaded.unwrap().fields.contains_key("b"));
                break;
            }
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("Redis is back but the store did not recover: {e}"),
        }
    }
    store.apply(key, &batch, later, Presence::New).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_value_never_hides_another_instances_write() {
    use nex_session::store::UpdateAction;
    let (url, _server) = single_node();
    let p = prefix("stale-cache");
    let a = RedisStore::open_with(&url, &p, Duration::from_secs(1)).await.unwrap();
    let b = RedisStore::open_with(&url, &p, Duration::from_secs(1)).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    let mut set = |_: Option<&[u8]>| UpdateAction::Set(b"1".to_vec());
    a.update(key, "f", &mut set, later, Presence::New).await.unwrap();
    // Another instance changes the field behind A's back.
    let mut batch = std::collections::BTreeMap::new();
    batch.insert("f".to_owned(), Some(b"2".to_vec()));
    b.apply(key, &batch, later, Presence::Existing).await.unwrap();
    let mut seen = Vec::new();
    let mut keep = |cur: Option<&[u8]>| {
        seen.push(cur.map(<[u8]>::to_vec));
        UpdateAction::Keep
    };
    a.update(key, "f", &mut keep, later, Presence::Existing).await.unwrap();
    assert_eq!(seen.last(), Some(&Some(b"2".to_vec())), "the final decision saw the store's value");
}

/// Polls `cond` every 10 ms for up to 5 s.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

fn one_field(name: &str, value: &[u8]) -> std::collections::BTreeMap<String, Option<Vec<u8>>> {
    std::iter::once((name.to_owned(), Some(value.to_vec()))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cache_answers_repeat_reads_and_drops_what_another_instance_changes() {
    let (url, _server) = single_node();
    let p = prefix("client-cache");
    let a = RedisStore::open_with(&url, &p, Duration::from_secs(1)).await.unwrap();
    let b = RedisStore::open_with(&url, &p, Duration::from_secs(1)).await.unwrap();
    assert!(a.client_cache_stats().is_some(), "Redis 6+ on one node: the client cache is on by default");
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    a.apply(key, &one_field("f", b"1"), later, Presence::New).await.unwrap();

    assert!(a.load_now(key).is_none(), "never read yet: not cached");
    assert_eq!(a.load(key).await.unwrap().unwrap().fields["f"], b"1");
    let (hits_before, _) = a.client_cache_stats().unwrap();
    for _ in 0..100 {
        let cached = a.load_now(key).expect("read once: answered from memory").unwrap().unwrap();
        assert_eq!(cached.fields["f"], b"1");
    }
    assert_eq!(a.client_cache_stats().unwrap().0 - hits_before, 100);

    // Another instance writes: Redis tells A, which drops its copy.
    b.apply(key, &one_field("f", b"2"), later, Presence::Existing).await.unwrap();
    assert!(eventually(|| a.load_now(key).is_none()).await, "the invalidation reached A");
    assert_eq!(a.load(key).await.unwrap().unwrap().fields["f"], b"2");
    // ... and so does a removal, an update and an expiry change by the other instance.
    assert!(a.load_now(key).is_some());
    let mut bump = |_: Option<&[u8]>| nex_session::store::UpdateAction::Set(b"3".to_vec());
    b.update(key, "f", &mut bump, later, Presence::Existing).await.unwrap();
    assert!(eventually(|| a.load_now(key).is_none()).await);
    assert_eq!(a.load(key).await.unwrap().unwrap().fields["f"], b"3");
    b.remove(key).await.unwrap();
    assert!(eventually(|| a.load_now(key).is_none()).await);
    assert!(a.load(key).await.unwrap().is_none());

    // A's own writes are visible to its next read at once, with no waiting.
    a.apply(key, &one_field("g", b"1"), later, Presence::New).await.unwrap();
    a.load(key).await.unwrap();
    a.apply(key, &one_field("g", b"2"), later, Presence::Existing).await.unwrap();
    assert!(a.load_now(key).is_none(), "own write: dropped before it was sent");
    assert_eq!(a.load(key).await.unwrap().unwrap().fields["g"], b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cache_is_dropped_when_redis_goes_away() {
    let mut server = RedisServer::start_private();
    let store = RedisStore::open_with(&server.url(), "nex:cache-outage:", Duration::from_millis(500)).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    store.apply(key, &one_field("f", b"1"), later, Presence::New).await.unwrap();
    store.load(key).await.unwrap();
    assert!(store.load_now(key).is_some());
    server.stop();
    assert!(eventually(|| store.load_now(key).is_none()).await, "a lost connection drops the cache");
    assert!(store.load(key).await.is_err(), "no cached answer while Redis is down: an honest error");
    server.start();
    // The restarted private server is empty: the session must not come back from memory.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.load(key).await {
            Ok(loaded) => break assert!(loaded.is_none(), "served a session Redis no longer has"),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("Redis is back but the store did not recover: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_without_client_cache_passes_the_conformance_suite() {
    let (url, _server) = single_node();
    let options =
        nex_session::store::RedisOptions { prefix: prefix("no-cache"), client_cache: 0, ..Default::default() };
    let store = RedisStore::open_with_options(&url, options).await.unwrap();
    assert!(store.client_cache_stats().is_none());
    let can = conformance::Capabilities { purge_counts: false, list: true };
    conformance::run_all_with(Arc::new(store), can).await;
}
