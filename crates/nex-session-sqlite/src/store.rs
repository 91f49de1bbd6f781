use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::connection::{open_blocking, unavailable, Missing};
use crate::file_identity::FileIdentity;
use crate::rows::{claim, claim_known, delete_session, live, read_field, write_field};
use crate::user_rows::{reindex, unindex};
use nex_session_core::store::toolkit::update_chain::{self, Cas, CasAnswer, CasOp, CasStore, FieldNow, Updates};
use nex_session_core::store::{
    BoxFuture, Changes, FastReads, Fields, Presence, Record, SessionAdmin, SessionStore, Snapshot, Summary, UpdateFn,
    UserIndex, WriteOutcome,
};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

use crate::cache::{data_version, ReadCache, Touched};
use crate::validation::Validation;
use crate::worker::Worker;

const PURGE_BATCH: i64 = 500;
/// Bound on one `update` (its waits for the connection thread and its batch):
/// twice the busy timeout, so only a file locked by another process for that
/// long fails an update (with [`StoreError::Timeout`], or
/// [`StoreError::OutcomeUnknown`] once its transaction was handed to the thread).
const UPDATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sessions in a SQLite file. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) conn: Arc<Mutex<Connection>>,
    /// The group commit of concurrent `update`s (`store/update_chain.rs`).
    pub(crate) updates: Arc<Updates>,
    /// Sessions loaded through this connection, served while nothing changed (`cache.rs`).
    pub(crate) cache: Arc<ReadCache>,
    /// The shared checks that nothing changed (`validation.rs`).
    pub(crate) validation: Arc<Validation>,
    /// The thread that runs the blocking calls (`worker.rs`).
    pub(crate) worker: Arc<Worker>,
    pub(crate) path: PathBuf,
    /// The file `path` named at open, checked before each operation (`None`: in memory).
    pub(crate) file: Option<Arc<FileIdentity>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, enabling WAL and creating or
    /// migrating the schema.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_as(path.as_ref(), Missing::Create).await
    }

    /// Opens the database at `path` only if the file exists (then as [`open`](Self::open)
    /// does): for tools that must not create an empty database when given a
    /// mistyped path.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use nex_session::store::SqliteStore;
    /// let err = SqliteStore::open_existing("/var/lib/app/sesions.db").await.unwrap_err();
    /// assert!(err.to_string().contains("sesions.db"));
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] naming the path when no file is there; otherwise as `open`.
    pub async fn open_existing(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_as(path.as_ref(), Missing::Refuse).await
    }

    async fn open_as(path: &Path, missing: Missing) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let for_task = path.clone();
        let (conn, file) = tokio::task::spawn_blocking(move || {
            let conn = open_blocking(&for_task, missing)?;
            // After the open, which may have created the file.
            Ok::<_, StoreError>((conn, FileIdentity::of(&for_task)?))
        })
        .await
        .map_err(unavailable)??;
        let updates = Arc::new(Updates::new());
        let cache = Arc::new(ReadCache::default());
        let worker = Arc::new(Worker::start()?);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            updates,
            cache,
            validation: Arc::default(),
            worker,
            path,
            file: file.map(Arc::new),
        })
    }

    /// Runs `op` on the connection on the store's connection thread, first dropping
    /// the cached sessions it may change (`touched`).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        touched: Touched,
        op: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let file = self.file.clone();
        let cache = self.cache.clone();
        self.worker
            .run(move || {
                let mut conn = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // Under the connection lock, so no operation of this store runs between
                // the check and `op`.
                if let Some(file) = &file {
                    file.check()?;
                }
                // Also under the lock, before the write: no load can cache the old
                // value between the two (a load caches under the same lock).
                cache.forget(touched);
                op(&mut conn).map_err(unavailable)
            })
            .await
    }

    /// The session under `key` from the read cache, if cached and nothing changed
    /// since the load began (`cache.rs`, `validation.rs`); `None` sends the load to
    /// the database.
    async fn cached(&self, key: StoreKey) -> Option<(Snapshot, i64)> {
        if !self.cache.holds(key, now_ms()) {
            return None;
        }
        let wait = self.validation.ask();
        if wait.run {
            let runner = Runner { store: self, round: wait.round, handed_over: false };
            // Let the requests ready on this thread reach their loads and join the round.
            tokio::task::yield_now().await;
            runner.check();
        }
        let version = self.validation.wait(wait.round).await?;
        self.cache.get(key, now_ms(), version)
    }
}

/// The runner of a validation round (`validation.rs`). Dropped before it handed
/// the round over (its request was cancelled), it ends the round with `None`.
struct Runner<'a> {
    store: &'a SqliteStore,
    round: u64,
    handed_over: bool,
}

impl Runner<'_> {
    /// Begins the round and runs its check: here when the connection is free,
    /// else on the connection thread (a write holds it; never wait for it here).
    fn check(mut self) {
        self.handed_over = true;
        let (store, round) = (self.store, self.round);
        store.validation.begin(round);
        let conn = match store.conn.try_lock() {
            Ok(conn) => Some(conn),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(conn) = conn {
            store.validation.finish(round, current_version(&conn, store.file.as_deref()));
            return;
        }
        let (conn, file, validation) = (store.conn.clone(), store.file.clone(), store.validation.clone());
        let submitted = store.worker.submit(move || {
            let conn = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            validation.finish(round, current_version(&conn, file.as_deref()));
        });
        if submitted.is_err() {
            // The thread is gone: the reads go to the database, which reports it.
            store.validation.finish(round, None);
        }
    }
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        if !self.handed_over {
            self.store.validation.begin(self.round);
            self.store.validation.finish(self.round, None);
        }
    }
}

/// The connection's `data_version` if the path still names the opened file;
/// `None` if not, or if SQLite fails (the reads then go to the database, which
/// reports the error).
fn current_version(conn: &Connection, file: Option<&FileIdentity>) -> Option<i64> {
    if file.is_some_and(|file| file.check().is_err()) {
        return None;
    }
    data_version(conn).ok()
}

/// Reads the session under `key` in one read transaction and caches it, stamped
/// with the `data_version` of that transaction's snapshot.
fn load_and_cache(
    conn: &mut Connection,
    key: StoreKey,
    cache: &ReadCache,
) -> rusqlite::Result<Option<(Record, Snapshot)>> {
    let tx = conn.transaction()?;
    // First, so the read transaction (and its snapshot) starts with it.
    let version = data_version(&tx)?;
    let k = key.as_bytes().as_slice();
    let expires: Option<i64> = tx
        .prepare_cached("SELECT expires_at FROM nex_sessions WHERE key = ?1 AND expires_at > ?2")?
        .query_row(params![k, now_ms()], |r| r.get(0))
        .optional()?;
    let Some(expires_at_ms) = expires else { return Ok(None) };
    let mut fields = Fields::new();
    {
        let mut stmt = tx.prepare_cached("SELECT field, value FROM nex_session_fields WHERE key = ?1")?;
        let rows = stmt.query_map(params![k], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        for row in rows {
            let (field, value) = row?;
            fields.insert(field, value);
        }
    }
    tx.commit()?;
    let record = Record { fields, expires_at_ms };
    let snapshot = cache.put(key, &record, version);
    Ok(Some((record, snapshot)))
}

impl SessionStore for SqliteStore {
    fn fast_reads(&self) -> Option<&dyn FastReads> {
        Some(self)
    }

    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            if let Some((fields, expires_at_ms)) = self.cached(key).await {
                return Ok(Some(Record { fields: fields.to_fields(), expires_at_ms }));
            }
            let cache = self.cache.clone();
            let loaded = self.run(Touched::Nothing, move |conn| load_and_cache(conn, key, &cache)).await?;
            Ok(loaded.map(|(record, _)| record))
        })
    }

    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let changes = changes.clone();
        let cache = self.cache.clone();
        // The cached entry is taken out (dropped unless put back): `Touched::Nothing`.
        Box::pin(self.run(Touched::Nothing, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let cached = cache.take(key, now, data_version(&tx)?);
            let k = key.as_bytes().as_slice();
            if !claim(&tx, k, presence, expires_at_ms, now)? {
                return Ok(WriteOutcome::PresenceFailed);
            }
            for (field, change) in &changes {
                write_field(&tx, k, field, change.value())?;
            }
            tx.commit()?;
            if let Some(cached) = cached {
                cached.put_back(changes.iter().map(|(field, change)| (field, change.value())), expires_at_ms);
            }
            Ok(WriteOutcome::Done)
        }))
    }

    fn update<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        f: UpdateFn<'a>,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        Box::pin(update_chain::update(self, &self.updates, key, field, f, expires_at_ms, presence))
    }

    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.run(Touched::key(key), move |conn| {
            let n = conn
                .prepare_cached("UPDATE nex_sessions SET expires_at = ?1 WHERE key = ?2 AND expires_at > ?3")?
                .execute(params![expires_at_ms, key.as_bytes().as_slice(), now_ms()])?;
            Ok(n == 1)
        }))
    }

    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.run(Touched::Keys(from, Some(to)), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (from, to) = (from.as_bytes().as_slice(), to.as_bytes().as_slice());
            let now = now_ms();
            if !live(&tx, from, now)? || live(&tx, to, now)? {
                return Ok(false);
            }
            delete_session(&tx, to)?;
            tx.prepare_cached("UPDATE nex_session_fields SET key = ?1 WHERE key = ?2")?.execute(params![to, from])?;
            tx.prepare_cached("UPDATE nex_sessions SET key = ?1, expires_at = ?2 WHERE key = ?3")?.execute(params![
                to,
                expires_at_ms,
                from
            ])?;
            // The binding moved with the fields; its index row follows.
            reindex(&tx, from, to)?;
            tx.commit()?;
            Ok(true)
        }))
    }

    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.run(Touched::key(key), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let key = key.as_bytes().as_slice();
            delete_session(&tx, key)?;
            unindex(&tx, key)?;
            tx.commit()
        }))
    }

    fn users(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn admin(&self) -> Option<&dyn SessionAdmin> {
        Some(self)
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        // The path every operation takes (the file check, the connection lock,
        // the blocking pool), with the cheapest statement that reads nothing.
        Box::pin(self.run(Touched::Nothing, |conn| {
            conn.prepare_cached("SELECT 1")?.query_row([], |row| row.get::<_, i64>(0)).map(drop)
        }))
    }
}

impl FastReads for SqliteStore {
    fn load_snapshot(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
        // The cached snapshot itself: no map built, no bytes copied.
        Box::pin(async move {
            if let Some((fields, _)) = self.cached(key).await {
                return Ok(Some(fields));
            }
            let cache = self.cache.clone();
            let loaded = self.run(Touched::Nothing, move |conn| load_and_cache(conn, key, &cache)).await?;
            Ok(loaded.map(|(_, snapshot)| snapshot))
        })
    }
}

/// The update chains' group commit (`store/update_chain.rs`) on SQLite: a
/// compare-and-set is one `IMMEDIATE` transaction on the connection thread.
impl CasStore for SqliteStore {
    fn timeout(&self) -> std::time::Duration {
        UPDATE_TIMEOUT
    }

    fn read_field<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<FieldNow, StoreError>> {
        let field = field.to_owned();
        let read = self.run(Touched::Nothing, move |conn| {
            let tx = conn.transaction()?;
            let k = key.as_bytes().as_slice();
            let is_live = live(&tx, k, now_ms())?;
            let current = if is_live { read_field(&tx, k, &field)? } else { None };
            tx.commit()?;
            Ok((is_live, current))
        });
        Box::pin(async move {
            // Out of time, the read may still run later: harmless, it writes nothing.
            tokio::time::timeout_at(deadline, read).await.map_err(|_| StoreError::Timeout(UPDATE_TIMEOUT))?
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        cas: &'a Cas<'a>,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<CasAnswer, StoreError>> {
        let (key, presence, expires_at_ms, op) = (cas.key, cas.presence, cas.expires_at_ms, cas.op);
        let field = cas.field.to_owned();
        let expected = cas.expected.map(<[u8]>::to_vec);
        let new = cas.new.map(<[u8]>::to_vec);
        let cache = self.cache.clone();
        // The cached entry is taken out (dropped unless put back): `Touched::Nothing`.
        let write = self.run(Touched::Nothing, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let cached = cache.take(key, now, data_version(&tx)?);
            let k = key.as_bytes().as_slice();
            let is_live = live(&tx, k, now)?;
            if !presence.holds(is_live) {
                return Ok(CasAnswer::PresenceFailed);
            }
            let current = if is_live { read_field(&tx, k, &field)? } else { None };
            if current != expected {
                return Ok(CasAnswer::Conflict);
            }
            let value = match op {
                // Nothing to write: the transaction ends without a change.
                CasOp::Check => return Ok(CasAnswer::Done),
                CasOp::Put => new,
                CasOp::Delete => None,
            };
            // `is_live` was read in this transaction, and `presence` holds.
            if !claim_known(&tx, k, presence, is_live, expires_at_ms)? {
                return Ok(CasAnswer::PresenceFailed);
            }
            write_field(&tx, k, &field, value.as_deref())?;
            tx.commit()?;
            if let Some(cached) = cached {
                cached.put_back([(&field, value.as_deref())], expires_at_ms);
            }
            Ok(CasAnswer::Done)
        });
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, write).await {
                Ok(answer) => answer,
                // Handed to the connection thread, which may still run it.
                Err(_) => Err(StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(UPDATE_TIMEOUT)))),
            }
        })
    }
}

impl SessionAdmin for SqliteStore {
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut total = 0u64;
            loop {
                let removed = self
                    .run(Touched::Everything, move |conn| {
                        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        tx.execute(
                            "CREATE TEMP TABLE IF NOT EXISTS nex_purge (key BLOB PRIMARY KEY) WITHOUT ROWID",
                            [],
                        )?;
                        tx.execute("DELETE FROM nex_purge", [])?;
                        tx.execute(
                            "INSERT INTO nex_purge SELECT key FROM nex_sessions WHERE expires_at <= ?1 LIMIT ?2",
                            params![now_ms, PURGE_BATCH],
                        )?;
                        tx.execute("DELETE FROM nex_session_fields WHERE key IN (SELECT key FROM nex_purge)", [])?;
                        tx.execute("DELETE FROM nex_session_users WHERE store_key IN (SELECT key FROM nex_purge)", [])?;
                        let n = tx.execute("DELETE FROM nex_sessions WHERE key IN (SELECT key FROM nex_purge)", [])?;
                        tx.commit()?;
                        Ok(n as u64)
                    })
                    .await?;
                total += removed;
                if removed < PURGE_BATCH as u64 {
                    return Ok(total);
                }
                // Let requests in between batches.
                tokio::task::yield_now().await;
            }
        })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.run(Touched::Nothing, move |conn| {
            let mut stmt = conn.prepare(
                "SELECT s.key, s.expires_at, (SELECT COUNT(*) FROM nex_session_fields f WHERE f.key = s.key)
                 FROM nex_sessions s WHERE s.expires_at > ?1 ORDER BY s.expires_at DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms(), limit], |r| {
                let key: Vec<u8> = r.get(0)?;
                let fields: i64 = r.get(2)?;
                Ok((key, r.get::<_, i64>(1)?, fields))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (key, expires_at_ms, fields) = row?;
                if let Ok(bytes) = <[u8; 32]>::try_from(key.as_slice()) {
                    out.push(Summary { key: StoreKey::from_bytes(bytes), fields: fields as usize, expires_at_ms });
                }
            }
            Ok(out)
        }))
    }
}
