//! The SQLite store on a real file: conformance, no lost updates across two app
//! servers sharing the file, and durability across reopening.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use nex_session::store::{
    conformance, Binding, Change, Presence, SessionHandle, SessionStore, SqliteStore, UpdateAction, WriteOutcome,
};
use nex_session::SessionId;
use nex_testkit::TempDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    let db = TempDb::new("conformance");
    conformance::run_all(Arc::new(SqliteStore::open(&db.0).await.unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_servers_sharing_one_file_lose_no_update() {
    let db = TempDb::new("two-servers");
    let a: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    nex_testkit::store::two_servers_lose_nothing(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_sessions_survive_reopening_the_file() {
    let db = TempDb::new("reopen");
    let key = SessionId::generate().unwrap().store_key();
    {
        let store = SqliteStore::open(&db.0).await.unwrap();
        let mut batch = std::collections::BTreeMap::new();
        batch.insert("user_id".to_owned(), Change::Put(b"7".to_vec()));
        store.apply(key, &batch, nex_session::token::now_ms() + 60_000, Presence::New).await.unwrap();
    }
    let reopened = SqliteStore::open(&db.0).await.unwrap();
    assert_eq!(reopened.load(key).await.unwrap().unwrap().fields["user_id"], b"7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_expired_sessions_in_batches() {
    let db = TempDb::new("purge");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let mut batch = std::collections::BTreeMap::new();
    batch.insert("a".to_owned(), Change::Put(b"1".to_vec()));
    let past = nex_session::token::now_ms() - 1;
    for _ in 0..1200 {
        store.apply(SessionId::generate().unwrap().store_key(), &batch, past, Presence::New).await.unwrap();
    }
    let live = SessionId::generate().unwrap().store_key();
    store.apply(live, &batch, past + 60_000, Presence::New).await.unwrap();
    let admin = store.admin().expect("SQLite offers administration");
    assert_eq!(admin.purge_expired(nex_session::token::now_ms()).await.unwrap(), 1200);
    assert!(store.load(live).await.unwrap().is_some());
    assert_eq!(admin.list(10).await.unwrap().len(), 1);
}

/// An update starts from this instance's cached copy of the session (no read
/// first); a copy another process made stale only costs a failed batch: the
/// update then reads the file, and no write is lost.
#[tokio::test]
async fn an_update_started_from_a_stale_cached_copy_counts_from_the_file() {
    let db = TempDb::new("stale-copy");
    let a = SqliteStore::open(&db.0).await.unwrap();
    let b = SqliteStore::open(&db.0).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    a.apply(key, &one_field(b"0"), later, Presence::New).await.unwrap();
    assert_eq!(a.load(key).await.unwrap().unwrap().fields["user_id"], b"0", "cached by A");
    b.apply(key, &one_field(b"100"), later, Presence::Existing).await.unwrap();
    let mut seen = Vec::new();
    let mut plus_one = |current: Option<&[u8]>| {
        seen.push(current.map(<[u8]>::to_vec));
        let n: u64 = current.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
        UpdateAction::Set((n + 1).to_string().into_bytes())
    };
    a.update(key, "user_id", &mut plus_one, later, Presence::Existing).await.unwrap();
    assert_eq!(seen, [Some(b"0".to_vec()), Some(b"100".to_vec())], "decided on the copy, then on the file");
    assert_eq!(b.load(key).await.unwrap().unwrap().fields["user_id"], b"101", "B's write counted");
}

fn one_field(value: &[u8]) -> std::collections::BTreeMap<String, Change> {
    let mut batch = std::collections::BTreeMap::new();
    batch.insert("user_id".to_owned(), Change::Put(value.to_vec()));
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_the_file_was_deleted_fails_naming_the_path() {
    let db = TempDb::new("deleted");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let expires = nex_session::token::now_ms() + 60_000;
    let key = SessionId::generate().unwrap().store_key();
    store.apply(key, &one_field(b"1"), expires, Presence::New).await.unwrap();

    std::fs::remove_file(&db.0).unwrap();
    let err = store.apply(key, &one_field(b"2"), expires, Presence::Existing).await.unwrap_err();
    assert!(matches!(err, nex_session::StoreError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&db.0.display().to_string()) && message.contains("deleted or replaced"), "{message}");
    // Reads fail too: the old file's data is no longer what the path holds.
    assert!(store.load(key).await.is_err());
    let new = SessionId::generate().unwrap().store_key();
    assert!(store.apply(new, &one_field(b"3"), expires, Presence::New).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_moved_over_the_path_fails_every_operation() {
    let db = TempDb::new("replaced");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let expires = nex_session::token::now_ms() + 60_000;
    let key = SessionId::generate().unwrap().store_key();
    store.apply(key, &one_field(b"1"), expires, Presence::New).await.unwrap();
    // Another database (say, restored from a backup) moved over the path.
    let other = db.0.with_file_name("restored.db");
    drop(SqliteStore::open(&other).await.unwrap());
    std::fs::rename(&other, &db.0).unwrap();
    assert!(store.touch(key, expires + 1).await.is_err());
    assert!(store.remove(key).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_existing_refuses_a_missing_file_and_creates_nothing() {
    let db = TempDb::new("existing");
    let err = SqliteStore::open_existing(&db.0).await.unwrap_err().to_string();
    assert!(err.contains(&db.0.display().to_string()), "{err}");
    assert!(!db.0.exists(), "no empty database was created");
    let url = format!("sqlite://{}", db.0.display());
    let options = nex_session::store::OpenOptions::new().create_missing(false);
    assert!(nex_session::store::open_with(&url, options).await.is_err());
    assert!(!db.0.exists());

    drop(SqliteStore::open(&db.0).await.unwrap());
    let reopened = SqliteStore::open_existing(&db.0).await.unwrap();
    assert!(reopened.load(SessionId::generate().unwrap().store_key()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_put_after_the_file_was_deleted_answers_503() {
    use axum::routing::post;
    use nex_session::token::SecretKeyBase;
    use nex_session::{SessionConfig, SessionLayer};
    use nex_testkit::http::{serve, HttpClient};

    let db = TempDb::new("http-503");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let config = SessionConfig::new(SecretKeyBase::new("test-secret-test-secret-test-secret-42").unwrap());
    let app = axum::Router::new()
        .route(
            "/put/{value}",
            post(|axum::extract::Path(value): axum::extract::Path<String>| async move {
                nex_session::put("value", &value).await.unwrap();
                "ok"
            }),
        )
        .layer(SessionLayer::new(store, config));
    let client = HttpClient::new(serve(app).await);

    let first = client.post("/put/1", None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let cookie = first.session_cookie().expect("a session cookie");
    std::fs::remove_file(&db.0).unwrap();
    let after = client.post("/put/2", Some(&cookie)).await;
    assert_eq!(after.status, 503, "a write into the deleted file must not be acknowledged: {}", after.body);
    let fresh = client.post("/put/3", None).await;
    assert_eq!(fresh.status, 503, "{}", fresh.body);
}

// The per-user index (`nex_session_users`), looked at through a connection of the
// test's own, as an operator would.

fn index_rows(db: &TempDb) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let mut stmt = conn.prepare("SELECT store_key FROM nex_session_users ORDER BY store_key").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn in_an_hour() -> i64 {
    nex_session::token::now_ms() + 3_600_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_instances_on_one_file_keep_the_user_index_guarantees() {
    let db = TempDb::new("users-two-instances");
    let a: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    // Binds, lists and revokes on `a` while `b` writes, updates and renames the
    // same sessions: SQLite's file locks must order them as one process would.
    conformance::run_users(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_without_a_user_write_no_index_row() {
    let db = TempDb::new("users-unbound");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    store.apply(key, &one_field(b"1"), in_an_hour(), Presence::New).await.unwrap();
    let mut bump = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
    store.update(key, "n", &mut bump, in_an_hour(), Presence::Existing).await.unwrap();
    assert!(store.touch(key, in_an_hour()).await.unwrap());
    let renamed = SessionId::generate().unwrap().store_key();
    assert!(store.rename(key, renamed, in_an_hour()).await.unwrap());
    store.apply(renamed, &one_field(b"3"), in_an_hour(), Presence::Existing).await.unwrap();
    assert_eq!(store.load(renamed).await.unwrap().unwrap().fields["n"], b"2");
    assert!(index_rows(&db).is_empty(), "an unbound session wrote to the user index");
    store.remove(renamed).await.unwrap();
    assert!(index_rows(&db).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_row_follows_bind_rename_and_remove() {
    let db = TempDb::new("users-row");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let users = store.users().expect("SQLite indexes users");
    let key = SessionId::generate().unwrap().store_key();
    store.apply(key, &one_field(b"1"), in_an_hour(), Presence::New).await.unwrap();
    let alice = Binding::new("alice", nex_session::token::now_ms(), None).unwrap();
    assert_eq!(users.bind(key, &alice, in_an_hour(), None).await.unwrap(), WriteOutcome::Done);
    assert_eq!(index_rows(&db), vec![key.as_bytes().to_vec()]);
    // Rebinding to another user keeps one row: one user per session.
    let bob = Binding::new("bob", nex_session::token::now_ms(), None).unwrap();
    assert_eq!(users.bind(key, &bob, in_an_hour(), None).await.unwrap(), WriteOutcome::Done);
    assert_eq!(index_rows(&db).len(), 1);
    let renamed = SessionId::generate().unwrap().store_key();
    assert!(store.rename(key, renamed, in_an_hour()).await.unwrap());
    assert_eq!(index_rows(&db), vec![renamed.as_bytes().to_vec()], "the row moves with the session");
    store.remove(renamed).await.unwrap();
    assert!(index_rows(&db).is_empty(), "the row goes with the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_removes_index_rows_of_expired_sessions() {
    let db = TempDb::new("users-purge");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let users = store.users().expect("SQLite indexes users");
    let binding = Binding::new("alice", nex_session::token::now_ms(), None).unwrap();
    let mut keys = Vec::new();
    // More than one purge batch (500).
    for _ in 0..600 {
        let key = SessionId::generate().unwrap().store_key();
        store.apply(key, &one_field(b"1"), in_an_hour(), Presence::New).await.unwrap();
        assert_eq!(users.bind(key, &binding, in_an_hour(), None).await.unwrap(), WriteOutcome::Done);
        keys.push(key);
    }
    let live = keys.pop().unwrap();
    for key in &keys {
        // Expired from now on.
        assert!(store.touch(*key, nex_session::token::now_ms()).await.unwrap());
    }
    assert_eq!(index_rows(&db).len(), 600, "expired sessions keep their rows until the purge");
    let admin = store.admin().expect("SQLite offers administration");
    assert_eq!(admin.purge_expired(nex_session::token::now_ms()).await.unwrap(), 599);
    assert_eq!(index_rows(&db), vec![live.as_bytes().to_vec()], "the purge left index rows of expired sessions");
    assert_eq!(users.sessions("alice").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_drops_rows_of_sessions_that_are_gone() {
    let db = TempDb::new("users-lazy");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let users = store.users().expect("SQLite indexes users");
    let binding = Binding::new("alice", nex_session::token::now_ms(), None).unwrap();
    let (expired, live) = (SessionId::generate().unwrap().store_key(), SessionId::generate().unwrap().store_key());
    for key in [expired, live] {
        store.apply(key, &one_field(b"1"), in_an_hour(), Presence::New).await.unwrap();
        users.bind(key, &binding, in_an_hour(), None).await.unwrap();
    }
    assert!(store.touch(expired, nex_session::token::now_ms()).await.unwrap());
    let listed = users.sessions("alice").await.unwrap();
    assert_eq!(listed.iter().map(|s| s.handle.clone()).collect::<Vec<_>>(), vec![SessionHandle::of(live)]);
    assert_eq!(index_rows(&db), vec![live.as_bytes().to_vec()], "the expired session's row was not dropped");
}

/// The version 1 schema, as nex-session wrote it before the user index.
const SCHEMA_V1: &str = "CREATE TABLE nex_sessions (key BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
     CREATE INDEX nex_sessions_expires_at ON nex_sessions (expires_at);
     CREATE TABLE nex_session_fields (
         key BLOB NOT NULL, field TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (key, field)
     ) WITHOUT ROWID;
     PRAGMA user_version = 1;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_file_gains_the_user_index_on_open_and_keeps_its_sessions() {
    let db = TempDb::new("users-migrate");
    let key = SessionId::generate().unwrap().store_key();
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        let k = key.as_bytes().as_slice();
        conn.execute("INSERT INTO nex_sessions VALUES (?1, ?2)", rusqlite::params![k, in_an_hour()]).unwrap();
        conn.execute("INSERT INTO nex_session_fields VALUES (?1, 'user_id', x'37')", [k]).unwrap();
    }
    let store = SqliteStore::open(&db.0).await.unwrap();
    assert_eq!(store.load(key).await.unwrap().unwrap().fields["user_id"], b"7");
    let binding = Binding::new("alice", nex_session::token::now_ms(), None).unwrap();
    assert_eq!(store.users().unwrap().bind(key, &binding, in_an_hour(), None).await.unwrap(), WriteOutcome::Done);
    assert_eq!(index_rows(&db), vec![key.as_bytes().to_vec()]);
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_an_unknown_schema_version_is_refused() {
    let db = TempDb::new("users-newer");
    rusqlite::Connection::open(&db.0).unwrap().pragma_update(None, "user_version", 3).unwrap();
    let err = SqliteStore::open(&db.0).await.unwrap_err();
    assert!(matches!(err, nex_session::StoreError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("version 3"), "{err}");
}

/// The `user_id` field of the session under `key` as `store` loads it.
async fn loaded(store: &SqliteStore, key: nex_session::StoreKey) -> Option<Vec<u8>> {
    store.load(key).await.unwrap().map(|record| record.fields["user_id"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_cache_never_serves_a_value_another_connection_overwrote() {
    let db = TempDb::new("cache-two-handles");
    let a = SqliteStore::open(&db.0).await.unwrap();
    let b = SqliteStore::open(&db.0).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    a.apply(key, &one_field(b"0"), in_an_hour(), Presence::New).await.unwrap();
    for round in 1..=100u32 {
        // Twice through A: the second load is the one the cache may answer.
        let before = (round - 1).to_string().into_bytes();
        assert_eq!(loaded(&a, key).await, Some(before.clone()));
        assert_eq!(loaded(&a, key).await, Some(before));
        let value = round.to_string().into_bytes();
        b.apply(key, &one_field(&value), in_an_hour(), Presence::Existing).await.unwrap();
        assert_eq!(loaded(&a, key).await, Some(value), "round {round}: A served what B overwrote");
    }
    // An expiry moved and a removal by the other connection are seen too.
    assert!(b.touch(key, in_an_hour() + 5_000).await.unwrap());
    assert!(a.load(key).await.unwrap().unwrap().expires_at_ms > in_an_hour());
    b.remove(key).await.unwrap();
    assert_eq!(loaded(&a, key).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_cache_follows_the_stores_own_writes() {
    let db = TempDb::new("cache-own-writes");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let clone = store.clone();
    let key = SessionId::generate().unwrap().store_key();
    store.apply(key, &one_field(b"1"), in_an_hour(), Presence::New).await.unwrap();
    assert_eq!(loaded(&store, key).await, Some(b"1".to_vec()));
    clone.apply(key, &one_field(b"2"), in_an_hour(), Presence::Existing).await.unwrap();
    assert_eq!(loaded(&store, key).await, Some(b"2".to_vec()));
    let mut add_one = |current: Option<&[u8]>| {
        let n: u32 = std::str::from_utf8(current.unwrap()).unwrap().parse().unwrap();
        UpdateAction::Set((n + 1).to_string().into_bytes())
    };
    clone.update(key, "user_id", &mut add_one, in_an_hour(), Presence::Existing).await.unwrap();
    assert_eq!(loaded(&store, key).await, Some(b"3".to_vec()));
    let to = SessionId::generate().unwrap().store_key();
    assert!(clone.rename(key, to, in_an_hour()).await.unwrap());
    assert_eq!(loaded(&store, key).await, None);
    assert_eq!(loaded(&store, to).await, Some(b"3".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_session_is_not_served_once_the_file_was_deleted() {
    let db = TempDb::new("cache-deleted");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    store.apply(key, &one_field(b"1"), in_an_hour(), Presence::New).await.unwrap();
    assert_eq!(loaded(&store, key).await, Some(b"1".to_vec()));
    assert_eq!(loaded(&store, key).await, Some(b"1".to_vec()));
    std::fs::remove_file(&db.0).unwrap();
    let err = store.load(key).await.unwrap_err();
    assert!(err.to_string().contains("deleted or replaced"), "{err}");
}

/// Adds one to the decimal counter in `user_id` through `store`.
async fn increment(store: &SqliteStore, key: nex_session::StoreKey) {
    let mut add_one = |current: Option<&[u8]>| {
        let n: u32 = current.map_or(0, |bytes| std::str::from_utf8(bytes).unwrap().parse().unwrap());
        UpdateAction::Set((n + 1).to_string().into_bytes())
    };
    let outcome = store.update(key, "user_id", &mut add_one, in_an_hour(), Presence::Existing).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Done);
}

fn counter(value: Option<Vec<u8>>) -> u32 {
    std::str::from_utf8(&value.unwrap()).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_reads_never_go_back_while_two_connections_increment() {
    let db = TempDb::new("cache-concurrent");
    let a = SqliteStore::open(&db.0).await.unwrap();
    let b = SqliteStore::open(&db.0).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    a.apply(key, &one_field(b"0"), in_an_hour(), Presence::New).await.unwrap();
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                for _ in 0..150 {
                    increment(&store, key).await;
                }
            })
        })
        .collect();
    // Readers on both connections: what they see only ever grows (a stale cache entry
    // served after a newer value was seen would go back).
    let readers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut seen = 0;
                while seen < 300 {
                    let now = counter(loaded(&store, key).await);
                    assert!(now >= seen, "a read went back from {seen} to {now}");
                    seen = now;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in writers {
        task.await.unwrap();
    }
    assert_eq!(counter(loaded(&a, key).await), 300);
    assert_eq!(counter(loaded(&b, key).await), 300);
    for task in readers {
        tokio::time::timeout(std::time::Duration::from_secs(10), task).await.unwrap().unwrap();
    }
}

/// Counts the writes of field `user_id` from now on (a trigger of the test's own, made
/// on a connection of its own).
fn count_writes(db: &TempDb) {
    rusqlite::Connection::open(&db.0)
        .unwrap()
        .execute_batch(
            "CREATE TABLE test_writes (n INTEGER NOT NULL);
             INSERT INTO test_writes VALUES (0);
             CREATE TRIGGER test_count AFTER UPDATE ON nex_session_fields WHEN new.field = 'user_id'
             BEGIN UPDATE test_writes SET n = n + 1; END;",
        )
        .unwrap();
}

fn writes(db: &TempDb) -> u64 {
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.query_row("SELECT n FROM test_writes", [], |row| row.get::<_, i64>(0)).unwrap().try_into().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_field_are_group_committed_and_all_counted() {
    let db = TempDb::new("group-commit");
    let store = SqliteStore::open(&db.0).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    store.apply(key, &one_field(b"0"), in_an_hour(), Presence::New).await.unwrap();
    increment(&store, key).await;
    count_writes(&db);
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { increment(&store, key).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let writes = writes(&db);
    assert_eq!(loaded(&store, key).await.as_deref(), Some(&b"501"[..]));
    eprintln!("500 concurrent increments: {writes} writes of the field");
    assert!((1..500).contains(&writes), "500 concurrent increments wrote the field {writes} times: no batching");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_never_overwrites_what_another_process_wrote() {
    let db = TempDb::new("stale-tip");
    let (a, b) = (SqliteStore::open(&db.0).await.unwrap(), SqliteStore::open(&db.0).await.unwrap());
    let key = SessionId::generate().unwrap().store_key();
    a.apply(key, &one_field(b"0"), in_an_hour(), Presence::New).await.unwrap();
    // `a` now remembers user_id = 1 (its chain's tip) ...
    increment(&a, key).await;
    // ... which another connection to the file makes stale.
    b.apply(key, &one_field(b"100"), in_an_hour(), Presence::Existing).await.unwrap();
    increment(&a, key).await;
    assert_eq!(loaded(&b, key).await.as_deref(), Some(&b"101"[..]), "the stale tip made the batch retry");
}

/// "Sign out everywhere" for a user with 100,000 sessions: one library call ends
/// them all, in committed batches that leave other writers the file between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_100_000_sessions_is_signed_out_everywhere() {
    let db = TempDb::new("scale");
    let store: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    nex_testkit::scale::sign_out_100_000(store).await;
}
