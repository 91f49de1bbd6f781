//! The memory store's [`UserIndex`]: bind, list and revoke a user's sessions,
//! with the index of `index.rs` (its locking rules are there).

use std::collections::HashSet;

use super::index::{forget, Index};
use super::store::MemoryStore;
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::users::{Binding, Keep, SessionCap, SessionHandle, UserIndex, UserSession, SEEN_FIELD, USER_FIELD};
use crate::store::{BoxFuture, WriteOutcome};
use crate::token::now_ms;

impl MemoryStore {
    /// The listing of the live session under `key`, if it is bound to `user`.
    fn listing(&self, key: StoreKey, user: &str, now: i64) -> Option<UserSession> {
        let shard = self.shard(key);
        let entry = shard.sessions.get(&key).filter(|e| e.expires_at_ms() > now)?;
        let binding = Binding::of_snapshot(&entry.fields).filter(|b| b.user == user)?;
        Some(UserSession::new(key, binding, entry.fields.get(SEEN_FIELD), entry.expires_at_ms()))
    }

    /// The live sessions of `user`, dropping dead keys from the index as it goes.
    fn live_sessions(&self, index: &mut Index, user: &str, now: i64) -> Vec<(StoreKey, UserSession)> {
        let mut out = Vec::new();
        if let Some(keys) = index.get_mut(user) {
            keys.retain(|key| match self.listing(*key, user, now) {
                Some(listing) => {
                    out.push((*key, listing));
                    true
                }
                None => false,
            });
            if keys.is_empty() {
                index.remove(user);
            }
        }
        out
    }

    /// Removes the live session under `key` if it is bound to `user`; whether it did.
    fn remove_bound(&self, key: StoreKey, user: &str, now: i64) -> bool {
        let mut shard = self.shard(key);
        let bound = shard.sessions.get(&key).is_some_and(|entry| {
            entry.expires_at_ms() > now && Binding::of_snapshot(&entry.fields).is_some_and(|b| b.user == user)
        });
        if bound {
            shard.sessions.remove(&key);
        }
        bound
    }
}

impl UserIndex for MemoryStore {
    fn bind<'a>(
        &'a self,
        key: StoreKey,
        binding: &'a Binding,
        expires_at_ms: i64,
        cap: Option<SessionCap>,
    ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
        let now = now_ms();
        let mut index = self.users();
        let mut shard = self.shard(key);
        let outcome = match shard.sessions.get_mut(&key).filter(|e| e.expires_at_ms() > now) {
            None => WriteOutcome::PresenceFailed,
            Some(entry) => {
                let previous = Binding::of_snapshot(&entry.fields);
                let encoded = binding.encode();
                entry.fields = entry.fields.merged([(USER_FIELD, Some(&encoded[..]))].into_iter());
                entry.slide(expires_at_ms);
                drop(shard);
                if let Some(previous) = previous.filter(|p| p.user != binding.user) {
                    forget(&mut index, &previous.user, key);
                }
                // A sign-in is when a user's dead keys are cleared out.
                let mut others = self.live_sessions(&mut index, &binding.user, now);
                others.retain(|(other, _)| *other != key);
                if let Some(cap) = cap {
                    // Under the index lock, so the sign-in and its evictions are one step.
                    let excess = (others.len() + 1).saturating_sub(cap.as_usize());
                    others.sort_by(|(_, a), (_, b)| (a.last_seen_ms, &a.handle).cmp(&(b.last_seen_ms, &b.handle)));
                    for (evicted, _) in others.iter().take(excess) {
                        self.remove_bound(*evicted, &binding.user, now);
                        forget(&mut index, &binding.user, *evicted);
                    }
                }
                index.entry(binding.user.clone()).or_default().insert(key);
                WriteOutcome::Done
            }
        };
        drop(index);
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn sessions<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<UserSession>, StoreError>> {
        let mut listed: Vec<UserSession> =
            self.live_sessions(&mut self.users(), user, now_ms()).into_iter().map(|(_, s)| s).collect();
        listed.sort_by(|a, b| (a.signed_in_ms, &a.handle).cmp(&(b.signed_in_ms, &b.handle)));
        Box::pin(std::future::ready(Ok(listed)))
    }

    fn revoke<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> BoxFuture<'a, Result<bool, StoreError>> {
        let now = now_ms();
        let mut index = self.users();
        let key = index.get(user).and_then(|keys| keys.iter().copied().find(|key| SessionHandle::of(*key) == *handle));
        let revoked = match key {
            Some(key) => {
                let removed = self.remove_bound(key, user, now);
                forget(&mut index, user, key);
                removed
            }
            None => false,
        };
        drop(index);
        Box::pin(std::future::ready(Ok(revoked)))
    }

    fn revoke_all<'a>(&'a self, user: &'a str, keep: Keep) -> BoxFuture<'a, Result<u64, StoreError>> {
        let now = now_ms();
        let mut index = self.users();
        let mut revoked = 0u64;
        // The session asking must still be the user's (not revoked meanwhile):
        // checked under the index lock, which every revoke holds.
        let asker_gone = match keep {
            Keep::Session(asker) => self.listing(asker, user, now).is_none(),
            Keep::None | Keep::Handle(_) => false,
        };
        if asker_gone {
            drop(index);
            return Box::pin(std::future::ready(Ok(0)));
        }
        if let Some(keys) = index.remove(user) {
            let mut kept = HashSet::new();
            for key in keys {
                if keep.spares(key) {
                    kept.insert(key);
                } else if self.remove_bound(key, user, now) {
                    revoked += 1;
                }
            }
            if !kept.is_empty() {
                index.insert(user.to_owned(), kept);
            }
        }
        drop(index);
        Box::pin(std::future::ready(Ok(revoked)))
    }
}
