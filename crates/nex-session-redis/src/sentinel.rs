//! Redis Sentinel: find the master of a service through the sentinels, and
//! follow it when they promote another.
//!
//! - **Finding**: the sentinels are asked in the URL's order
//!   (`SENTINEL GET-MASTER-ADDR-BY-NAME`); the first that names a master wins.
//!   The named server must then answer `ROLE` with `master`, so the store never
//!   starts on a replica (a sentinel may lag behind a promotion).
//! - **Following**: a task asks the sentinels again every [`POLL`] (on the
//!   connection to the one that answered last, kept open), and at once
//!   when a command fails with a lost connection or `READONLY` (the old master
//!   was demoted). When they name another master, the store connects to it
//!   (checking `ROLE` again), switches every later command to it, and empties
//!   the client-side cache: no entry read from the old master can be trusted.
//! - **Meanwhile**: commands go to the old master and fail (connection refused,
//!   `READONLY`): the honest errors (503s) of an outage, never a write to a
//!   replica: a replica refuses writes with `READONLY`, which is "not applied".
//!
//! What a failover can lose is Redis' own business: replication is
//! asynchronous, so writes the old master acknowledged in its last moments may
//! never reach the new one (see the crate docs for `min-replicas-to-write`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{RedisConnectionInfo, Value};
use tokio::sync::{Mutex, Notify};

use crate::cache::{ClientCache, Invalidator};
use crate::diagnose::connect_failed;
use crate::target::SentinelTarget;
use crate::tls::Tls;
use nex_session_core::StoreError;

/// How often the sentinels are asked whether the master moved.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// The connection to the current master of a sentinel-monitored service.
pub(crate) struct SentinelLink {
    target: SentinelTarget,
    tls: Option<Tls>,
    config: ConnectionManagerConfig,
    /// The client-side cache, held weakly: the store owns it.
    cache: Option<Weak<ClientCache>>,
    timeout: Duration,
    current: RwLock<Master>,
    /// Wakes the follower before its next poll.
    wake: Arc<Notify>,
    /// Masters switched to since the store opened.
    failovers: AtomicU64,
    /// The connection to the sentinel that answered last (only the follower asks).
    sentinel: Mutex<Option<MultiplexedConnection>>,
}

/// A master and the connection to it.
#[derive(Clone)]
struct Master {
    host: String,
    port: u16,
    conn: ConnectionManager,
}

/// An answer that no master was found, per sentinel: which, and why.
#[derive(Debug, thiserror::Error)]
#[error("no sentinel named a master for service {service:?}: {reasons}")]
pub(crate) struct NoMaster {
    service: String,
    reasons: String,
}

/// A server the sentinels named that is not (or no longer) a master.
#[derive(Debug, thiserror::Error)]
#[error("{host}:{port}, named master of {service:?} by the sentinels, answers ROLE with {role:?}: a failover is in progress, or the sentinels' view is stale")]
pub(crate) struct NotMaster {
    host: String,
    port: u16,
    service: String,
    role: String,
}

impl SentinelLink {
    /// Finds the master of `target` and connects to it; the link then follows
    /// failovers by itself. `cache`, when given, is fed by the master's pushes
    /// (RESP3 client tracking) and emptied at every switch.
    pub(crate) async fn open(
        target: SentinelTarget,
        tls: Option<Tls>,
        config: ConnectionManagerConfig,
        cache: Option<&Arc<ClientCache>>,
        timeout: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let cache = cache.map(Arc::downgrade);
        let sentinel = Mutex::new(None);
        let (host, port) = find_master(&target, tls.as_ref(), timeout, &sentinel).await?;
        let conn = connect_master(&target, tls.as_ref(), &config, cache.as_ref(), &host, port).await?;
        let wake = Arc::new(Notify::new());
        let link = Arc::new(Self {
            target,
            tls,
            config,
            cache,
            timeout,
            current: RwLock::new(Master { host, port, conn }),
            wake: wake.clone(),
            failovers: AtomicU64::new(0),
            sentinel,
        });
        tokio::spawn(follow(Arc::downgrade(&link), wake));
        Ok(link)
    }

    /// The connection commands go to now.
    pub(crate) fn current(&self) -> ConnectionManager {
        self.read().conn
    }

    /// The database number commands use.
    pub(crate) fn db(&self) -> i64 {
        self.target.db
    }

    /// A command failed with `err`: if it looks like the master went away or
    /// was demoted, ask the sentinels now rather than at the next poll.
    pub(crate) fn suspect(&self, err: &redis::RedisError) {
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.code() == Some("READONLY")
        {
            self.wake.notify_one();
        }
    }

    /// `HOST:PORT (master of "SERVICE" found through N sentinels, …)`.
    pub(crate) fn describe(&self) -> String {
        let master = self.read();
        let tls = match &self.tls {
            Some(tls) => format!("TLS {}; ", tls.verify.name()),
            None => String::new(),
        };
        format!(
            "{}:{} ({tls}master of {:?} found through {} sentinel(s); {} failover(s) followed)",
            master.host,
            master.port,
            self.target.service,
            self.target.sentinels.len(),
            self.failovers.load(Ordering::Relaxed)
        )
    }

    fn read(&self) -> Master {
        // A writer that panicked left a whole `Master` (one assignment): still usable.
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Asks the sentinels where the master is, and switches to it if it moved.
    async fn check(&self) {
        let Ok((host, port)) = find_master(&self.target, self.tls.as_ref(), self.timeout, &self.sentinel).await else {
            // No sentinel answered: keep what we have (it may still work), try again later.
            return;
        };
        let now = self.read();
        if now.host == host && now.port == port {
            return;
        }
        match connect_master(&self.target, self.tls.as_ref(), &self.config, self.cache.as_ref(), &host, port).await {
            Ok(conn) => {
                let old = format!("{}:{}", now.host, now.port);
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Master { host: host.clone(), port, conn };
                // After the switch, so that no read can still fill it from the old master
                // with a ticket taken after this (see `cache.rs`).
                if let Some(cache) = self.cache.as_ref().and_then(Weak::upgrade) {
                    cache.clear();
                }
                self.failovers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "nex_session::store", service = %self.target.service, from = %old, to = %format!("{host}:{port}"), "Redis master moved: following the sentinels");
            }
            Err(err) => {
                tracing::warn!(target: "nex_session::store", service = %self.target.service, error = %err, "the sentinels name a new Redis master that cannot be used yet");
            }
        }
    }
}

/// Polls the sentinels every [`POLL`] (sooner when woken), for as long as the link exists.
async fn follow(link: Weak<SentinelLink>, wake: Arc<Notify>) {
    loop {
        // Woken, or the poll is due: either way, ask.
        let _ = tokio::time::timeout(POLL, wake.notified()).await;
        let Some(strong) = link.upgrade() else { return };
        strong.check().await;
        drop(strong);
        // A burst of failing commands wakes it again at once: ask at most ten times a second.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The master's address, from the first sentinel that knows the service.
async fn find_master(
    target: &SentinelTarget,
    tls: Option<&Tls>,
    timeout: Duration,
    last: &Mutex<Option<MultiplexedConnection>>,
) -> Result<(String, u16), StoreError> {
    // The connection to the sentinel that answered last: one command per poll, not a
    // new connection (and TLS handshake) every second.
    let mut last = last.lock().await;
    if let Some(conn) = last.as_mut() {
        if let Ok(Ok(Some(addr))) = tokio::time::timeout(timeout, ask_master(conn, &target.service)).await {
            return Ok(addr);
        }
        // It failed, or forgot the service: ask them all, in order.
        *last = None;
    }
    let mut reasons = Vec::new();
    for (host, port) in &target.sentinels {
        let server = format!("sentinel {host}:{port}");
        let ask = async {
            let client = node_client(tls, host, *port, sentinel_settings(target))
                .map_err(|e| connect_failed(server.clone(), tls, e))?;
            let mut conn =
                client.get_multiplexed_async_connection().await.map_err(|e| connect_failed(server.clone(), tls, e))?;
            let answer =
                ask_master(&mut conn, &target.service).await.map_err(|e| connect_failed(server.clone(), tls, e))?;
            Ok::<_, StoreError>((answer, conn))
        };
        match tokio::time::timeout(timeout, ask).await {
            Ok(Ok((Some(addr), conn))) => {
                *last = Some(conn);
                return Ok(addr);
            }
            Ok(Ok((None, _))) => {
                reasons.push(format!("{server} does not know the service name (check SERVICE_NAME in the URL)"));
            }
            Ok(Err(err)) => reasons.push(err.to_string()),
            Err(_) => reasons.push(format!("{server} did not answer within {timeout:?}")),
        }
    }
    Err(StoreError::Unavailable(Box::new(NoMaster { service: target.service.clone(), reasons: reasons.join("; ") })))
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME service`: the master's address, or `None`
/// when this sentinel does not know the service.
async fn ask_master(conn: &mut MultiplexedConnection, service: &str) -> redis::RedisResult<Option<(String, u16)>> {
    redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(service).query_async(conn).await
}

/// A connection to the master at `host:port`, checked to be one.
async fn connect_master(
    target: &SentinelTarget,
    tls: Option<&Tls>,
    config: &ConnectionManagerConfig,
    cache: Option<&Weak<ClientCache>>,
    host: &str,
    port: u16,
) -> Result<ConnectionManager, StoreError> {
    let server = format!("Redis master {host}:{port}");
    let mut settings = master_settings(target);
    let mut config = config.clone();
    if let Some(cache) = cache {
        // Client tracking needs RESP3.
        settings = settings.set_protocol(redis::ProtocolVersion::RESP3);
        config = config.set_push_sender(Invalidator(cache.clone()));
    }
    let client = node_client(tls, host, port, settings).map_err(|e| connect_failed(server.clone(), tls, e))?;
    let mut conn =
        ConnectionManager::new_with_config(client, config).await.map_err(|e| connect_failed(server.clone(), tls, e))?;
    let role: Vec<Value> =
        redis::cmd("ROLE").query_async(&mut conn).await.map_err(|e| connect_failed(server.clone(), tls, e))?;
    let role = match role.first() {
        Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Value::SimpleString(text)) => text.clone(),
        other => format!("{other:?}"),
    };
    if role != "master" {
        let not = NotMaster { host: host.to_owned(), port, service: target.service.clone(), role };
        return Err(StoreError::Unavailable(Box::new(not)));
    }
    Ok(conn)
}

/// A client for one server, with TLS when the URL asked for it.
fn node_client(
    tls: Option<&Tls>,
    host: &str,
    port: u16,
    settings: RedisConnectionInfo,
) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo as _;
    match tls {
        Some(tls) => tls.client(host, port, settings),
        None => {
            let info = redis::ConnectionAddr::Tcp(host.to_owned(), port).into_connection_info()?;
            redis::Client::open(info.set_redis_settings(settings))
        }
    }
}

/// The master's database and credentials.
fn master_settings(target: &SentinelTarget) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_db(target.db);
    if let Some(user) = &target.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &target.password {
        settings = settings.set_password(password);
    }
    settings
}

/// The sentinels' own credentials.
fn sentinel_settings(target: &SentinelTarget) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default();
    if let Some(user) = &target.sentinel_username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &target.sentinel_password {
        settings = settings.set_password(password);
    }
    settings
}
