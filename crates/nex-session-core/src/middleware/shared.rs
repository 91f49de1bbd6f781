//! What every request of one layer shares, built once per layer (`layer.rs`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::SessionConfig;
use crate::session;

/// What every request of one layer shares.
pub(super) struct Shared {
    /// The store, the expiry rules and the cookie codec, shared with every session.
    pub(super) context: Arc<session::Context>,
    pub(super) config: SessionConfig,
    pub(super) sweeper_started: AtomicBool,
}
