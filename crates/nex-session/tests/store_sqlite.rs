//! The SQLite store on a real file: conformance, no lost updates across two app
//! servers sharing the file, and durability across reopening.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use nex_session::store::{conformance, Change, Presence, SessionStore, SqliteStore};
use nex_session::SessionId;

/// A temporary database file, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nex-session-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir.join("sessions.db"))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

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
