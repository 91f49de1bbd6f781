//! The chains' unit tests: joining, batching, breaking, gathering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::cas::CasAnswer;
use super::chains::{BatchState, ChainStart, Join, Member, Outcome, Shard, Updates, GATHER_FROM};
use super::committer::Running;
use super::update::{give_up, start_known, FieldUpdate, Started};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{Fields, Presence, Snapshot, UpdateAction, WriteOutcome};

fn answered(member: &Member) -> Option<Outcome> {
    match &*member.outcome.borrow() {
        BatchState::Ended(outcome) => Some(outcome.clone()),
        BatchState::Open | BatchState::Sent => None,
    }
}

fn joined(join: Join) -> Member {
    match join {
        Join::Joined(member) => member,
        _ => panic!("expected a member of the batch"),
    }
}

fn join(shard: &mut Shard, key: StoreKey, action: UpdateAction, expires_at_ms: i64) -> Join {
    let mut f = move |_: Option<&[u8]>| action.clone();
    shard.join(key, "n", &mut f, expires_at_ms, Presence::Existing)
}

/// Starts a chain on `(key, "n")` as if the store held `current`, with `action` decided on it.
fn start(shard: &mut Shard, key: StoreKey, current: &[u8], action: UpdateAction) -> Member {
    let start = ChainStart { key, field: "n", current: Some(current.to_vec()), presence: Presence::Existing };
    shard.start(start, action, 10)
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
    sending.batch.done.send_replace(BatchState::Ended(Outcome::Answer(CasAnswer::Done)));
    assert!(matches!(answered(&first), Some(Outcome::Answer(CasAnswer::Done))));
    assert!(matches!(answered(&second), Some(Outcome::Answer(CasAnswer::Done))));
}

#[test]
fn only_a_chains_first_batch_carries_the_presence_that_started_it() {
    let key = StoreKey::from_bytes([6; 32]);
    let mut shard = Shard::default();
    let start = ChainStart { key, field: "n", current: None, presence: Presence::New };
    let _first = shard.start(start, UpdateAction::Set(b"1".to_vec()), 10);
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
    let new = shard.join(key, "n", &mut f, 10, Presence::New);
    assert!(matches!(new, Join::Decided(WriteOutcome::PresenceFailed)));
    let other_field = shard.join(key, "m", &mut f, 10, Presence::Existing);
    assert!(matches!(other_field, Join::NoChain));
    let other_key = shard.join(StoreKey::from_bytes([5; 32]), "n", &mut f, 10, Presence::Existing);
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
    let updates = Updates::new();
    let member = updates.lock(key).start(
        ChainStart { key, field: "n", current: None, presence: Presence::Existing },
        UpdateAction::Set(b"1".to_vec()),
        10,
    );
    assert!(member.start_committer);
    // The committer's task is dropped before it finishes (its runtime shut down).
    drop(Running { updates: &updates, key, finished: false });
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
    let gathered = shard.gather_target(ms).expect("a big recent batch and a smaller open one: wait");
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
    let mut seen = Vec::new();
    let mut plus_one = |current: Option<&[u8]>| {
        seen.push(current.map(<[u8]>::to_vec));
        UpdateAction::Set(b"5".to_vec())
    };
    let mut keep = |_: Option<&[u8]>| UpdateAction::Keep;
    assert!(start_known(&updates, target(Presence::New), &mut plus_one, &known).is_none(), "must be new: read");
    assert!(start_known(&updates, target(Presence::Existing), &mut keep, &known).is_none(), "a keep: read");
    assert!(updates.lock(key).chain.is_none(), "no chain started for either");

    let started = start_known(&updates, target(Presence::Existing), &mut plus_one, &known);
    let Some(Started::Member(member)) = started else { panic!("a chain from the copy") };
    assert!(member.start_committer);
    {
        let shard = updates.lock(key);
        assert_eq!(tip(&shard), Some(&b"5"[..]), "the tip is the decision");
        let open = shard.chain.as_ref().and_then(|chain| chain.open.as_ref()).expect("an open batch");
        assert_eq!(open.expected.as_deref(), Some(&b"4"[..]), "the store must hold the copy's value");
    }
    let again = start_known(&updates, target(Presence::Existing), &mut plus_one, &known);
    assert!(matches!(again, Some(Started::ChainExists)), "a second update joins the chain instead");
    assert_eq!(seen, [Some(b"4".to_vec())], "decided once, on the copy");
}
