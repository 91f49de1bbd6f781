//! Machinery for store authors: what the built-in SQLite, Redis and PostgreSQL
//! stores are made of, public so that your store can use it too.
//!
//! None of it is needed to implement [`SessionStore`](super::SessionStore): a
//! store that keeps its sessions behind one lock, as in the [module
//! example](super), is complete without it. Reach for it when a store talks to a
//! server and must stay fast and honest under load:
//!
//! | module | what it gives a store |
//! |---|---|
//! | [`update_chain`] | `update` by compare-and-set with group commit: many concurrent updates of one hot field cost one round trip; the store supplies a field read and one compare-and-set ([`update_chain::CasStore`]) |
//! | [`client_cache`] | the core of a client-side read cache kept current by the server's invalidations: generation-fenced entries and a liveness clock |
//! | [`shards`] | per-session tables split into independently locked shards, with a hasher for [`StoreKey`](crate::StoreKey)s |
//! | [`redact`] | store URLs and errors with their passwords hidden |
//! | [`url`] | percent-decoding of store URL parts |
//!
//! Each module's docs say what it guarantees and what the store must do for it.

pub mod client_cache;
pub mod redact;
pub mod shards;
pub mod update_chain;
pub mod url;
