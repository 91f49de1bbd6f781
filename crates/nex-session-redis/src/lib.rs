//! The Redis / Valkey store: sessions shared by many app instances.
//!
//! One hash per session under `<prefix><hex of the hashed id>`, a field per key,
//! plus a marker field so that a session with no keys still exists; expiry is the
//! key's own (`PEXPIREAT`), so Redis drops expired sessions by itself and
//! `purge_expired` has none to remove (it tidies users' indexes).
//!
//! - **load**: `HGETALL` and `PEXPIRETIME` in one pipeline (so the expiry read is exactly the one
//!   written; `PTTL` on Redis 6, off by the round trip), one round trip, or none at
//!   all when the session is in the client-side cache (single node, on by
//!   default): Redis "client tracking" tells this connection the moment a cached
//!   session changes, so it is dropped before anyone can read it stale; and
//!   while Redis gives no sign of life, the cache stops answering within 3 s. See
//!   [`RedisOptions::client_cache`] for the exact guarantee and how to turn it off
//!   (`cache.rs`).
//! - **apply**: one Lua script per batch (presence check, `HSET`/`HDEL`, `PEXPIREAT`):
//!   atomic, one round trip (`scripts.rs`).
//! - **update**: read the field, run the closure, then a compare-and-set script that
//!   writes only if the field is unchanged; retried on conflict, so no increment is
//!   lost across instances. Once this process has written a field it knows its
//!   value, and concurrent updates of it are group-committed: each runs its closure
//!   on the latest accepted value at once, and a committer task sends them as one
//!   compare-and-set per round trip (`nex_session_core::store::toolkit::update_chain`; this
//!   store's side is `compare_and_set.rs`).
//! - **Redis Cluster** (`redis+cluster://host:port,host:port`): a session is one key,
//!   so all its fields live in one hash slot and every script above stays atomic.
//!   `renew` moves data between two keys that may sit in different slots, which no
//!   single atomic command can do; it first takes the old session away atomically
//!   (read and delete in one script), so the old id stops working at once, then
//!   writes the new key. If that second step fails the user is logged out, never
//!   left on the old id. On a single node `renew` is one atomic script
//!   (`rename.rs`).
//! - **TLS** (`rediss://`, `rediss+cluster://`, `rediss+sentinel://`; `tls.rs`): rustls
//!   through the redis client's own support. `sslmode=verify-full` (the default: chain
//!   and host name), `verify-ca` (chain only; not on a cluster, whose later-found nodes
//!   could not be held to it) or `require` (nothing verified: development only);
//!   `sslrootcert=/path/ca.pem` (default: the system's roots), `sslcert` + `sslkey`
//!   for mutual TLS. Files are read once, at open. A failed handshake is a start-up
//!   error that names the fix (`diagnose.rs`): `rediss://app:KEY@cache:6380?sslrootcert=/etc/ssl/ca.pem`.
//! - **Sentinel** (`redis+sentinel://HOST:PORT,HOST:PORT/SERVICE[/DB]`; `sentinel.rs`):
//!   the master is asked of the sentinels and must answer `ROLE` as master; the store
//!   follows a failover within a second of the sentinels naming the new master (asked
//!   every second, and at once after a lost connection or a `READONLY` reply), empties
//!   its client-side cache at the switch, and meanwhile fails calls honestly (a replica
//!   refuses writes with `READONLY`, which is "not applied"). Until the sentinels
//!   demote it, an old master still takes writes: the store stops sending them there
//!   within a second of the promotion, and what it took meanwhile is dropped at its
//!   resync. Redis replicates
//!   asynchronously: writes the old master acknowledged just before it died can be
//!   missing on the new one. Bound that window on the master with
//!   `min-replicas-to-write 1` and `min-replicas-max-lag 10` (writes are then refused,
//!   as errors, while no replica keeps up; an old master that restarts before the
//!   sentinels demote it then takes no write it would drop at its resync). `sentinel_password=` (and
//!   `sentinel_username=`) in the query are the sentinels' credentials; the URL's are
//!   the master's. [`SessionStore::endpoint`] names the master in use and the failovers
//!   followed.
//! - **Users** ([`UserIndex`], `users.rs`): one hash per user,
//!   `<prefix>u:{<hex SHA-256 of the user id>}`, a field per session key whose
//!   value is the member's state; the binding itself is the session's
//!   [`USER_FIELD`]. One protocol for a single node and a cluster: every script
//!   is atomic on its one key, and the steps of a call are ordered so that a
//!   revoke is final (the race analysis is in `users.rs`). A session without a
//!   user has no member and pays nothing: `renew` of one is still one script.
//! - **Listing** (`admin.rs`, `scan.rs`): `SCAN` of the one node, or of every
//!   primary of a cluster, each with its own cursor. The purge has no sessions to
//!   remove; it sweeps users' indexes for members whose sessions are gone, a
//!   bounded slice per run (`sweep.rs`).
//! - **Failures**: every call is bounded by one deadline, the timeout (default 1 s)
//!   after it starts, covering its waits and its commands; a timeout or a lost
//!   connection is a [`StoreError`], and the connection is re-established in the
//!   background, so the app recovers without a restart when Redis is back
//!   (`connect.rs`). A write that was sent and not answered is
//!   [`StoreError::OutcomeUnknown`] (it may have been applied); one that never
//!   left is [`StoreError::Timeout`] or [`StoreError::Unavailable`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), nex_session::StoreError> {
//! use nex_session::store::RedisStore;
//! let store = RedisStore::open("redis://127.0.0.1:6379/0").await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! Apps depend on the facade crate, `nex-session = { version = "0.1", features = ["redis"] }`,
//! and use this store as `nex_session::store::RedisStore`; this crate depends on
//! `nex-session-core`'s public API only.
//!
//! [`UserIndex`]: nex_session_core::store::UserIndex
//! [`SessionStore::endpoint`]: nex_session_core::store::SessionStore::endpoint
//! [`USER_FIELD`]: nex_session_core::store::users::USER_FIELD
//! [`StoreError`]: nex_session_core::StoreError
//! [`StoreError::OutcomeUnknown`]: nex_session_core::StoreError::OutcomeUnknown
//! [`StoreError::Timeout`]: nex_session_core::StoreError::Timeout
//! [`StoreError::Unavailable`]: nex_session_core::StoreError::Unavailable

mod admin;
mod cache;
mod compare_and_set;
mod connect;
mod diagnose;
mod index_expiry;
mod index_members;
mod rename;
mod scan;
mod script_call;
mod scripts;
mod sentinel;
mod session_store;
mod store;
mod sweep;
mod target;
mod tls;
mod users;

pub use connect::RedisOptions;
pub use store::RedisStore;
