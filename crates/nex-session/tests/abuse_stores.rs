//! Anonymous traffic never writes to a durable store (the memory store's case,
//! and the rest of the hardening, is in nex-session-core's `abuse` tests).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use nex_session::token::SecretKeyBase;
use nex_session::SessionConfig;
use nex_testkit::apps::{anonymous_flood, login_flow as app};
use nex_testkit::http::serve;

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new("test-secret-test-secret-test-secret-42").unwrap()).with_secure_cookie(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_adds_no_sqlite_rows() {
    let db = nex_testkit::TempDb::new("anonymous-flood");
    let path = db.0.clone();
    let store = Arc::new(nex_session::store::SqliteStore::open(&path).await.unwrap());
    let addr = serve(app(store.clone(), config())).await;
    anonymous_flood(addr, 100).await;
    let count = |table: &str| -> i64 {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    };
    assert_eq!((count("nex_sessions"), count("nex_session_fields")), (0, 0), "anonymous visitors left rows");
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_adds_no_redis_keys() {
    // A private server, so DBSIZE counts this test's keys alone.
    let server = nex_testkit::redis::RedisServer::start_private();
    let store = Arc::new(nex_session::store::RedisStore::open(&server.url()).await.unwrap());
    let addr = serve(app(store, config())).await;
    anonymous_flood(addr, 100).await;
    let mut conn = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let keys: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(keys, 0, "anonymous visitors left {keys} Redis keys");
}
