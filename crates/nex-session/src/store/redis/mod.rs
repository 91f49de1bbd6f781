//! The Redis / Valkey store: sessions shared by many app instances (feature `redis`).
//!
//! One hash per session under `<prefix><hex of the hashed id>`, a field per key,
//! plus a marker field so that a session with no keys still exists; expiry is the
//! key's own (`PEXPIREAT`), so Redis drops expired sessions by itself and
//! `purge_expired` has nothing to do.
//!
//! - **load**: `HGETALL` and `PTTL` in one pipeline, one round trip, or none at
//!   all when the session is in the client-side cache (single node, on by
//!   default): Redis "client tracking" tells this connection the moment a cached
//!   session changes, so it is dropped before anyone can read it stale. See
//!   [`RedisOptions::client_cache`] for the exact guarantee and how to turn it off.
//! - **apply**: one Lua script per batch (presence check, `HSET`/`HDEL`, `PEXPIREAT`):
//!   atomic, one round trip.
//! - **update**: read the field, run the closure, then a compare-and-set script that
//!   writes only if the field is unchanged; retried on conflict, so no increment is
//!   lost across instances. Once this process has written a field it knows its
//!   value, and concurrent updates of it are group-committed: each runs its closure
//!   on the latest accepted value at once, and a committer task sends them as one
//!   compare-and-set per round trip (see `chain.rs`).
//! - **Redis Cluster** (`redis+cluster://host:port,host:port`): a session is one key,
//!   so all its fields live in one hash slot and every script above stays atomic.
//!   `renew` moves data between two keys that may sit in different slots, which no
//!   single atomic command can do; it first takes the old session away atomically
//!   (read and delete in one script), so the old id stops working at once, then
//!   writes the new key. If that second step fails the user is logged out, never
//!   left on the old id. On a single node `renew` is one atomic script.
//! - **Failures**: every call is bounded by a timeout (default 1 s); a timeout or a
//!   lost connection is a [`StoreError`], and the connection is re-established in the
//!   background, so the app recovers without a restart when Redis is back.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nex_session::StoreError> {
//! use nex_session::store::RedisStore;
//! let store = RedisStore::open("redis://127.0.0.1:6379/0").await?;
//! # let _ = store; Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use self::cache::{ClientCache, Invalidator};
use self::chain::{Chains, Outcome};
use super::cas::UpdateLocks;
use super::{
    BoxFuture, Changes, Fields, PackedFields, Presence, Record, SessionStore, Summary, UpdateAction, UpdateFn,
    WriteOutcome,
};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::token::now_ms;

mod cache;
mod chain;

/// The field that marks a session as existing even with no keys.
const MARKER: &str = "\u{0}nex";
const CAS_ATTEMPTS: usize = 64;

const APPLY: &str = r"
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[1] == 'existing' and not exists) or (ARGV[1] == 'new' and exists) then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], '1')
local i = 4
while i <= #ARGV do
  if ARGV[i] == 'p' then
    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2]); i = i + 3
  else
    redis.call('HDEL', KEYS[1], ARGV[i + 1]); i = i + 2
  end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1";

/// ARGV: presence, expires_at, marker, field, expected_exists (0/1), expected_value_present (0/1),
/// expected_value, op ('p' put, 'd' delete, 'k' keep: check only), new_value.
const COMPARE_AND_SET: &str = r"
local exists = redis.call('EXISTS', KEYS[1])
if tostring(exists) ~= ARGV[5] then return 0 end
if (ARGV[1] == 'existing' and exists == 0) or (ARGV[1] == 'new' and exists == 1) then return -1 end
local current = redis.call('HGET', KEYS[1], ARGV[4])
if ARGV[6] == '1' then
  if current ~= ARGV[7] then return 0 end
elseif current then
  return 0
end
if ARGV[8] == 'k' then return 1 end
redis.call('HSET', KEYS[1], ARGV[3], '1')
if ARGV[8] == 'p' then redis.call('HSET', KEYS[1], ARGV[4], ARGV[9]) else redis.call('HDEL', KEYS[1], ARGV[4]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1";

const RENAME: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[1])
return 1";

const TAKE: &str = r"
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all";

const PUT_ALL_IF_ABSENT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1";

/// The fixed arguments of one update's compare-and-set.
struct Cas<'a> {
    key: &'a str,
    presence: Presence,
    expires_at_ms: i64,
    field: &'a str,
}

/// A script call that was queued: answered already, or still to wait for.
/// How the slow path of `update` ended.
enum Alone {
    Done(WriteOutcome),
    /// Another instance changed the field since it was read: decide again.
    Conflict,
    /// Another update started a chain meanwhile: join it (not counted as an attempt).
    ChainStarted,
    /// The chain table could not be locked (cannot happen; gives up).
    Gone,
}

enum Sent<'a> {
    Answered(Result<i64, StoreError>),
    Waiting(BoxFuture<'a, Result<i64, StoreError>>),
}

/// The CAS operation for a decision: `p`ut, `d`elete, or `k`eep (only check the value).
fn cas_op(action: UpdateAction, current: &Option<Vec<u8>>) -> (&'static str, Option<Vec<u8>>) {
    match action {
        UpdateAction::Set(bytes) => ("p", Some(bytes)),
        UpdateAction::Delete => ("d", None),
        UpdateAction::Keep => ("k", current.clone()),
    }
}

/// `HGETALL`'s answer: field and value bytes.
type RawFields = Vec<(Vec<u8>, Vec<u8>)>;

/// A single-node or cluster connection, both multiplexed and self-healing.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Sessions in Redis / Valkey. Cloning shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    prefix: Arc<str>,
    timeout: Duration,
    update_locks: UpdateLocks,
    chains: Arc<Chains>,
    scripts: Arc<Scripts>,
    /// Sessions read recently, kept current by Redis' invalidation pushes.
    cache: Option<Arc<ClientCache>>,
}

/// How [`RedisStore::open_with_options`] connects.
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
    /// Bound on every Redis call (default 1 s).
    pub timeout: Duration,
    /// Sessions kept in the client-side cache (default 10,000; `0` turns it off).
    ///
    /// Needs Redis 6 or newer on a single node (RESP3 and `CLIENT TRACKING`);
    /// with an older server, or on Redis Cluster, the store works without it.
    /// Guarantee: this instance's own writes are visible to its next read at once;
    /// a write made by *another* app instance becomes visible here when Redis'
    /// invalidation message arrives, one network hop after that write. Turn it
    /// off if a browser may read on one instance right after writing on another
    /// and must never see the value from before.
    pub client_cache: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: RedisStore::DEFAULT_PREFIX.to_owned(),
            timeout: RedisStore::DEFAULT_TIMEOUT,
            client_cache: 10_000,
        }
    }
}

struct Scripts {
    apply: Script,
    compare_and_set: Script,
    rename: Script,
    take: Script,
    put_all_if_absent: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.conn {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore").field("mode", &mode).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn unavailable(err: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}

impl RedisStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "nex:session:";
    /// The default bound on every Redis call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// Connects to `redis://HOST:PORT[/DB]` (single node) or
    /// `redis+cluster://HOST:PORT,HOST:PORT,…` (Redis Cluster), with the default
    /// prefix and a 1 s timeout.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Timeout`] if Redis cannot be reached.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Self::DEFAULT_PREFIX, Self::DEFAULT_TIMEOUT).await
    }

    /// Like [`RedisStore::open`] with a key prefix and a per-call timeout.
    ///
    /// # Errors
    /// As [`RedisStore::open`].
    pub async fn open_with(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        Self::open_with_options(url, RedisOptions { prefix: prefix.to_owned(), timeout, ..RedisOptions::default() })
            .await
    }

    /// Connects with every option spelled out; see [`RedisOptions`].
    ///
    /// # Errors
    /// As [`RedisStore::open`].
    pub async fn open_with_options(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let RedisOptions { prefix, timeout, client_cache } = options;
        let prefix: Arc<str> = prefix.into();
        let cache = (client_cache > 0 && !url.starts_with("redis+cluster://"))
            .then(|| Arc::new(ClientCache::new(client_cache, prefix.clone())));
        let connect = async {
            if let Some(nodes) = url.strip_prefix("redis+cluster://") {
                let nodes: Vec<String> = nodes.split(',').map(|n| format!("redis://{}", n.trim())).collect();
                let client = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()
                    .map_err(unavailable)?;
                Ok((Connection::Cluster(client.get_async_connection().await.map_err(unavailable)?), None))
            } else {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(500);
                let client = redis::Client::open(url).map_err(unavailable)?;
                let Some(cache) = &cache else {
                    return Ok((
                        Connection::Single(
                            ConnectionManager::new_with_config(client, config).await.map_err(unavailable)?,
                        ),
                        None,
                    ));
                };
                // Client tracking needs RESP3, whatever protocol the URL asked for.
                let mut info = client.get_connection_info().clone();
                info.redis.protocol = redis::ProtocolVersion::RESP3;
                let tracking = redis::Client::open(info).map_err(unavailable)?;
                let tracking_config = config.clone().set_push_sender(Invalidator(cache.clone()));
                match ConnectionManager::new_with_config(tracking, tracking_config).await {
                    Ok(conn) => Ok((Connection::Single(conn), Some(cache.clone()))),
                    Err(err) if err.is_io_error() || err.is_timeout() || err.is_connection_refusal() => {
                        Err(unavailable(err))
                    }
                    Err(err) => {
                        tracing::warn!(target: "nex_session::store", error = %err, "Redis refused RESP3 (needs Redis 6+): client-side caching is off");
                        Ok((
                            Connection::Single(
                                ConnectionManager::new_with_config(client, config).await.map_err(unavailable)?,
                            ),
                            None,
                        ))
                    }
                }
            }
        };
        let (conn, cache) =
            tokio::time::timeout(timeout * 3, connect).await.map_err(|_| StoreError::Timeout(timeout * 3))??;
        let update_locks = UpdateLocks::new();
        let scripts = Scripts {
            apply: Script::new(APPLY),
            compare_and_set: Script::new(COMPARE_AND_SET),
            rename: Script::new(RENAME),
            take: Script::new(TAKE),
            put_all_if_absent: Script::new(PUT_ALL_IF_ABSENT),
        };
        let chains = Arc::new(Chains::new());
        Ok(Self { conn, prefix, timeout, update_locks, chains, scripts: Arc::new(scripts), cache })
    }

    /// The client-side cache's `(hits, misses)` so far, or `None` when it is off
    /// (Redis Cluster, a server older than Redis 6, or `client_cache: 0`).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nex_session::StoreError> {
    /// let store = nex_session::store::RedisStore::open("redis://127.0.0.1:6379").await?;
    /// if let Some((hits, misses)) = store.client_cache_stats() {
    ///     println!("{hits} session reads answered from memory, {misses} from Redis");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn client_cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// The compare-and-set script call for one update.
    fn cas_invocation<'a>(
        &'a self,
        cas: &Cas<'_>,
        exists: bool,
        expected: Option<&[u8]>,
        op: &str,
        new: Option<&[u8]>,
    ) -> redis::ScriptInvocation<'a> {
        let mut invocation = self.scripts.compare_and_set.key(cas.key);
        invocation
            .arg(Self::presence_arg(cas.presence))
            .arg(cas.expires_at_ms)
            .arg(MARKER)
            .arg(cas.field)
            .arg(if exists { "1" } else { "0" })
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(op)
            .arg(new.unwrap_or_default());
        invocation
    }

    /// Starts a script call and polls it once, which queues it on the connection
    /// (the caller holds the chain's shard lock, so queue order is chain order).
    fn send_now<'a>(&'a self, invocation: redis::ScriptInvocation<'a>) -> Sent<'a> {
        let mut conn = self.conn.clone();
        let mut answer: BoxFuture<'a, Result<i64, StoreError>> =
            Box::pin(async move { self.timed(invocation.invoke_async::<i64>(&mut conn)).await });
        // A no-op waker is enough: the caller polls again with its own before waiting.
        match answer.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(result) => Sent::Answered(result),
            std::task::Poll::Pending => Sent::Waiting(answer),
        }
    }

    /// The committer of one shard's chain: sends each open batch as one CAS and
    /// tells its members the outcome, until no batch is open. A task of its own,
    /// so no member's cancellation can strand the others.
    async fn commit(self, key: StoreKey) {
        loop {
            let (batch, sent) = {
                let Some(mut shard) = self.chains.lock(key) else { return };
                let Some(batch) = shard.next_batch() else { return };
                if batch.epoch != shard.epoch() {
                    // Built on a chain that broke meanwhile: its members decide again.
                    batch.done.send_replace(Some(Outcome::Answer(0)));
                    continue;
                }
                let op = match (&batch.new, batch.writes) {
                    (_, false) => "k",
                    (Some(_), true) => "p",
                    (None, true) => "d",
                };
                let cas = Cas {
                    key: &batch.redis_key,
                    presence: Presence::Existing,
                    expires_at_ms: batch.expires_at_ms,
                    field: &batch.field,
                };
                let invocation = self.cas_invocation(&cas, true, batch.expected.as_deref(), op, batch.new.as_deref());
                // Queued while the shard is locked: batches reach Redis in chain order.
                let sent = self.send_now(invocation);
                (batch, sent)
            };
            let answer = match sent {
                Sent::Answered(answer) => answer,
                Sent::Waiting(answer) => answer.await,
            };
            if !matches!(answer, Ok(1)) {
                if let Some(mut shard) = self.chains.lock(key) {
                    shard.break_chain(batch.epoch);
                }
            }
            let outcome = match answer {
                Ok(n) => Outcome::Answer(n),
                Err(StoreError::Timeout(after)) => Outcome::Timeout(after),
                Err(err) => Outcome::Failed(err.to_string()),
            };
            batch.done.send_replace(Some(outcome));
        }
    }

    /// Joins the chain on `(key, field)` if this process has one: the closure runs
    /// on the tip in place (no copy; it never awaits). `None`: no chain, take the
    /// slow path; `Some(Err(outcome))`: decided without Redis.
    fn join_chain(
        &self,
        key: StoreKey,
        field: &str,
        f: UpdateFn<'_>,
        expires_at_ms: i64,
        presence: Presence,
    ) -> Option<Result<chain::Joined, WriteOutcome>> {
        let mut shard = self.chains.lock(key)?;
        let tip = shard.tip(key, field)?;
        if presence == Presence::New {
            // This process wrote the session: it exists, so it cannot be new.
            return Some(Err(WriteOutcome::PresenceFailed));
        }
        let action = f(tip);
        Some(Ok(shard.join(action, expires_at_ms, || self.key(key))))
    }

    /// The slow path of `update`: read the field, then start a chain with a lone
    /// CAS. One reader at a time per shard; whoever waited here finds the new chain
    /// and extends it. Boxed, so the per-request fast path stays small.
    fn update_alone<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        f: UpdateFn<'a>,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<Alone, StoreError>> {
        Box::pin(async move {
            let k = self.key(key);
            let cas = Cas { key: &k, presence, expires_at_ms, field };
            let slow = self.update_locks.lock(key).await;
            if self.chains.lock(key).is_some_and(|s| s.tip(key, field).is_some()) {
                return Ok(Alone::ChainStarted);
            }
            let mut conn = self.conn.clone();
            let (exists, current): (i64, Option<Vec<u8>>) =
                self.timed(redis::pipe().exists(&k).hget(&k, field).query_async(&mut conn)).await?;
            match (presence, exists == 1) {
                (Presence::Existing, false) | (Presence::New, true) => {
                    return Ok(Alone::Done(WriteOutcome::PresenceFailed))
                }
                _ => {}
            }
            let action = f(current.as_deref());
            if action == UpdateAction::Keep {
                // Decided on what Redis holds right now: nothing to write.
                return Ok(Alone::Done(WriteOutcome::Done));
            }
            let (op, new) = cas_op(action, &current);
            let invocation = self.cas_invocation(&cas, exists == 1, current.as_deref(), op, new.as_deref());
            let (epoch, sent) = {
                let Some(mut shard) = self.chains.lock(key) else { return Ok(Alone::Gone) };
                (shard.start(key, field, new), self.send_now(invocation))
            };
            // Later updates find the chain now and join it without this lock.
            drop(slow);
            let answer = match sent {
                Sent::Answered(answer) => answer,
                Sent::Waiting(answer) => answer.await,
            };
            if !matches!(answer, Ok(1)) {
                // Failed, refused or unanswered: what the field holds is no longer known.
                if let Some(mut shard) = self.chains.lock(key) {
                    shard.break_chain(epoch);
                }
            }
            Ok(match answer? {
                1 => Alone::Done(WriteOutcome::Done),
                -1 => Alone::Done(WriteOutcome::PresenceFailed),
                // Changed by another instance since we read it: decide again on a fresh read.
                _ => Alone::Conflict,
            })
        })
    }

    /// Spawns the committer of `key`'s shard (once per burst of updates, and its
    /// task-building code is large: kept out of the per-update path).
    #[inline(never)]
    fn start_committer(&self, key: StoreKey) {
        tokio::spawn(self.clone().commit(key));
    }

    /// Waits for a batch's outcome, at most twice the timeout (the batch waits for
    /// at most one batch before it, each bounded by the timeout).
    async fn batch_outcome(&self, mut outcome: tokio::sync::watch::Receiver<Option<Outcome>>) -> Outcome {
        let bound = self.timeout.saturating_mul(2);
        match tokio::time::timeout(bound, outcome.wait_for(Option::is_some)).await {
            Ok(Ok(answer)) => answer.clone().unwrap_or(Outcome::Answer(0)),
            Ok(Err(_)) => Outcome::Failed("the update batch was dropped".into()),
            Err(_) => Outcome::Timeout(bound),
        }
    }

    /// Drops `key` from the client-side cache before this process changes it.
    fn forget(&self, key: StoreKey) {
        if let Some(cache) = &self.cache {
            cache.invalidate(key);
        }
    }

    fn key(&self, key: StoreKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        key.push_hex(&mut out);
        out
    }

    /// Runs one Redis call with the timeout.
    async fn timed<T>(&self, call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    fn presence_arg(presence: Presence) -> &'static str {
        match presence {
            Presence::New => "new",
            Presence::Existing => "existing",
        }
    }
}

impl SessionStore for RedisStore {
    fn load_now(&self, key: StoreKey, now_ms: i64) -> Option<Result<Option<PackedFields>, StoreError>> {
        let fields = self.cache.as_ref()?.get(key, now_ms)?;
        Some(Ok(Some(fields)))
    }

    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let k = self.key(key);
            let mut conn = self.conn.clone();
            let ticket = self.cache.as_ref().map(|c| c.ticket(key));
            let mut pipe = redis::pipe();
            if ticket.is_some() {
                // Idempotent, and it makes sure the connection that answers (maybe a
                // fresh one after a reconnect) tracks the key before reading it.
                pipe.cmd("CLIENT").arg("TRACKING").arg("ON").ignore();
            }
            let (all, pttl): (RawFields, i64) = self.timed(pipe.hgetall(&k).pttl(&k).query_async(&mut conn)).await?;
            if all.is_empty() || pttl == -2 {
                return Ok(None);
            }
            let mut fields = Fields::new();
            for (field, value) in all {
                if field == MARKER.as_bytes() {
                    continue;
                }
                let field = String::from_utf8(field).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
                fields.insert(field, value);
            }
            let expires_at_ms = if pttl >= 0 { now_ms() + pttl } else { i64::MAX };
            let record = Record { fields, expires_at_ms };
            if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
                cache.insert(key, &record, ticket);
            }
            Ok(Some(record))
        })
    }

    fn apply<'a>(
        &'a self,
        key: StoreKey,
        changes: &'a Changes,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        Box::pin(async move {
            self.forget(key);
            let mut invocation = self.scripts.apply.key(self.key(key));
            invocation.arg(Self::presence_arg(presence)).arg(expires_at_ms).arg(MARKER);
            for (field, change) in changes {
                match change {
                    Some(value) => invocation.arg("p").arg(field).arg(value.as_slice()),
                    None => invocation.arg("d").arg(field),
                };
            }
            let mut conn = self.conn.clone();
            let done: i64 = self.timed(invocation.invoke_async(&mut conn)).await?;
            Ok(if done == 1 { WriteOutcome::Done } else { WriteOutcome::PresenceFailed })
        })
    }

    fn update<'a>(
        &'a self,
        key: StoreKey,
        field: &'a str,
        f: UpdateFn<'a>,
        expires_at_ms: i64,
        presence: Presence,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        Box::pin(async move {
            self.forget(key);
            let mut attempts = 0;
            while attempts < CAS_ATTEMPTS {
                attempts += 1;
                // Fast path: this process has a chain on the field; join its open batch (see `chain`).
                if let Some(joined) = self.join_chain(key, field, f, expires_at_ms, presence) {
                    let joined = match joined {
                        Ok(joined) => joined,
                        Err(outcome) => return Ok(outcome),
                    };
                    if joined.start_committer {
                        self.start_committer(key);
                    }
                    match self.batch_outcome(joined.outcome).await {
                        Outcome::Answer(1) => return Ok(WriteOutcome::Done),
                        Outcome::Answer(-1) => return Ok(WriteOutcome::PresenceFailed),
                        Outcome::Answer(_) => {
                            tokio::task::yield_now().await;
                            continue;
                        }
                        Outcome::Timeout(after) => return Err(StoreError::Timeout(after)),
                        Outcome::Failed(why) => return Err(StoreError::Unavailable(why.into())),
                    }
                }
                match self.update_alone(key, field, f, expires_at_ms, presence).await? {
                    Alone::Done(outcome) => return Ok(outcome),
                    Alone::Conflict => tokio::task::yield_now().await,
                    Alone::ChainStarted => attempts -= 1,
                    Alone::Gone => break,
                }
            }
            Err(StoreError::Unavailable(
                format!("update of one field lost {CAS_ATTEMPTS} compare-and-set races").into(),
            ))
        })
    }

    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.forget(key);
            let mut conn = self.conn.clone();
            // PEXPIREAT answers 1 only when the key exists: exactly `touch`.
            let set: i64 = self
                .timed(redis::cmd("PEXPIREAT").arg(self.key(key)).arg(expires_at_ms).query_async(&mut conn))
                .await?;
            Ok(set == 1)
        })
    }

    fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.forget(from);
            self.forget(to);
            let (from, to) = (self.key(from), self.key(to));
            let mut conn = self.conn.clone();
            match &self.conn {
                Connection::Single(_) => {
                    let mut invocation = self.scripts.rename.key(&from);
                    invocation.key(&to).arg(expires_at_ms);
                    let moved: i64 = self.timed(invocation.invoke_async(&mut conn)).await?;
                    Ok(moved == 1)
                }
                Connection::Cluster(_) => {
                    // Two slots: take the old session away atomically, then write the new key.
                    let taken: Vec<Vec<u8>> = self.timed(self.scripts.take.key(&from).invoke_async(&mut conn)).await?;
                    if taken.is_empty() {
                        return Ok(false);
                    }
                    let mut invocation = self.scripts.put_all_if_absent.key(&to);
                    invocation.arg(expires_at_ms);
                    for part in &taken {
                        invocation.arg(part.as_slice());
                    }
                    let written: i64 = self.timed(invocation.invoke_async(&mut conn)).await?;
                    Ok(written == 1)
                }
            }
        })
    }

    fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.forget(key);
            let mut conn = self.conn.clone();
            let _: i64 = self.timed(redis::cmd("DEL").arg(self.key(key)).query_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn purge_expired(&self, _now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        // Redis expires keys itself.
        Box::pin(std::future::ready(Ok(0)))
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        Box::pin(async move {
            let Connection::Single(_) = &self.conn else {
                return Err(StoreError::Unavailable("listing sessions is not supported on Redis Cluster".into()));
            };
            let mut conn = self.conn.clone();
            let pattern = format!("{}*", self.prefix);
            let mut cursor = 0u64;
            let mut out = Vec::new();
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .timed(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(500)
                            .query_async(&mut conn),
                    )
                    .await?;
                for key in keys {
                    if out.len() >= limit {
                        return Ok(out);
                    }
                    let Some(store_key) = key.strip_prefix(&*self.prefix).and_then(StoreKey::from_hex) else {
                        continue;
                    };
                    let (len, pttl): (usize, i64) =
                        self.timed(redis::pipe().hlen(&key).pttl(&key).query_async(&mut conn)).await?;
                    if pttl == -2 {
                        continue;
                    }
                    let expires_at_ms = if pttl >= 0 { now_ms() + pttl } else { i64::MAX };
                    out.push(Summary { key: store_key, fields: len.saturating_sub(1), expires_at_ms });
                }
                if next == 0 {
                    return Ok(out);
                }
                cursor = next;
            }
        })
    }
}
