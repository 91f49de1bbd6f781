//! `update` across app instances: the hooks of the core's update chains (group
//! commit) on PostgreSQL. A compare-and-set is one transaction holding the
//! session row's lock, so no other instance writes the session between the
//! comparison and the write.

use std::time::Duration;

use nex_session_core::store::toolkit::update_chain::{Cas, CasAnswer, CasOp, CasStore, FieldNow};
use nex_session_core::store::BoxFuture;
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

use super::one_trip::{one_trip, OneTrip};
use super::PostgresStore;
use crate::pool::Lease;
use crate::rows::session::{claim, write_field, Row};

/// How long a hot session's next update batch may wait for more members
/// ("Gathering" in `nex_session_core::store::toolkit::update_chain`).
const GATHER: Duration = Duration::from_millis(1);

/// The update chains' group commit (`nex_session_core::store::toolkit::update_chain`)
/// on PostgreSQL: a compare-and-set is one transaction holding the session row's lock.
impl CasStore for PostgresStore {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Every batch waits for a durable commit (commonly 0.5 to a few ms): holding
    /// the next one back up to 1 ms lets the members just answered join it.
    fn gather(&self) -> Duration {
        GATHER
    }

    fn read_field<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<FieldNow, StoreError>> {
        // The pool bounds the call by the store's timeout; the update's deadline
        // (which may be nearer: it waited for the slow-path lock) by this.
        let read = self.pool.read(move |mut c| async move {
            let key = key.as_bytes().as_slice();
            // One statement, one snapshot: liveness and the field agree.
            let row = c
                .query_opt(
                    "SELECT f.value FROM nex_sessions s
                     LEFT JOIN nex_session_fields f ON f.key = s.key AND f.field = $3
                     WHERE s.key = $1 AND s.expires_at > $2",
                    &[&key, &now_ms(), &field],
                )
                .await?;
            let read = match row {
                Some(row) => (true, row.try_get::<_, Option<Vec<u8>>>(0)?),
                None => (false, None),
            };
            Ok((c, read))
        });
        Box::pin(async move {
            tokio::time::timeout_at(deadline, read).await.map_err(|_| StoreError::Timeout(self.timeout))?
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        cas: &'a Cas<'a>,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<CasAnswer, StoreError>> {
        // The pool bounds the call by `deadline`, telling a transaction that
        // certainly did not commit from one whose `COMMIT` went unanswered.
        if let Some(form) = OneTrip::of(cas) {
            return Box::pin(one_trip(&self.pool, cas, form, deadline));
        }
        Box::pin(self.pool.write_until(deadline, move |mut c| async move {
            if cas.op != CasOp::Check {
                c.writes_fields(cas.key);
            }
            let key = cas.key.as_bytes().as_slice();
            // The row stays locked until commit: no other instance writes this
            // session between the comparison and the write.
            let (row, current) = lock_and_read(&mut c, key, cas.field, now_ms()).await?;
            if !cas.presence.holds(row == Row::Live) {
                return Ok((c, CasAnswer::PresenceFailed));
            }
            if current.as_deref() != cas.expected {
                return Ok((c, CasAnswer::Conflict));
            }
            let value = match cas.op {
                CasOp::Check => return Ok((c, CasAnswer::Done)),
                CasOp::Put => cas.new,
                CasOp::Delete => None,
            };
            if row == Row::Live {
                // Only a live session is patched (an expired one loses its old fields).
                // Told before the statement: if it fails, so does the call, and the
                // cache drops the session (see `pool.rs`).
                let changes = vec![(cas.field.to_owned(), value.map(<[u8]>::to_vec))];
                c.wrote(crate::cache::Patch { changes, expires_at_ms: cas.expires_at_ms });
                // The hot path (an existing session): expiry and field in one statement.
                write_live_field(&mut c, key, cas.field, value, cas.expires_at_ms).await?;
                return Ok((c, CasAnswer::Done));
            }
            if !claim(&mut c, key, row, cas.presence, cas.expires_at_ms).await? {
                return Ok((c, CasAnswer::PresenceFailed));
            }
            write_field(&mut c, key, cas.field, value).await?;
            Ok((c, CasAnswer::Done))
        }))
    }
}

/// Locks the session row (if any), saying what it is, and reads one field of it
/// (`None` unless live): two statements sent together, one round trip.
///
/// Not one statement with a join: under `READ COMMITTED`, a `SELECT … FOR UPDATE`
/// that waited for the lock rechecks the locked row but returns the joined rows as
/// its snapshot saw them, from before the write it waited for. The second statement
/// starts after the first holds the lock, with a fresh snapshot.
async fn lock_and_read(
    c: &mut Lease<'_>,
    key: &[u8],
    field: &str,
    now: i64,
) -> Result<(Row, Option<Vec<u8>>), tokio_postgres::Error> {
    let (row, value) = c
        .query_opt_pair(
            "SELECT expires_at FROM nex_sessions WHERE key = $1 FOR UPDATE",
            &[&key],
            "SELECT value FROM nex_session_fields WHERE key = $1 AND field = $2",
            &[&key, &field],
        )
        .await?;
    let expires_at = match row {
        Some(row) => row.try_get::<_, i64>(0)?,
        None => return Ok((Row::Missing, None)),
    };
    if expires_at <= now {
        return Ok((Row::Expired, None));
    }
    match value {
        Some(value) => Ok((Row::Live, value.try_get(0)?)),
        None => Ok((Row::Live, None)),
    }
}

/// Sets the expiry of a live, locked session and writes one field, in one statement.
async fn write_live_field(
    c: &mut Lease<'_>,
    key: &[u8],
    field: &str,
    value: Option<&[u8]>,
    expires_at: i64,
) -> Result<(), tokio_postgres::Error> {
    match value {
        Some(value) => {
            c.execute(
                "WITH slide AS (UPDATE nex_sessions SET expires_at = $4 WHERE key = $1)
                 INSERT INTO nex_session_fields (key, field, value) VALUES ($1, $2, $3)
                 ON CONFLICT (key, field) DO UPDATE SET value = excluded.value",
                &[&key, &field, &value, &expires_at],
            )
            .await?
        }
        None => {
            c.execute(
                "WITH slide AS (UPDATE nex_sessions SET expires_at = $3 WHERE key = $1)
                 DELETE FROM nex_session_fields WHERE key = $1 AND field = $2",
                &[&key, &field, &expires_at],
            )
            .await?
        }
    };
    Ok(())
}
