//! The PostgreSQL store against a real server: a private `postgres` started by
//! each test in a temporary directory (or `NEX_SESSION_TEST_POSTGRES_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nex_session::store::{
    conformance, Change, Changes, FastReads, LoadNow, PostgresOptions, PostgresStore, Presence, SessionStore,
    UpdateAction,
};
use nex_session::{SessionId, StoreError, StoreKey};
use nex_testkit::postgres::single_node;
use nex_testkit::PostgresServer;

async fn open(url: &str, timeout: Duration) -> PostgresStore {
    let options = PostgresOptions { timeout, ..PostgresOptions::default() };
    PostgresStore::open_with_options(url, options).await.unwrap()
}

fn later() -> i64 {
    nex_session::token::now_ms() + 600_000
}

fn key() -> StoreKey {
    SessionId::generate().unwrap().store_key()
}

/// A batch writing `value` to both fields `a` and `b`: applied whole, they agree.
fn pair(value: u64) -> Changes {
    let mut batch = BTreeMap::new();
    batch.insert("a".to_owned(), Change::Put(value.to_string().into_bytes()));
    batch.insert("b".to_owned(), Change::Put(value.to_string().into_bytes()));
    batch
}

fn number(bytes: Option<&[u8]>) -> u64 {
    bytes.map_or(0, |b| std::str::from_utf8(b).unwrap().parse().unwrap())
}

async fn increment(store: &PostgresStore, key: StoreKey) -> Result<(), StoreError> {
    let mut f = |current: Option<&[u8]>| UpdateAction::Set((number(current) + 1).to_string().into_bytes());
    store.update(key, "n", &mut f, later(), Presence::Existing).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    let (url, _server) = single_node();
    conformance::run_all(Arc::new(open(&url, Duration::from_secs(1)).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_database_agree_on_users_and_revokes() {
    let (url, _server) = single_node();
    let a: Arc<dyn SessionStore> = Arc::new(open(&url, Duration::from_secs(2)).await);
    let b: Arc<dyn SessionStore> = Arc::new(open(&url, Duration::from_secs(2)).await);
    conformance::run_users(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_database_lose_no_update() {
    let (url, _server) = single_node();
    // The timeout covers the wait for a pooled connection: 1000 increments of one
    // row queue behind each other on a busy 2-core machine.
    let a: Arc<dyn SessionStore> = Arc::new(open(&url, Duration::from_secs(5)).await);
    let b: Arc<dyn SessionStore> = Arc::new(open(&url, Duration::from_secs(5)).await);
    nex_testkit::store::two_servers_lose_nothing(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_twice_keeps_the_schema_and_the_data() {
    let (url, _server) = single_node();
    let first = open(&url, Duration::from_secs(1)).await;
    let k = key();
    first.apply(k, &pair(7), later(), Presence::New).await.unwrap();
    let second = open(&url, Duration::from_secs(1)).await;
    assert_eq!(second.load(k).await.unwrap().unwrap().fields["a"], b"7");
    assert_eq!(second.kind(), "postgres");
    second.health().await.unwrap();
}

/// What one writer saw: acknowledged increments, and those whose outcome is unknown.
#[derive(Default)]
struct Tally {
    acked: u64,
    unknown: u64,
    errors: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_postgres_mid_load_fails_fast_half_applies_nothing_and_heals() {
    let mut server = PostgresServer::start_private();
    let timeout = Duration::from_millis(500);
    let store = Arc::new(open(&server.url(), timeout).await);
    let (counter, pairs) = (key(), key());
    store.apply(counter, &Changes::new(), later(), Presence::New).await.unwrap();
    store.apply(pairs, &pair(0), later(), Presence::New).await.unwrap();

    // Writers run until told to stop; each call's duration is checked against the timeout.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let result = if w % 2 == 0 {
                    increment(&store, counter).await
                } else {
                    store.apply(pairs, &pair(w * 1_000_000 + i), later(), Presence::Existing).await.map(drop)
                };
                let took = started.elapsed();
                assert!(took < timeout + Duration::from_millis(700), "a call took {took:?} (timeout {timeout:?})");
                // Back off a little after an error, so an outage does not spin the CPU.
                let failed = result.is_err();
                match result {
                    Ok(()) if w % 2 == 0 => tally.acked += 1,
                    Ok(()) => {}
                    Err(err) if err.may_have_applied() => tally.unknown += 1,
                    Err(_) => tally.errors += 1,
                }
                if failed {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            tally
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // While PostgreSQL is down every call fails, and fast.
    let started = Instant::now();
    assert!(store.load(pairs).await.is_err());
    assert!(store.health().await.is_err());
    assert!(started.elapsed() < timeout * 2 + Duration::from_millis(500), "took {:?}", started.elapsed());

    server.start();
    // The store heals by itself: new connections once the server answers.
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.health().await.is_err() {
        assert!(Instant::now() < deadline, "PostgreSQL is back but the store did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = Tally::default();
    for writer in writers {
        let tally = writer.await.unwrap();
        total.acked += tally.acked;
        total.unknown += tally.unknown;
        total.errors += tally.errors;
    }
    assert!(total.errors + total.unknown > 0, "the outage was seen by the writers");
    assert!(total.acked > 0, "writes were acknowledged before and after the outage");

    // Every acknowledged increment survived the crash; at most the unconfirmed ones were added.
    let fields = store.load(counter).await.unwrap().expect("the counter session survived").fields;
    let n = number(fields.get("n").map(Vec::as_slice));
    assert!(
        n >= total.acked && n <= total.acked + total.unknown,
        "n={n}, acked {}, unknown {}",
        total.acked,
        total.unknown
    );
    // No batch was half-applied: both fields always come from one batch.
    let fields = store.load(pairs).await.unwrap().expect("the pair session survived").fields;
    assert_eq!(fields["a"], fields["b"], "a batch was half-applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_postgres_restart() {
    let mut server = PostgresServer::start_private();
    let store = open(&server.url(), Duration::from_secs(1)).await;
    let keys: Vec<StoreKey> = (0..50).map(|_| key()).collect();
    for (i, k) in keys.iter().enumerate() {
        store.apply(*k, &pair(i as u64), later(), Presence::New).await.unwrap();
    }
    let renamed_from = keys[0];
    let renamed_to = key();
    assert!(store.rename(renamed_from, renamed_to, later()).await.unwrap());
    for _ in 0..10 {
        increment(&store, keys[1]).await.unwrap();
    }

    server.stop(); // SIGKILL: a crash, no clean shutdown
    server.start();
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.health().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not reconnect after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.load(renamed_from).await.unwrap().is_none(), "the old id stays dead");
    assert_eq!(store.load(renamed_to).await.unwrap().unwrap().fields["a"], b"0");
    assert_eq!(store.load(keys[1]).await.unwrap().unwrap().fields["n"], b"10");
    for (i, k) in keys.iter().enumerate().skip(1) {
        let record = store.load(*k).await.unwrap().unwrap_or_else(|| panic!("session {i} lost in the restart"));
        assert_eq!(record.fields["a"], i.to_string().into_bytes());
    }
}

/// The first calls after PostgreSQL came back are served: pooled connections
/// that died with the old server are not handed to them (a store that found one
/// dead retries on a fresh connection within its timeout). One read and one write,
/// then 64 calls at once, after each of three restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_calls_after_a_restart_are_served() {
    let mut server = PostgresServer::start_private();
    let store = open(&server.url(), Duration::from_secs(1)).await;
    for round in 0..3 {
        // Fill the pool with connections that the restart will kill.
        let warm: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.apply(key(), &pair(i), later(), Presence::New).await })
            })
            .collect();
        for call in warm {
            call.await.unwrap().unwrap();
        }
        server.stop();
        server.start();
        let loaded = store.load(key()).await;
        assert!(matches!(loaded, Ok(None)), "round {round}: the first read after the restart: {loaded:?}");
        let written = store.apply(key(), &pair(1), later(), Presence::New).await;
        assert!(written.is_ok(), "round {round}: the first write after the restart: {written:?}");
        server.stop();
        server.start();
        let calls: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        store.load(key()).await.map(|_| ())
                    } else {
                        store.apply(key(), &pair(i), later(), Presence::New).await.map(|_| ())
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

/// A URL naming a database that does not exist: the error says so and how to fix
/// it, not only tokio-postgres' "db error".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_named_with_the_fix() {
    let (url, _server) = single_node();
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base).to_owned();
    let missing = format!("{base}/no_such_database_here");
    let err = PostgresStore::open_with_options(&missing, PostgresOptions::default()).await.unwrap_err().to_string();
    assert!(err.contains("does not exist") && err.contains("createdb"), "{err}");
    assert!(err.contains("no_such_database_here"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_within_the_timeout() {
    // A port nothing listens on, after the server there is killed.
    let mut server = PostgresServer::start_private();
    let store = open(&server.url(), Duration::from_millis(300)).await;
    server.stop();
    let started = Instant::now();
    let err = store.apply(key(), &pair(1), later(), Presence::New).await.unwrap_err();
    assert!(!err.may_have_applied(), "nothing was sent, so nothing applied: {err:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_urls_open_postgres_and_errors_never_show_the_password() {
    let (url, _server) = single_node();
    let store = nex_session::store::open(&url).await.unwrap();
    assert_eq!(store.kind(), "postgres");
    store.health().await.unwrap();
    // Nothing listens on port 1: the error names the URL without its password, quickly.
    let started = Instant::now();
    let Err(err) = nex_session::store::open("postgres://nex:s3cret@127.0.0.1:1/postgres").await else {
        panic!("opened a store on a port nothing listens on")
    };
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_with_only_row_privileges_opens_a_schema_a_dba_made() {
    let server = PostgresServer::start_private();
    // The DBA's side: the schema exists (made here by a first open as superuser), and
    // the app's role may only read and write rows.
    drop(open(&server.url(), Duration::from_secs(1)).await);
    server.psql(
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         CREATE ROLE app LOGIN;
         GRANT SELECT, INSERT, UPDATE, DELETE
             ON nex_sessions, nex_session_fields, nex_session_users, nex_session_schema TO app;",
    );
    let app_url = server.url().replace("postgres://nex@", "postgres://app@");
    let store = open(&app_url, Duration::from_secs(1)).await;
    let k = key();
    store.apply(k, &pair(3), later(), Presence::New).await.unwrap();
    increment(&store, k).await.unwrap();
    let fields = store.load(k).await.unwrap().unwrap().fields;
    assert_eq!((fields["a"].as_slice(), fields["n"].as_slice()), (&b"3"[..], &b"1"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_the_schema_is_refused_unless_told_to_create_it() {
    let server = PostgresServer::start_private();
    server.psql("CREATE DATABASE empty_one");
    let url = server.url().replace("/postgres", "/empty_one");
    // An operator's tool pointed at the wrong database: refused, nothing created.
    let refuse = PostgresOptions { create_schema: false, ..PostgresOptions::default() };
    let Err(err) = PostgresStore::open_with_options(&url, refuse.clone()).await else {
        panic!("opened a database without the schema without creating it")
    };
    assert!(err.to_string().contains("no nex-session schema"), "{err}");
    let no_create = nex_session::store::OpenOptions::new().create_missing(false);
    assert!(nex_session::store::open_with(&url, no_create).await.is_err(), "store URLs refuse it too");
    assert!(PostgresStore::open_with_options(&url, refuse.clone()).await.is_err(), "neither refusal created it");
    // Still empty: the default (creating) open makes the schema, after which a
    // refusing open works.
    drop(PostgresStore::open_with_options(&url, PostgresOptions::default()).await.unwrap());
    let store = PostgresStore::open_with_options(&url, refuse).await.unwrap();
    let k = key();
    store.apply(k, &pair(1), later(), Presence::New).await.unwrap();
    assert!(store.load(k).await.unwrap().is_some());
}

/// The value of field `a` the cache answers with, or `None` when it does not answer.
fn cached_a(store: &PostgresStore, key: StoreKey) -> Option<Vec<u8>> {
    match store.load_now(key, nex_session::token::now_ms()) {
        LoadNow::Found(fields) => Some(fields.get("a").unwrap_or_default().to_vec()),
        _ => None,
    }
}

/// Loads `key` (which caches it) until the cache answers, within 5 s (the first
/// heartbeat must come back first).
async fn cache_it(store: &PostgresStore, key: StoreKey) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        store.load(key).await.unwrap().expect("the session exists");
        if let Some(a) = cached_a(store, key) {
            return a;
        }
        assert!(Instant::now() < deadline, "the client cache never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cache_answers_repeat_reads_and_drops_what_another_instance_changes() {
    let (url, _server) = single_node();
    let a = open(&url, Duration::from_secs(1)).await;
    let b = open(&url, Duration::from_secs(1)).await;
    let k = key();
    a.apply(k, &pair(1), later(), Presence::New).await.unwrap();
    assert_eq!(cache_it(&a, k).await, b"1");

    // This instance's own write: its next read sees the new value, still from
    // memory, also once the write's own notification came back.
    a.apply(k, &pair(2), later(), Presence::Existing).await.unwrap();
    assert_eq!(cached_a(&a, k).as_deref(), Some(&b"2"[..]), "patched by its own write");
    increment(&a, k).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cached_a(&a, k).as_deref(), Some(&b"2"[..]), "kept past its own notifications");
    let LoadNow::Found(fields) = a.load_now(k, nex_session::token::now_ms()) else {
        panic!("the updated session left the cache")
    };
    assert_eq!(fields.get("n"), Some(&b"1"[..]), "the update patched in too");

    // Another instance's write: gone from this cache within a network hop.
    let written = Instant::now();
    b.apply(k, &pair(3), later(), Presence::Existing).await.unwrap();
    while cached_a(&a, k).is_some() {
        assert!(written.elapsed() < Duration::from_secs(1), "another instance's write still hidden after 1 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(cache_it(&a, k).await, b"3");

    // A renew on the other instance: the old key stops answering here too.
    let renewed = key();
    assert!(b.rename(k, renewed, later()).await.unwrap());
    let written = Instant::now();
    while cached_a(&a, k).is_some() {
        assert!(written.elapsed() < Duration::from_secs(1), "a renewed-away id still answered after 1 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(a.load(k).await.unwrap().is_none());

    // Turned off, it never answers.
    let options = PostgresOptions { client_cache: 0, ..PostgresOptions::default() };
    let off = PostgresStore::open_with_options(&url, options).await.unwrap();
    off.load(renewed).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    off.load(renewed).await.unwrap().unwrap();
    assert_eq!(cached_a(&off, renewed), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cache_stops_answering_within_3_s_when_postgres_goes_away() {
    let mut server = PostgresServer::start_private();
    let store = open(&server.url(), Duration::from_millis(500)).await;
    let k = key();
    store.apply(k, &pair(5), later(), Presence::New).await.unwrap();
    assert_eq!(cache_it(&store, k).await, b"5");
    server.stop();
    let stopped = Instant::now();
    while cached_a(&store, k).is_some() {
        assert!(stopped.elapsed() < Duration::from_millis(3_500), "the cache still answered after 3.5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Reads then go to PostgreSQL, and fail honestly.
    assert!(store.load(k).await.is_err());
    server.start();
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.health().await.is_err() {
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache_it(&store, k).await, b"5", "the cache works again after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_postgres_stops_the_client_cache_answering_within_3_s() {
    let server = PostgresServer::start_private();
    let store = open(&server.url(), Duration::from_millis(500)).await;
    let k = key();
    store.apply(k, &pair(6), later(), Presence::New).await.unwrap();
    assert_eq!(cache_it(&store, k).await, b"6");
    // Frozen: the connections stay open, no notification can arrive, and silence
    // must not pass for "nothing changed" for longer than the bound.
    server.freeze();
    let frozen = Instant::now();
    while cached_a(&store, k).is_some() {
        assert!(frozen.elapsed() < Duration::from_millis(3_500), "the cache still answered after 3.5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    assert!(store.load(k).await.is_err(), "a frozen server gives an error, not an answer");
    assert!(started.elapsed() < Duration::from_millis(1_500), "within the timeout: {:?}", started.elapsed());
    server.thaw();
    assert_eq!(cache_it(&store, k).await, b"6", "the cache answers again once PostgreSQL does");
}

/// Counts the writes of field `n` from now on (a trigger of the test's own).
fn count_writes_of_n(server: &PostgresServer) {
    server.psql(
        "CREATE TABLE test_writes (n bigint NOT NULL);
         INSERT INTO test_writes VALUES (0);
         CREATE FUNCTION test_count() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN UPDATE test_writes SET n = n + 1; RETURN NULL; END $$;
         CREATE TRIGGER test_count AFTER UPDATE ON nex_session_fields
             FOR EACH ROW WHEN (NEW.field = 'n') EXECUTE FUNCTION test_count();",
    );
}

fn writes_of_n(server: &PostgresServer) -> u64 {
    server.psql("SELECT n FROM test_writes").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_field_are_group_committed_and_all_counted() {
    let server = PostgresServer::start_private();
    let store = open(&server.url(), Duration::from_secs(5)).await;
    let k = key();
    store.apply(k, &pair(0), later(), Presence::New).await.unwrap();
    increment(&store, k).await.unwrap();
    count_writes_of_n(&server);
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { increment(&store, k).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let writes = writes_of_n(&server);
    assert_eq!(store.load(k).await.unwrap().unwrap().fields["n"], b"501");
    eprintln!("500 concurrent increments: {writes} writes of the field");
    assert!((1..500).contains(&writes), "500 concurrent increments wrote the field {writes} times: no batching");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_never_overwrites_what_another_instance_wrote() {
    let (url, _server) = single_node();
    let (a, b) = (open(&url, Duration::from_secs(2)).await, open(&url, Duration::from_secs(2)).await);
    let k = key();
    a.apply(k, &pair(0), later(), Presence::New).await.unwrap();
    // `a` now remembers n = 1 (its chain's tip) ...
    increment(&a, k).await.unwrap();
    // ... which `b` makes stale.
    b.apply(k, &[("n".to_owned(), Change::Put(b"100".to_vec()))].into(), later(), Presence::Existing).await.unwrap();
    increment(&a, k).await.unwrap();
    assert_eq!(b.load(k).await.unwrap().unwrap().fields["n"], b"101", "the stale tip made the batch retry");
}

/// An update's transaction leaves with its `COMMIT` in one flight, so a row lock
/// held elsewhere (another instance, an operator's transaction) must not make it
/// wait past the deadline, where its outcome would be unknown: PostgreSQL gives
/// up on the lock at half the timeout and rolls back, and the update fails
/// certainly, in time, having changed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_behind_a_held_row_lock_fails_certainly_and_in_time() {
    let (url, _server) = single_node();
    let timeout = Duration::from_millis(800);
    let store = open(&url, timeout).await;
    let k = key();
    store.apply(k, &pair(0), later(), Presence::New).await.unwrap();
    increment(&store, k).await.unwrap();
    let (holder, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    holder.batch_execute("BEGIN").await.unwrap();
    let row_key = k.as_bytes().as_slice();
    let locked = holder.query("SELECT 1 FROM nex_sessions WHERE key = $1 FOR UPDATE", &[&row_key]).await;
    assert_eq!(locked.unwrap().len(), 1, "the session row is locked");

    // The store's connections (its pool's one, and its listener's), by backend pid.
    let backends = || async {
        let rows = holder
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY pid",
                &[],
            )
            .await
            .unwrap();
        rows.iter().map(|row| row.get::<_, i32>(0)).collect::<Vec<i32>>()
    };
    let before = backends().await;

    let started = Instant::now();
    let err = increment(&store, k).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, StoreError::Timeout(_)), "a certain timeout: {err:?}");
    assert!(!err.may_have_applied(), "{err:?}");
    assert!(took < timeout, "PostgreSQL gave up on the lock before the deadline: {took:?}");

    holder.batch_execute("ROLLBACK").await.unwrap();
    increment(&store, k).await.unwrap();
    assert_eq!(store.load(k).await.unwrap().unwrap().fields["n"], b"2", "the failed update changed nothing");
    // Its `COMMIT` was answered (with a rollback), so the connection went back to the
    // pool, idle, and served the next calls: no new connection was made.
    assert_eq!(backends().await, before, "the rolled-back connection was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_add_replace_remove_and_keep_absent_fields_and_slide_the_expiry() {
    let (url, _server) = single_node();
    let (a, b) = (open(&url, Duration::from_secs(2)).await, open(&url, Duration::from_secs(2)).await);
    let k = key();
    a.apply(k, &pair(0), later(), Presence::New).await.unwrap();
    let set = |value: &'static [u8]| move |_: Option<&[u8]>| UpdateAction::Set(value.to_vec());
    let mut delete = |_: Option<&[u8]>| UpdateAction::Delete;
    let base = later();
    // Read back through `b`, whose cache never saw these writes.
    a.update(k, "x", &mut set(b"1"), base + 1, Presence::Existing).await.unwrap();
    let record = b.load(k).await.unwrap().unwrap();
    assert_eq!((record.fields["x"].as_slice(), record.expires_at_ms), (&b"1"[..], base + 1), "added");
    a.update(k, "x", &mut set(b"2"), base + 2, Presence::Existing).await.unwrap();
    let record = b.load(k).await.unwrap().unwrap();
    assert_eq!((record.fields["x"].as_slice(), record.expires_at_ms), (&b"2"[..], base + 2), "replaced");
    a.update(k, "x", &mut delete, base + 3, Presence::Existing).await.unwrap();
    let record = b.load(k).await.unwrap().unwrap();
    assert_eq!((record.fields.get("x"), record.expires_at_ms), (None, base + 3), "removed");
    a.update(k, "x", &mut delete, base + 4, Presence::Existing).await.unwrap();
    let record = b.load(k).await.unwrap().unwrap();
    assert_eq!((record.fields.get("x"), record.expires_at_ms), (None, base + 4), "kept absent, expiry slid");
    // The other fields were never touched.
    assert_eq!((record.fields["a"].as_slice(), record.fields["b"].as_slice()), (&b"0"[..], &b"0"[..]));
    // A session that is gone: nothing written, and said so.
    b.remove(k).await.unwrap();
    let outcome = a.update(k, "x", &mut set(b"9"), base + 5, Presence::Existing).await.unwrap();
    assert_eq!(outcome, nex_session::store::WriteOutcome::PresenceFailed);
    assert!(b.load(k).await.unwrap().is_none(), "no session brought back");
}

/// "Sign out everywhere" for a user with 100,000 sessions, by one library call:
/// committed batches of set-based statements, each within the 1 s store timeout
/// (one transaction for all of them failed from about 14,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_100_000_sessions_is_signed_out_everywhere() {
    let (url, _server) = single_node();
    let store: Arc<dyn SessionStore> = Arc::new(open(&url, Duration::from_secs(1)).await);
    nex_testkit::scale::sign_out_100_000(store).await;
}
