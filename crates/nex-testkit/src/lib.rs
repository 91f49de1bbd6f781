//! Test support for the nex-session workspace: the one HTTP test harness
//! ([`http`]), private Redis servers and clusters ([`redis`]), private PostgreSQL servers
//! ([`postgres`]), a Redis Sentinel set ([`sentinel`]), and store
//! wrappers for fault injection ([`store`]), temporary database files ([`fs`]),
//! certificates made at test time ([`tls`]).
//!
//! Everything here talks to real parts: a real HTTP server on 127.0.0.1, real
//! `redis-server` processes. A missing program fails the test with the command
//! that installs it.
// Test support: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

pub mod apps;
pub mod fs;
pub mod http;
pub mod postgres;
pub mod redis;
pub mod scale;
pub mod sentinel;
pub mod store;
pub mod tls;

pub use self::fs::{TempDb, TempDir};
pub use self::postgres::PostgresServer;
pub use self::redis::{single_node, RedisCluster, RedisServer, ServerTls};
pub use self::sentinel::SentinelSet;
pub use self::tls::{CertFiles, Pki};
