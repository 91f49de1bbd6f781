//! The store handle: its parts, opening it, and the path every operation takes
//! (the connection thread, the file check, the read cache and its shared checks).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::cache::{data_version, ReadCache, Touched};
use crate::connection::{open_blocking, unavailable, Locking, Missing};
use crate::file_identity::FileIdentity;
use crate::validation::Validation;
use crate::worker::Worker;
use nex_session_core::store::toolkit::update_chain::Updates;
use nex_session_core::store::Snapshot;
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Sessions in a SQLite file: durable sessions on one machine, with no server
/// to run. Cloning shares the connection.
///
/// **Pick it** for an app on one machine (or several processes sharing one
/// file on a local disk) that must keep its users signed in across restarts.
/// For several machines use the Redis or PostgreSQL store; for throwaway
/// sessions, the memory store.
///
/// **URL** ([`nex_session::store::open`](https://docs.rs/nex-session/latest/nex_session/store/fn.open.html),
/// `NEX_SESSION_STORE`, the CLI's `--store`): `sqlite://PATH`, e.g.
/// `sqlite://sessions.db` or `sqlite:///var/lib/app/sessions.db`. The file is
/// created with its schema on first open ([`open`](Self::open)); tools that must
/// not create one use [`open_existing`](Self::open_existing).
///
/// **Guarantees**:
/// - every acknowledged write survives a crash or `kill -9` of the app (WAL,
///   `synchronous=NORMAL`; a power cut of the machine may lose the last ones);
/// - `update` never loses an increment, also with several processes on one
///   file (a compare-and-set per transaction, concurrent updates of this process
///   grouped into one);
/// - reads of a session this process loaded are served from a read cache while
///   the file is unchanged (checked with one `stat` and `PRAGMA data_version`),
///   so another process's write is seen by the next read; a store opened with
///   [`open_exclusive`](Self::open_exclusive) (URL `sqlite://PATH?locking=exclusive`)
///   holds the file alone instead, and serves cached reads without any check;
/// - per-user sessions (`users()`), revocation of any number of them in
///   committed batches of 1,000, the background purge of expired sessions.
///
/// **Failures**: SQLite calls run on the store's own thread, never on the async
/// workers. A file locked by another process is waited for up to 5 s (SQLite's
/// busy timeout), then the call fails with [`StoreError::Unavailable`]; an
/// `update` past its own timeout answers [`StoreError::Timeout`] (or
/// [`StoreError::OutcomeUnknown`] when its write may have landed). A file deleted
/// or replaced under the running app fails every call with
/// [`StoreError::Unavailable`] naming the path (the app answers 503 rather than
/// acknowledging writes into a file nobody reads).
///
/// ```no_run
/// # async fn demo() -> Result<(), nex_session::StoreError> {
/// use std::sync::Arc;
/// use nex_session::store::SqliteStore;
/// use nex_session::{SessionConfig, SessionLayer};
///
/// let store = SqliteStore::open("sessions.db").await?;
/// let config = SessionConfig::from_env().expect("SECRET_KEY_BASE");
/// let layer = SessionLayer::with_shared_store(Arc::new(store), config);
/// # let _ = layer; Ok(()) }
/// ```
///
/// How it works inside (tables, migrations, the read cache) is in the crate
/// docs of `nex-session-sqlite`.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) conn: Arc<Mutex<Connection>>,
    /// The group commit of concurrent `update`s (`toolkit::update_chain` of the core).
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
    /// Whether other processes may share the file ([`SqliteStore::open_exclusive`]).
    pub(crate) locking: Locking,
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
        Self::open_as(path.as_ref(), Missing::Create, Locking::Shared).await
    }

    /// Opens (or creates) the database at `path` for this store alone, for as
    /// long as it is open: the app that owns its sessions file, one process.
    ///
    /// The connection holds SQLite's exclusive lock from the open on (`PRAGMA
    /// locking_mode=EXCLUSIVE`), so no other process can read or write the file,
    /// and reads of a cached session skip the check that nothing else changed it:
    /// a cached read is a map lookup, at the speed of the memory store, and still
    /// exact (nothing else *can* change the file). Writes are as durable as with
    /// [`open`](Self::open).
    ///
    /// What it costs: the CLI (`nex-session sessions --store sqlite://…`) and any
    /// other process cannot open the file while the app runs (they fail after 5 s
    /// with "locked by another process"); sign users out from the app itself
    /// (`users()`). A file deleted under the running app is noticed at its next
    /// write or uncached read, not at a cached read. URL: `sqlite://PATH?locking=exclusive`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// use nex_session::store::SqliteStore;
    /// let store = SqliteStore::open_exclusive("sessions.db").await?;
    /// // A second store on the file, in this process or another, is refused:
    /// assert!(SqliteStore::open("sessions.db").await.is_err());
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated, or
    /// another connection has it open (after SQLite's 5 s busy timeout).
    pub async fn open_exclusive(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_as(path.as_ref(), Missing::Create, Locking::Exclusive).await
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
        Self::open_as(path.as_ref(), Missing::Refuse, Locking::Shared).await
    }

    /// [`open_exclusive`](Self::open_exclusive) of an existing file only, as
    /// [`open_existing`](Self::open_existing) is to [`open`](Self::open).
    ///
    /// # Errors
    /// As `open_existing`, and as `open_exclusive` when the file is there.
    pub async fn open_existing_exclusive(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_as(path.as_ref(), Missing::Refuse, Locking::Exclusive).await
    }

    async fn open_as(path: &Path, missing: Missing, locking: Locking) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let for_task = path.clone();
        let (conn, file) = tokio::task::spawn_blocking(move || {
            let conn = open_blocking(&for_task, missing, locking)?;
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
            locking,
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
    pub(crate) async fn cached(&self, key: StoreKey) -> Option<(Snapshot, i64)> {
        if self.locking == Locking::Exclusive {
            return self.cache.get_exclusive(key, now_ms());
        }
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
