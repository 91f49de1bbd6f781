//! The Redis / Valkey store: sessions shared by many app instances (feature `redis`).
//!
//! One hash per session under `<prefix><hex of the hashed id>`, a field per key,
//! plus a marker field so that a session with no keys still exists; expiry is the
//! key's own (`PEXPIREAT`), so Redis drops expired sessions by itself and
//! `purge_expired` has nothing to do.
//!
//! - **load**: `HGETALL` and `PTTL` in one pipeline, one round trip.
//! - **apply**: one Lua script per batch (presence check, `HSET`/`HDEL`, `PEXPIREAT`):
//!   atomic, one round trip.
//! - **update**: read the field, run the closure, then a compare-and-set script that
//!   writes only if the field is unchanged; retried on conflict, so no increment is
//!   lost across instances. Updates of one process are serialised per session shard
//!   first, so they do not fight each other.
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

use super::cas::{remember, take_known, UpdateLocks};
use super::{
    BoxFuture, Changes, Fields, Presence, Record, SessionStore, Summary, UpdateAction, UpdateFn, WriteOutcome,
};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::token::now_ms;

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
/// expected_value, op ('p'/'d'), new_value.
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
    scripts: Arc<Scripts>,
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
        let connect = async {
            if let Some(nodes) = url.strip_prefix("redis+cluster://") {
                let nodes: Vec<String> = nodes.split(',').map(|n| format!("redis://{}", n.trim())).collect();
                let client = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()
                    .map_err(unavailable)?;
                Ok(Connection::Cluster(client.get_async_connection().await.map_err(unavailable)?))
            } else {
                let client = redis::Client::open(url).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(500);
                Ok(Connection::Single(ConnectionManager::new_with_config(client, config).await.map_err(unavailable)?))
            }
        };
        let conn = tokio::time::timeout(timeout * 3, connect).await.map_err(|_| StoreError::Timeout(timeout * 3))??;
        let update_locks = UpdateLocks::new();
        let scripts = Scripts {
            apply: Script::new(APPLY),
            compare_and_set: Script::new(COMPARE_AND_SET),
            rename: Script::new(RENAME),
            take: Script::new(TAKE),
            put_all_if_absent: Script::new(PUT_ALL_IF_ABSENT),
        };
        Ok(Self { conn, prefix: prefix.into(), timeout, update_locks, scripts: Arc::new(scripts) })
    }

    fn key(&self, key: StoreKey) -> String {
        format!("{}{}", self.prefix, key.to_hex())
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
    fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let k = self.key(key);
            let mut conn = self.conn.clone();
            let (all, pttl): (RawFields, i64) =
                self.timed(redis::pipe().hgetall(&k).pttl(&k).query_async(&mut conn)).await?;
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
            Ok(Some(Record { fields, expires_at_ms }))
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
            let k = self.key(key);
            let mut slot = self.update_locks.lock(key).await;
            let mut known = slot.as_deref_mut().and_then(|s| take_known(s, key, field));
            for _ in 0..CAS_ATTEMPTS {
                let mut conn = self.conn.clone();
                let from_cache = known.is_some();
                let (exists, current): (i64, Option<Vec<u8>>) = match known.take() {
                    // This process wrote it last, so the session existed: skip the read.
                    Some(value) => (1, value),
                    None => self.timed(redis::pipe().exists(&k).hget(&k, field).query_async(&mut conn)).await?,
                };
                match (presence, exists == 1) {
                    (Presence::Existing, false) | (Presence::New, true) => return Ok(WriteOutcome::PresenceFailed),
                    _ => {}
                }
                let (op, new) = match f(current.as_deref()) {
                    // A remembered value may be stale and `Keep` writes nothing to check it
                    // against: read the store and decide again.
                    UpdateAction::Keep if from_cache => continue,
                    UpdateAction::Keep => return Ok(WriteOutcome::Done),
                    UpdateAction::Set(bytes) => ("p", Some(bytes)),
                    UpdateAction::Delete => ("d", None),
                };
                let mut invocation = self.scripts.compare_and_set.key(&k);
                invocation
                    .arg(Self::presence_arg(presence))
                    .arg(expires_at_ms)
                    .arg(MARKER)
                    .arg(field)
                    .arg(exists)
                    .arg(if current.is_some() { "1" } else { "0" })
                    .arg(current.as_deref().unwrap_or_default())
                    .arg(op)
                    .arg(new.as_deref().unwrap_or_default());
                match self.timed(invocation.invoke_async::<i64>(&mut conn)).await? {
                    1 => {
                        if let Some(slot) = slot.as_deref_mut() {
                            remember(slot, key, field, new);
                        }
                        return Ok(WriteOutcome::Done);
                    }
                    -1 => return Ok(WriteOutcome::PresenceFailed),
                    // Changed by another instance since we read it: read again.
                    _ => tokio::task::yield_now().await,
                }
            }
            Err(StoreError::Unavailable(
                format!("update of one field lost {CAS_ATTEMPTS} compare-and-set races").into(),
            ))
        })
    }

    fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
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
