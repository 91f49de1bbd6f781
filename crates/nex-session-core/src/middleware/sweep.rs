//! The background purge of expired sessions, through the store's [`SessionAdmin`](crate::store::SessionAdmin).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::shared::Shared;
use crate::observe::Operation;
use crate::token::now_ms;

/// Starts the background sweep once, on the first request (when a tokio runtime
/// surely exists), if the store offers a purge. It stops when the layer is dropped.
#[inline]
pub(super) fn start_once(shared: &Arc<Shared>) {
    // Every request asks; one load answers all but the first.
    if !shared.sweeper_started.load(Ordering::Relaxed) {
        start(shared);
    }
}

#[cold]
#[inline(never)]
fn start(shared: &Arc<Shared>) {
    if shared.sweeper_started.swap(true, Ordering::AcqRel) {
        return;
    }
    if shared.context.store.admin().is_none() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let interval = shared.config.purge_interval;
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(shared) = weak.upgrade() else { break };
            let Some(admin) = shared.context.store.admin() else { break };
            match shared.context.instruments.call(Operation::Purge, admin.purge_expired(now_ms())).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(target: "nex_session", purged = n, "expired sessions removed"),
                // Logged (WARN, `operation = "purge"`) and counted by the instruments.
                Err(_) => {}
            }
        }
    });
}
