//! The memory store's per-user index (the data; `users.rs` implements
//! [`UserIndex`](crate::store::UserIndex) with it): a map from user to the keys of their
//! sessions, behind one lock taken before any shard lock (and a leaf lock for
//! the keys of bound sessions evicted under a shard lock, which the index drops
//! the next time it is taken).
//!
//! Every operation that changes which sessions a user has (bind, rename, the
//! revokes) holds that lock throughout, so they happen one after another: a
//! revoke-all sees every session bound before it, and a rename racing with it
//! either finishes first (its new key is indexed, and revoked) or starts after
//! (its source is gone). Writes of a session's other fields take only their
//! shard lock and need its entry to exist, so none can bring a removed session
//! back. Removed, evicted and expired sessions are dropped from the index when
//! they go (eviction: the next time the index is taken; expiry: by the purge), or
//! when the user's sessions are next read or bound.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::id::StoreKey;

/// User → keys of the sessions bound to them (maybe some dead ones).
pub(super) type Index = HashMap<String, HashSet<StoreKey>>;

/// `key` of `user` moved to `to` (a renew).
pub(super) fn moved(index: &mut Index, user: &str, from: StoreKey, to: StoreKey) {
    let keys = index.entry(user.to_owned()).or_default();
    keys.remove(&from);
    keys.insert(to);
}

/// `key` of `user` is gone.
pub(super) fn forget(index: &mut Index, user: &str, key: StoreKey) {
    if let Some(keys) = index.get_mut(user) {
        keys.remove(&key);
        if keys.is_empty() {
            index.remove(user);
        }
    }
}

/// The index and its inbox of evicted bound sessions. Lock order: the index
/// lock before any shard lock, never the other way round.
#[derive(Default)]
pub(super) struct Users {
    index: Mutex<Index>,
    /// Bound sessions evicted under a shard lock, which cannot take the index lock:
    /// the index forgets them at the next bind, listing or purge (a leaf lock).
    orphans: Mutex<Vec<(String, StoreKey)>>,
}

impl Users {
    /// The index, with the keys of bound sessions evicted since it was last taken
    /// already forgotten.
    pub(super) fn lock(&self) -> MutexGuard<'_, Index> {
        // Each change of the index is one insert or remove: a panic cannot leave it half-done.
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let orphans = std::mem::take(&mut *self.orphans());
        for (user, key) in orphans {
            forget(&mut index, &user, key);
        }
        index
    }

    fn orphans(&self) -> MutexGuard<'_, Vec<(String, StoreKey)>> {
        self.orphans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A bound session was evicted under its shard lock: the next holder of the
    /// index lock drops it from the index.
    pub(super) fn orphaned(&self, user: String, key: StoreKey) {
        self.orphans().push((user, key));
    }
}
