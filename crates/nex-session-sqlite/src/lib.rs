//! The SQLite store: durable sessions on one machine.
//!
//! One row per session (`nex_sessions`: hashed key, expiry, indexed) and one row
//! per `(session, field)` (`nex_session_fields`), in WAL mode with
//! `synchronous=NORMAL`: every committed write survives a crash or `kill -9` of
//! the app (not necessarily a power cut of the machine). Sessions bound to a user
//! also have a row in `nex_session_users` (the per-user index, see `users.rs`).
//! The schema is created or migrated on open (`connection.rs`; `PRAGMA
//! user_version`, now 2: version 2 added the user index; a version 1 file gains
//! it on open). An older nex-session refuses to open a version 2 file, and one
//! already running would not move index rows on renew: upgrade every app
//! instance sharing a file at once.
//!
//! SQLite calls block, so each one runs on the store's own connection thread
//! (`worker.rs`), never on the async worker threads. The exception is a load of
//! a session in the read cache (`cache.rs`): it waits for the next shared check
//! that nothing changed the file (`validation.rs`: one `stat` and one `PRAGMA
//! data_version` for all the reads waiting at the time), which runs on an async
//! thread when the connection is free (it waits for no writer); a store opened with
//! `open_exclusive` holds the file alone and skips that check. Batches run in one
//! `IMMEDIATE` transaction. `update`
//! is a compare-and-set (one `IMMEDIATE` transaction writes only if the field
//! still holds what the closure saw, else the closure runs again on a fresh read),
//! so no increment is ever lost, also with several processes sharing the file;
//! concurrent updates of one field in this process share one such transaction
//! (group commit, `toolkit::update_chain` of the core; this store's side is
//! `compare_and_set.rs`). Expired sessions are purged in batches of 500 rows
//! per transaction (`admin.rs`).
//!
//! Before each operation the store checks that its path still names the file it
//! opened (one `stat`): a database deleted or replaced under a running app fails
//! every operation with [`StoreError::Unavailable`] naming the path, so the app
//! answers 503 instead of acknowledging writes into a file nobody will read again.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nex_session::StoreError> {
//! use nex_session::store::SqliteStore;
//! let store = SqliteStore::open("sessions.db").await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! Apps depend on the facade crate, `nex-session = { version = "0.1", features = ["sqlite"] }`,
//! and use this store as `nex_session::store::SqliteStore`; this crate depends on
//! `nex-session-core`'s public API only.
//!
//! [`StoreError::Unavailable`]: nex_session_core::StoreError::Unavailable

mod admin;
mod cache;
mod compare_and_set;
mod connection;
mod file_identity;
mod rows;
mod session_store;
mod store;
mod user_rows;
mod users;
mod validation;
mod worker;

pub use store::SqliteStore;
