//! `SqliteStore::open_exclusive`: the file for one store alone, and cached reads
//! answered at once, without the check a shared file needs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use nex_session::store::{conformance, Change, FastReads, LoadNow, Presence, SessionStore, SqliteStore, UpdateAction};
use nex_session::token::now_ms;
use nex_session::{SessionId, StoreKey};
use nex_testkit::TempDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_store_passes_the_conformance_suite() {
    let db = TempDb::new("exclusive-conformance");
    conformance::run_all(Arc::new(SqliteStore::open_exclusive(&db.0).await.unwrap())).await;
}

async fn create(store: &SqliteStore, value: &[u8]) -> StoreKey {
    let key = SessionId::generate().unwrap().store_key();
    let batch = BTreeMap::from([("n".to_owned(), Change::Put(value.to_vec()))]);
    store.apply(key, &batch, now_ms() + 60_000, Presence::New).await.unwrap();
    key
}

fn known_now(store: &SqliteStore, key: StoreKey) -> Option<Vec<u8>> {
    match store.load_now(key, now_ms()) {
        LoadNow::Found(fields) => Some(fields.get("n").expect("the field").to_vec()),
        LoadNow::Missing => panic!("a SQLite store never says missing without asking"),
        LoadNow::Unknown => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_store_holds_its_file_alone_until_it_is_dropped() {
    let db = TempDb::new("exclusive-lock");
    let store = SqliteStore::open_exclusive(&db.0).await.unwrap();
    let key = create(&store, b"1").await;
    // Another connection (another store here; another process alike) cannot open it.
    let refused = SqliteStore::open(&db.0).await.unwrap_err().to_string();
    assert!(refused.contains("locked by another process"), "{refused}");
    assert!(refused.contains("locking=exclusive"), "the message names the cause: {refused}");
    drop(store);
    // Closed, the file is an ordinary session database again, with what was written.
    let reopened = SqliteStore::open(&db.0).await.unwrap();
    assert_eq!(reopened.load(key).await.unwrap().unwrap().fields["n"], b"1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_store_answers_cached_reads_at_once_and_keeps_them_exact() {
    let db = TempDb::new("exclusive-reads");
    let store = SqliteStore::open_exclusive(&db.0).await.unwrap();
    let key = create(&store, b"1").await;
    assert!(store.load(key).await.unwrap().is_some(), "the load caches the session");
    assert_eq!(known_now(&store, key).as_deref(), Some(&b"1"[..]), "a cached read needs no check");
    // The store's own writes keep the cache exact.
    let mut set_two = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
    store.update(key, "n", &mut set_two, now_ms() + 60_000, Presence::Existing).await.unwrap();
    let after_update = match known_now(&store, key) {
        Some(value) => value,
        None => store.load(key).await.unwrap().unwrap().fields["n"].clone(),
    };
    assert_eq!(after_update, b"2");
    store.remove(key).await.unwrap();
    assert_eq!(known_now(&store, key), None, "a removed session is not answered from the cache");
    assert!(store.load(key).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_checks_the_file_before_every_cached_read() {
    let db = TempDb::new("shared-reads");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let key = create(&store, b"1").await;
    assert!(store.load(key).await.unwrap().is_some());
    assert_eq!(known_now(&store, key), None, "another process may have changed the file: ask");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_opens_an_exclusive_store() {
    let db = TempDb::new("exclusive-url");
    let url = format!("sqlite://{}?locking=exclusive", db.0.display());
    let store = nex_session::store::open(&url).await.unwrap();
    let refused = SqliteStore::open(&db.0).await.unwrap_err().to_string();
    assert!(refused.contains("locked by another process"), "{refused}");
    drop(store);
    let unknown = nex_session::store::open(&format!("sqlite://{}?locking=sometimes", db.0.display())).await;
    let Err(unknown) = unknown else { panic!("an unknown locking mode is refused") };
    assert!(unknown.to_string().contains("locking=exclusive"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_existing_exclusive_refuses_a_missing_file_and_creates_nothing() {
    let db = TempDb::new("exclusive-missing");
    let refused = SqliteStore::open_existing_exclusive(&db.0).await.unwrap_err().to_string();
    assert!(refused.contains("no SQLite session database"), "{refused}");
    assert!(!db.0.exists(), "nothing was created");
    let options = nex_session::store::OpenOptions::new().create_missing(false);
    let url = format!("sqlite://{}?locking=exclusive", db.0.display());
    assert!(nex_session::store::open_with(&url, options).await.is_err());
    assert!(!db.0.exists());
}
