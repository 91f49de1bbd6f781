//! The PostgreSQL store: see [`PostgresStore`] for the
//! schema, the guarantees, the failure behaviour, and connecting (TLS with
//! libpq's `sslmode`, client certificates, several hosts and failover).
//!
//! | file | job |
//! |---|---|
//! | `store/` | the type, opening it, its calls; options, schema, compare-and-set, admin |
//! | `pool.rs`, `pipeline.rs` | connections lent to calls under one deadline; statements sent together |
//! | `connect.rs` | opening one connection (plain or TLS) and noting which host answered |
//! | `tls/` | `sslmode` and certificate parameters, the files read at open, the verifiers |
//! | `diagnose.rs` | connection failures in words, naming the parameter to fix |
//! | `failover.rs` | noticing that the primary moved, so pool and cache follow it |
//! | `cache.rs` | the client-side cache and its `LISTEN` connection |
//!
//! Apps depend on the facade crate, `nex-session = { version = "0.1", features = ["postgres"] }`,
//! and use this store as `nex_session::store::PostgresStore`; this crate depends on
//! `nex-session-core`'s public API only.

mod cache;
mod connect;
mod diagnose;
mod failover;
mod pipeline;
mod pool;
mod rows;
mod store;
mod tls;
mod users;

pub use store::{PostgresOptions, PostgresStore};
