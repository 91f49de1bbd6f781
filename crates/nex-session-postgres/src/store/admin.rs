//! The operator's calls ([`SessionAdmin`]): purging expired sessions in bounded
//! batches, listing live ones.

use nex_session_core::store::{BoxFuture, SessionAdmin, Summary};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;

use super::PostgresStore;
use crate::rows::session::store_key;

/// Sessions removed per purge transaction.
const PURGE_BATCH: i64 = 500;

/// One purge batch of expired sessions bound to no user.
const PURGE_UNBOUND: &str = "DELETE FROM nex_sessions WHERE key IN (
    SELECT s.key FROM nex_sessions s
    WHERE s.expires_at <= $1 AND NOT EXISTS (SELECT 1 FROM nex_session_users u WHERE u.store_key = s.key)
    LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// One purge batch of expired sessions bound to a user: index rows locked first.
const PURGE_BOUND: &str = "DELETE FROM nex_sessions WHERE key IN (
    SELECT u.store_key FROM nex_session_users u JOIN nex_sessions s ON s.key = u.store_key
    WHERE s.expires_at <= $1
    LIMIT $2 FOR UPDATE OF u SKIP LOCKED)";

impl SessionAdmin for PostgresStore {
    fn purge_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut total = 0u64;
            // Sessions without a user first, then bound ones, whose index rows are
            // locked before their session rows: the order `revoke_all` takes them in,
            // so the purge and a revoke never wait on each other in a cycle.
            for sql in [PURGE_UNBOUND, PURGE_BOUND] {
                loop {
                    // One bounded transaction per batch; rows a request holds are
                    // skipped (the next purge gets them).
                    let removed = self
                        .pool
                        .write(move |mut c| async move {
                            let n = c.execute(sql, &[&now_ms, &PURGE_BATCH]).await?;
                            Ok((c, n))
                        })
                        .await?;
                    total += removed;
                    if removed < PURGE_BATCH.unsigned_abs() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
            Ok(total)
        })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.pool.read(move |mut c| async move {
            let rows = c
                .query(
                    "SELECT s.key, s.expires_at, (SELECT count(*) FROM nex_session_fields f WHERE f.key = s.key)
                     FROM nex_sessions s WHERE s.expires_at > $1 ORDER BY s.expires_at DESC LIMIT $2",
                    &[&now_ms(), &limit],
                )
                .await?;
            let mut summaries = Vec::with_capacity(rows.len());
            for row in rows {
                // Only 32-byte keys are written; anything else is no session of ours.
                let Some(key) = store_key(row.try_get::<_, &[u8]>(0)?) else { continue };
                let fields = usize::try_from(row.try_get::<_, i64>(2)?).unwrap_or(usize::MAX);
                summaries.push(Summary { key, fields, expires_at_ms: row.try_get(1)? });
            }
            Ok((c, summaries))
        }))
    }
}
