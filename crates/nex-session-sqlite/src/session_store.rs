//! [`SessionStore`] and [`FastReads`] on SQLite: a load from the read cache when
//! it can answer, else from the file; every write in one transaction on the
//! connection thread; `update` through the group commit (`compare_and_set.rs`).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::cache::{data_version, ReadCache, Touched};
use crate::connection::Locking;
use crate::rows::{claim, delete_session, live, write_field};
use crate::store::SqliteStore;
use crate::user_rows::{reindex, unindex};
use nex_session_core::store::toolkit::update_chain::{self, FieldUpdate};
use nex_session_core::store::{
    BoxFuture, Changes, FastReads, Fields, LoadNow, Presence, Record, SessionAdmin, SessionStore, Snapshot, UpdateFn,
    UserIndex, WriteOutcome,
};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

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
        // The cached copy, checked against the file or not: the chain starts from
        // it without a read, and the compare-and-set catches a stale one
        // (`update_known`).
        let known = move || self.cache.get_exclusive(key, now_ms()).map(|(fields, _)| fields);
        let update = FieldUpdate { key, field, expires_at_ms, presence };
        Box::pin(update_chain::update_known(self, &self.updates, update, f, known))
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
    fn load_now(&self, key: StoreKey, now_ms: i64) -> LoadNow {
        // Only a store that holds its file alone knows without asking: for the
        // others a cached session must first be checked against the file.
        let known = (self.locking == Locking::Exclusive).then(|| self.cache.get_exclusive(key, now_ms));
        match known.flatten() {
            Some((fields, _)) => LoadNow::Found(fields),
            None => LoadNow::Unknown,
        }
    }

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
