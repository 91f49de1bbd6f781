//! [`PostgresStore`]: the type, opening it, and its [`SessionStore`] calls. The
//! other concerns each have a file: the options, the schema, the compare-and-set
//! of `update` (and its one-statement form), the operator's calls (purge, list).

mod admin;
mod compare_and_set;
mod one_trip;
mod options;
mod schema;

pub use options::PostgresOptions;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Config;

use crate::connect::Target;
use crate::failover::Primary;
use crate::pool::Pool;
use crate::rows::session::{claim, lock, write_field, Row};
use crate::rows::user_index::lock_index_row;
use crate::tls::{params, Tls, TlsSetupError};
use nex_session_core::store::toolkit::update_chain::{self, FieldUpdate, Updates};
use nex_session_core::store::{
    BoxFuture, Changes, FastReads, Fields, LoadNow, Presence, Record, SessionAdmin, SessionStore, UpdateFn, UserIndex,
    WriteOutcome,
};
use nex_session_core::token::now_ms;
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// Sessions in PostgreSQL, the database many apps already run (feature `postgres`).
/// Cloning shares the connection pool.
///
/// One row per session in `nex_sessions` (hashed key, expiry in ms since the Unix
/// epoch, indexed), one row per `(session, field)` in `nex_session_fields`, and one
/// row per session bound to a user in `nex_session_users` (the per-user index, see
/// `users.rs`). Both child tables reference the session row with `ON UPDATE CASCADE
/// ON DELETE CASCADE`, so a rename moves a session's fields and binding in one
/// statement and removing a session removes everything of it.
///
/// # Schema
///
/// Created on open if missing, in one transaction under an advisory lock (so app
/// instances starting together do not race), and recorded as version 1 in
/// `nex_session_schema`; a database with a newer version is refused. When the
/// schema is there, opening runs no DDL. A DBA who
/// creates it by hand (the app's role then needs only `SELECT, INSERT, UPDATE,
/// DELETE` on the four tables) runs:
///
/// ```sql
/// CREATE TABLE nex_sessions (
///     key bytea PRIMARY KEY,
///     expires_at bigint NOT NULL
/// );
/// CREATE INDEX nex_sessions_expires_at ON nex_sessions (expires_at);
/// CREATE TABLE nex_session_fields (
///     key bytea NOT NULL REFERENCES nex_sessions (key) ON UPDATE CASCADE ON DELETE CASCADE,
///     field text NOT NULL,
///     value bytea NOT NULL,
///     PRIMARY KEY (key, field)
/// );
/// CREATE TABLE nex_session_users (
///     store_key bytea PRIMARY KEY REFERENCES nex_sessions (key) ON UPDATE CASCADE ON DELETE CASCADE,
///     user_id text NOT NULL
/// );
/// CREATE INDEX nex_session_users_user_id ON nex_session_users (user_id);
/// CREATE TABLE nex_session_schema (version integer NOT NULL);
/// INSERT INTO nex_session_schema (version) VALUES (1);
/// ```
///
/// # Guarantees
///
/// - **Per-field, atomic writes**: `apply` is one transaction that locks the
///   session row (`SELECT … FOR UPDATE`), checks presence, and writes only the
///   fields of its batch.
/// - **`update` across app instances**: a compare-and-set, one transaction that
///   locks the session row, checks that the field still holds what the closure
///   saw and only then writes; otherwise the closure runs again on a fresh read.
///   No increment is lost, however many instances share the database. Concurrent
///   updates of one field in one instance share that transaction (group commit,
///   the store toolkit's [`update_chain`]): a hot session costs one commit per
///   batch, not one per request.
/// - **`rename`** changes the session row's key in the transaction that checked
///   both keys; the old key is gone for every instance at commit.
/// - **Expiry** is the store's clock (`now_ms` of the app) compared with
///   `expires_at`: an expired row counts as missing at once, and is purged in
///   batches of 500 rows per transaction (`FOR UPDATE SKIP LOCKED`: rows a request
///   holds are left for the next purge).
/// - **Hashed keys only**: rows hold the [`StoreKey`] (SHA-256 of the id), never
///   the id of a cookie.
/// - **Reads from memory, with a bound**: a client-side cache answers repeat reads
///   until a write's `NOTIFY` (sent in its transaction, delivered at commit) says the
///   session changed; see [`PostgresOptions::client_cache`] for what it guarantees.
///
/// # Failures
///
/// Every call (waiting for a pooled connection, connecting, the statements) is
/// bounded by one timeout, 1 s by default ([`PostgresOptions::timeout`]): when
/// PostgreSQL is down or stuck the call fails fast with a [`StoreError`] (the
/// layer answers 503). A write fails with [`StoreError::OutcomeUnknown`] only when
/// its `COMMIT` was sent and not answered; any earlier failure rolls the
/// transaction back. The compare-and-set of an `update` sends its `COMMIT` with its
/// statements, in one round trip, so it bounds its wait for a row lock held
/// elsewhere to half the time it has left: PostgreSQL gives up first, rolls back, and the
/// update fails with a certain [`StoreError::Timeout`]. Connections that failed are dropped, never reused, so the
/// store heals by itself when PostgreSQL is back.
///
/// Connections are plain TCP (or a Unix socket) unless the URL asks for TLS with
/// `sslmode` (libpq's meanings, below); several hosts with
/// `target_session_attrs=read-write` follow the writable primary.
///
/// ```no_run
/// # async fn demo() -> Result<(), nex_session::StoreError> {
/// use nex_session::store::{PostgresStore, SessionStore};
/// let store = PostgresStore::open(
///     "postgres://app:secret@db1:5432,db2:5432/app?target_session_attrs=read-write\
///      &sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
/// )
/// .await?;
/// println!("sessions in {}", store.endpoint().unwrap_or_default()); // db1:5432 (TLS, sslmode=verify-full)
/// # Ok(()) }
/// ```
///
#[doc = include_str!("connecting.md")]
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) pool: Arc<Pool>,
    pub(crate) cache: Option<Arc<crate::cache::ClientCache>>,
    /// The group commit of concurrent `update`s ([`update_chain`]).
    pub(crate) updates: Arc<Updates>,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// A URL `tokio-postgres` did not accept (its message never contains the password).
#[derive(Debug, thiserror::Error)]
#[error("invalid PostgreSQL URL: {0}")]
struct BadUrl(#[source] tokio_postgres::Error);

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db?sslmode=…`, or
    /// the key=value form: see [Connecting](PostgresStore#connecting)) with the
    /// default [`PostgresOptions`], creating the schema if it is missing.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// use nex_session::store::PostgresStore;
    /// let store = PostgresStore::open("postgres://app:secret@localhost/app").await?;
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the URL is invalid, a certificate or key file
    /// it names cannot be read, PostgreSQL cannot be reached (the message says why
    /// and which parameter to change: see [Connecting](PostgresStore#connecting))
    /// or the schema cannot be created; [`StoreError::Corrupt`] for a newer
    /// schema; [`StoreError::Timeout`] if PostgreSQL does not answer in time.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_options(url, PostgresOptions::default()).await
    }

    /// As [`open`](Self::open), with explicit options.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// use nex_session::store::{PostgresOptions, PostgresStore};
    /// let options = PostgresOptions { pool_size: 16, ..PostgresOptions::default() };
    /// let store = PostgresStore::open_with_options("postgres://app@localhost/app", options).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_with_options(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let setup = |err: TlsSetupError| StoreError::Unavailable(Box::new(err));
        // tokio-postgres refuses libpq's verify modes and certificate paths: ours to read.
        let (tls, rest) = params::split(url).map_err(|err| setup(err.into()))?;
        let tls = Tls::load(&tls).map_err(setup)?;
        let mut config = Config::from_str(&rest).map_err(|err| StoreError::Unavailable(Box::new(BadUrl(err))))?;
        config.connect_timeout(per_host_timeout(options.timeout, &config));
        config.application_name("nex-session");
        let target = Target::new(config, tls);
        let primary = Arc::new(Primary::default());
        let pool = Pool::new(target.clone(), options.pool_size, options.timeout, None, primary.clone());
        schema::prepare(&pool, options.create_schema).await?;
        let cache = (options.client_cache > 0)
            .then(|| crate::cache::start(target.clone(), options.client_cache, primary.clone()));
        let endpoint = pool.endpoint();
        let pool = Pool::new(target, options.pool_size, options.timeout, cache.clone(), primary);
        pool.seed_endpoint(endpoint);
        Ok(Self { pool: Arc::new(pool), cache, updates: Arc::new(Updates::new()), timeout: options.timeout })
    }
}

/// The TCP connect timeout of each host: the store timeout shared out between
/// the hosts, so that a dead first host (whose packets vanish) leaves the next
/// ones time to answer within one call; the URL's `connect_timeout` if shorter.
/// One host gets the whole timeout.
fn per_host_timeout(timeout: Duration, config: &Config) -> Duration {
    let hosts = u32::try_from(config.get_hosts().len().max(config.get_hostaddrs().len()).max(1)).unwrap_or(u32::MAX);
    let shared = timeout / hosts;
    config.get_connect_timeout().map_or(shared, |written| shared.min(*written))
}

impl PostgresStore {
    /// The session as PostgreSQL has it: one statement, so one snapshot (the
    /// expiry and the fields agree).
    async fn load_uncached(&self, key: StoreKey) -> Result<Option<Record>, StoreError> {
        self.pool
            .read(move |mut c| async move {
                let key = key.as_bytes().as_slice();
                let rows = c
                    .query(
                        "SELECT s.expires_at, f.field, f.value FROM nex_sessions s
                     LEFT JOIN nex_session_fields f ON f.key = s.key
                     WHERE s.key = $1 AND s.expires_at > $2",
                        &[&key, &now_ms()],
                    )
                    .await?;
                let mut record: Option<Record> = None;
                for row in rows {
                    let expires_at_ms: i64 = row.try_get(0)?;
                    let record = record.get_or_insert_with(|| Record { fields: Fields::new(), expires_at_ms });
                    // A session without fields is one row of NULLs.
                    let field: Option<String> = row.try_get(1)?;
                    let value: Option<Vec<u8>> = row.try_get(2)?;
                    if let (Some(field), Some(value)) = (field, value) {
                        record.fields.insert(field, value);
                    }
                }
                Ok((c, record))
            })
            .await
    }
}

impl SessionStore for PostgresStore {
    fn fast_reads(&self) -> Option<&dyn FastReads> {
        Some(self)
    }

    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let ticket = self.cache.as_ref().map(|cache| cache.ticket(key));
            let record = self.load_uncached(key).await?;
            if let (Some(cache), Some(ticket), Some(record)) = (&self.cache, ticket, &record) {
                cache.insert(key, record, ticket);
            }
            Ok(record)
        })
    }

    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        Box::pin(self.pool.write(move |mut c| async move {
            c.writes_fields(key);
            let key = key.as_bytes().as_slice();
            let row = lock(&mut c, key, now_ms()).await?;
            if !claim(&mut c, key, row, presence, expires_at_ms).await? {
                return Ok((c, WriteOutcome::PresenceFailed));
            }
            if row == Row::Live {
                // Only a live session is patched (an expired one loses its old fields).
                let changes = changes.iter().map(|(field, change)| (field.clone(), change.value().map(<[u8]>::to_vec)));
                c.wrote(crate::cache::Patch { changes: changes.collect(), expires_at_ms });
            }
            for (field, change) in changes {
                write_field(&mut c, key, field, change.value()).await?;
            }
            Ok((c, WriteOutcome::Done))
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
        // The cached copy: the chain starts from it without reading PostgreSQL
        // first, and the compare-and-set catches a stale one (`update_known`).
        let known = move || self.cache.as_ref().and_then(|cache| cache.get(key, now_ms()));
        let update = FieldUpdate { key, field, expires_at_ms, presence };
        Box::pin(update_chain::update_known(self, &self.updates, update, f, known))
    }

    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.pool.write(move |mut c| async move {
            c.changed(from);
            c.changed(to);
            let (from, to) = (from.as_bytes().as_slice(), to.as_bytes().as_slice());
            let now = now_ms();
            // The index row first, as `revoke_all` locks it (one lock order, no deadlock).
            lock_index_row(&mut c, from).await?;
            if lock(&mut c, from, now).await? != Row::Live {
                return Ok((c, false));
            }
            match lock(&mut c, to, now).await? {
                Row::Live => return Ok((c, false)),
                Row::Expired => {
                    c.execute("DELETE FROM nex_sessions WHERE key = $1", &[&to]).await?;
                }
                Row::Missing => {}
            }
            // The fields and the index row follow through `ON UPDATE CASCADE`.
            c.execute(
                "UPDATE nex_sessions SET key = $2, expires_at = $3 WHERE key = $1",
                &[&from, &to, &expires_at_ms],
            )
            .await?;
            Ok((c, true))
        }))
    }

    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.pool.write(move |mut c| async move {
            c.changed(key);
            let key = key.as_bytes().as_slice();
            lock_index_row(&mut c, key).await?;
            // Fields and index row go with it (`ON DELETE CASCADE`).
            c.execute("DELETE FROM nex_sessions WHERE key = $1", &[&key]).await?;
            Ok((c, ()))
        }))
    }

    fn users(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn admin(&self) -> Option<&dyn SessionAdmin> {
        Some(self)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn endpoint(&self) -> Option<String> {
        self.pool.endpoint()
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        // The path every call takes (pool, connection, timeout), reading nothing.
        Box::pin(self.pool.read(|mut c| async move {
            c.query_opt("SELECT 1", &[]).await?;
            Ok((c, ()))
        }))
    }
}

impl FastReads for PostgresStore {
    fn load_now(&self, key: StoreKey, now_ms: i64) -> LoadNow {
        // Only sessions are cached, never their absence: a miss asks PostgreSQL.
        match self.cache.as_ref().and_then(|cache| cache.get(key, now_ms)) {
            Some(fields) => LoadNow::Found(fields),
            None => LoadNow::Unknown,
        }
    }
}
