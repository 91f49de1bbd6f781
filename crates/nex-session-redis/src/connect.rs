//! Connecting to Redis, and calling it with a bound on every call.
//!
//! Both kinds of connection (a single node's `ConnectionManager`, a cluster's
//! `ClusterConnection`) are multiplexed and reconnect by themselves, so a store
//! recovers without a restart when Redis is back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use sha2::{Digest, Sha256};

use crate::cache::{heartbeat, ClientCache, Invalidator};
use crate::diagnose::connect_failed;
use crate::scripts::{Scripts, INDEX_INFIX, ORDER_INFIX};
use crate::sentinel::SentinelLink;
use crate::target::{Target, Topology};
use crate::tls::{self, Tls, Verify};
use nex_session_core::StoreError;
use nex_session_core::StoreKey;

/// How [`RedisStore::open_with_options`](crate::store::RedisStore::open_with_options) connects.
///
/// ```
/// use nex_session::store::RedisOptions;
/// use std::time::Duration;
///
/// let options = RedisOptions { timeout: Duration::from_millis(500), client_cache: 0, ..RedisOptions::default() };
/// assert_eq!(options.prefix, "nex:session:");
/// ```
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prepended to every key (default `nex:session:`).
    pub prefix: String,
    /// Bound on every store call (default 1 s): a `load`, `apply`, `update`, …
    /// answers within it, success or error. For `update` it covers everything the
    /// call waits for: the lock of its field, earlier updates of the same field
    /// that go first, connecting, and the command itself (one deadline per call,
    /// taken when it starts). A write that was sent and not answered in time fails
    /// with [`StoreError::OutcomeUnknown`]: it may still be applied.
    pub timeout: Duration,
    /// Sessions kept in the client-side cache (default 10,000; `0` turns it off).
    ///
    /// Needs Redis 6 or newer on a single node (RESP3 and `CLIENT TRACKING`);
    /// with an older server, or on Redis Cluster, the store works without it.
    /// Through Sentinel it needs Redis 6 or newer too, and a master that refuses
    /// RESP3 fails the open: set `0` for an older Redis. It is emptied whenever
    /// the store moves to a new master.
    /// Guarantee: this instance's own writes are visible to its next read at once;
    /// a write made by *another* app instance becomes visible here when Redis'
    /// invalidation message arrives, one network hop after that write. Turn it
    /// off if a browser may read on one instance right after writing on another
    /// and must never see the value from before.
    ///
    /// When Redis gives no sign of life (a frozen server, a cut network: no
    /// invalidation could arrive), the cache stops answering at most **3 s** after
    /// the last one, which a `PING` on its connection every second provides; reads
    /// then go to Redis and fail with an error while it does not answer. Once
    /// Redis answers again the cache starts empty.
    pub client_cache: usize,
}

/// The default key prefix.
pub(super) const DEFAULT_PREFIX: &str = "nex:session:";
/// The default bound on every Redis call.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

impl Default for RedisOptions {
    fn default() -> Self {
        Self { prefix: DEFAULT_PREFIX.to_owned(), timeout: DEFAULT_TIMEOUT, client_cache: 10_000 }
    }
}

/// A single-node, cluster or sentinel-found connection, all multiplexed and self-healing.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// The current master of a sentinel-monitored service (`sentinel.rs`).
    Sentinel(Arc<SentinelLink>),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(link) => {
                let mut conn = link.current();
                Box::pin(async move {
                    let result = conn.req_packed_command(cmd).await;
                    if let Err(err) = &result {
                        link.suspect(err);
                    }
                    result
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Self::Sentinel(link) => {
                let mut conn = link.current();
                Box::pin(async move {
                    let result = conn.req_packed_commands(cmd, offset, count).await;
                    if let Err(err) = &result {
                        link.suspect(err);
                    }
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(link) => link.db(),
        }
    }
}

impl Connection {
    /// Where this connection goes, for [`SessionStore::endpoint`](nex_session_core::store::SessionStore::endpoint).
    pub(super) fn describe(&self, fixed: &str) -> String {
        match self {
            Self::Sentinel(link) => link.describe(),
            Self::Single(_) | Self::Cluster(_) => fixed.to_owned(),
        }
    }
}

/// The connection and how to call it: key names, the timeout, the scripts.
/// Cloning shares the connection.
#[derive(Clone)]
pub(super) struct Redis {
    pub(super) conn: Connection,
    /// Where a single node or cluster connection goes (a sentinel link says itself).
    pub(super) endpoint: Arc<str>,
    prefix: Arc<str>,
    pub(super) timeout: Duration,
    pub(super) scripts: Arc<Scripts>,
    /// The server knows `PEXPIRETIME` (Redis 7+), so a load reads the expiry that
    /// was written, exactly; cleared at the first "unknown command" (Redis 6),
    /// after which loads compute it from `PTTL` (off by the round trip).
    pub(super) exact_expiry: Arc<std::sync::atomic::AtomicBool>,
}

/// A connection just opened.
pub(super) struct Opened {
    pub(super) redis: Redis,
    /// The client-side cache its pushes keep current, when it has one.
    pub(super) cache: Option<Arc<ClientCache>>,
}

pub(super) fn unavailable(err: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}

/// What a failed write means. A refused connection proves that the command never
/// left, and so does a reply in which Redis refused to run it (the codes below,
/// which only Redis' own replies carry: the client never makes them up). Any other
/// error (a timeout, a connection that broke, an error from inside a script) may
/// come after Redis ran it, or part of it.
fn write_failed(err: redis::RedisError) -> StoreError {
    if err.is_connection_refusal() || refused_by_redis(&err) {
        unavailable(err)
    } else {
        StoreError::OutcomeUnknown(Box::new(unavailable(err)))
    }
}

/// Replies with which Redis refuses a command before running any of it: out of
/// memory, a replica, still loading, its master down, another script busy, not
/// authenticated or not allowed.
fn refused_by_redis(err: &redis::RedisError) -> bool {
    matches!(
        err.code(),
        Some("OOM" | "READONLY" | "LOADING" | "MASTERDOWN" | "BUSY" | "NOAUTH" | "WRONGPASS" | "NOPERM")
    )
}

/// A step failed after the store changed (a cluster `renew` took the old
/// session away, a revoke deleted sessions): the failure is never reported as
/// "nothing applied".
pub(super) fn taken_away(err: StoreError) -> StoreError {
    match err {
        StoreError::OutcomeUnknown(_) => err,
        other => StoreError::OutcomeUnknown(Box::new(other)),
    }
}

impl Redis {
    /// Connects to what `url` names (see `target.rs`), with client-side caching
    /// when `options` ask for it and the server can (not on a cluster).
    pub(super) async fn open(url: &str, options: RedisOptions) -> Result<Opened, StoreError> {
        let RedisOptions { prefix, timeout, client_cache } = options;
        let prefix: Arc<str> = prefix.into();
        let Target { topology, tls } = Target::parse(url).map_err(|err| StoreError::Unavailable(Box::new(err)))?;
        // Connecting may take a few round trips (handshake, RESP3, cluster slots); through
        // Sentinel, each sentinel may take its timeout before the master is asked, so a
        // silent sentinel is reported by name rather than cut short by this bound.
        let rounds = match &topology {
            Topology::Sentinel(target) => u32::try_from(target.sentinels.len()).unwrap_or(u32::MAX).saturating_add(2),
            _ => 3,
        };
        let bound = timeout.saturating_mul(rounds);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let cache = (client_cache > 0).then(|| Arc::new(ClientCache::new(client_cache, prefix.clone())));
        let tls_note = tls.as_ref().map(|t| format!(" (TLS {})", t.verify.name())).unwrap_or_default();
        let connect = async {
            match topology {
                Topology::Cluster(nodes) => {
                    let endpoint = format!("Redis Cluster, {} seed node(s){tls_note}", nodes.len());
                    Ok((connect_cluster(nodes, tls.as_ref(), timeout).await?, None, endpoint))
                }
                Topology::Sentinel(target) => {
                    let link = SentinelLink::open(target, tls, config, cache.as_ref(), timeout).await?;
                    let conn = Connection::Sentinel(link);
                    if let Some(cache) = &cache {
                        tokio::spawn(heartbeat(Arc::downgrade(cache), conn.clone()));
                    }
                    Ok((conn, cache, String::new()))
                }
                Topology::Single(url) => {
                    let client = single_client(&url, tls.as_ref())?;
                    let endpoint = match client.get_connection_info().addr() {
                        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
                            format!("{host}:{port}{tls_note}")
                        }
                        other => format!("{other}"),
                    };
                    let server = format!("Redis at {endpoint}");
                    if let Some(cache) = cache {
                        if let Some(conn) =
                            connect_tracking(&client, config.clone(), &cache, &server, tls.as_ref()).await?
                        {
                            return Ok((conn, Some(cache), endpoint));
                        }
                    }
                    let conn = ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(|e| connect_failed(server, tls.as_ref(), e))?;
                    Ok((Connection::Single(conn), None, endpoint))
                }
            }
        };
        let (conn, cache, endpoint) =
            tokio::time::timeout(bound, connect).await.map_err(|_| StoreError::Timeout(bound))??;
        let redis = Self {
            conn,
            endpoint: endpoint.into(),
            prefix,
            timeout,
            scripts: Arc::new(Scripts::new()),
            exact_expiry: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        Ok(Opened { redis, cache })
    }

    /// The Redis key of a session: prefix and the 64 hex characters of its store key.
    pub(super) fn key(&self, key: StoreKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        key.push_hex(&mut out);
        out
    }

    /// The Redis key of `user`'s index (`users.rs`): prefix, [`INDEX_INFIX`] and
    /// the SHA-256 of the user id in a hash tag. The tag keeps the index one key
    /// in one cluster slot, and the digest keeps user ids (e-mail addresses,
    /// say) out of key names.
    pub(super) fn index_key(&self, user: &str) -> String {
        use std::fmt::Write as _;
        let digest = Sha256::digest(user.as_bytes());
        let mut out = String::with_capacity(self.prefix.len() + INDEX_INFIX.len() + 66);
        out.push_str(&self.prefix);
        out.push_str(INDEX_INFIX);
        out.push('{');
        for byte in digest {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
        }
        out.push('}');
        out
    }

    /// The Redis key of the order beside the index `index` (`users.rs`): the same
    /// name with [`ORDER_INFIX`] for [`INDEX_INFIX`], so the same hash tag and slot.
    pub(super) fn order_key(index: &str) -> String {
        // An index key ends with INDEX_INFIX, `{`, 64 hex digits and `}`.
        let tail = INDEX_INFIX.len() + 66;
        let split = index.len().saturating_sub(tail);
        let (head, rest) = index.split_at(split);
        let digest = rest.get(INDEX_INFIX.len()..).unwrap_or_default();
        format!("{head}{ORDER_INFIX}{digest}")
    }

    /// The store key of a Redis key of this store, if it is one.
    pub(super) fn store_key(&self, redis_key: &str) -> Option<StoreKey> {
        redis_key.strip_prefix(&*self.prefix).and_then(StoreKey::from_hex)
    }

    /// The `SCAN` pattern of this store's keys (sessions and users' indexes).
    pub(super) fn pattern(&self) -> String {
        format!("{}*", glob_escape(&self.prefix))
    }

    /// The `SCAN` pattern of this store's users' indexes.
    pub(super) fn index_pattern(&self) -> String {
        format!("{}{INDEX_INFIX}*", glob_escape(&self.prefix))
    }

    /// The deadline of a store call starting now: every wait and Redis command
    /// of the call must end by then.
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Runs one Redis command that only reads, until `deadline`.
    pub(super) async fn read<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// Runs one Redis command that writes, until `deadline`, telling a write that
    /// certainly did not apply from one that may have (see [`StoreError`]).
    pub(super) async fn write<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        if Instant::now() >= deadline {
            // Out of time before sending (`timeout_at` would still poll, and so send, it once).
            return Err(StoreError::Timeout(self.timeout));
        }
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result.map_err(write_failed),
            // Polled at least once, so maybe sent; or still connecting, which we cannot tell apart.
            Err(_) => Err(StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(self.timeout)))),
        }
    }
}

async fn connect_cluster(nodes: Vec<String>, tls: Option<&Tls>, timeout: Duration) -> Result<Connection, StoreError> {
    let server = format!("Redis Cluster (seed nodes {})", nodes.len());
    let mut builder =
        redis::cluster::ClusterClient::builder(nodes).connection_timeout(timeout).response_timeout(timeout).retries(1);
    if let Some(tls) = tls {
        // The nodes' URLs are rediss://, which turns TLS on; these add the checks and files.
        builder = builder.certs(tls.certs.clone());
        if tls.verify == Verify::None {
            builder = builder.tls(redis::TlsMode::Insecure);
        }
        tls::install_provider();
    }
    let client = builder.build().map_err(|e| connect_failed(server.clone(), tls, e))?;
    Ok(Connection::Cluster(client.get_async_connection().await.map_err(|e| connect_failed(server, tls, e))?))
}

/// The client of a single-node URL, with TLS when it is `rediss://`.
fn single_client(url: &str, tls: Option<&Tls>) -> Result<redis::Client, StoreError> {
    use redis::IntoConnectionInfo as _;
    let server = "Redis".to_owned();
    let info = url.into_connection_info().map_err(|e| connect_failed(server.clone(), tls, e))?;
    match tls {
        Some(tls) => tls.secure(info),
        None => redis::Client::open(info),
    }
    .map_err(|e| connect_failed(server, tls, e))
}

/// A RESP3 connection whose pushes feed `cache`, or `None` when the server
/// cannot do client tracking (older than Redis 6): then the store runs without
/// the cache. A server that cannot be reached is an error.
async fn connect_tracking(
    client: &redis::Client,
    config: ConnectionManagerConfig,
    cache: &Arc<ClientCache>,
    server: &str,
    tls: Option<&Tls>,
) -> Result<Option<Connection>, StoreError> {
    // Client tracking needs RESP3, whatever protocol the URL asked for.
    let info = client.get_connection_info().clone();
    let resp3 = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
    let info = info.set_redis_settings(resp3);
    let tracking = redis::Client::open(info).map_err(unavailable)?;
    let config = config.set_push_sender(Invalidator(Arc::downgrade(cache)));
    match ConnectionManager::new_with_config(tracking, config).await {
        Ok(conn) => {
            tokio::spawn(heartbeat(Arc::downgrade(cache), conn.clone()));
            Ok(Some(Connection::Single(conn)))
        }
        Err(err)
            if err.is_io_error() || err.is_timeout() || err.is_connection_refusal() || err.is_connection_dropped() =>
        {
            Err(connect_failed(server.to_owned(), tls, err))
        }
        Err(err) => {
            tracing::warn!(target: "nex_session::store", error = %err, "Redis refused RESP3 (needs Redis 6+): client-side caching is off");
            Ok(None)
        }
    }
}

/// `text` with the characters `SCAN`'s glob patterns treat specially escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn glob_characters_of_a_prefix_match_only_themselves() {
        assert_eq!(glob_escape("nex:session:"), "nex:session:");
        assert_eq!(glob_escape(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d");
    }
}
