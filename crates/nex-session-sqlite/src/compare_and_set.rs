//! `update` on SQLite: the store's side of the core's group commit, a read of
//! the field and a compare-and-set, each bounded by [`UPDATE_TIMEOUT`].

use rusqlite::TransactionBehavior;

use crate::cache::{data_version, Touched};
use crate::rows::{claim_known, live, read_field, write_field};
use crate::store::SqliteStore;
use nex_session_core::store::toolkit::update_chain::{Cas, CasAnswer, CasOp, CasStore, FieldNow};
use nex_session_core::store::BoxFuture;
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Bound on one `update` (its waits for the connection thread and its batch):
/// twice the busy timeout, so only a file locked by another process for that
/// long fails an update (with [`StoreError::Timeout`], or
/// [`StoreError::OutcomeUnknown`] once its transaction was handed to the thread).
const UPDATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The update chains' group commit (`toolkit::update_chain` of the core) on SQLite: a
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
