//! The chains themselves: per shard, the one field this process updates often,
//! its tip and its open batch; how an update joins a chain, how a new chain
//! starts, how the committer takes a batch, and how a chain breaks.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::cas::CasAnswer;
use super::outcome::{Outcome, OutcomeReceiver, OutcomeSender};
use crate::id::StoreKey;
use crate::store::toolkit::shards::Shards;
use crate::store::{Presence, UpdateAction, UpdateFn, WriteOutcome};

/// Chain shards per store. One shard holds one chain at a time: more shards make
/// it rarer that two busy sessions take turns (each turn costs the loser one read).
pub(super) const SHARDS: usize = 256;
/// Slow-path locks per store (a table of their own).
pub(super) const SLOW_SHARDS: usize = 64;
/// Attempts of one update before reporting contention.
pub(super) const ATTEMPTS: usize = 64;
/// The smallest batch whose members a committer waits for (see "Gathering").
pub(super) const GATHER_FROM: usize = 4;

/// The update machinery of one store.
pub struct Updates {
    /// One slow-path reader at a time per lock.
    pub(super) slow: Shards<tokio::sync::Mutex<()>>,
    pub(super) chains: Shards<Mutex<Shard>>,
}

/// The chain state of one shard.
#[derive(Default)]
pub(super) struct Shard {
    /// The chain this shard holds, if any; a new chain replaces it.
    pub(super) chain: Option<Chain>,
    /// The epoch the next chain gets.
    pub(super) next_epoch: u64,
    /// A committer task is running for this shard.
    pub(super) committing: bool,
    /// The committer waits until the open batch has this many members.
    pub(super) awaited: Option<usize>,
    /// Where that committer waits (see "Gathering"); a new one per wait, so no
    /// wake-up meant for an earlier wait is left over.
    pub(super) gathered: Arc<tokio::sync::Notify>,
    /// The latest the committer takes the open batch (see "Waiting without a
    /// timer"): the deadline of the batch in flight, or the end of a gathering
    /// wait. `None`, or a time past: at once.
    pub(super) busy_until: Option<Instant>,
}

/// What this process knows about one field it updates often.
pub(super) struct Chain {
    pub(super) key: StoreKey,
    pub(super) field: String,
    /// What the field holds once every accepted update lands (`None`: absent).
    pub(super) tip: Option<Vec<u8>>,
    pub(super) epoch: u64,
    /// What the next batch requires of the session: the presence of the update
    /// that started the chain for its first batch, `Existing` after that.
    pub(super) next_presence: Presence,
    /// Updates accepted and not yet sent: they go as one CAS.
    pub(super) open: Option<Batch>,
    /// The size of the chain's last answered batch, and when it was answered.
    pub(super) last: Option<(usize, std::time::Instant)>,
}

/// The members of one future CAS.
pub(super) struct Batch {
    /// What the field holds before the batch (what the store must hold for it to apply).
    pub(super) expected: Option<Vec<u8>>,
    pub(super) presence: Presence,
    /// Some member set or deleted (else the batch only checks the value).
    pub(super) writes: bool,
    /// The latest expiry any member asked for.
    pub(super) expires_at_ms: i64,
    /// The earliest deadline of its members: the compare-and-set must be answered
    /// by then, and a batch still unsent then is never sent.
    pub(super) deadline: Instant,
    /// Where the members learn that it was sent, and wait for its outcome.
    pub(super) done: OutcomeSender,
}

/// A batch taken by the committer, with the value it leaves behind.
pub(super) struct Sending {
    pub(super) batch: Batch,
    pub(super) field: String,
    /// The tip when the batch was taken: every update accepted so far is in it.
    pub(super) new: Option<Vec<u8>>,
    pub(super) epoch: u64,
}

/// A member's place in a batch.
pub(super) struct Member {
    pub(super) outcome: OutcomeReceiver,
    /// The chain the batch belongs to.
    pub(super) epoch: u64,
    /// This member must start the shard's committer.
    pub(super) start_committer: bool,
    /// The committer answers the batch by this member's deadline, so the member
    /// needs no timer of its own (see "Waiting without a timer").
    pub(super) answered_in_time: bool,
}

/// What joining a chain gave.
pub(super) enum Join {
    /// No chain on this field here: take the slow path.
    NoChain,
    /// Decided without the store.
    Decided(WriteOutcome),
    /// A member of the open batch: wait for its outcome.
    Joined(Member),
}

impl Default for Updates {
    fn default() -> Self {
        Self::new()
    }
}

impl Updates {
    /// The update machinery of one store, with no chain yet.
    pub fn new() -> Self {
        Self {
            slow: Shards::new(SLOW_SHARDS, || tokio::sync::Mutex::new(())),
            chains: Shards::new(SHARDS, || Mutex::new(Shard::default())),
        }
    }

    /// Locks the chain shard of `key`. Never held across an `.await`.
    pub(super) fn lock(&self, key: StoreKey) -> MutexGuard<'_, Shard> {
        // Every change under the lock is a plain assignment, so a poisoned lock
        // holds nothing half-written.
        self.chains.of(key).lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a new chain starts from: the field as just read from the store.
pub(super) struct ChainStart<'a> {
    pub(super) key: StoreKey,
    pub(super) field: &'a str,
    /// The field's value in the store (`None`: absent).
    pub(super) current: Option<Vec<u8>>,
}

/// What one update asks of the session, and by when it must be done.
#[derive(Clone, Copy, Debug)]
pub(super) struct Terms {
    /// The session's expiry after the write.
    pub(super) expires_at_ms: i64,
    /// What the write requires of the session's existence.
    pub(super) presence: Presence,
    /// The update's deadline: the store's timeout after its start.
    pub(super) deadline: Instant,
}

/// A committer's wait for the members of the batch just answered (see "Gathering").
pub(super) struct Gathering {
    /// Notified once the open batch is as big as the last one.
    pub(super) woken: Arc<tokio::sync::Notify>,
    /// The wait ends then at the latest.
    pub(super) until: Instant,
}

impl Shard {
    /// Whether this shard's chain is on `(key, field)`.
    pub(super) fn has_chain(&self, key: StoreKey, field: &str) -> bool {
        self.chain.as_ref().is_some_and(|c| c.key == key && c.field == field)
    }

    /// Joins the chain on `(key, field)` if there is one: runs `f` on the tip in
    /// place (no copy; it never awaits) and accepts the decision.
    pub(super) fn join(&mut self, key: StoreKey, field: &str, f: UpdateFn<'_>, terms: Terms) -> Join {
        let Some(chain) = self.chain.as_mut().filter(|c| c.key == key && c.field == field) else {
            return Join::NoChain;
        };
        if terms.presence == Presence::New {
            // This process is writing the session: it exists, so it cannot be new.
            return Join::Decided(WriteOutcome::PresenceFailed);
        }
        let action = f(chain.tip.as_deref());
        let outcome = chain.accept(action, terms);
        let epoch = chain.epoch;
        self.wake_gathering();
        Join::Joined(self.member(outcome, epoch, terms.deadline))
    }

    /// Starts a new chain from a value just read from the store, with `action`
    /// (decided on it) as the first member of its first batch.
    pub(super) fn start(&mut self, start: ChainStart<'_>, action: UpdateAction, terms: Terms) -> Member {
        self.break_current();
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let ChainStart { key, field, current } = start;
        let chain = self.chain.insert(Chain {
            key,
            field: field.to_owned(),
            tip: current,
            epoch,
            next_presence: terms.presence,
            open: None,
            last: None,
        });
        let outcome = chain.accept(action, terms);
        self.member(outcome, epoch, terms.deadline)
    }

    /// A new member of the open batch, with a deadline of `deadline`.
    fn member(&mut self, outcome: OutcomeReceiver, epoch: u64, deadline: Instant) -> Member {
        // The committer takes the open batch by `busy_until`, and answers it by the
        // batch's deadline, which is at most this member's.
        let answered_in_time = self.busy_until.is_none_or(|until| until <= deadline);
        Member { outcome, epoch, start_committer: self.claim_committer(), answered_in_time }
    }

    /// The members that joined the open batch (a cancelled member still counts).
    pub(super) fn open_members(&self) -> usize {
        self.chain.as_ref().and_then(|c| c.open.as_ref()).map_or(0, |open| open.done.members())
    }

    /// Whether the committer should wait before taking the open batch, and where
    /// (see "Gathering"): the chain's last batch was big and recent, and the open
    /// one, not empty, is smaller.
    pub(super) fn gather_target(&mut self, gather: Duration) -> Option<Gathering> {
        let chain = self.chain.as_ref()?;
        let (size, ended) = chain.last?;
        let deadline = chain.open.as_ref()?.deadline;
        let open = self.open_members();
        if gather.is_zero() || size < GATHER_FROM || ended.elapsed() > gather || open == 0 || open >= size {
            return None;
        }
        let until = Instant::now() + gather;
        if deadline <= until {
            // Its members may wait without timers, and a wait up to the deadline
            // would leave the batch expired: send it now.
            return None;
        }
        self.awaited = Some(size);
        self.busy_until = Some(until);
        self.gathered = Arc::new(tokio::sync::Notify::new());
        Some(Gathering { woken: self.gathered.clone(), until })
    }

    /// A member joined: wakes a gathering committer once the open batch is full enough.
    pub(super) fn wake_gathering(&mut self) {
        if self.awaited.is_some_and(|size| self.open_members() >= size) {
            self.awaited = None;
            self.gathered.notify_one();
        }
    }

    /// Whether the caller must start the committer: none runs yet. Claims it.
    pub(super) fn claim_committer(&mut self) -> bool {
        !std::mem::replace(&mut self.committing, true)
    }

    /// The committer's next batch, or `None` (and the committer stops) when no
    /// batch is open.
    pub(super) fn next_batch(&mut self) -> Option<Sending> {
        let sending = self.chain.as_mut().and_then(|chain| {
            let batch = chain.open.take()?;
            // Members joining from now on wait for this batch's answer first.
            self.busy_until = Some(batch.deadline);
            // Seen by a member giving up; no need to wake the members for it.
            batch.done.mark_sent();
            Some(Sending { batch, field: chain.field.clone(), new: chain.tip.clone(), epoch: chain.epoch })
        });
        self.committing = sending.is_some();
        sending
    }

    /// A CAS of chain `epoch` failed or went unanswered: the tip is no longer
    /// known, and the open batch (built on it) cannot apply. Failures of older
    /// chains are ignored.
    pub(super) fn break_chain(&mut self, epoch: u64) {
        if self.chain.as_ref().is_some_and(|c| c.epoch == epoch) {
            self.break_current();
        }
    }

    /// Forgets the current chain, telling its open batch's members to decide
    /// again on a fresh read.
    pub(super) fn break_current(&mut self) {
        if let Some(open) = self.chain.take().and_then(|c| c.open) {
            open.done.end(Outcome::Answer(CasAnswer::Conflict));
        }
    }
}

impl Chain {
    /// Accepts one update decided on the tip: the tip moves to the decision (a
    /// keep leaves it) and the update joins the open batch, which it opens if
    /// there is none. Returns where to learn the batch's outcome.
    pub(super) fn accept(&mut self, action: UpdateAction, terms: Terms) -> OutcomeReceiver {
        let (before, writes) = match action {
            // No copy of the value: the old tip moves into `before`, the new bytes into the tip.
            UpdateAction::Set(bytes) => (Some(self.tip.replace(bytes)), true),
            UpdateAction::Delete => (Some(self.tip.take()), true),
            UpdateAction::Keep => (None, false),
        };
        let batch = match &mut self.open {
            Some(open) => open,
            empty => empty.insert(Batch {
                // A keep leaves the tip as it was: that is the value the batch expects.
                expected: before.unwrap_or_else(|| self.tip.clone()),
                presence: std::mem::replace(&mut self.next_presence, Presence::Existing),
                writes: false,
                expires_at_ms: terms.expires_at_ms,
                deadline: terms.deadline,
                done: OutcomeSender::new(),
            }),
        };
        batch.writes |= writes;
        batch.expires_at_ms = batch.expires_at_ms.max(terms.expires_at_ms);
        batch.deadline = batch.deadline.min(terms.deadline);
        batch.done.join()
    }
}
