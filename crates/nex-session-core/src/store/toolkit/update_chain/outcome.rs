//! How a batch ends, and how its members learn it: the batch's
//! [`OutcomeSender`], and one [`OutcomeReceiver`] per member.
//!
//! Every member of a batch waits for the one outcome the committer sets. A
//! `tokio::sync::watch` channel did this job, but it is built for values that
//! change many times: its wait registered each member with a notification
//! list and rechecked versions, about 650 instructions per member. A batch's
//! state changes twice (sent, then ended) and only the end wakes anyone, so a
//! lock around the state and the waiting members' wakers is enough: a member
//! that finds no outcome leaves its waker (once; a later poll refreshes it),
//! and the end takes the wakers out and wakes each.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::cas::CasAnswer;
use crate::error::StoreError;

/// Where a batch is, as its members see it.
#[derive(Clone, Debug)]
pub(super) enum BatchState {
    /// Not sent: taking it off the chain still stops it.
    Open,
    /// Taken by the committer: it may reach the store any moment.
    Sent,
    Ended(Outcome),
}

/// How a batch ended, as every member of it learns it.
#[derive(Clone, Debug)]
pub(super) enum Outcome {
    Answer(CasAnswer),
    /// Never sent: the committer took it after its deadline (the earliest of its
    /// members'). Not applied; a member with time left decides again.
    Expired,
    /// No answer: the error, in a form every member can have a copy of.
    Failed(Failure),
}

/// A failed batch's error (a [`StoreError`] cannot be cloned).
#[derive(Clone, Debug)]
pub(super) struct Failure {
    /// `Some`: no answer within this time; `None`: another error, described by `why`.
    pub(super) timeout: Option<Duration>,
    pub(super) why: String,
    pub(super) may_have_applied: bool,
}

impl Failure {
    pub(super) fn of(err: &StoreError) -> Self {
        let (inner, may_have_applied) = match err {
            StoreError::OutcomeUnknown(inner) => (&**inner, true),
            other => (other, false),
        };
        let timeout = match inner {
            StoreError::Timeout(after) => Some(*after),
            _ => None,
        };
        Self { timeout, why: inner.to_string(), may_have_applied }
    }

    /// No answer within `after`; sent (so it may have applied) or not.
    pub(super) fn timed_out(after: Duration, may_have_applied: bool) -> Self {
        Self { timeout: Some(after), why: String::new(), may_have_applied }
    }

    /// The batch was given up after it was sent (its committer was cancelled).
    pub(super) fn unconfirmed(why: &str) -> Self {
        Self { timeout: None, why: why.to_owned(), may_have_applied: true }
    }

    pub(super) fn to_error(&self) -> StoreError {
        let error = match self.timeout {
            Some(after) => StoreError::Timeout(after),
            None => StoreError::Unavailable(self.why.clone().into()),
        };
        if self.may_have_applied {
            StoreError::OutcomeUnknown(Box::new(error))
        } else {
            error
        }
    }
}

/// What a batch and its members share.
struct Shared {
    state: BatchState,
    /// The members that found no outcome yet, to wake at the end.
    waiting: Vec<Waker>,
    /// Members that joined the batch.
    members: usize,
}

/// The batch's side: marks it sent, then ends it. Dropped without an end (its
/// committer was cancelled), it ends the batch as unconfirmed if it was sent,
/// and as a conflict (decide again) if it never was.
pub(super) struct OutcomeSender(Arc<Mutex<Shared>>);

/// A member's side: where it learns the state and waits for the end.
pub(super) struct OutcomeReceiver(Arc<Mutex<Shared>>);

/// Locks the shared state. Every change under the lock is a plain assignment,
/// so a poisoned lock holds nothing half-written.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl OutcomeSender {
    /// The signal of a new, open batch without members.
    pub(super) fn new() -> Self {
        Self(Arc::new(Mutex::new(Shared { state: BatchState::Open, waiting: Vec::new(), members: 0 })))
    }

    /// A new member's receiver.
    pub(super) fn join(&self) -> OutcomeReceiver {
        lock(&self.0).members += 1;
        OutcomeReceiver(self.0.clone())
    }

    /// How many members joined.
    pub(super) fn members(&self) -> usize {
        lock(&self.0).members
    }

    /// The committer took the batch. Wakes nobody: only a member giving up looks.
    pub(super) fn mark_sent(&self) {
        lock(&self.0).state = BatchState::Sent;
    }

    /// Ends the batch and wakes every waiting member.
    pub(super) fn end(&self, outcome: Outcome) {
        let waiting = {
            let mut shared = lock(&self.0);
            shared.state = BatchState::Ended(outcome);
            std::mem::take(&mut shared.waiting)
        };
        // Woken outside the lock: a woken member may run at once on another thread.
        for waker in waiting {
            waker.wake();
        }
    }
}

impl Drop for OutcomeSender {
    fn drop(&mut self) {
        let unended = match &lock(&self.0).state {
            BatchState::Ended(_) => None,
            BatchState::Open => Some(Outcome::Answer(CasAnswer::Conflict)),
            BatchState::Sent => {
                Some(Outcome::Failed(Failure::unconfirmed("the update batch was dropped after it was sent")))
            }
        };
        if let Some(outcome) = unended {
            self.end(outcome);
        }
    }
}

impl OutcomeReceiver {
    /// The batch's state now.
    pub(super) fn state(&self) -> BatchState {
        lock(&self.0).state.clone()
    }

    /// The batch's outcome, once it ends.
    pub(super) async fn ended(&self) -> Outcome {
        let mut slot = None;
        poll_fn(|cx| self.poll_ended(cx, &mut slot)).await
    }

    /// Ready with the outcome, or leaves this member's waker (at `slot`, once).
    fn poll_ended(&self, cx: &mut Context<'_>, slot: &mut Option<usize>) -> Poll<Outcome> {
        let mut shared = lock(&self.0);
        if let BatchState::Ended(outcome) = &shared.state {
            return Poll::Ready(outcome.clone());
        }
        match slot.and_then(|at| shared.waiting.get_mut(at)) {
            // Polled again before the end: keep the latest waker.
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                *slot = Some(shared.waiting.len());
                shared.waiting.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wake-ups.
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn is_conflict(outcome: &Outcome) -> bool {
        matches!(outcome, Outcome::Answer(CasAnswer::Conflict))
    }

    #[test]
    fn every_waiting_member_is_woken_once_by_the_end_and_sees_the_outcome() {
        let sender = OutcomeSender::new();
        let members: Vec<_> = (0..3).map(|_| sender.join()).collect();
        assert_eq!(sender.members(), 3);
        let counting = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(counting.clone());
        let mut cx = Context::from_waker(&waker);
        let mut waits: Vec<_> = members.iter().map(|m| Box::pin(m.ended())).collect();
        for wait in &mut waits {
            assert!(wait.as_mut().poll(&mut cx).is_pending(), "no outcome yet");
            // Polled again before the end: still one place in the list.
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        sender.mark_sent();
        assert!(matches!(members[0].state(), BatchState::Sent));
        assert_eq!(counting.0.load(Ordering::SeqCst), 0, "being sent wakes nobody");
        sender.end(Outcome::Answer(CasAnswer::Done));
        assert_eq!(counting.0.load(Ordering::SeqCst), 3, "one wake-up per waiting member");
        for wait in &mut waits {
            assert!(matches!(wait.as_mut().poll(&mut cx), Poll::Ready(Outcome::Answer(CasAnswer::Done))));
        }
        let late = sender.join();
        let mut late = pin!(late.ended());
        assert!(matches!(late.as_mut().poll(&mut cx), Poll::Ready(Outcome::Answer(CasAnswer::Done))), "ended: at once");
    }

    #[test]
    fn a_sender_dropped_unended_ends_the_batch_by_what_it_had_reached() {
        let open = OutcomeSender::new();
        let member = open.join();
        drop(open);
        let BatchState::Ended(outcome) = member.state() else { panic!("ended by the drop") };
        assert!(is_conflict(&outcome), "never sent: decide again");

        let sent = OutcomeSender::new();
        let member = sent.join();
        sent.mark_sent();
        drop(sent);
        let BatchState::Ended(Outcome::Failed(failure)) = member.state() else { panic!("ended by the drop") };
        assert!(failure.to_error().may_have_applied(), "sent: unconfirmed");

        let ended = OutcomeSender::new();
        let member = ended.join();
        ended.end(Outcome::Expired);
        drop(ended);
        assert!(matches!(member.state(), BatchState::Ended(Outcome::Expired)), "an end stays");
    }
}
