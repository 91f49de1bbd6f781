//! Pipelined compare-and-set chains: many updates of one hot field per round trip.
//!
//! An `update` is a compare-and-set (CAS) in Redis: "if the field still holds
//! `expected`, write `new`". Sent one after another, each waits a full round
//! trip for the previous one, so a session updated by many concurrent requests
//! (a counter behind 32 connections) manages a few thousand updates a second.
//!
//! A chain removes that wait. Per session shard this process remembers the
//! *tip*: the value the field will hold once every CAS it has sent succeeds.
//! The next update runs its closure on the tip and sends `CAS(expected = tip,
//! new)` at once, without waiting for the earlier ones to come back; the single
//! multiplexed connection keeps them in order, so Redis applies them one after
//! another and they all succeed.
//!
//! Nothing here can lose an update: Redis still checks every expected value.
//! If another instance writes in between, the next CAS of the chain fails, and
//! so does every later one (each expected its predecessor's value); each of
//! them runs its closure again on a fresh read (the contract allows closures to
//! run more than once). A failed or unanswered CAS resets the tip, and an
//! *epoch* keeps the late failures of an old chain from resetting a new one.
//! Commands are queued onto the connection while the shard lock is held, so
//! chain order is send order; should it ever differ, a CAS fails and is retried.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::id::StoreKey;

const SHARDS: usize = 64;

/// What this process expects a field to hold once its in-flight CASes land.
pub(crate) struct Tip {
    key: StoreKey,
    field: String,
    value: Option<Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct Shard {
    tip: Option<Tip>,
    epoch: u64,
}

/// The chains of one store, one per session shard.
pub(crate) struct Chains {
    shards: Box<[Mutex<Shard>]>,
}

impl Chains {
    pub(crate) fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }

    /// Locks the shard of `key`. Never held across an `.await`.
    pub(crate) fn lock(&self, key: StoreKey) -> Option<MutexGuard<'_, Shard>> {
        let shard = self.shards.get(usize::from(key.as_bytes()[9]) % SHARDS)?;
        // A tip is replaced whole, so a poisoned lock holds nothing half-written.
        Some(shard.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Shard {
    /// The tip of `(key, field)`, if this process has a chain on it: `Some(value)`.
    pub(crate) fn tip(&self, key: StoreKey, field: &str) -> Option<Option<&[u8]>> {
        self.tip.as_ref().filter(|t| t.key == key && t.field == field).map(|t| t.value.as_deref())
    }

    /// The current epoch, to hand back to [`Shard::break_chain`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Extends the chain: once the CAS just sent lands, the field holds `value`.
    pub(crate) fn advance(&mut self, value: Option<Vec<u8>>) {
        if let Some(tip) = &mut self.tip {
            tip.value = value;
        }
    }

    /// Starts a new chain from a value just read from Redis (a new epoch).
    pub(crate) fn start(&mut self, key: StoreKey, field: &str, value: Option<Vec<u8>>) -> u64 {
        self.epoch = self.epoch.wrapping_add(1);
        self.tip = Some(Tip { key, field: field.to_owned(), value });
        self.epoch
    }

    /// A CAS of chain `epoch` failed or went unanswered: the tip is no longer
    /// known. Failures of older chains are ignored.
    pub(crate) fn break_chain(&mut self, epoch: u64) {
        if self.epoch == epoch {
            self.tip = None;
            self.epoch = self.epoch.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_failure_of_an_old_chain_leaves_the_new_one_alone() {
        let chains = Chains::new();
        let key = StoreKey::from_bytes([1; 32]);
        let mut shard = chains.lock(key).unwrap();
        assert!(shard.tip(key, "n").is_none());
        let old = shard.start(key, "n", Some(b"1".to_vec()));
        shard.advance(Some(b"2".to_vec()));
        assert_eq!(shard.tip(key, "n"), Some(Some(&b"2"[..])));
        assert!(shard.tip(key, "other").is_none());
        shard.break_chain(old);
        assert!(shard.tip(key, "n").is_none());
        let new = shard.start(key, "n", Some(b"5".to_vec()));
        shard.break_chain(old);
        assert_eq!(shard.tip(key, "n"), Some(Some(&b"5"[..])), "old epoch: ignored");
        shard.break_chain(new);
        assert!(shard.tip(key, "n").is_none());
    }
}
