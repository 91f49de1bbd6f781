//! How a store connects: [`PostgresOptions`], each default documented.

use std::time::Duration;

/// How [`PostgresStore::open_with_options`](crate::PostgresStore::open_with_options) connects.
///
/// ```
/// use nex_session::store::PostgresOptions;
/// use std::time::Duration;
///
/// let options = PostgresOptions { timeout: Duration::from_millis(500), ..PostgresOptions::default() };
/// assert_eq!(options.pool_size, 8);
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Bound on every store call (default 1 s), including the wait for a pooled
    /// connection and connecting. A write whose `COMMIT` was sent and not answered
    /// in time fails with [`StoreError::OutcomeUnknown`](nex_session_core::StoreError::OutcomeUnknown).
    ///
    /// With several hosts in the URL, each host's TCP connect gets an equal share
    /// of it (or the URL's `connect_timeout`, if shorter), so a dead first host
    /// leaves the next ones time to answer within the same call.
    pub timeout: Duration,
    /// Connections this store opens at most (default 8); calls beyond wait for one
    /// (within their timeout).
    pub pool_size: usize,
    /// Sessions kept in the client-side cache (default 10,000; `0` turns it off).
    ///
    /// A session read once is answered from memory until a write says it changed
    /// (`LISTEN/NOTIFY`, one more connection per store). Guarantee: this
    /// instance's own writes are visible to its next read at once; a write made by
    /// *another* app instance becomes visible here when its notification arrives,
    /// one network hop after its commit. When the channel gives no sign of life
    /// (a frozen server, a cut network), the cache stops answering at most **3 s**
    /// after the last one (a ping through the channel every second provides
    /// them); a lost connection empties it at once. Writes made outside
    /// nex-session (SQL by hand) are not seen by caches until the session is next
    /// written through nex-session: turn the cache off if you change sessions so.
    pub client_cache: usize,
    /// Create the schema when the database has none (default `true`). `false`
    /// refuses such a database instead, so a tool pointed at the wrong database
    /// (a typo in its name) changes nothing: the CLI opens stores so unless it is
    /// given `--create`.
    pub create_schema: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(1), pool_size: 8, client_cache: 10_000, create_schema: true }
    }
}
