//! The chains' unit tests: joining, batching, breaking, gathering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::cas::{Cas, CasAnswer, CasOp, CasStore, FieldNow};
use super::chains::{ChainStart, Join, Member, Sending, Shard, Terms, Updates, GATHER_FROM};
use super::committer::{expire, start_committing, Running};
use super::outcome::{BatchState, Outcome};
use super::update::{give_up, start_known, update, FieldUpdate, Started};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{BoxFuture, Fields, Presence, Snapshot, UpdateAction, WriteOutcome};

fn answered(member: &Member) -> Option<Outcome> {
    match member.outcome.state() {
        BatchState::Ended(outcome) => Some(outcome),
        BatchState::Open | BatchState::Sent => None,
    }
}

fn joined(join: Join) -> Member {
    match join {
        Join::Joined(member) => member,
        _ => panic!("expected a member of the batch"),
    }
}

/// The terms of an update of an existing session, with a deadline a minute away.
fn terms(expires_at_ms: i64) -> Terms {
    Terms { expires_at_ms, presence: Presence::Existing, deadline: Instant::now() + Duration::from_secs(60) }
}

fn join(shard: &mut Shard, key: StoreKey, action: UpdateAction, expires_at_ms: i64) -> Join {
    let mut f = move |_: Option<&[u8]>| action.clone();
    shard.join(key, "n", &mut f, terms(expires_at_ms))
}

/// Starts a chain on `(key, "n")` as if the store held `current`, with `action` decided on it.
fn start(shard: &mut Shard, key: StoreKey, current: &[u8], action: UpdateAction) -> Member {
    let start = ChainStart { key, field: "n", current: Some(current.to_vec()) };
    shard.start(start, action, terms(10))
}

/// The tip of the shard's chain (`None`: the field is absent); panics without a chain.
fn tip(shard: &Shard) -> Option<&[u8]> {
    shard.chain.as_ref().expect("a chain").tip.as_deref()
}

#[test]
fn a_chain_starts_with_its_first_update_in_the_open_batch_and_others_join_it() {
    let key = StoreKey::from_bytes([1; 32]);
    let mut shard = Shard::default();
    assert!(matches!(join(&mut shard, key, UpdateAction::Keep, 1), Join::NoChain));
    let first = start(&mut shard, key, b"1", UpdateAction::Set(b"2".to_vec()));
    assert!(first.start_committer);
    let second = joined(join(&mut shard, key, UpdateAction::Set(b"3".to_vec()), 20));
    assert!(!second.start_committer, "one committer per shard");
    assert_eq!(tip(&shard), Some(&b"3"[..]));
    let sending = shard.next_batch().unwrap();
    let batch = &sending.batch;
    assert_eq!((batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"1"[..]), Some(&b"3"[..])));
    assert_eq!((batch.expires_at_ms, batch.writes), (20, true));
    assert!(shard.next_batch().is_none(), "the committer stops when nothing is open");
    assert!(!shard.committing);
    sending.batch.done.end(Outcome::Answer(CasAnswer::Done));
    assert!(matches!(answered(&first), Some(Outcome::Answer(CasAnswer::Done))));
    assert!(matches!(answered(&second), Some(Outcome::Answer(CasAnswer::Done))));
}

#[test]
fn only_a_chains_first_batch_carries_the_presence_that_started_it() {
    let key = StoreKey::from_bytes([6; 32]);
    let mut shard = Shard::default();
    let start = ChainStart { key, field: "n", current: None };
    let _first = shard.start(start, UpdateAction::Set(b"1".to_vec()), Terms { presence: Presence::New, ..terms(10) });
    let sending = shard.next_batch().unwrap();
    assert_eq!((sending.batch.presence, sending.batch.expected.as_deref()), (Presence::New, None));
    let _later = joined(join(&mut shard, key, UpdateAction::Set(b"2".to_vec()), 10));
    let sending = shard.next_batch().unwrap();
    assert_eq!((sending.batch.presence, sending.batch.expected.as_deref()), (Presence::Existing, Some(&b"1"[..])));
}

#[test]
fn keeps_check_the_tip_and_deletes_clear_it() {
    let key = StoreKey::from_bytes([3; 32]);
    let mut shard = Shard::default();
    let _first = start(&mut shard, key, b"7", UpdateAction::Keep);
    let sending = shard.next_batch().unwrap();
    assert!(!sending.batch.writes, "a batch of keeps only checks");
    assert_eq!((sending.batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"7"[..]), Some(&b"7"[..])));
    let _delete = join(&mut shard, key, UpdateAction::Delete, 10);
    assert_eq!(tip(&shard), None, "a delete leaves the field absent");
    let _keep = join(&mut shard, key, UpdateAction::Keep, 10);
    let sending = shard.next_batch().unwrap();
    assert!(sending.batch.writes);
    assert_eq!((sending.batch.expected.as_deref(), sending.new.as_deref()), (Some(&b"7"[..]), None));
}

#[test]
fn a_broken_chain_fails_its_open_batch_and_ignores_late_failures() {
    let key = StoreKey::from_bytes([2; 32]);
    let mut shard = Shard::default();
    let waiting = start(&mut shard, key, b"1", UpdateAction::Set(b"2".to_vec()));
    let old = shard.chain.as_ref().unwrap().epoch;
    shard.break_chain(old);
    assert!(shard.chain.is_none(), "the tip is forgotten");
    assert!(matches!(answered(&waiting), Some(Outcome::Answer(CasAnswer::Conflict))), "members retry");
    let _new = start(&mut shard, key, b"5", UpdateAction::Keep);
    shard.break_chain(old);
    assert_eq!(tip(&shard), Some(&b"5"[..]), "old epoch: ignored");
    let new = shard.chain.as_ref().unwrap().epoch;
    shard.break_chain(new);
    assert!(shard.chain.is_none());
}

#[test]
fn a_new_session_never_joins_a_chain_and_other_fields_take_the_slow_path() {
    let key = StoreKey::from_bytes([4; 32]);
    let mut shard = Shard::default();
    let _first = start(&mut shard, key, b"1", UpdateAction::Keep);
    let mut f = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
    let new = shard.join(key, "n", &mut f, Terms { presence: Presence::New, ..terms(10) });
    assert!(matches!(new, Join::Decided(WriteOutcome::PresenceFailed)));
    let other_field = shard.join(key, "m", &mut f, terms(10));
    assert!(matches!(other_field, Join::NoChain));
    let other_key = shard.join(StoreKey::from_bytes([5; 32]), "n", &mut f, terms(10));
    assert!(matches!(other_key, Join::NoChain));
}

#[test]
fn a_member_out_of_time_stops_its_unsent_batch_and_calls_a_sent_one_unconfirmed() {
    let key = StoreKey::from_bytes([8; 32]);
    let updates = Updates::new();
    let sent = start(&mut updates.lock(key), key, b"1", UpdateAction::Set(b"2".to_vec()));
    let _in_flight = updates.lock(key).next_batch().expect("the first batch");
    let open = joined(join(&mut updates.lock(key), key, UpdateAction::Set(b"3".to_vec()), 10));
    let timeout = Duration::from_secs(1);

    let Outcome::Failed(failure) = give_up(&updates, key, &open.outcome, open.epoch, timeout) else {
        panic!("out of time: a failure")
    };
    assert!(matches!(failure.to_error(), StoreError::Timeout(_)), "never sent: not applied");
    assert!(updates.lock(key).next_batch().is_none(), "and it never will be: the chain is broken");

    let Outcome::Failed(failure) = give_up(&updates, key, &sent.outcome, sent.epoch, timeout) else {
        panic!("out of time: a failure")
    };
    let err = failure.to_error();
    assert!(err.may_have_applied(), "sent and unanswered: outcome unknown, {err}");
    assert!(matches!(err, StoreError::OutcomeUnknown(inner) if matches!(*inner, StoreError::Timeout(_))));
}

#[test]
fn a_committer_that_ends_abnormally_unblocks_its_shard() {
    let key = StoreKey::from_bytes([7; 32]);
    let updates = Arc::new(Updates::new());
    let member = updates.lock(key).start(
        ChainStart { key, field: "n", current: None },
        UpdateAction::Set(b"1".to_vec()),
        terms(10),
    );
    assert!(member.start_committer);
    // The committer's task is dropped before it finishes (its runtime shut down).
    drop(Running { updates: updates.clone(), key, finished: false });
    let shard = updates.lock(key);
    assert!(!shard.committing, "the next update can start a committer");
    assert!(shard.chain.is_none(), "the chain is broken");
    assert!(matches!(answered(&member), Some(Outcome::Answer(CasAnswer::Conflict))), "its members retry");
}

#[test]
fn a_committer_gathers_only_after_a_big_recent_batch_and_wakes_when_it_is_matched() {
    let key = StoreKey::from_bytes([9; 32]);
    let mut shard = Shard::default();
    let ms = Duration::from_millis(1);
    let _first = start(&mut shard, key, b"0", UpdateAction::Set(b"1".to_vec()));
    assert!(shard.gather_target(ms).is_none(), "no batch answered yet: the first goes at once");
    shard.chain.as_mut().unwrap().last = Some((2, std::time::Instant::now()));
    assert!(shard.gather_target(ms).is_none(), "after a small batch: at once");
    shard.chain.as_mut().unwrap().last = Some((3 + GATHER_FROM, std::time::Instant::now()));
    assert!(shard.gather_target(Duration::ZERO).is_none(), "stores that do not gather never wait");
    shard.chain.as_mut().unwrap().last = Some((3 + GATHER_FROM, std::time::Instant::now() - Duration::from_millis(50)));
    assert!(shard.gather_target(ms).is_none(), "after an old batch: at once");

    let size = GATHER_FROM;
    shard.chain.as_mut().unwrap().last = Some((size, std::time::Instant::now()));
    let gathered = shard.gather_target(ms).expect("a big recent batch and a smaller open one: wait").woken;
    let mut members = vec![];
    for _ in 1..size - 1 {
        members.push(joined(join(&mut shard, key, UpdateAction::Set(b"2".to_vec()), 10)));
    }
    assert_eq!(shard.open_members(), size - 1);
    assert!(shard.awaited.is_some(), "one short: still waiting");
    members.push(joined(join(&mut shard, key, UpdateAction::Set(b"3".to_vec()), 10)));
    assert!(shard.awaited.is_none(), "matched: the committer is woken");
    let woken = gathered.notified();
    tokio::pin!(woken);
    assert!(ready_now(woken), "the wake-up is kept for the committer about to wait");
    assert!(shard.gather_target(ms).is_none(), "the open batch is as big as the last: no wait");
}

/// Whether a `Notified` future is ready now (a stored permit).
fn ready_now(notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::future::Future::poll(notified, &mut cx).is_ready()
}

#[test]
fn a_known_copy_starts_a_chain_unless_the_session_must_be_new_or_the_decision_is_a_keep() {
    let key = StoreKey::from_bytes([11; 32]);
    let updates = Updates::new();
    let known = Snapshot::from_fields(&Fields::from([("n".to_owned(), b"4".to_vec())]));
    let target = |presence| FieldUpdate { key, field: "n", expires_at_ms: 10, presence };
    let in_a_minute = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut plus_one = |current: Option<&[u8]>| {
        seen.push(current.map(<[u8]>::to_vec));
        UpdateAction::Set(b"5".to_vec())
    };
    let mut keep = |_: Option<&[u8]>| UpdateAction::Keep;
    assert!(
        start_known(&updates, target(Presence::New), &mut plus_one, &known, in_a_minute).is_none(),
        "must be new: read"
    );
    assert!(
        start_known(&updates, target(Presence::Existing), &mut keep, &known, in_a_minute).is_none(),
        "a keep: read"
    );
    assert!(updates.lock(key).chain.is_none(), "no chain started for either");

    let started = start_known(&updates, target(Presence::Existing), &mut plus_one, &known, in_a_minute);
    let Some(Started::Member(member)) = started else { panic!("a chain from the copy") };
    assert!(member.start_committer);
    {
        let shard = updates.lock(key);
        assert_eq!(tip(&shard), Some(&b"5"[..]), "the tip is the decision");
        let open = shard.chain.as_ref().and_then(|chain| chain.open.as_ref()).expect("an open batch");
        assert_eq!(open.expected.as_deref(), Some(&b"4"[..]), "the store must hold the copy's value");
    }
    let again = start_known(&updates, target(Presence::Existing), &mut plus_one, &known, in_a_minute);
    assert!(matches!(again, Some(Started::ChainExists)), "a second update joins the chain instead");
    assert_eq!(seen, [Some(b"4".to_vec())], "decided once, on the copy");
}

#[test]
fn a_member_waits_without_a_timer_unless_the_batch_ahead_may_outlast_its_deadline() {
    let key = StoreKey::from_bytes([12; 32]);
    let mut shard = Shard::default();
    let first = start(&mut shard, key, b"0", UpdateAction::Set(b"1".to_vec()));
    assert!(first.answered_in_time, "nothing in flight: the committer takes the batch at once");
    let in_flight = shard.next_batch().expect("the first batch");
    assert_eq!(shard.busy_until, Some(in_flight.batch.deadline), "busy until the batch in flight is answered");

    let later = Terms { deadline: in_flight.batch.deadline + Duration::from_secs(1), ..terms(10) };
    let mut f = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
    let later = joined(shard.join(key, "n", &mut f, later));
    assert!(later.answered_in_time, "its deadline comes after the batch ahead's");
    let hurried = Terms { deadline: in_flight.batch.deadline - Duration::from_secs(1), ..terms(10) };
    let member = joined(shard.join(key, "n", &mut f, hurried));
    assert!(!member.answered_in_time, "the batch ahead may outlast it: its own timer");
    let open = shard.chain.as_ref().and_then(|chain| chain.open.as_ref()).expect("an open batch");
    assert_eq!(open.deadline, hurried.deadline, "a batch is due at its earliest member's deadline");
}

#[test]
fn a_gathering_wait_sets_busy_until_and_never_reaches_the_open_batchs_deadline() {
    let key = StoreKey::from_bytes([13; 32]);
    let mut shard = Shard::default();
    let _first = start(&mut shard, key, b"0", UpdateAction::Set(b"1".to_vec()));
    shard.chain.as_mut().unwrap().last = Some((10 * GATHER_FROM, std::time::Instant::now()));
    let ms = Duration::from_millis(1);
    let gathering = shard.gather_target(ms).expect("a big recent batch: gather");
    assert!(gathering.until <= Instant::now() + ms);
    assert_eq!(shard.busy_until, Some(gathering.until), "members joining now compare with the wait's end");

    let soon = Instant::now() + Duration::from_millis(2);
    let mut f = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
    let _hurried = joined(shard.join(key, "n", &mut f, Terms { deadline: soon, ..terms(10) }));
    assert!(shard.gather_target(Duration::from_secs(5)).is_none(), "the wait would reach the deadline: send now");
}

#[test]
fn a_batch_taken_after_its_deadline_is_never_sent_and_its_members_decide_again() {
    let key = StoreKey::from_bytes([14; 32]);
    let updates = Updates::new();
    let member = start(&mut updates.lock(key), key, b"0", UpdateAction::Set(b"1".to_vec()));
    let Sending { batch, epoch, .. } = updates.lock(key).next_batch().expect("the batch");
    let waiting = joined(join(&mut updates.lock(key), key, UpdateAction::Set(b"2".to_vec()), 10));
    expire(&updates, key, epoch, &batch);
    assert!(matches!(answered(&member), Some(Outcome::Expired)), "not sent: not applied");
    assert!(matches!(answered(&waiting), Some(Outcome::Answer(CasAnswer::Conflict))), "built on it: decide again");
    let shard = updates.lock(key);
    assert!(shard.chain.is_none(), "the tip counted the batch in: the chain breaks");
    assert_eq!(shard.busy_until, None, "nothing in flight");
}

/// A store of one session (always live) with one field `n`, whose compare-and-set
/// takes `latency` and answers by its deadline, as [`CasStore`] requires.
#[derive(Clone)]
struct SlowStore(Arc<SlowInner>);

struct SlowInner {
    value: std::sync::Mutex<Option<Vec<u8>>>,
    latency: Duration,
    timeout: Duration,
    /// The next compare-and-set goes unanswered until its deadline.
    hang_next: AtomicBool,
    compare_and_sets: AtomicUsize,
}

impl SlowStore {
    fn new(latency: Duration, timeout: Duration) -> Self {
        Self(Arc::new(SlowInner {
            value: std::sync::Mutex::new(None),
            latency,
            timeout,
            hang_next: AtomicBool::new(false),
            compare_and_sets: AtomicUsize::new(0),
        }))
    }

    fn value(&self) -> Option<Vec<u8>> {
        self.0.value.lock().unwrap().clone()
    }
}

impl CasStore for SlowStore {
    fn timeout(&self) -> Duration {
        self.0.timeout
    }

    fn read_field<'a>(&'a self, _: StoreKey, _: &'a str, _: Instant) -> BoxFuture<'a, Result<FieldNow, StoreError>> {
        Box::pin(async move { Ok((true, self.value())) })
    }

    fn compare_and_set<'a>(
        &'a self,
        cas: &'a Cas<'a>,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<CasAnswer, StoreError>> {
        Box::pin(async move {
            self.0.compare_and_sets.fetch_add(1, Ordering::SeqCst);
            let unanswered = StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(self.0.timeout)));
            if self.0.hang_next.swap(false, Ordering::SeqCst) || Instant::now() + self.0.latency > deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(unanswered);
            }
            tokio::time::sleep(self.0.latency).await;
            let mut value = self.0.value.lock().unwrap();
            if value.as_deref() != cas.expected {
                return Ok(CasAnswer::Conflict);
            }
            match cas.op {
                CasOp::Put => *value = cas.new.map(<[u8]>::to_vec),
                CasOp::Delete => *value = None,
                CasOp::Check => {}
            }
            Ok(CasAnswer::Done)
        })
    }
}

/// Adds one to the decimal number in `n` through the chains, as one request would.
async fn add_one(store: &SlowStore, updates: &Arc<Updates>) -> Result<WriteOutcome, StoreError> {
    let key = StoreKey::from_bytes([15; 32]);
    let mut plus_one = |current: Option<&[u8]>| {
        let n: u64 = current.map_or(0, |n| std::str::from_utf8(n).unwrap().parse().unwrap());
        UpdateAction::Set((n + 1).to_string().into_bytes())
    };
    update(store, updates, key, "n", &mut plus_one, i64::MAX, Presence::Existing).await
}

#[tokio::test(start_paused = true)]
async fn concurrent_updates_are_batched_and_each_is_answered() {
    let store = SlowStore::new(Duration::from_millis(5), Duration::from_secs(1));
    let updates = Arc::new(Updates::new());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, updates) = (store.clone(), updates.clone());
            tokio::spawn(async move { add_one(&store, &updates).await })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Ok(WriteOutcome::Done)));
    }
    assert_eq!(store.value().as_deref(), Some(&b"20"[..]), "no update lost");
    let sent = store.0.compare_and_sets.load(Ordering::SeqCst);
    assert!(sent < 20, "batched: {sent} compare-and-sets for 20 updates");
}

#[tokio::test(start_paused = true)]
async fn an_update_waiting_behind_an_unanswered_batch_decides_again_within_its_own_deadline() {
    let timeout = Duration::from_secs(1);
    let store = SlowStore::new(Duration::from_millis(1), timeout);
    store.0.hang_next.store(true, Ordering::SeqCst);
    let updates = Arc::new(Updates::new());
    let started = Instant::now();
    let first = tokio::spawn({
        let (store, updates) = (store.clone(), updates.clone());
        async move { (add_one(&store, &updates).await, Instant::now()) }
    });
    tokio::time::sleep(timeout / 2).await;
    // Joins the open batch behind the first, unanswered one (its deadline comes
    // after the first's, so without a timer of its own: see the unit test above).
    let second = tokio::spawn({
        let (store, updates) = (store.clone(), updates.clone());
        async move { (add_one(&store, &updates).await, Instant::now()) }
    });
    let (first, first_at) = first.await.unwrap();
    let err = first.expect_err("unanswered");
    assert!(err.may_have_applied(), "sent and unanswered: outcome unknown, {err}");
    assert_eq!(first_at - started, timeout, "answered at its deadline, not later");
    let (second, second_at) = second.await.unwrap();
    assert!(matches!(second, Ok(WriteOutcome::Done)), "decided again on a fresh read: {second:?}");
    assert!(second_at - started < timeout + timeout / 2, "within its own deadline");
    assert_eq!(store.value().as_deref(), Some(&b"1"[..]), "only the second applied");
}

#[tokio::test]
async fn a_committer_that_runs_after_its_batchs_deadline_never_sends_it() {
    let store = SlowStore::new(Duration::from_millis(1), Duration::from_secs(1));
    let updates = Arc::new(Updates::new());
    let key = StoreKey::from_bytes([16; 32]);
    let hurried = Terms { deadline: Instant::now() + Duration::from_millis(20), ..terms(10) };
    let member = updates.lock(key).start(
        ChainStart { key, field: "n", current: None },
        UpdateAction::Set(b"1".to_vec()),
        hurried,
    );
    assert!(member.start_committer && member.answered_in_time);
    start_committing(&store, &updates, key);
    // The committer's task cannot run while this one blocks the runtime's only thread.
    std::thread::sleep(Duration::from_millis(40));
    assert!(matches!(member.outcome.ended().await, Outcome::Expired), "taken after its deadline");
    assert_eq!(store.0.compare_and_sets.load(Ordering::SeqCst), 0, "never sent");
    assert_eq!(store.value(), None, "nothing applied");
    assert!(updates.lock(key).chain.is_none(), "the chain broke");
}
