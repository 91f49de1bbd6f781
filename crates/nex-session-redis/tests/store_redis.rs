//! The Redis store against real servers: a private redis-server and a private
//! 3-master Redis Cluster, started by the test and torn down after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nex_session::store::{conformance, Change, Changes, FastReads, LoadNow, Presence, RedisStore, SessionStore};
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
    let can = conformance::Capabilities::all().without_purge_counts();
    conformance::run_all_with(store(&url, "conformance").await, can).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_passes_the_conformance_suite() {
    let cluster = RedisCluster::start();
    let store = Arc::new(RedisStore::open_with(&cluster.url(), "nex:c:", Duration::from_secs(2)).await.unwrap());
    let can = conformance::Capabilities::all().without_purge_counts();
    conformance::run_all_with(store, can).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_redis_agree_on_users_and_revokes() {
    let (url, _server) = single_node();
    let p = prefix("users-two");
    let a: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with(&url, &p, Duration::from_secs(2)).await.unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with(&url, &p, Duration::from_secs(2)).await.unwrap());
    conformance::run_users(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_cluster_agree_on_users_and_revokes() {
    let cluster = RedisCluster::start();
    let a: Arc<dyn SessionStore> =
        Arc::new(RedisStore::open_with(&cluster.url(), "nex:users:", Duration::from_secs(2)).await.unwrap());
    let b: Arc<dyn SessionStore> =
        Arc::new(RedisStore::open_with(&cluster.url(), "nex:users:", Duration::from_secs(2)).await.unwrap());
    conformance::run_users(a, b).await;
}

/// The keys of one node whose names start with `prefix` (`SCAN`, not a cluster client).
fn keys_on(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let (mut cursor, mut out) = (0u64, Vec::new());
    loop {
        let scan = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(format!("{prefix}*")).arg("COUNT").arg(1000).clone();
        let (next, keys): (u64, Vec<String>) = scan.query(&mut conn).unwrap();
        out.extend(keys);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_without_a_user_write_nothing_to_any_index() {
    use nex_session::store::users::Binding;
    use nex_session::store::UpdateAction;
    let server = RedisServer::start_private();
    let p = "nex:unbound:";
    let store = RedisStore::open_with(&server.url(), p, Duration::from_secs(1)).await.unwrap();
    let later = nex_session::token::now_ms() + 60_000;
    let mut keys = Vec::new();
    for i in 0..20u8 {
        let key = SessionId::generate().unwrap().store_key();
        store.apply(key, &one_field("f", &[i]), later, Presence::New).await.unwrap();
        let mut set = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
        store.update(key, "g", &mut set, later, Presence::Existing).await.unwrap();
        assert!(store.touch(key, later).await.unwrap());
        let renewed = SessionId::generate().unwrap().store_key();
        assert!(store.rename(key, renewed, later).await.unwrap());
        keys.push(renewed);
    }
    store.remove(keys[0]).await.unwrap();
    let all = keys_on(&server.url(), p);
    assert_eq!(all.len(), 19, "one key per live session: {all:?}");
    assert!(all.iter().all(|k| !k.starts_with(&format!("{p}u:"))), "an unbound session touched an index: {all:?}");

    // Binding one makes exactly one index, named by a digest of the user id.
    let binding = Binding::new("alice@example.com", nex_session::token::now_ms(), None).unwrap();
    store.users().unwrap().bind(keys[1], &binding, later, None).await.unwrap();
    let indexes: Vec<String> =
        keys_on(&server.url(), p).into_iter().filter(|k| k.starts_with(&format!("{p}u:"))).collect();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    assert!(!indexes[0].contains("alice"), "a user id in a key name: {}", indexes[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_on_a_cluster_gathers_the_sessions_of_every_primary() {
    let cluster = RedisCluster::start();
    let p = "nex:list:";
    let store = RedisStore::open_with(&cluster.url(), p, Duration::from_secs(2)).await.unwrap();
    let later = nex_session::token::now_ms() + 60_000;
    let mut keys = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let key = SessionId::generate().unwrap().store_key();
        store.apply(key, &one_field("f", b"1"), later, Presence::New).await.unwrap();
        keys.insert(key);
    }
    // A bound session's index shares the prefix and is not listed as a session.
    let binding = nex_session::store::users::Binding::new("lister", later, None).unwrap();
    store.users().unwrap().bind(*keys.first().unwrap(), &binding, later, None).await.unwrap();
    for node in &cluster.nodes {
        assert!(!keys_on(&node.url(), p).is_empty(), "60 random sessions and none on the primary at {}", node.url());
    }
    let admin = store.admin().unwrap();
    let listed = admin.list(usize::MAX).await.unwrap();
    let listed_keys: std::collections::BTreeSet<_> = listed.iter().map(|s| s.key).collect();
    assert_eq!(listed_keys, keys, "every session of every primary, once each");
    assert_eq!(listed.len(), keys.len());
    assert!(listed.iter().all(|s| s.fields >= 1 && s.expires_at_ms > nex_session::token::now_ms()));
    assert_eq!(admin.list(7).await.unwrap().len(), 7, "the limit holds across primaries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_redis_lose_no_update() {
    let (url, _server) = single_node();
    let p = prefix("two-servers");
    // The timeout bounds each whole call, conflict retries included: 1000 increments
    // of one field racing across two instances on a busy machine need more than 1 s.
    let timeout = Duration::from_secs(3);
    let a: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with(&url, &p, timeout).await.unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with(&url, &p, timeout).await.unwrap());
    nex_testkit::store::two_servers_lose_nothing(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_cluster_lose_no_update() {
    let cluster = RedisCluster::start();
    let a: Arc<dyn SessionStore> =
        Arc::new(RedisStore::open_with(&cluster.url(), "nex:two:", Duration::from_secs(2)).await.unwrap());
    let b: Arc<dyn SessionStore> =
        Arc::new(RedisStore::open_with(&cluster.url(), "nex:two:", Duration::from_secs(2)).await.unwrap());
    nex_testkit::store::two_servers_lose_nothing(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_applies_nothing_and_recovers_without_restart() {
    let mut server = RedisServer::start_private();
    let store = RedisStore::open_with(&server.url(), "nex:outage:", Duration::from_millis(500)).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let mut batch = std::collections::BTreeMap::new();
    batch.insert("a".to_owned(), Change::Put(b"1".to_vec()));
    let later = nex_session::token::now_ms() + 60_000;
    store.apply(key, &batch, later, Presence::New).await.unwrap();

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.load(key).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_) | StoreError::Timeout(_)), "{err:?}");
        let mut b2 = batch.clone();
        b2.insert("b".to_owned(), Change::Put(b"2".to_vec()));
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
    batch.insert("f".to_owned(), Change::Put(b"2".to_vec()));
    b.apply(key, &batch, later, Presence::Existing).await.unwrap();
    let mut seen = Vec::new();
    let mut keep = |cur: Option<&[u8]>| {
        seen.push(cur.map(<[u8]>::to_vec));
        UpdateAction::Keep
    };
    a.update(key, "f", &mut keep, later, Presence::Existing).await.unwrap();
    assert_eq!(seen.last(), Some(&Some(b"2".to_vec())), "the final decision saw the store's value");
}

/// Whether the store answers a read of `key` from memory.
fn cached(store: &RedisStore, key: nex_session::StoreKey) -> bool {
    matches!(store.load_now(key, nex_session::token::now_ms()), LoadNow::Found(_))
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

fn one_field(name: &str, value: &[u8]) -> Changes {
    std::iter::once((name.to_owned(), Change::Put(value.to_vec()))).collect()
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

    assert!(!cached(&a, key), "never read yet: not cached");
    assert_eq!(a.load(key).await.unwrap().unwrap().fields["f"], b"1");
    let (hits_before, _) = a.client_cache_stats().unwrap();
    for _ in 0..100 {
        let LoadNow::Found(fields) = a.load_now(key, nex_session::token::now_ms()) else {
            panic!("read once: answered from memory")
        };
        assert_eq!(fields.get("f"), Some(&b"1"[..]));
    }
    assert_eq!(a.client_cache_stats().unwrap().0 - hits_before, 100);

    // Another instance writes: Redis tells A, which drops its copy.
    b.apply(key, &one_field("f", b"2"), later, Presence::Existing).await.unwrap();
    assert!(eventually(|| !cached(&a, key)).await, "the invalidation reached A");
    assert_eq!(a.load(key).await.unwrap().unwrap().fields["f"], b"2");
    // ... and so does a removal, an update and an expiry change by the other instance.
    assert!(cached(&a, key));
    let mut bump = |_: Option<&[u8]>| nex_session::store::UpdateAction::Set(b"3".to_vec());
    b.update(key, "f", &mut bump, later, Presence::Existing).await.unwrap();
    assert!(eventually(|| !cached(&a, key)).await);
    assert_eq!(a.load(key).await.unwrap().unwrap().fields["f"], b"3");
    b.remove(key).await.unwrap();
    assert!(eventually(|| !cached(&a, key)).await);
    assert!(a.load(key).await.unwrap().is_none());

    // A's own writes are visible to its next read at once, with no waiting.
    a.apply(key, &one_field("g", b"1"), later, Presence::New).await.unwrap();
    a.load(key).await.unwrap();
    a.apply(key, &one_field("g", b"2"), later, Presence::Existing).await.unwrap();
    assert!(!cached(&a, key), "own write: dropped before it was sent");
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
    assert!(cached(&store, key));
    server.stop();
    assert!(eventually(|| !cached(&store, key)).await, "a lost connection drops the cache");
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
    let can = conformance::Capabilities::all().without_purge_counts();
    conformance::run_all_with(Arc::new(store), can).await;
}

/// How many times Redis ran these commands so far, those inside scripts
/// included (`INFO commandstats`).
fn calls_of(url: &str, commands: &[&str]) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut conn).unwrap();
    info.lines()
        .filter(|l| commands.iter().any(|c| l.starts_with(&format!("cmdstat_{c}:"))))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// How many times Redis ran a script so far.
fn scripts_run(url: &str) -> u64 {
    calls_of(url, &["evalsha", "eval"])
}

async fn increment(store: &RedisStore, key: nex_session::StoreKey, later: i64) -> Result<(), StoreError> {
    use nex_session::store::UpdateAction;
    let mut plus_one = |cur: Option<&[u8]>| {
        let n: u64 = cur.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0);
        UpdateAction::Set((n + 1).to_string().into_bytes())
    };
    store.update(key, "n", &mut plus_one, later, Presence::Existing).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_field_are_group_committed_and_all_counted() {
    let server = RedisServer::start_private();
    let store = RedisStore::open_with(&server.url(), "nex:batch:", Duration::from_secs(2)).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    store.apply(key, &one_field("n", b"0"), later, Presence::New).await.unwrap();
    increment(&store, key, later).await.unwrap();
    let before = scripts_run(&server.url());
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { increment(&store, key, later).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let scripts = scripts_run(&server.url()) - before;
    assert_eq!(store.load(key).await.unwrap().unwrap().fields["n"], b"501");
    assert!(scripts < 500, "500 concurrent increments ran {scripts} scripts: no batching");
}

/// How many times Redis ran the commands of an update's read of one field.
fn field_reads(url: &str) -> u64 {
    calls_of(url, &["exists", "hget"])
}

/// An update of a session this instance has cached (the request loaded it)
/// starts from the cached copy: its script is its only round trip, without the
/// read of the field (`EXISTS` and `HGET`, one pipeline) that the same update
/// sends first when the store has no cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_of_a_cached_session_sends_no_read_before_its_script() {
    let server = RedisServer::start_private();
    let later = nex_session::token::now_ms() + 60_000;
    let cached_store = RedisStore::open_with(&server.url(), "nex:known:", Duration::from_secs(2)).await.unwrap();
    let options =
        nex_session::store::RedisOptions { prefix: "nex:known:".into(), client_cache: 0, ..Default::default() };
    let uncached_store = RedisStore::open_with_options(&server.url(), options).await.unwrap();
    // Loads the script into the server first (a fresh server answers the first `EVALSHA` with `NOSCRIPT`).
    let warm = SessionId::generate().unwrap().store_key();
    uncached_store.apply(warm, &one_field("n", b"0"), later, Presence::New).await.unwrap();
    increment(&uncached_store, warm, later).await.unwrap();
    let mut reads = Vec::new();
    for store in [&cached_store, &uncached_store] {
        let key = SessionId::generate().unwrap().store_key();
        store.apply(key, &one_field("n", b"41"), later, Presence::New).await.unwrap();
        // Loaded, as a request does; the cache answers once its first heartbeat is back.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert_eq!(store.load(key).await.unwrap().unwrap().fields["n"], b"41");
            if store.client_cache_stats().is_none() || cached(store, key) {
                break;
            }
            assert!(Instant::now() < deadline, "the client cache never held the session");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (before, scripts) = (field_reads(&server.url()), scripts_run(&server.url()));
        increment(store, key, later).await.unwrap();
        reads.push(field_reads(&server.url()) - before);
        assert_eq!(scripts_run(&server.url()) - scripts, 1, "one compare-and-set");
        assert_eq!(store.load(key).await.unwrap().unwrap().fields["n"], b"42");
    }
    // The script's own commands count too: the difference is the read.
    assert_eq!(reads[1] - reads[0], 2, "reads of the update with and without the cache: {reads:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_updates_never_strand_the_others_of_their_batch() {
    let (url, _server) = single_node();
    let store = RedisStore::open_with(&url, &prefix("cancel"), Duration::from_secs(2)).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    store.apply(key, &one_field("n", b"0"), later, Presence::New).await.unwrap();
    increment(&store, key, later).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { increment(&store, key, later).await })
        })
        .collect();
    for task in tasks.iter().step_by(5) {
        task.abort();
    }
    let mut done = 0u64;
    let started = Instant::now();
    for task in tasks {
        match task.await {
            Ok(result) => {
                result.unwrap();
                done += 1;
            }
            Err(e) => assert!(e.is_cancelled()),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(3), "members waited for a cancelled one");
    let n: u64 =
        String::from_utf8(store.load(key).await.unwrap().unwrap().fields["n"].clone()).unwrap().parse().unwrap();
    // Every acknowledged increment counts; a cancelled one may or may not have landed.
    assert!((1 + done..=201).contains(&n), "counter {n}, acknowledged {done}");
}

/// The counter `n` once Redis answers again (polled for up to 10 s).
async fn counter_once_back(store: &RedisStore, key: nex_session::StoreKey) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.load(key).await {
            Ok(found) => {
                let n = found.expect("the session").fields["n"].clone();
                return String::from_utf8(n).unwrap().parse().unwrap();
            }
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("Redis is back but the store did not recover: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_against_a_frozen_redis_never_report_an_applied_write_as_not_applied() {
    let server = RedisServer::start_private();
    let timeout = Duration::from_secs(1);
    let store = RedisStore::open_with(&server.url(), "nex:frozen-update:", timeout).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    store.apply(key, &one_field("n", b"0"), later, Presence::New).await.unwrap();
    // A chain on the field: the next increments are group-committed, batch after batch.
    increment(&store, key, later).await.unwrap();

    server.freeze();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = increment(&store, key, later).await;
                (result, started.elapsed())
            })
        })
        .collect();
    let (mut unknown, mut not_applied, mut slowest) = (0u64, 0u64, Duration::ZERO);
    for task in tasks {
        let (result, took) = task.await.unwrap();
        slowest = slowest.max(took);
        let err = result.expect_err("nothing is answered while Redis is frozen");
        if err.may_have_applied() {
            assert!(matches!(err, StoreError::OutcomeUnknown(_)), "{err:?}");
            unknown += 1;
        } else {
            assert!(matches!(err, StoreError::Timeout(_) | StoreError::Unavailable(_)), "{err:?}");
            not_applied += 1;
        }
    }
    server.thaw();
    // Redis now runs what it was sent while frozen; the store's connection reads after it.
    let applied = counter_once_back(&store, key).await - 1;
    eprintln!(
        "frozen Redis, 20 concurrent updates, timeout {timeout:?}: slowest error after {slowest:?}; \
         {unknown} outcome unknown, {not_applied} not applied; {applied} applied once Redis resumed"
    );
    assert!(
        applied <= unknown,
        "{applied} writes applied, but only {unknown} errors said they might have: a retry would double-apply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_stops_the_client_cache_from_answering_within_seconds() {
    let server = RedisServer::start_private();
    let store = RedisStore::open_with(&server.url(), "nex:frozen-cache:", Duration::from_secs(1)).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    store.apply(key, &one_field("f", b"1"), later, Presence::New).await.unwrap();
    store.load(key).await.unwrap();
    assert!(cached(&store, key), "warm: answered from memory");

    server.freeze();
    let frozen = Instant::now();
    // No invalidation can arrive now; the cache must notice the silence.
    let limit = Duration::from_secs(10);
    while cached(&store, key) {
        assert!(frozen.elapsed() < limit, "still answering from memory {limit:?} after Redis froze");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("frozen Redis: the client cache stopped answering {:?} after the freeze", frozen.elapsed());
    assert!(store.load(key).await.is_err(), "no answer from memory: an honest error while Redis is frozen");

    server.thaw();
    let back = Instant::now() + Duration::from_secs(10);
    loop {
        if store.load(key).await.is_ok() && cached(&store, key) {
            break;
        }
        assert!(Instant::now() < back, "the cache did not come back after Redis did");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connections Redis has open, the asking one included (`CLIENT LIST`).
fn connected_clients(url: &str) -> usize {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
    list.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_closes_its_connections_and_stops_its_heartbeat() {
    let server = nex_testkit::redis::RedisServer::start_private();
    let before = connected_clients(&server.url());
    let store = RedisStore::open(&server.url()).await.unwrap();
    assert!(store.client_cache_stats().is_some(), "the client cache is on");
    assert!(connected_clients(&server.url()) > before);
    drop(store);
    // The heartbeat notices within a beat; allow generously for a loaded machine.
    let mut now = connected_clients(&server.url());
    for _ in 0..100 {
        if now == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = connected_clients(&server.url());
    }
    assert_eq!(now, before, "the store's connections outlived it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_redis_refuses_is_not_applied_never_outcome_unknown() {
    let server = nex_testkit::redis::RedisServer::start_private();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    // Out of memory: Redis refuses every write with -OOM before running it.
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1").query(&mut admin).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("noeviction").query(&mut admin).unwrap();
    let id = SessionId::generate().unwrap();
    let mut changes = Changes::new();
    changes.insert("k".into(), Change::Put(b"1".to_vec()));
    let later = nex_session::token::now_ms() + 60_000;
    let err = store.apply(id.store_key(), &changes, later, Presence::New).await.unwrap_err();
    assert!(err.to_string().contains("OOM"), "{err}");
    assert!(!err.may_have_applied(), "Redis refused the write, so it was not applied: {err}");
    let keys: u64 = redis::cmd("DBSIZE").query(&mut admin).unwrap();
    assert_eq!(keys, 0);
}

/// A live session bound to `user` in `store`.
async fn bound(store: &RedisStore, user: &str) -> nex_session::StoreKey {
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    store.apply(key, &one_field("f", b"1"), later, Presence::New).await.unwrap();
    let binding = nex_session::store::users::Binding::new(user, nex_session::token::now_ms(), None).unwrap();
    let bound = store.users().unwrap().bind(key, &binding, later, None).await.unwrap();
    assert_eq!(bound, nex_session::store::WriteOutcome::Done);
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_cut_short_by_a_frozen_redis_is_unconfirmed_and_a_retry_finishes_it() {
    use nex_session::store::Keep;
    let server = RedisServer::start_private();
    let store = RedisStore::open_with(&server.url(), "nex:frozen-revoke:", Duration::from_millis(500)).await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(bound(&store, "frozen").await);
    }
    let users = store.users().unwrap();
    server.freeze();
    let started = Instant::now();
    let err = users.revoke_all("frozen", Keep::None).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "a revoke against a frozen Redis took {:?}", started.elapsed());
    assert!(err.may_have_applied(), "the revoke was sent: its outcome is unknown, {err:?}");
    server.thaw();
    // Whatever part of it Redis ran once thawed, running it again removes every session.
    let deadline = Instant::now() + Duration::from_secs(10);
    let revoked = loop {
        match users.revoke_all("frozen", Keep::None).await {
            Ok(revoked) => break revoked,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("Redis is back but the revoke still fails: {e}"),
        }
    };
    assert!(revoked <= 5);
    for key in &keys {
        assert_eq!(store.load(*key).await.unwrap(), None, "a session survived the retried revoke");
    }
    assert!(users.sessions("frozen").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_on_one_instance_empties_the_client_cache_of_another() {
    use nex_session::store::Keep;
    let (url, _server) = single_node();
    let p = prefix("revoke-cache");
    let a = RedisStore::open_with(&url, &p, Duration::from_secs(1)).await.unwrap();
    let b = RedisStore::open_with(&url, &p, Duration::from_secs(1)).await.unwrap();
    let key = bound(&a, "cached").await;
    let other = bound(&a, "someone-else").await;
    b.load(key).await.unwrap();
    b.load(other).await.unwrap();
    assert!(cached(&b, key) && cached(&b, other), "read on B: answered from B's memory");
    // B reads the user's index too, so Redis tells B when it changes.
    assert_eq!(b.users().unwrap().sessions("cached").await.unwrap().len(), 1);
    assert_eq!(a.users().unwrap().revoke_all("cached", Keep::None).await.unwrap(), 1);
    assert!(eventually(|| !cached(&b, key)).await, "B kept serving a revoked session from memory");
    assert!(b.load(key).await.unwrap().is_none());
    // The index changed before the session was deleted, so B has heard of both.
    assert!(cached(&b, other), "a change of an index dropped unrelated sessions from B's cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_all_wins_over_racing_renews_round_after_round() {
    let (url, _server) = single_node();
    let p = prefix("race-rounds");
    let cluster = RedisCluster::start();
    for (url, p) in [(url.clone(), p.as_str()), (cluster.url(), "nex:race:")] {
        let a: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with(&url, p, Duration::from_secs(2)).await.unwrap());
        let b: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with(&url, p, Duration::from_secs(2)).await.unwrap());
        // Each round races 16 sessions' writes, updates and renews with one revoke.
        for _ in 0..5 {
            conformance::revoke_all_wins_over_racing_requests(a.clone(), b.clone(), 16).await;
        }
    }
}

/// Binds a session of `user` that expires in `ttl_ms`.
async fn bound_for(store: &RedisStore, user: &str, ttl_ms: i64) -> nex_session::StoreKey {
    let key = bound(store, user).await;
    assert!(store.touch(key, nex_session::token::now_ms() + ttl_ms).await.unwrap());
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_sweeps_the_indexes_of_users_who_never_come_back() {
    let server = RedisServer::start_private();
    let cluster = RedisCluster::start();
    for (url, nodes) in
        [(server.url(), vec![server.url()]), (cluster.url(), cluster.nodes.iter().map(|n| n.url()).collect())]
    {
        let p = "nex:sweep:";
        let store = RedisStore::open_with(&url, p, Duration::from_secs(2)).await.unwrap();
        let indexes = || nodes.iter().flat_map(|node| keys_on(node, &format!("{p}u:"))).collect::<Vec<_>>();
        for user in ["gone-1", "gone-2", "gone-3", "stays"] {
            bound_for(&store, user, 100).await;
        }
        let live = bound(&store, "stays").await;
        assert_eq!(indexes().len(), 4, "one index per user");
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Nobody reads, binds or revokes for these users again: only the purge tidies.
        assert_eq!(store.admin().unwrap().purge_expired(nex_session::token::now_ms()).await.unwrap(), 0);
        let left = indexes();
        assert_eq!(left.len(), 1, "the indexes of users whose sessions all expired are gone: {left:?}");
        let listed = store.users().unwrap().sessions("stays").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].handle, nex_session::store::SessionHandle::of(live));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_spares_a_renews_new_key_until_its_grace_is_over() {
    let server = RedisServer::start_private();
    let p = "nex:grace:";
    let store = RedisStore::open_with(&server.url(), p, Duration::from_secs(1)).await.unwrap();
    bound(&store, "renewing").await;
    let index = keys_on(&server.url(), &format!("{p}u:")).pop().unwrap();
    let mut conn = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    // Two renews' new keys with no session yet: one still in flight, one long dead.
    let (in_flight, abandoned) = ("a".repeat(64), "b".repeat(64));
    let now = nex_session::token::now_ms();
    let source = "c".repeat(64);
    let _: () = redis::cmd("HSET")
        .arg(&index)
        .arg(&in_flight)
        .arg(format!("m{}:{source}", now + 60_000))
        .arg(&abandoned)
        .arg(format!("m{}:{source}", now - 1))
        .query(&mut conn)
        .unwrap();
    store.users().unwrap().sessions("renewing").await.unwrap();
    let members: Vec<String> = redis::cmd("HKEYS").arg(&index).query(&mut conn).unwrap();
    assert!(members.contains(&in_flight), "a renew in flight lost its new key's membership: {members:?}");
    assert!(!members.contains(&abandoned), "an abandoned renew's key stayed: {members:?}");
    assert_eq!(members.len(), 2, "{members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_100_000_sessions_is_signed_out_everywhere() {
    let (url, _server) = single_node();
    // HSCAN steps of 1,000, each marked, deleted and released within the timeout.
    nex_testkit::scale::sign_out_100_000(store(&url, "scale").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_100_000_sessions_is_signed_out_everywhere_on_a_cluster() {
    let cluster = RedisCluster::start();
    let store = RedisStore::open_with(&cluster.url(), "nex:scale:", Duration::from_secs(1)).await.unwrap();
    nex_testkit::scale::sign_out_100_000(Arc::new(store)).await;
}

/// Every command the server ran so far (`INFO commandstats`, those inside
/// scripts included), but `INFO` itself.
fn commands_run(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .filter(|line| line.starts_with("cmdstat_") && !line.starts_with("cmdstat_info:"))
        .filter_map(|line| line.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// 1,000 sign-ins of one user with the default cap (100): at most 100 sessions
/// remain, and the commands a sign-in costs (its session write and its bind,
/// counted by the server, inside scripts too) do not grow with the sessions the
/// user already has: flat below the cap, flat again above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_costs_the_same_commands_whatever_the_users_history() {
    use nex_session::store::{Binding, SessionCap};
    let server = RedisServer::start_private();
    let store = RedisStore::open_with(&server.url(), "nex:cap:", Duration::from_secs(2)).await.unwrap();
    let users = store.users().unwrap();
    let mut costs = Vec::new();
    for _ in 0..1_000 {
        let key = SessionId::generate().unwrap().store_key();
        let expires = nex_session::token::now_ms() + 3_600_000;
        let mut changes = Changes::new();
        changes.insert("cart".to_owned(), Change::Put(b"[]".to_vec()));
        let before = commands_run(&server);
        store.apply(key, &changes, expires, Presence::New).await.unwrap();
        let binding = Binding::new("busy", nex_session::token::now_ms(), None).unwrap();
        users.bind(key, &binding, expires, Some(SessionCap::DEFAULT)).await.unwrap();
        costs.push(commands_run(&server) - before);
    }
    let live = users.sessions("busy").await.unwrap().len();
    assert_eq!(live, 100, "the default cap keeps 100 sessions");
    let at = |n: usize| costs[n - 1];
    println!(
        "commands per sign-in: 10th {}, 90th {}, 101st {}, 200th {}, 1000th {}",
        at(10),
        at(90),
        at(101),
        at(200),
        at(1000)
    );
    // Flat: within 2 of the least (the store's heartbeat `PING`s land in the
    // count now and then); the first eviction also loads its script.
    let flat = |range: &[u64]| {
        let least = range.iter().min().copied().unwrap_or_default();
        range.iter().all(|c| *c <= least + 2)
    };
    assert!(flat(&costs[9..100]), "below the cap: {:?}", &costs[9..100]);
    assert!(flat(&costs[101..]), "above the cap: {:?}", &costs[101..]);
    assert!(at(200) <= at(10) + 16, "ending one session costs a bounded few more: {} vs {}", at(200), at(10));
}

/// A load answers exactly the expiry that was written (`PEXPIRETIME`), on a
/// single node and on a cluster: 100 of 100 (with `now + PTTL`, tower-sessions'
/// own `test_load` failed 22 times in 100).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_reads_back_exactly_the_expiry_written() {
    let (url, _server) = single_node();
    let cluster = RedisCluster::start();
    let options = nex_session::store::RedisOptions { client_cache: 0, ..Default::default() };
    let on_cluster = RedisStore::open_with_options(&cluster.url(), options).await.unwrap();
    for store in [store(&url, "exact-expiry").await, Arc::new(on_cluster) as Arc<dyn SessionStore>] {
        for i in 0..100 {
            let key = SessionId::generate().unwrap().store_key();
            let expires = nex_session::token::now_ms() + 3_600_000 + i;
            let mut changes = Changes::new();
            changes.insert("a".to_owned(), Change::Put(b"1".to_vec()));
            store.apply(key, &changes, expires, Presence::New).await.unwrap();
            assert_eq!(store.load(key).await.unwrap().unwrap().expires_at_ms, expires);
        }
    }
}

/// The first calls after Redis restarted are served: the store reconnects
/// before answering (within its timeout) instead of failing the request that
/// found the old connection dead. Ten restarts, a read and a write each; then five
/// with 64 calls at once right after (the report was "under load").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_calls_after_a_restart_are_served() {
    let mut server = RedisServer::start_private();
    let store = RedisStore::open_with(&server.url(), "nex:restart:", Duration::from_secs(1)).await.unwrap();
    let mut batch = Changes::new();
    batch.insert("a".to_owned(), Change::Put(b"1".to_vec()));
    for round in 0..10 {
        let key = SessionId::generate().unwrap().store_key();
        let later = nex_session::token::now_ms() + 60_000;
        store.apply(key, &batch, later, Presence::New).await.unwrap();
        server.stop();
        server.start();
        // Redis answers again: the very next calls must work.
        let loaded = store.load(key).await;
        assert!(matches!(loaded, Ok(None)), "round {round}: the first read after the restart: {loaded:?}");
        let fresh = SessionId::generate().unwrap().store_key();
        let written = store.apply(fresh, &batch, later, Presence::New).await;
        assert!(written.is_ok(), "round {round}: the first write after the restart: {written:?}");
    }
    // Under load: many requests arrive at once on the reconnected client.
    for round in 0..5 {
        server.stop();
        server.start();
        let calls: Vec<_> = (0..64)
            .map(|i| {
                let (store, batch) = (store.clone(), batch.clone());
                tokio::spawn(async move {
                    let key = SessionId::generate().unwrap().store_key();
                    let later = nex_session::token::now_ms() + 60_000;
                    if i % 2 == 0 {
                        store.load(key).await.map(|_| ())
                    } else {
                        store.apply(key, &batch, later, Presence::New).await.map(|_| ())
                    }
                })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let answer = call.await.unwrap();
            assert!(answer.is_ok(), "round {round}, call {i} of 64 at once after the restart: {answer:?}");
        }
    }
}

/// `PTTL` of `key` on whichever of `nodes` holds it (-2: none does).
fn pttl_on(nodes: &[String], key: &str) -> i64 {
    for node in nodes {
        let mut conn = redis::Client::open(node.as_str()).unwrap().get_connection().unwrap();
        match redis::cmd("PTTL").arg(key).query::<i64>(&mut conn) {
            Ok(-2) => {}
            Ok(ttl) => return ttl,
            // A cluster node that does not serve the key's slot.
            Err(err) if err.redirect_node().is_some() => {}
            Err(err) => panic!("PTTL {key} on {node}: {err}"),
        }
    }
    -2
}

/// A user's index and order expire with the user's last session, on a single
/// node and on a cluster: while writes, touches, updates and a renew slide the
/// session's expiry (none of which calls the index itself), the index and the
/// order always outlive it; once it expires, they go by themselves, with no
/// purge run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_index_expires_with_their_last_session() {
    use nex_session::store::UpdateAction;
    let server = RedisServer::start_private();
    let cluster = RedisCluster::start();
    for (url, nodes) in
        [(server.url(), vec![server.url()]), (cluster.url(), cluster.nodes.iter().map(|n| n.url()).collect())]
    {
        let p = "nex:expiring:";
        let store = RedisStore::open_with(&url, p, Duration::from_secs(2)).await.unwrap();
        let ttl_ms = 1_500;
        let exp = || nex_session::token::now_ms() + ttl_ms;
        let mut key = SessionId::generate().unwrap().store_key();
        store.apply(key, &one_field("n", b"0"), exp(), Presence::New).await.unwrap();
        let binding = nex_session::store::users::Binding::new("expiring", nex_session::token::now_ms(), None).unwrap();
        store.users().unwrap().bind(key, &binding, exp(), None).await.unwrap();
        let index = nodes.iter().flat_map(|node| keys_on(node, &format!("{p}u:"))).next().expect("an index");
        let order = nodes.iter().flat_map(|node| keys_on(node, &format!("{p}o:"))).next().expect("an order");

        // Slide the session for 4 s, almost three lifetimes, without the index hearing of it.
        let (started, mut round) = (Instant::now(), 0);
        while started.elapsed() < Duration::from_secs(4) {
            match round % 4 {
                0 => assert!(store.touch(key, exp()).await.unwrap()),
                1 => {
                    let mut set = |_: Option<&[u8]>| UpdateAction::Set(b"1".to_vec());
                    store.update(key, "n", &mut set, exp(), Presence::Existing).await.unwrap();
                }
                2 if round == 10 => {
                    let renewed = SessionId::generate().unwrap().store_key();
                    assert!(store.rename(key, renewed, exp()).await.unwrap());
                    key = renewed;
                }
                _ => {
                    store.apply(key, &one_field("m", b"1"), exp(), Presence::Existing).await.unwrap();
                }
            }
            let session = pttl_on(&nodes, &format!("{p}{}", key.to_hex()));
            let (i, o) = (pttl_on(&nodes, &index), pttl_on(&nodes, &order));
            assert!(
                session > 0 && i >= session && o >= session,
                "{url} round {round}: session {session} ms, index {i} ms, order {o} ms"
            );
            round += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(store.users().unwrap().sessions("expiring").await.unwrap().len(), 1, "{url}");
        // The store's record of the index's life is not a field of the session.
        let loaded = store.load(key).await.unwrap().unwrap();
        assert!(loaded.fields.keys().all(|f| !f.starts_with('\0')), "{url}: {:?}", loaded.fields.keys());
        let listed = store.admin().unwrap().list(1_000).await.unwrap();
        let summary = listed.iter().find(|s| s.key == key).expect("listed");
        assert_eq!(summary.fields, loaded.fields.len(), "{url}: the listing counts the session's fields only");

        // Left alone, the session expires, and the index and order follow within
        // one more lifetime (they outlive the session by at most twice its time left).
        let deadline = Instant::now() + Duration::from_millis(2 * ttl_ms as u64 + 1_000);
        while pttl_on(&nodes, &index) != -2 || pttl_on(&nodes, &order) != -2 {
            assert!(Instant::now() < deadline, "{url}: the index outlived its last session by over a lifetime");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(pttl_on(&nodes, &format!("{p}{}", key.to_hex())), -2, "{url}: the session went first");
    }
}
