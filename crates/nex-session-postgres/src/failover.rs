//! Noticing that the primary moved, and telling everyone who holds a connection.
//!
//! With several hosts in the URL and `target_session_attrs=read-write`, a new
//! connection goes to whichever host is the writable primary. Connections already
//! open stay where they are, so after a switchover (or the primary's death) the
//! pool's idle stack and the client cache's listener may all point at the old one.
//! The signs, in order of arrival:
//! - a statement fails with SQLSTATE `25006` (read_only_sql_transaction: the
//!   server was demoted), or its connection breaks (the server died);
//! - the listener's ping, which also reads `transaction_read_only`, finds the
//!   server read-only (with `target_session_attrs=read-write` only).
//!
//! Each bumps the [`Primary`]'s epoch. The pool then drops every connection of an
//! older epoch (the idle stack at once, connections in use when they come back),
//! and the listener reconnects, emptying the client cache: a new primary means
//! no cached session can be trusted, and a listener left on the old one would
//! never hear the new primary's writes.

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio_postgres::error::SqlState;

/// Which primary the store's connections belong to: a number that grows each
/// time the primary is found to have moved.
#[derive(Debug, Default)]
pub(crate) struct Primary {
    epoch: AtomicU64,
    moved: Notify,
}

impl Primary {
    /// The epoch a connection opened now belongs to.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A connection of `epoch` found the primary gone: the epoch moves on (once
    /// for all connections of that epoch that notice) and the listener is woken.
    /// Returns whether this call moved it.
    pub(crate) fn moved(&self, epoch: u64) -> bool {
        let moved = self.epoch.compare_exchange(epoch, epoch + 1, Ordering::AcqRel, Ordering::Acquire).is_ok();
        if moved {
            tracing::info!(epoch = epoch + 1, "PostgreSQL primary moved or went away: reconnecting");
            self.moved.notify_waiters();
        }
        moved
    }

    /// Resolves once the epoch is past `epoch` (at once if it already is).
    pub(crate) async fn moved_past(&self, epoch: u64) {
        loop {
            let notified = self.moved.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a move in between is not missed.
            notified.as_mut().enable();
            if self.epoch() > epoch {
                return;
            }
            notified.await;
        }
    }
}

/// A write a demoted primary refused, in words (tokio-postgres says "db error").
#[derive(Debug, thiserror::Error)]
#[error(
    "the server refused the write as read-only (SQLSTATE 25006: no longer the primary); it was not applied, \
     and new connections go to the writable host"
)]
pub(crate) struct ReadOnlyServer(#[source] pub(crate) tokio_postgres::Error);

/// Whether `err` is a write refused by a read-only server.
pub(crate) fn read_only(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION)
}

/// Whether `err` means the connection's server is no longer the writable
/// primary: a write refused as read-only, or a connection that broke.
pub(crate) fn lost_primary(err: &tokio_postgres::Error) -> bool {
    if read_only(err) || err.is_closed() {
        return true;
    }
    // A server shutting down says so before it closes the connection.
    if matches!(err.code(), Some(code) if *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CRASH_SHUTDOWN) {
        return true;
    }
    err.as_db_error().is_none() && err.source().is_some_and(|source| source.is::<std::io::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_epoch_moves_once_per_epoch_and_wakes_a_waiter() {
        let primary = std::sync::Arc::new(Primary::default());
        let waiter = tokio::spawn({
            let primary = primary.clone();
            async move { primary.moved_past(0).await }
        });
        tokio::task::yield_now().await;
        assert!(primary.moved(0));
        assert!(!primary.moved(0), "a second connection of the old epoch moves nothing");
        assert_eq!(primary.epoch(), 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.expect("woken").expect("no panic");
        // Already past: at once.
        primary.moved_past(0).await;
    }
}
