//! Administration for operators and the background purge ([`SessionAdmin`]):
//! expired sessions deleted in batches, and a listing of live sessions.

use rusqlite::{params, TransactionBehavior};

use crate::cache::Touched;
use crate::store::SqliteStore;
use nex_session_core::store::{BoxFuture, SessionAdmin, Summary};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Expired sessions deleted per transaction (requests run in between).
const PURGE_BATCH: i64 = 500;

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
