//! Pipelined compare-and-set chains: many updates of one hot field per round trip.
//!
//! An `update` is a compare-and-set (CAS) in Redis: "if the field still holds
//! `expected`, write `new`". Sent one after another, each waits a full round
//! trip for the previous one, so a session updated by many concurrent requests
//! (a counter behind 32 connections) manages a few thousand updates a second.
//!
//! A chain removes that wait, and group commit makes it one command per round
//! trip. Per session shard this process remembers the *tip*: the value the
//! field will hold once every update it has accepted lands. The next update
//! runs its closure on the tip at once and joins the *open batch*. One
//! committer task per shard sends the open batch as a single
//! `CAS(expected = value before the batch, new = tip)` while the previous batch
//! is in flight the next one fills up, so 32 concurrent increments cost about
//! one round trip and one script run instead of 32.
//!
//! Nothing here can lose an update: Redis still checks the expected value of
//! every batch. If another instance wrote in between, the batch fails and every
//! member runs its closure again on a fresh read (the contract allows closures
//! to run more than once); the chain is *broken*: the tip is forgotten, the open
//! batch (built on the failed one) fails too, and an *epoch* keeps the late
//! failures of an old chain from breaking a new one. The committer is a task of
//! its own, so a cancelled request never strands the other members; they wait
//! at most twice the store's timeout, then get an error.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::id::StoreKey;
use crate::store::UpdateAction;

/// Chains per store. One shard holds one chain at a time: more shards make it
/// rarer that two busy sessions take turns (each turn costs the loser one read).
const SHARDS: usize = 256;

/// What this process expects a field to hold once its accepted updates land.
pub(crate) struct Tip {
    key: StoreKey,
    field: String,
    value: Option<Vec<u8>>,
}

/// How a batch ended, as every member of it learns it.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The script's answer: 1 done, 0 conflict, -1 presence failed.
    Answer(i64),
    /// No answer within the timeout.
    Timeout(Duration),
    /// Redis could not be asked, or the batch was given up.
    Failed(String),
}

/// Updates accepted onto the chain and not yet sent: they go as one CAS.
pub(crate) struct Open {
    /// The value before the batch (what Redis must hold for it to apply).
    pub(crate) expected: Option<Vec<u8>>,
    /// The value after it (the tip when the batch is taken for sending; `None` until then).
    pub(crate) new: Option<Vec<u8>>,
    /// Some member set or deleted (else the batch only checks the value).
    pub(crate) writes: bool,
    /// The latest expiry any member asked for.
    pub(crate) expires_at_ms: i64,
    /// The epoch of the chain the batch extends.
    pub(crate) epoch: u64,
    /// The Redis key and field name.
    pub(crate) redis_key: String,
    pub(crate) field: String,
    /// Where the members wait for the outcome.
    pub(crate) done: watch::Sender<Option<Outcome>>,
}

#[derive(Default)]
pub(crate) struct Shard {
    tip: Option<Tip>,
    epoch: u64,
    open: Option<Open>,
    /// A committer task is running for this shard.
    committing: bool,
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
        // Every change under the lock is a plain field assignment, so a poisoned
        // lock holds nothing half-written.
        Some(shard.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A member's place in a batch: how to learn its outcome, and whether it must
/// start the shard's committer.
pub(crate) struct Joined {
    pub(crate) outcome: watch::Receiver<Option<Outcome>>,
    pub(crate) start_committer: bool,
}

impl Shard {
    /// The tip of `(key, field)`, if this process has a chain on it: `Some(value)`.
    pub(crate) fn tip(&self, key: StoreKey, field: &str) -> Option<Option<&[u8]>> {
        self.tip.as_ref().filter(|t| t.key == key && t.field == field).map(|t| t.value.as_deref())
    }

    /// Accepts one update decided on the tip: the tip moves to the action's value
    /// (a keep leaves it) and the update joins the open batch. `redis_key` is
    /// called only when this update opens the batch.
    pub(crate) fn join(
        &mut self,
        action: UpdateAction,
        expires_at_ms: i64,
        redis_key: impl FnOnce() -> String,
    ) -> Joined {
        let Some(tip) = &mut self.tip else {
            // Callers join only after `tip` said there is one; answer "conflict" (retry) if not.
            let (done, outcome) = watch::channel(Some(Outcome::Answer(0)));
            drop(done);
            return Joined { outcome, start_committer: false };
        };
        let (before, writes) = match action {
            // No copy of the value: the old tip moves into `before`, the new bytes into the tip.
            UpdateAction::Set(bytes) => (Some(tip.value.replace(bytes)), true),
            UpdateAction::Delete => (Some(tip.value.take()), true),
            UpdateAction::Keep => (None, false),
        };
        let open = match &mut self.open {
            Some(open) => open,
            empty => empty.insert(Open {
                // Keep leaves the tip as it was: that is the value the batch expects.
                expected: before.unwrap_or_else(|| tip.value.clone()),
                new: None,
                writes: false,
                expires_at_ms,
                epoch: self.epoch,
                redis_key: redis_key(),
                field: tip.field.clone(),
                done: watch::channel(None).0,
            }),
        };
        open.writes |= writes;
        open.expires_at_ms = open.expires_at_ms.max(expires_at_ms);
        let outcome = open.done.subscribe();
        let start_committer = !self.committing;
        self.committing = true;
        Joined { outcome, start_committer }
    }

    /// The committer's next batch, or `None` (and the committer stops) when there
    /// is none. Its `new` is the tip: every update accepted since the last batch
    /// is in this one, so the tip is the value the batch leaves behind.
    pub(crate) fn next_batch(&mut self) -> Option<Open> {
        let mut open = self.open.take();
        if let Some(open) = &mut open {
            match &self.tip {
                Some(tip) => open.new = tip.value.clone(),
                // Cannot happen (breaking the chain fails the open batch); retrying is safe.
                None => {
                    open.done.send_replace(Some(Outcome::Answer(0)));
                    self.committing = false;
                    return None;
                }
            }
        }
        self.committing = open.is_some();
        open
    }

    /// The current epoch: whether a batch still extends the live chain.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Starts a new chain from a value just written by a lone CAS (a new epoch).
    pub(crate) fn start(&mut self, key: StoreKey, field: &str, value: Option<Vec<u8>>) -> u64 {
        self.fail_open();
        self.epoch = self.epoch.wrapping_add(1);
        self.tip = Some(Tip { key, field: field.to_owned(), value });
        self.epoch
    }

    /// A CAS of chain `epoch` failed or went unanswered: the tip is no longer
    /// known, and the open batch (built on it) cannot apply. Failures of older
    /// chains are ignored.
    pub(crate) fn break_chain(&mut self, epoch: u64) {
        if self.epoch == epoch {
            self.tip = None;
            self.epoch = self.epoch.wrapping_add(1);
            self.fail_open();
        }
    }

    /// Tells the open batch's members to decide again on a fresh read.
    fn fail_open(&mut self) {
        if let Some(open) = self.open.take() {
            open.done.send_replace(Some(Outcome::Answer(0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(joined: &Joined) -> Option<Outcome> {
        joined.outcome.borrow().clone()
    }

    #[test]
    fn updates_on_the_tip_collapse_into_one_batch() {
        let chains = Chains::new();
        let key = StoreKey::from_bytes([1; 32]);
        let mut shard = chains.lock(key).unwrap();
        assert!(shard.tip(key, "n").is_none());
        shard.start(key, "n", Some(b"1".to_vec()));
        let first = shard.join(UpdateAction::Set(b"2".to_vec()), 10, || "k".into());
        assert!(first.start_committer);
        let second = shard.join(UpdateAction::Set(b"3".to_vec()), 20, || "not-used".into());
        assert!(!second.start_committer, "one committer per shard");
        assert_eq!(shard.tip(key, "n"), Some(Some(&b"3"[..])));
        let batch = shard.next_batch().unwrap();
        assert_eq!((batch.expected.as_deref(), batch.new.as_deref()), (Some(&b"1"[..]), Some(&b"3"[..])));
        assert_eq!(batch.expires_at_ms, 20);
        assert_eq!(batch.redis_key, "k", "named by the member that opened it");
        assert!(batch.writes);
        assert!(shard.next_batch().is_none(), "the committer stops when nothing is open");
        batch.done.send_replace(Some(Outcome::Answer(1)));
        assert!(matches!(answered(&first), Some(Outcome::Answer(1))));
        assert!(matches!(answered(&second), Some(Outcome::Answer(1))));
    }

    #[test]
    fn keeps_check_the_tip_and_deletes_clear_it() {
        let chains = Chains::new();
        let key = StoreKey::from_bytes([3; 32]);
        let mut shard = chains.lock(key).unwrap();
        shard.start(key, "n", Some(b"7".to_vec()));
        let _keep = shard.join(UpdateAction::Keep, 10, || "k".into());
        let batch = shard.next_batch().unwrap();
        assert!(!batch.writes, "a batch of keeps only checks");
        assert_eq!((batch.expected.as_deref(), batch.new.as_deref()), (Some(&b"7"[..]), Some(&b"7"[..])));
        let _delete = shard.join(UpdateAction::Delete, 10, || "k".into());
        assert_eq!(shard.tip(key, "n"), Some(None));
        let _keep = shard.join(UpdateAction::Keep, 10, || "k".into());
        let batch = shard.next_batch().unwrap();
        assert!(batch.writes);
        assert_eq!((batch.expected.as_deref(), batch.new.as_deref()), (Some(&b"7"[..]), None));
    }

    #[test]
    fn a_broken_chain_fails_its_open_batch_and_ignores_late_failures() {
        let chains = Chains::new();
        let key = StoreKey::from_bytes([2; 32]);
        let mut shard = chains.lock(key).unwrap();
        let old = shard.start(key, "n", Some(b"1".to_vec()));
        let waiting = shard.join(UpdateAction::Set(b"2".to_vec()), 10, || "k".into());
        shard.break_chain(old);
        assert!(shard.tip(key, "n").is_none());
        assert!(matches!(answered(&waiting), Some(Outcome::Answer(0))), "members retry");
        let new = shard.start(key, "n", Some(b"5".to_vec()));
        shard.break_chain(old);
        assert_eq!(shard.tip(key, "n"), Some(Some(&b"5"[..])), "old epoch: ignored");
        shard.break_chain(new);
        assert!(shard.tip(key, "n").is_none());
    }
}
