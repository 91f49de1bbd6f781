//! A compare-and-set in one flight: `BEGIN`, the session row's lock, the write,
//! the notification and `COMMIT` leave in one write to the socket, and their
//! answers come back together. One round trip per update batch, where waiting
//! for the write's answer before sending `COMMIT` takes two: 60 to 100 µs less
//! per `update` on loopback, more across a network (see "one round trip fewer
//! per `update`" in BENCHMARKS.md).
//!
//! `COMMIT` leaves before the write is answered, so what a failure means is
//! decided by the answers, in the order sent:
//!
//! | answers | meaning | error |
//! |---|---|---|
//! | all fine | committed | none; the cache takes the patch |
//! | a statement refused by PostgreSQL (a database error) | the transaction is aborted, its `COMMIT` rolls it back: nothing applied | `Timeout` for a row lock not granted in time, else `Unavailable` |
//! | `COMMIT` refused | rolled back: nothing applied | `Unavailable` |
//! | `BEGIN` failed, or a connection error | the statements may have run, and committed | `OutcomeUnknown` |
//! | no answer by the deadline | the `COMMIT` may land | `OutcomeUnknown` |
//!
//! A lock held by another instance is the usual reason to wait, and waiting
//! past the deadline would leave the outcome unknown. So the transaction bounds
//! its own wait for a lock (`SET LOCAL lock_timeout`, half the time left before
//! the call's deadline when the flight is sent):
//! PostgreSQL then gives up first, rolls back, and the update fails with a
//! certain `Timeout`, as it did when `COMMIT` waited for the write's answer.
//! What is left unknown is a server or network that stalls after the lock was
//! granted, as with any `COMMIT` that goes unanswered.

use std::time::Duration;

use nex_session_core::{StoreError, StoreKey};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{unavailable, Patch, Pool, NOTIFY};
use crate::cache;

/// One statement and its parameters.
pub(crate) type Sql<'a> = (&'static str, &'a [&'a (dyn ToSql + Sync)]);

/// The `BEGIN` of a flight sent with `left` before the call's deadline: the
/// transaction waits at most half of that for a row lock (at least 1 ms,
/// PostgreSQL's unit here), leaving the other half for the write and the commit.
fn begin(left: Duration) -> String {
    let lock_ms = (left.as_millis() / 2).max(1);
    format!("BEGIN; SET LOCAL lock_timeout = {lock_ms}")
}

/// How a flight ended, from its answers (see the module docs).
enum Landed {
    Committed(Option<Row>, Option<Row>),
    /// Nothing applied; `clean`: `COMMIT` was answered, the connection is idle.
    RolledBack {
        err: tokio_postgres::Error,
        clean: bool,
    },
    Unknown(tokio_postgres::Error),
}

impl Pool {
    /// Runs `lock` then `write` (each answering at most one row) in a transaction
    /// sent in one flight with its notification and `COMMIT`, answered by
    /// `deadline` (at most the store timeout from now). `decide` reads the two
    /// answers of a committed flight: what to return, and the fields it wrote to
    /// the session under `key` (for this instance's cache), if it wrote.
    pub(crate) async fn lock_write_commit<T, F>(
        &self,
        key: StoreKey,
        deadline: Instant,
        lock: Sql<'_>,
        write: Sql<'_>,
        decide: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Option<Row>, Option<Row>) -> Result<(T, Option<Patch>), tokio_postgres::Error>,
    {
        let deadline = deadline.min(Instant::now() + self.timeout);
        let mut sent = false;
        let call = async {
            let mut lease = self.lease().await?;
            let epoch = lease.conn.epoch;
            lease.writes_fields(key);
            // Prepared once per connection (a round trip each, the first time only),
            // before anything that writes is sent.
            let prepared = async {
                Ok::<_, tokio_postgres::Error>([
                    lease.statement(lock.0).await?,
                    lease.statement(write.0).await?,
                    lease.statement(NOTIFY).await?,
                ])
            };
            let [lock_statement, write_statement, notify] = prepared.await.map_err(|err| self.failed(err, epoch))?;
            let (instance, number) = lease.number_write();
            let payload = cache::payload(instance, number, &lease.changed.keys);
            // From the time left, not the whole timeout: waiting for a pooled
            // connection may have used some of it.
            let begin = begin(deadline.saturating_duration_since(Instant::now()));
            sent = true;
            let client = &lease.conn.client;
            // Polled in this order, so sent in this order, in one flat join (see
            // `pipeline.rs`: nested joins made this future 20 kB, moved into a box
            // per batch).
            let notify_params: [&(dyn ToSql + Sync); 2] = [&cache::CHANNEL, &payload];
            let (began, locked, wrote, notified, committed) = tokio::join!(
                biased;
                client.batch_execute(&begin),
                client.query_opt(&lock_statement, lock.1),
                client.query_opt(&write_statement, write.1),
                client.execute(&notify, &notify_params),
                client.batch_execute("COMMIT"),
            );
            match landed(began, locked, wrote, notified.map(drop), committed) {
                Landed::Committed(locked, wrote) => {
                    // Committed: a row that cannot be read leaves the outcome unknown.
                    let (out, patch) =
                        decide(locked, wrote).map_err(|err| StoreError::OutcomeUnknown(Box::new(unavailable(err))))?;
                    if let Some(patch) = patch {
                        lease.wrote(patch);
                    }
                    lease.settle();
                    lease.release();
                    Ok(out)
                }
                Landed::RolledBack { err, clean } => {
                    lease.rolled_back();
                    if clean {
                        // `COMMIT` was answered (with a rollback): the connection is
                        // idle and fit for the next call, which a reconnect would slow.
                        lease.release();
                    }
                    if err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                        return Err(StoreError::Timeout(self.timeout));
                    }
                    Err(self.failed(err, epoch))
                }
                Landed::Unknown(err) => {
                    self.check_primary(&err, epoch);
                    Err(StoreError::OutcomeUnknown(Box::new(unavailable(err))))
                }
            }
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) if sent => Err(StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(self.timeout)))),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }
}

/// How a flight ended, from its answers in the order sent (the module docs' table).
fn landed(
    began: Result<(), tokio_postgres::Error>,
    locked: Result<Option<Row>, tokio_postgres::Error>,
    wrote: Result<Option<Row>, tokio_postgres::Error>,
    notified: Result<(), tokio_postgres::Error>,
    committed: Result<(), tokio_postgres::Error>,
) -> Landed {
    // Without a transaction, each statement after it committed on its own.
    if let Err(err) = began {
        return Landed::Unknown(err);
    }
    let (locked, wrote) = match (locked, wrote, notified) {
        (Ok(locked), Ok(wrote), Ok(())) => (locked, wrote),
        (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
            // Refused by PostgreSQL: the transaction is aborted, whatever `COMMIT`
            // answered (it answers a rollback). A broken connection: unknown.
            return match err.as_db_error() {
                Some(_) => Landed::RolledBack { err, clean: committed.is_ok() },
                None => Landed::Unknown(err),
            };
        }
    };
    match committed {
        Ok(()) => Landed::Committed(locked, wrote),
        Err(err) if err.as_db_error().is_some() => Landed::RolledBack { err, clean: false },
        Err(err) => Landed::Unknown(err),
    }
}
