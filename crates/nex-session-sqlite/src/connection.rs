//! Opening the store's SQLite connection: the file (created, or only one that
//! exists), the connection's settings (WAL, `synchronous=NORMAL`, the busy
//! timeout, the statement cache) and the schema, created or migrated on open.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use nex_session_core::StoreError;

/// The schema version this store reads and writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;
/// Prepared statements kept per connection.
const STATEMENTS: usize = 64;
/// How long a statement waits for another process's lock on the file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A failure of SQLite or of the file system, as the store reports it.
pub(crate) fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}

/// What opening does when no file is at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Create,
    Refuse,
}

/// Whether the store shares the file with other processes (SQLite's normal
/// locking) or holds it alone for as long as it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locking {
    /// Other processes may read and write the file: every cached read is checked
    /// against it first (`validation.rs`).
    Shared,
    /// `PRAGMA locking_mode=EXCLUSIVE`, with the lock taken at open: no other
    /// process can open the file, so the read cache needs no check.
    Exclusive,
}

/// The file is locked by another connection.
#[derive(Debug, thiserror::Error)]
#[error(
    "the SQLite session database {path:?} is locked by another process{why}; \
     a store opened with `locking=exclusive` holds its file until it exits"
)]
struct Locked {
    path: PathBuf,
    why: &'static str,
}

/// No database file where one was required.
#[derive(Debug, thiserror::Error)]
#[error("no SQLite session database at {0:?} (opening existing files only: check the path)")]
struct NoDatabase(PathBuf);

/// The schema, version 2 (version 1 lacked `nex_session_users`).
const SCHEMA: &str = "BEGIN IMMEDIATE;
     CREATE TABLE IF NOT EXISTS nex_sessions (
         key BLOB PRIMARY KEY,
         expires_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS nex_sessions_expires_at ON nex_sessions (expires_at);
     CREATE TABLE IF NOT EXISTS nex_session_fields (
         key BLOB NOT NULL,
         field TEXT NOT NULL,
         value BLOB NOT NULL,
         PRIMARY KEY (key, field)
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS nex_session_users (
         store_key BLOB PRIMARY KEY,
         user TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS nex_session_users_user ON nex_session_users (user);
     PRAGMA user_version = 2;
     COMMIT;";

/// Opens the connection at `path` and brings its schema to [`SCHEMA_VERSION`]
/// (blocking: run it off the async threads).
pub(crate) fn open_blocking(path: &Path, missing: Missing, locking: Locking) -> Result<Connection, StoreError> {
    let conn = match missing {
        Missing::Create => Connection::open(path),
        Missing::Refuse => {
            // Checked first for a clear message; the flags (no CREATE) close the race.
            if !path.is_file() {
                return Err(StoreError::Unavailable(Box::new(NoDatabase(path.to_owned()))));
            }
            Connection::open_with_flags(path, OpenFlags::default().difference(OpenFlags::SQLITE_OPEN_CREATE))
        }
    }
    .map_err(unavailable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    if locking == Locking::Exclusive {
        // Before WAL is entered: the WAL index then lives in this process's memory
        // (SQLite's docs, "locking_mode"), and no other process can reach the file.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE").map_err(unavailable)?;
    }
    let locked = |err: rusqlite::Error| match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) => StoreError::Unavailable(Box::new(Locked {
            path: path.to_owned(),
            why: if locking == Locking::Exclusive { " (an exclusive store needs the file alone)" } else { "" },
        })),
        _ => unavailable(err),
    };
    // Room for every statement the store runs (about 25): each is prepared once.
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    conn.pragma_update(None, "journal_mode", "WAL").map_err(locked)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(locked)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(locked)?;
    match version {
        SCHEMA_VERSION => {}
        // Every statement is `IF NOT EXISTS`, so one script creates a new file and
        // migrates a version 1 file; `IMMEDIATE`, so two processes opening one old
        // file at once migrate it one after the other.
        0 | 1 => conn.execute_batch(SCHEMA).map_err(locked)?,
        other => {
            let message = format!("session database schema version {other} is not one this nex-session knows");
            return Err(StoreError::Corrupt(format!("{message} (up to {SCHEMA_VERSION})").into()));
        }
    }
    if locking == Locking::Exclusive {
        // Takes the write lock now, and keeps it (exclusive mode never releases it):
        // a second process fails here, at its start, not at some later request.
        conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;").map_err(locked)?;
    }
    Ok(conn)
}
