//! Shared by the HTTP tests that run on every store (they need the `sqlite` and
//! `redis` features).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use nex_session::store::{MemoryStore, RedisStore, SessionStore, SqliteStore};
use nex_testkit::{RedisServer, TempDb};

/// The three stores, each fresh, with what must outlive them (the file, the server).
pub struct Stores {
    pub list: Vec<(&'static str, Arc<dyn SessionStore>)>,
    _db: TempDb,
    _redis: RedisServer,
}

/// Fresh memory, SQLite and Redis stores for `test`; Redis keys start with `<prefix>:<test>:`.
pub async fn stores(prefix: &str, test: &str) -> Stores {
    let db = TempDb::new(test);
    let sqlite = SqliteStore::open(&db.0).await.unwrap();
    let redis_server = RedisServer::start_private();
    let redis =
        RedisStore::open_with(&redis_server.url(), &format!("{prefix}:{test}:"), Duration::from_secs(2)).await.unwrap();
    let list: Vec<(&'static str, Arc<dyn SessionStore>)> =
        vec![("memory", Arc::new(MemoryStore::new())), ("sqlite", Arc::new(sqlite)), ("redis", Arc::new(redis))];
    Stores { list, _db: db, _redis: redis_server }
}
