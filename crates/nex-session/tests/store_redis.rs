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
