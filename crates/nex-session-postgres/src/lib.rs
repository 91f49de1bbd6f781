//! The PostgreSQL store: see [`PostgresStore`] for the
//! schema, the guarantees and the failure behaviour.
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
