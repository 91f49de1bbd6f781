//! Connections to PostgreSQL: a small pool, and every call bounded by one deadline.
//!
//! The pool is a stack of idle connections under a semaphore (at most `size`
//! connections in use). A connection goes back to the stack only after a call
//! finished cleanly; one whose call failed or timed out is dropped (closing it,
//! which makes PostgreSQL roll back whatever it had open), and the next call opens
//! a fresh one. So after an outage the store heals by itself: nothing stale is
//! kept, and a restarted server simply gets new connections.
//!
//! # Why not deadpool-postgres or bb8
//!
//! Kept ours, after reading deadpool-postgres 0.14.2 (deadpool 0.13.1) and
//! bb8-postgres 0.9.0 (bb8 0.9.1). The guarantees live in [`Lease`] and
//! [`Pool::write`], which stay ours with either crate: one deadline over waiting,
//! connecting and the statements; `Timeout` while `COMMIT` is unsent and
//! `OutcomeUnknown` after; the cache patched at commit. A crate would replace the
//! idle stack, the semaphore and connecting: about 45 of these lines. Against it:
//! - Both reuse a dropped connection unless it `is_closed()` (the `Drop` of
//!   `Object`, of `PooledConnection`): a call our deadline cancels mid-transaction
//!   would hand its open transaction to the next call. deadpool opts out per call
//!   with `Object::take`; bb8 only through a manager of our own (its
//!   `PooledConnection::take` is crate-private).
//! - bb8 connects in background tasks, so `get` reports a refused connection only
//!   as `RunError::TimedOut` (the cause goes to an `ErrorSink`); its default
//!   `test_on_check_out` sends `simple_query("")` before every call, one more round
//!   trip on the hot path. deadpool splits `wait`/`create`/`recycle` timeouts, so
//!   our one deadline would stay.
//! - Measured in a scratch crate with this crate's dependencies (dev build, 2
//!   cores): deadpool-postgres adds 5 crates (itself, deadpool, deadpool-runtime,
//!   and through its `tracing` defaults tracing-attributes and a second `syn`) and
//!   ~5 s; bb8-postgres adds 3 (itself, bb8, slab) and ~5 s.
//!
//! Revisit if we need what they add (max lifetime, idle reaping, metrics):
//! deadpool then, with `Object::take` on every path that is not a clean finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::cache::{self, ClientCache, Patch, Ticket};
use crate::connect::Target;
use crate::failover::{lost_primary, read_only, Primary, ReadOnlyServer};
use crate::pipeline::{after_begin, Begin};
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

mod calls;
mod one_flight;

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    /// The [`Primary`] epoch it was opened in: one of an older epoch is not reused.
    epoch: u64,
    /// Prepared once per connection: a call then costs one round trip per statement.
    statements: HashMap<&'static str, Statement>,
}

/// The pool: idle connections, and a bound on connections in use.
pub(super) struct Pool {
    target: Target,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    timeout: Duration,
    /// This instance's client cache, kept current by the writes made here.
    cache: Option<Arc<ClientCache>>,
    /// Which primary connections belong to (shared with the cache's listener).
    primary: Arc<Primary>,
    /// Where the last new connection went (`SessionStore::endpoint`).
    endpoint: Mutex<Option<String>>,
}

/// Sends a notification.
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
/// Keys per notification: 65 bytes each stays under PostgreSQL's 8000-byte payload limit.
const NOTIFY_KEYS: usize = 100;

/// A connection lent to one call. Dropped without [`Lease::release`], it is closed.
pub(super) struct Lease<'p> {
    pool: &'p Pool,
    conn: Conn,
    _permit: SemaphorePermit<'p>,
    /// A transaction was asked for and `BEGIN` not sent yet: it leaves with the
    /// first statement, in the same write (one round trip for both).
    begin: Begin,
    /// Sessions this transaction changes: notified at commit (see `cache.rs`).
    changed: Changed<'p>,
}

/// The sessions a transaction changes, and what the cache learns of them. Dropped
/// before the commit was answered (the call failed or timed out), it drops them
/// from the cache: their `COMMIT` may still land, and its notification is then
/// the only sign of it.
struct Changed<'p> {
    cache: Option<&'p ClientCache>,
    keys: Vec<StoreKey>,
    /// The one session whose written fields are known ([`Lease::writes_fields`]),
    /// the cache's ticket when the transaction began, and its patch once written.
    fields: Option<(StoreKey, Ticket, Option<Patch>)>,
    /// The commit was answered and the cache told.
    settled: bool,
    /// This write's number, once its commit was sent with one (see `cache.rs`).
    write: Option<u64>,
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        let Some(cache) = self.cache else { return };
        if !self.settled {
            for key in &self.keys {
                cache.invalidate(*key);
            }
            if let Some(write) = self.write {
                cache.abandoned(write);
            }
        }
        if let Some(write) = self.write {
            cache.settled(write);
        }
    }
}

impl Lease<'_> {
    async fn statement(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.conn.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.conn.client.prepare(sql).await?;
        self.conn.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs a statement, returning every row.
    pub(super) async fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        let client = &self.conn.client;
        after_begin(client, &mut self.begin, client.query(&statement, params)).await
    }

    /// Runs a statement prepared for this call alone, so that PostgreSQL plans it
    /// for these parameters (a custom plan), never with the generic plan a reused
    /// statement gets after five runs. For the per-user queries, whose best plan
    /// depends on how many rows the user has: a few rows want lookups by key, a
    /// user with most of the table wants a hash join, and a generic plan picked
    /// for one case took 14 ms (or a second) in the other. One round trip more.
    pub(super) async fn query_custom_plan(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let client = &self.conn.client;
        let statement = after_begin(client, &mut self.begin, client.prepare(sql)).await?;
        client.query(&statement, params).await
    }

    /// Runs a statement that returns at most one row.
    pub(super) async fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        let client = &self.conn.client;
        after_begin(client, &mut self.begin, client.query_opt(&statement, params)).await
    }

    /// Runs two statements that return at most one row each, sent together (one
    /// round trip); the server runs them one after the other, in this order.
    pub(super) async fn query_opt_pair(
        &mut self,
        first: &'static str,
        first_params: &[&(dyn ToSql + Sync)],
        second: &'static str,
        second_params: &[&(dyn ToSql + Sync)],
    ) -> Result<(Option<Row>, Option<Row>), tokio_postgres::Error> {
        let (first, second) = (self.statement(first).await?, self.statement(second).await?);
        let client = &self.conn.client;
        let pair = async {
            let (a, b) =
                tokio::join!(biased; client.query_opt(&first, first_params), client.query_opt(&second, second_params));
            Ok((a?, b?))
        };
        after_begin(client, &mut self.begin, pair).await
    }

    /// Runs a statement, returning how many rows it changed.
    pub(super) async fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        let client = &self.conn.client;
        after_begin(client, &mut self.begin, client.execute(&statement, params)).await
    }

    /// Runs statements without parameters (transaction control, the schema).
    pub(super) async fn batch(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        if self.begin == Begin::Pending {
            self.begin = Begin::Sent;
            // One simple query: its statements run in order, the first opening the transaction.
            return self.conn.client.batch_execute(&format!("BEGIN; {sql}")).await;
        }
        self.conn.client.batch_execute(sql).await
    }

    /// Declares that this transaction changes the session under `key`: this
    /// instance's cache drops it now (before anything is sent) and again after the
    /// commit, and every instance's cache hears of it through the commit's `NOTIFY`.
    pub(super) fn changed(&mut self, key: StoreKey) {
        if let Some(cache) = &self.pool.cache {
            cache.invalidate(key);
        }
        self.changed.keys.push(key);
    }

    /// Declares that this transaction may write fields of the session under `key`,
    /// which it then tells [`Lease::wrote`]: once committed, this instance's cache
    /// gets the new fields instead of losing the session (see `cache.rs`). Until
    /// then the cache keeps answering with the session as it was. At most one
    /// session per transaction; every instance hears of it through the commit's
    /// `NOTIFY`.
    pub(super) fn writes_fields(&mut self, key: StoreKey) {
        if let Some(cache) = &self.pool.cache {
            self.changed.fields = Some((key, cache.ticket(key), None));
        }
        self.changed.keys.push(key);
    }

    /// The fields this transaction wrote to the session of [`Lease::writes_fields`].
    pub(super) fn wrote(&mut self, patch: Patch) {
        if let Some((_, _, written)) = &mut self.changed.fields {
            *written = Some(patch);
        }
    }

    /// Commits, with the notification of the changed sessions in the same round trip.
    async fn commit(&mut self) -> Result<(), StoreError> {
        if let Err(err) = self.send_commit().await {
            self.pool.check_primary(&err, self.conn.epoch);
            return Err(commit_failed(err));
        }
        self.settle();
        Ok(())
    }

    /// After the commit was answered: the cache takes the fields written to the
    /// session of [`Lease::writes_fields`] and drops the other changed sessions.
    fn settle(&mut self) {
        let changed = &mut self.changed;
        if let Some(cache) = changed.cache {
            let fields = changed.fields.take();
            let write = changed.write.unwrap_or(0);
            for key in &changed.keys {
                match &fields {
                    Some((k, ticket, Some(patch))) if k == key => cache.patch(*key, *ticket, patch, write),
                    _ => cache.invalidate(*key),
                }
            }
        }
        changed.settled = true;
    }

    /// After PostgreSQL rolled the transaction back (a statement it refused):
    /// nothing changed, and the notification never goes out.
    fn rolled_back(&mut self) {
        if let Some(cache) = self.changed.cache {
            for key in &self.changed.keys {
                cache.invalidate(*key);
            }
        }
        self.changed.settled = true;
    }

    /// This cache's instance and the number of this transaction's write, for its
    /// notification (`(0, 0)` without a cache or changed sessions); from here on,
    /// the write is pending in the cache until settled (see `cache.rs`).
    fn number_write(&mut self) -> (u64, u64) {
        let (instance, write) = match self.changed.cache {
            Some(cache) if !self.changed.keys.is_empty() => cache.next_write(),
            _ => (0, 0),
        };
        if write != 0 {
            self.changed.write = Some(write);
        }
        (instance, write)
    }

    /// Sends the notification and `COMMIT`; an error says how far it got (see [`commit_failed`]).
    async fn send_commit(&mut self) -> Result<(), tokio_postgres::Error> {
        // Prepared (once per connection), so that it leaves at its first poll, before the `COMMIT`.
        let notify = if self.changed.keys.is_empty() { None } else { Some(self.statement(NOTIFY).await?) };
        let (instance, write) = self.number_write();
        let client = &self.conn.client;
        let mut chunks: Vec<String> =
            self.changed.keys.chunks(NOTIFY_KEYS).map(|keys| cache::payload(instance, write, keys)).collect();
        let last = chunks.pop();
        match (last, notify) {
            (Some(payload), Some(notify)) => {
                for payload in chunks {
                    client.execute(&notify, &[&cache::CHANNEL, &payload]).await?;
                }
                let notify_params: [&(dyn ToSql + Sync); 2] = [&cache::CHANNEL, &payload];
                let (notified, committed) =
                    tokio::join!(biased; client.execute(&notify, &notify_params), client.batch_execute("COMMIT"));
                // A failed `pg_notify` turns the `COMMIT` after it into a rollback
                // (which PostgreSQL does not report as an error): check it first.
                notified?;
                committed
            }
            _ => client.batch_execute("COMMIT").await,
        }
    }

    /// Gives the connection back for the next call (it finished cleanly), unless
    /// it is closed or belongs to a primary that has moved since it was opened.
    fn release(self) {
        if self.conn.client.is_closed() || self.conn.epoch != self.pool.primary.epoch() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.push(self.conn);
    }
}

impl Pool {
    pub(super) fn new(
        target: Target,
        size: usize,
        timeout: Duration,
        cache: Option<Arc<ClientCache>>,
        primary: Arc<Primary>,
    ) -> Self {
        Self {
            target,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
            timeout,
            cache,
            primary,
            endpoint: Mutex::new(None),
        }
    }

    /// Where the last connection this pool opened went (no round trip).
    pub(super) fn endpoint(&self) -> Option<String> {
        self.endpoint.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Starts with the endpoint another pool of the same target found.
    pub(super) fn seed_endpoint(&self, endpoint: Option<String>) {
        *self.endpoint.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = endpoint;
    }

    /// After `err` on a connection of `epoch`: if it says the primary is gone
    /// (see `failover.rs`), no connection of that epoch is used again, and the
    /// client cache is emptied now (its listener moves by itself).
    fn check_primary(&self, err: &tokio_postgres::Error, epoch: u64) {
        if !lost_primary(err) {
            return;
        }
        if self.primary.moved(epoch) {
            if let Some(cache) = &self.cache {
                cache.primary_moved();
            }
        }
        let current = self.primary.epoch();
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|conn| conn.epoch == current);
    }

    /// An idle connection, or a new one.
    async fn lease(&self) -> Result<Lease<'_>, StoreError> {
        let permit = self.permits.acquire().await.map_err(|err| StoreError::Unavailable(Box::new(err)))?;
        let epoch = self.primary.epoch();
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // A connection the server closed while idle (a restart), or one to a
            // primary that has moved since, is skipped.
            idle.retain(|conn| !conn.client.is_closed() && conn.epoch == epoch);
            idle.pop()
        };
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let (client, endpoint) =
                    self.target.connect().await.map_err(|err| StoreError::Unavailable(Box::new(err)))?;
                *self.endpoint.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(endpoint);
                Conn { client, epoch, statements: HashMap::new() }
            }
        };
        let changed =
            Changed { cache: self.cache.as_deref(), keys: Vec::new(), fields: None, settled: false, write: None };
        Ok(Lease { pool: self, conn, _permit: permit, begin: Begin::Sent, changed })
    }
}

impl Pool {
    /// A statement failed on a connection of `epoch` (which the caller drops).
    fn failed(&self, err: tokio_postgres::Error, epoch: u64) -> StoreError {
        self.check_primary(&err, epoch);
        if read_only(&err) {
            return StoreError::Unavailable(Box::new(ReadOnlyServer(err)));
        }
        unavailable(err)
    }
}

fn unavailable(err: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}

/// A `COMMIT` that failed: if PostgreSQL answered with an error, the transaction
/// was rolled back; if the connection broke instead, nobody knows.
fn commit_failed(err: tokio_postgres::Error) -> StoreError {
    if err.as_db_error().is_some() {
        unavailable(err)
    } else {
        StoreError::OutcomeUnknown(Box::new(unavailable(err)))
    }
}
