//! The SQLite store's read cache: loaded sessions kept in memory, served again
//! only while `PRAGMA data_version` says no other connection committed anything.
//!
//! # The guarantee
//!
//! A `load` answered from the cache returns exactly what a read of the database
//! would return at that moment. Each entry remembers the connection's
//! `data_version` of the snapshot it was read from (read inside the same read
//! transaction). SQLite documents that this value changes whenever another
//! connection, in this process or another one, commits a change to the file, and
//! stays the same for the connection's own commits. So:
//!
//! - a commit by any other connection or process changes the value, and every
//!   entry stamped before it is refused (and dropped) on its next use;
//! - this connection's own writes go through [`SqliteStore`](crate::store::SqliteStore),
//!   which drops the entries of the sessions a write touches, under the connection
//!   lock, before the write runs ([`Touched`]).
//!
//! The check runs on the connection thread, shared by the reads waiting at the
//! time and started after each of them began (`validation.rs`). `PRAGMA
//! data_version` opens and closes a read transaction, which in WAL mode reads the
//! WAL index in shared memory and takes no lock a writer holds, so it does not
//! wait for writers. The file check (one `stat`) runs with it, as before every
//! operation.
//!
//! The value is a counter: two readings equal although 2³² commits happened in
//! between would serve a stale entry; the entries of a session expire with it and
//! the cache holds at most [`CAPACITY`] of them, emptied when full.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rusqlite::Connection;

use nex_session_core::store::{Record, Snapshot};
use nex_session_core::StoreKey;

/// Entries kept at most; the cache is emptied when a load would pass it.
pub(super) const CAPACITY: usize = 4096;

/// Which cached sessions a write may change.
#[derive(Debug, Clone, Copy)]
pub(super) enum Touched {
    /// A read: nothing.
    Nothing,
    /// The sessions under these keys.
    Keys(StoreKey, Option<StoreKey>),
    /// Any session (a purge, a revocation by user).
    Everything,
}

impl Touched {
    /// The session under `key`.
    pub(super) fn key(key: StoreKey) -> Self {
        Self::Keys(key, None)
    }
}

struct Entry {
    /// Shared with the requests that read it (cloning is a counter increment).
    fields: Snapshot,
    expires_at_ms: i64,
    /// The connection's `data_version` when the record was read.
    data_version: i64,
}

/// Sessions read through one connection (shared by the clones of one store).
#[derive(Default)]
pub(super) struct ReadCache {
    entries: Mutex<BTreeMap<StoreKey, Entry>>,
}

impl ReadCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<StoreKey, Entry>> {
        // An entry is written whole under the lock: a panic elsewhere leaves none half-made.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an unexpired entry exists for `key` (no connection needed).
    pub(super) fn holds(&self, key: StoreKey, now_ms: i64) -> bool {
        self.entries().get(&key).is_some_and(|entry| entry.expires_at_ms > now_ms)
    }

    /// The cached fields of `key`, if they were read at `data_version` and are unexpired.
    /// `data_version` must have been read, on this store's connection, by a check
    /// that began after the caller's load did (`validation.rs`). An entry that does
    /// not match is dropped (at worst a newer one: a cache miss, never a stale answer).
    pub(super) fn get(&self, key: StoreKey, now_ms: i64, data_version: i64) -> Option<(Snapshot, i64)> {
        let mut entries = self.entries();
        let entry = entries.get(&key)?;
        if entry.data_version == data_version && entry.expires_at_ms > now_ms {
            return Some((entry.fields.clone(), entry.expires_at_ms));
        }
        entries.remove(&key);
        None
    }

    /// The cached fields of `key`, if unexpired, without comparing versions: only
    /// for a store that holds its file exclusively (`SqliteStore::open_exclusive`),
    /// where no other connection can commit and this one keeps the cache in step
    /// with each of its own writes.
    pub(super) fn get_exclusive(&self, key: StoreKey, now_ms: i64) -> Option<(Snapshot, i64)> {
        let entries = self.entries();
        let entry = entries.get(&key).filter(|entry| entry.expires_at_ms > now_ms)?;
        Some((entry.fields.clone(), entry.expires_at_ms))
    }

    /// Remembers `record`, read at `data_version`, and hands back its fields as
    /// cached. Call with the connection locked.
    pub(super) fn put(&self, key: StoreKey, record: &Record, data_version: i64) -> Snapshot {
        let fields = Snapshot::from_fields(&record.fields);
        let mut entries = self.entries();
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.clear();
        }
        let entry = Entry { fields: fields.clone(), expires_at_ms: record.expires_at_ms, data_version };
        entries.insert(key, entry);
        fields
    }

    /// Takes the entry of `key` out of the cache, for a write of this connection to
    /// put back changed ([`Taken::put_back`]) once committed. Call with the
    /// connection locked, inside the write transaction, with `data_version` read
    /// in it: the entry is only returned if it still shows the database as this
    /// transaction sees it, and unexpired at `now_ms`.
    pub(super) fn take(&self, key: StoreKey, now_ms: i64, data_version: i64) -> Option<Taken<'_>> {
        let entry = self.entries().remove(&key)?;
        let current = entry.data_version == data_version && entry.expires_at_ms > now_ms;
        current.then_some(Taken { cache: self, key, entry })
    }

    /// Drops what a write may change. Call with the connection locked, before the write.
    pub(super) fn forget(&self, touched: Touched) {
        match touched {
            Touched::Nothing => {}
            Touched::Keys(a, b) => {
                let mut entries = self.entries();
                entries.remove(&a);
                if let Some(b) = b {
                    entries.remove(&b);
                }
            }
            Touched::Everything => self.entries().clear(),
        }
    }
}

/// A cached session taken out by a write ([`ReadCache::take`]).
pub(super) struct Taken<'a> {
    cache: &'a ReadCache,
    key: StoreKey,
    entry: Entry,
}

impl Taken<'_> {
    /// Puts the entry back with the write's effect: `fields` changed as given, the
    /// expiry moved. Call after the commit, still under the connection lock. Its
    /// `data_version` stays valid: the connection's own commits leave it unchanged.
    pub(super) fn put_back<'f>(
        mut self,
        changes: impl IntoIterator<Item = (&'f String, Option<&'f [u8]>)>,
        expires_at_ms: i64,
    ) {
        self.entry.fields = self.entry.fields.merged(changes.into_iter().map(|(field, value)| (field.as_str(), value)));
        self.entry.expires_at_ms = expires_at_ms;
        self.cache.entries().insert(self.key, self.entry);
    }
}

/// The connection's `PRAGMA data_version`.
pub(super) fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))
}
