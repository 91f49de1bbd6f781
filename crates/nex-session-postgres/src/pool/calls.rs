//! The pool's two kinds of call, each bounded by one deadline over waiting for a
//! connection, connecting and the statements: a read, and a transaction that
//! tells a write that certainly did not apply from one that may have.

use std::future::Future;

use nex_session_core::StoreError;
use tokio::time::Instant;

use super::{Lease, Pool};
use crate::pipeline::Begin;

/// What a failed call means for a write, by how far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `COMMIT` not sent yet: PostgreSQL rolls the transaction back, nothing applied.
    Working,
    /// `COMMIT` sent: without its answer, the write may or may not be applied.
    Committing,
}

impl Pool {
    /// Runs `op` (which only reads) on a connection, within the timeout.
    pub(crate) async fn read<'p, T, F, Fut>(&'p self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Lease<'p>) -> Fut,
        Fut: Future<Output = Result<(Lease<'p>, T), tokio_postgres::Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        let call = async {
            let lease = self.lease().await?;
            let epoch = lease.conn.epoch;
            let (lease, out) = op(lease).await.map_err(|err| self.failed(err, epoch))?;
            lease.release();
            Ok(out)
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// Runs `op` in a transaction (`BEGIN`, `op`, `COMMIT`), within the timeout,
    /// telling a write that certainly did not apply from one that may have.
    pub(crate) async fn write<'p, T, F, Fut>(&'p self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Lease<'p>) -> Fut,
        Fut: Future<Output = Result<(Lease<'p>, T), tokio_postgres::Error>>,
    {
        self.write_until(Instant::now() + self.timeout, op).await
    }

    /// As [`Pool::write`], answered by `deadline` instead (never later than the
    /// timeout from now): a compare-and-set of the update chains, whose members
    /// wait on that deadline.
    pub(crate) async fn write_until<'p, T, F, Fut>(&'p self, deadline: Instant, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Lease<'p>) -> Fut,
        Fut: Future<Output = Result<(Lease<'p>, T), tokio_postgres::Error>>,
    {
        let deadline = deadline.min(Instant::now() + self.timeout);
        let mut stage = Stage::Working;
        let call = async {
            let mut lease = self.lease().await?;
            lease.begin = Begin::Pending;
            let epoch = lease.conn.epoch;
            // An error here leaves the transaction open on a connection we drop:
            // PostgreSQL rolls it back when the connection closes. A write refused
            // by a demoted primary (SQLSTATE 25006) is so: not applied.
            let (mut lease, out) = op(lease).await.map_err(|err| self.failed(err, epoch))?;
            if lease.begin == Begin::Sent {
                stage = Stage::Committing;
                lease.commit().await?;
            }
            lease.release();
            Ok(out)
        };
        let outcome = tokio::time::timeout_at(deadline, call).await;
        match (outcome, stage) {
            (Ok(result), _) => result,
            (Err(_), Stage::Working) => Err(StoreError::Timeout(self.timeout)),
            (Err(_), Stage::Committing) => Err(StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(self.timeout)))),
        }
    }
}
