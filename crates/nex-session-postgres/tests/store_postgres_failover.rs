//! The PostgreSQL store with several hosts in its URL, against real servers: a
//! dead first host, a read-only one, and a switchover while the store runs (the
//! writable primary becomes read-only and the other one writable, as a demotion
//! and a promotion look to a client). No data is replicated between the two
//! private servers: each has its own sessions, which lets the tests see which
//! server a store reads and writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nex_session::store::{Change, Changes, FastReads, LoadNow, PostgresOptions, PostgresStore, Presence, SessionStore};
use nex_session::{SessionId, StoreError, StoreKey};
use nex_testkit::PostgresServer;

async fn open(url: &str) -> PostgresStore {
    let options = PostgresOptions { timeout: Duration::from_secs(1), ..PostgresOptions::default() };
    PostgresStore::open_with_options(url, options).await.unwrap()
}

/// `postgres://nex@127.0.0.1:A,127.0.0.1:B/postgres?<query>`.
fn multi_host(a: &PostgresServer, b: &PostgresServer, query: &str) -> String {
    format!("postgres://nex@127.0.0.1:{},127.0.0.1:{}/postgres?{query}", a.port, b.port)
}

fn later() -> i64 {
    nex_session::token::now_ms() + 600_000
}

fn key() -> StoreKey {
    SessionId::generate().unwrap().store_key()
}

fn field(value: &str) -> Changes {
    let mut changes = BTreeMap::new();
    changes.insert("v".to_owned(), Change::Put(value.as_bytes().to_vec()));
    changes
}

/// The store key as the tables hold it (`bytea` in hex), for psql.
fn hex(key: StoreKey) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// How many sessions with `key` the server holds (0 when it has no schema).
fn rows(server: &PostgresServer, key: StoreKey) -> String {
    server.psql(&format!(
        "SELECT CASE WHEN to_regclass('nex_sessions') IS NULL THEN 0
         ELSE (SELECT count(*) FROM nex_sessions WHERE key = '\\x{}'::bytea) END",
        hex(key)
    ))
}

/// Connections the store holds on `server`.
fn store_connections(server: &PostgresServer) -> u32 {
    server.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nex-session'").parse().unwrap()
}

/// Awaits every future, polled concurrently.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|value| value.expect("every future finished")).collect()
}

/// The schema on a server, made by a store of its own (as an earlier deployment would have).
async fn with_schema(server: &PostgresServer) {
    drop(open(&server.url()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_host_is_skipped() {
    let (mut a, b) = (PostgresServer::start_private(), PostgresServer::start_private());
    a.stop();
    let started = Instant::now();
    let store = open(&multi_host(&a, &b, "target_session_attrs=read-write")).await;
    assert!(started.elapsed() < Duration::from_secs(2), "open took {:?}", started.elapsed());
    let k = key();
    store.apply(k, &field("1"), later(), Presence::New).await.unwrap();
    assert_eq!(rows(&b, k), "1");
    assert_eq!(store.endpoint().unwrap(), format!("127.0.0.1:{} (no TLS)", b.port));
    // The key=value form lists hosts and ports the same way.
    let conn = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=nex dbname=postgres target_session_attrs=read-write",
        a.port, b.port
    );
    let store = open(&conn).await;
    assert_eq!(store.load(k).await.unwrap().unwrap().fields["v"], b"1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_target_session_attrs_read_write_writes_go_to_the_writable_host() {
    let (a, b) = (PostgresServer::start_private(), PostgresServer::start_private());
    with_schema(&a).await;
    a.set_read_only(true);
    let store = open(&multi_host(&a, &b, "target_session_attrs=read-write")).await;
    let k = key();
    store.apply(k, &field("1"), later(), Presence::New).await.unwrap();
    assert_eq!((rows(&a, k), rows(&b, k)), ("0".to_owned(), "1".to_owned()));
    assert_eq!(store.endpoint().unwrap(), format!("127.0.0.1:{} (no TLS)", b.port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_moves_every_connection_and_empties_the_client_cache() {
    let (a, b) = (PostgresServer::start_private(), PostgresServer::start_private());
    with_schema(&a).await;
    with_schema(&b).await;
    b.set_read_only(true);
    let store = open(&multi_host(&a, &b, "target_session_attrs=read-write")).await;
    assert_eq!(store.endpoint().unwrap(), format!("127.0.0.1:{} (no TLS)", a.port));

    // A session on A, served from the client cache once read.
    let on_a = key();
    store.apply(on_a, &field("a"), later(), Presence::New).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        store.load(on_a).await.unwrap();
        if matches!(store.load_now(on_a, nex_session::token::now_ms()), LoadNow::Found(_)) {
            break;
        }
        assert!(Instant::now() < deadline, "the client cache never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Several idle connections on A: concurrent reads fill the pool.
    let reads: Vec<_> = (0..8).map(|_| store.load(on_a)).collect();
    for read in futures_join(reads).await {
        read.unwrap();
    }
    let held = store_connections(&a);
    assert!(held >= 4, "the pool holds {held} connections on A (endpoint {:?})", store.endpoint());

    // The switchover: A demoted, B promoted.
    a.set_read_only(true);
    b.set_read_only(false);
    let switched = Instant::now();

    // Writes go on; one may fail in between, as `Unavailable` (not applied), never silently.
    let on_b = key();
    let mut errors = Vec::new();
    loop {
        match store.apply(on_b, &field("b1"), later(), Presence::New).await {
            Ok(outcome) => {
                assert_eq!(outcome, nex_session::store::WriteOutcome::Done);
                break;
            }
            Err(err) => {
                assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
                assert!(err.to_string().contains("read-only"), "{err}");
                errors.push(err.to_string());
            }
        }
        assert!(switched.elapsed() < Duration::from_secs(5), "writes did not move to B: {errors:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(errors.len() <= 2, "more than the in-between requests failed: {errors:?}");
    assert_eq!((rows(&a, on_b), rows(&b, on_b)), ("0".to_owned(), "1".to_owned()));
    assert_eq!(store.endpoint().unwrap(), format!("127.0.0.1:{} (no TLS)", b.port));

    // The cache was emptied: A's session is not served from memory, and a read
    // asks B, which does not have it (no replication between the test servers).
    assert!(matches!(store.load_now(on_a, nex_session::token::now_ms()), LoadNow::Unknown));
    assert!(store.load(on_a).await.unwrap().is_none(), "a read went to A after the switchover");

    // No connection of the store is left on A: the idle pool and the listener moved.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store_connections(&a) > 0 {
        assert!(Instant::now() < deadline, "the store still holds {} connections on A", store_connections(&a));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store_connections(&b) > 0);

    // The listener hears B: a change made on B by another writer (here psql,
    // notifying as another instance would) is not served stale from the cache.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        store.load(on_b).await.unwrap();
        if matches!(store.load_now(on_b, nex_session::token::now_ms()), LoadNow::Found(_)) {
            break;
        }
        assert!(Instant::now() < deadline, "the client cache never answered after the switchover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.psql(&format!(
        "UPDATE nex_session_fields SET value = 'b2' WHERE key = '\\x{0}'::bytea AND field = 'v';
         SELECT pg_notify('nex_session', 'w:2:1:{0}')",
        hex(on_b)
    ));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match store.load_now(on_b, nex_session::token::now_ms()) {
            LoadNow::Found(fields) if fields.get("v") == Some(&b"b1"[..]) => {
                assert!(Instant::now() < deadline, "the cache kept serving the old value: its listener is not on B");
            }
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.load(on_b).await.unwrap().unwrap().fields["v"], b"b2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_is_noticed_without_any_write_and_reads_move() {
    let (a, b) = (PostgresServer::start_private(), PostgresServer::start_private());
    with_schema(&a).await;
    with_schema(&b).await;
    b.set_read_only(true);
    let store = open(&multi_host(&a, &b, "target_session_attrs=read-write")).await;
    let on_a = key();
    store.apply(on_a, &field("a"), later(), Presence::New).await.unwrap();
    assert!(store.load(on_a).await.unwrap().is_some());

    a.set_read_only(true);
    b.set_read_only(false);
    // Only reads from now on: a demoted primary still answers them, so only the
    // listener's ping (which reads `transaction_read_only`) can notice the move.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.load(on_a).await.unwrap().is_some() || store_connections(&a) > 0 {
        assert!(Instant::now() < deadline, "reads stayed on the demoted primary A");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(store.load_now(on_a, nex_session::token::now_ms()), LoadNow::Unknown));
    assert_eq!(store.endpoint().unwrap(), format!("127.0.0.1:{} (no TLS)", b.port));
}
