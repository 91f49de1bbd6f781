//! Shared by the stores that `update` by compare-and-set (SQLite, Redis).
//! SQLite uses all of it; Redis only the per-shard lock, for its slow path,
//! and remembers values in its pipelined chains (`redis/chain.rs`) instead.
//!
//! Updates of one process are serialised per session shard, so they never race
//! each other's compare-and-set; other processes are handled by the CAS itself.
//! Under the shard lock the store also remembers the value it last wrote: the
//! next update of the same field starts from it and skips the read round trip.
//! A stale memory cannot lose an update, since the CAS checks it; it only costs
//! one retry.

use std::sync::Arc;

use crate::id::StoreKey;

/// Shards of the per-process update lock.
const SHARDS: usize = 64;

/// The field value this process last wrote by compare-and-set.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // Redis keeps chains instead (redis/chain.rs).
pub(crate) struct LastWrite {
    key: StoreKey,
    field: String,
    value: Option<Vec<u8>>,
}

/// The per-shard update locks, each guarding the shard's last write.
#[derive(Clone)]
pub(crate) struct UpdateLocks(Arc<[tokio::sync::Mutex<Option<LastWrite>>]>);

impl UpdateLocks {
    pub(crate) fn new() -> Self {
        Self((0..SHARDS).map(|_| tokio::sync::Mutex::new(None)).collect())
    }

    /// Locks the shard of `key`.
    pub(crate) async fn lock(&self, key: StoreKey) -> Option<tokio::sync::MutexGuard<'_, Option<LastWrite>>> {
        let shard = usize::from(key.as_bytes()[9]) % SHARDS;
        Some(self.0.get(shard)?.lock().await)
    }
}

/// Takes the remembered value of `(key, field)`, if this process wrote it last.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // Redis keeps chains instead (redis/chain.rs).
pub(crate) fn take_known(slot: &mut Option<LastWrite>, key: StoreKey, field: &str) -> Option<Option<Vec<u8>>> {
    slot.take().filter(|w| w.key == key && w.field == field).map(|w| w.value)
}

/// Remembers a successful write.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // Redis keeps chains instead (redis/chain.rs).
pub(crate) fn remember(slot: &mut Option<LastWrite>, key: StoreKey, field: &str, value: Option<Vec<u8>>) {
    *slot = Some(LastWrite { key, field: field.to_owned(), value });
}
