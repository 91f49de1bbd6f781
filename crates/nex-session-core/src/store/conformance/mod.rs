//! The conformance suite every [`SessionStore`] must pass (feature `conformance`).
//!
//! Store authors call [`run_all`] from a test with a fresh, empty store. Turn the
//! feature on for tests only, so production builds do not carry the suite:
//!
//! ```toml
//! [dev-dependencies]
//! nex-session = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use nex_session::store::{conformance, MemoryStore};
//!
//! conformance::run_all(Arc::new(MemoryStore::new())).await;
//! # }
//! ```
//!
//! Besides the contract of every method it checks that [`FastReads::load_now`](super::FastReads::load_now)
//! never disagrees with [`SessionStore::load`]; when the store offers
//! [`SessionStore::admin`], that purging and listing work; and when it offers
//! [`SessionStore::users`], the per-user index's contract ([`run_users`]),
//! including revokes racing with requests. A store shared by several processes
//! should also run [`run_users`] with two handles on one backend, as two app
//! instances would use it.
//!
//! Each check panics with a message naming the broken rule; that is the point of a
//! test suite, so this module is the one place in the library that asserts.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use super::{LoadNow, Presence, SessionStore, UpdateAction, WriteOutcome};

pub mod fixtures;
mod users;

use self::fixtures::{changes, fresh_key, later};
use crate::token::now_ms;
pub use users::{
    a_revoke_all_that_keeps_a_revoked_session_revokes_nothing, a_session_has_one_user_at_a_time,
    binding_indexes_the_session_and_lists_it_by_handle, binding_needs_a_live_session,
    removed_and_expired_sessions_drop_out, revoke_all_removes_every_session_but_the_one_kept,
    revoke_all_wins_over_racing_requests, revoke_by_handle_removes_one_session_of_that_user_only, run_users,
    the_binding_follows_renames, the_cap_ends_the_least_recently_seen_sessions,
};

/// What a store's administration can do, so the suite checks the right thing.
/// Stores without [`SessionStore::admin`] skip those checks whatever these say.
///
/// ```
/// use nex_session::store::conformance::Capabilities;
///
/// // Redis expires sessions by itself, so its purge has nothing to count:
/// let redis = Capabilities::all().without_purge_counts();
/// assert!(!redis.purge_counts() && redis.list());
/// // A store of yours whose backend cannot enumerate its keys:
/// let no_listing = Capabilities::all().without_list();
/// assert!(!no_listing.list());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    purge_counts: bool,
    list: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::all()
    }
}

impl Capabilities {
    /// Everything: the default.
    pub const fn all() -> Self {
        Self { purge_counts: true, list: true }
    }

    /// `purge_expired` answers 0 (the backend expires data by itself, as Redis does).
    #[must_use]
    pub const fn without_purge_counts(mut self) -> Self {
        self.purge_counts = false;
        self
    }

    /// `list` is not supported and must say so with an error (a backend that
    /// cannot enumerate its keys).
    #[must_use]
    pub const fn without_list(mut self) -> Self {
        self.list = false;
        self
    }

    /// Whether `purge_expired` finds and counts expired sessions.
    pub const fn purge_counts(&self) -> bool {
        self.purge_counts
    }

    /// Whether `list` is supported.
    pub const fn list(&self) -> bool {
        self.list
    }
}

/// Runs every check below, each on its own fresh session keys.
pub async fn run_all(store: Arc<dyn SessionStore>) {
    run_all_with(store, Capabilities::default()).await;
}

/// Runs every check, adapted to what the store can do.
pub async fn run_all_with(store: Arc<dyn SessionStore>, can: Capabilities) {
    missing_sessions_load_as_none(&*store).await;
    apply_creates_then_changes_only_named_fields(&*store).await;
    presence_is_enforced(&*store).await;
    update_reads_modifies_and_writes_one_field(&*store).await;
    expired_sessions_are_invisible(&*store, can.purge_counts).await;
    touch_slides_expiry(&*store).await;
    rename_moves_data_and_kills_the_old_key(&*store).await;
    rename_onto_a_live_session_changes_nothing(&*store).await;
    remove_forgets_everything(&*store).await;
    load_now_agrees_with_load(&*store).await;
    update_now_agrees_with_update(&*store).await;
    if store.admin().is_some() {
        if can.list {
            list_shows_hashed_keys_only(&*store).await;
        } else {
            list_says_it_is_unsupported(&*store).await;
        }
    }
    concurrent_writes_of_different_fields_all_survive(store.clone(), 200).await;
    concurrent_updates_never_lose_an_increment(store.clone(), 1000).await;
    if store.users().is_some() {
        run_users(store.clone(), store).await;
    }
}

/// `load` of an unknown key is `None`, never an error.
pub async fn missing_sessions_load_as_none(store: &dyn SessionStore) {
    assert_eq!(store.load(fresh_key()).await.unwrap(), None, "unknown key must load as None");
}

/// A batch puts and deletes only its fields and sets the expiry.
pub async fn apply_creates_then_changes_only_named_fields(store: &dyn SessionStore) {
    let key = fresh_key();
    let exp = later();
    let first = changes(&[("a", Some(b"1")), ("b", Some(b"2"))]);
    assert_eq!(store.apply(key, &first, exp, Presence::New).await.unwrap(), WriteOutcome::Done);
    let second = changes(&[("b", None), ("c", Some(b"3"))]);
    assert_eq!(store.apply(key, &second, exp + 1000, Presence::Existing).await.unwrap(), WriteOutcome::Done);
    let record = store.load(key).await.unwrap().expect("session exists after apply");
    let fields: Vec<(&str, &[u8])> = record.fields.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    assert_eq!(fields, vec![("a", b"1".as_slice()), ("c", b"3".as_slice())], "apply must touch only the named fields");
    assert!((record.expires_at_ms - (exp + 1000)).abs() <= 1000, "apply must set the expiry");
}

/// `New` fails on a live session, `Existing` fails on a missing one; neither changes anything.
pub async fn presence_is_enforced(store: &dyn SessionStore) {
    let key = fresh_key();
    let one = changes(&[("a", Some(b"1"))]);
    assert_eq!(store.apply(key, &one, later(), Presence::Existing).await.unwrap(), WriteOutcome::PresenceFailed);
    assert_eq!(store.load(key).await.unwrap(), None, "a failed Existing write must not create the session");
    store.apply(key, &one, later(), Presence::New).await.unwrap();
    let other = changes(&[("a", Some(b"other"))]);
    assert_eq!(store.apply(key, &other, later(), Presence::New).await.unwrap(), WriteOutcome::PresenceFailed);
    let mut f = |_: Option<&[u8]>| UpdateAction::Set(b"x".to_vec());
    assert_eq!(
        store.update(fresh_key(), "a", &mut f, later(), Presence::Existing).await.unwrap(),
        WriteOutcome::PresenceFailed
    );
    assert_eq!(store.load(key).await.unwrap().unwrap().fields["a"], b"1", "a failed New write must not change data");
}

/// `update` passes the current value, stores the decision, and `Keep` changes nothing.
pub async fn update_reads_modifies_and_writes_one_field(store: &dyn SessionStore) {
    let key = fresh_key();
    let mut seen = Vec::new();
    let mut set = |cur: Option<&[u8]>| {
        seen.push(cur.map(<[u8]>::to_vec));
        UpdateAction::Set(b"1".to_vec())
    };
    assert_eq!(store.update(key, "n", &mut set, later(), Presence::New).await.unwrap(), WriteOutcome::Done);
    assert_eq!(seen.last(), Some(&None), "update of a new field sees None");
    store.apply(key, &changes(&[("other", Some(b"o"))]), later(), Presence::Existing).await.unwrap();
    let mut keep = |cur: Option<&[u8]>| {
        assert_eq!(cur, Some(b"1".as_slice()), "update sees the stored value");
        UpdateAction::Keep
    };
    store.update(key, "n", &mut keep, later(), Presence::Existing).await.unwrap();
    let mut delete = |_: Option<&[u8]>| UpdateAction::Delete;
    store.update(key, "n", &mut delete, later(), Presence::Existing).await.unwrap();
    let record = store.load(key).await.unwrap().unwrap();
    assert!(!record.fields.contains_key("n"), "Delete removes the field");
    assert_eq!(record.fields["other"], b"o", "update leaves other fields alone");
}

/// A session past its expiry loads as `None` at once; with `purge_counts`,
/// `purge_expired` finds and counts it.
pub async fn expired_sessions_are_invisible(store: &dyn SessionStore, purge_counts: bool) {
    let key = fresh_key();
    store.apply(key, &changes(&[("a", Some(b"1"))]), now_ms() - 1, Presence::New).await.unwrap();
    assert_eq!(store.load(key).await.unwrap(), None, "an expired session must not load");
    assert!(!store.touch(key, later()).await.unwrap(), "touch must not revive an expired session");
    assert_eq!(
        store.apply(key, &changes(&[("a", Some(b"2"))]), later(), Presence::Existing).await.unwrap(),
        WriteOutcome::PresenceFailed,
        "an expired session counts as missing"
    );
    if let Some(admin) = store.admin() {
        let purged = admin.purge_expired(now_ms()).await.unwrap();
        assert!(!purge_counts || purged >= 1, "purge_expired must remove the expired session (removed {purged})");
        assert_eq!(store.load(key).await.unwrap(), None, "a purge must not bring anything back");
    }
    // A fresh session with the same key may then be created.
    assert_eq!(
        store.apply(key, &changes(&[("b", Some(b"1"))]), later(), Presence::New).await.unwrap(),
        WriteOutcome::Done
    );
    assert!(!store.load(key).await.unwrap().unwrap().fields.contains_key("a"), "expired data must not come back");
}

/// `touch` moves the expiry of a live session and says whether there was one.
pub async fn touch_slides_expiry(store: &dyn SessionStore) {
    let key = fresh_key();
    assert!(!store.touch(key, later()).await.unwrap());
    store.apply(key, &changes(&[("a", Some(b"1"))]), now_ms() + 60_000, Presence::New).await.unwrap();
    let target = now_ms() + 7_200_000;
    assert!(store.touch(key, target).await.unwrap());
    let exp = store.load(key).await.unwrap().unwrap().expires_at_ms;
    assert!((exp - target).abs() <= 1000, "touch must set the expiry ({exp} vs {target})");
}

/// `rename` moves every field; the old key is gone at once.
pub async fn rename_moves_data_and_kills_the_old_key(store: &dyn SessionStore) {
    let (from, to) = (fresh_key(), fresh_key());
    assert!(!store.rename(from, to, later()).await.unwrap(), "renaming a missing session is false");
    store.apply(from, &changes(&[("user_id", Some(b"7")), ("x", Some(b"y"))]), later(), Presence::New).await.unwrap();
    assert!(store.rename(from, to, later()).await.unwrap());
    assert_eq!(store.load(from).await.unwrap(), None, "the old key must stop working at once");
    let moved = store.load(to).await.unwrap().expect("data under the new key");
    assert_eq!((moved.fields["user_id"].as_slice(), moved.fields.len()), (b"7".as_slice(), 2));
}

/// `rename` onto a key that holds a live session refuses, and changes neither session.
pub async fn rename_onto_a_live_session_changes_nothing(store: &dyn SessionStore) {
    let (from, to) = (fresh_key(), fresh_key());
    store.apply(from, &changes(&[("who", Some(b"from"))]), later(), Presence::New).await.unwrap();
    store.apply(to, &changes(&[("who", Some(b"to"))]), later(), Presence::New).await.unwrap();
    assert!(!store.rename(from, to, later()).await.unwrap(), "renaming onto a live session must refuse");
    let from_fields = store.load(from).await.unwrap().expect("a refused rename keeps the source").fields;
    let to_fields = store.load(to).await.unwrap().expect("a refused rename keeps the target").fields;
    assert_eq!(from_fields["who"], b"from", "the source must be unchanged");
    assert_eq!(to_fields["who"], b"to", "the target must be unchanged");
    // An expired session at the target does not count: the rename goes ahead.
    let expired = fresh_key();
    store.apply(expired, &changes(&[("old", Some(b"1"))]), now_ms() - 1, Presence::New).await.unwrap();
    assert!(store.rename(from, expired, later()).await.unwrap(), "an expired target counts as missing");
    let moved = store.load(expired).await.unwrap().expect("data under the new key").fields;
    assert!(!moved.contains_key("old"), "expired data at the target must not come back");
    assert_eq!(moved["who"], b"from");
}

/// `load_snapshot` always agrees with `load`, and whenever `load_now` answers
/// (`Found` or `Missing`), so does it:
/// for a missing session, after each kind of write, after expiry and removal.
pub async fn load_now_agrees_with_load(store: &dyn SessionStore) {
    async fn agree(store: &dyn SessionStore, key: crate::id::StoreKey, when: &str) {
        let now = now_ms();
        let loaded = store.load(key).await.unwrap();
        // A second read: a cached snapshot, where the store keeps one.
        let Some(fast) = store.fast_reads() else { return };
        let snapshot = fast.load_snapshot(key).await.unwrap().map(|snapshot| snapshot.to_fields());
        let fields = loaded.as_ref().map(|record| record.fields.clone());
        assert_eq!(snapshot, fields, "load_snapshot and load give different fields {when}");
        match fast.load_now(key, now) {
            LoadNow::Unknown => {}
            LoadNow::Missing => assert_eq!(loaded, None, "load_now said Missing but load found the session {when}"),
            LoadNow::Found(snapshot) => {
                let record = loaded.unwrap_or_else(|| panic!("load_now found a session that load does not {when}"));
                assert_eq!(snapshot.to_fields(), record.fields, "load_now and load give different fields {when}");
            }
        }
    }
    let key = fresh_key();
    agree(store, key, "before it exists").await;
    store.apply(key, &changes(&[("a", Some(b"1")), ("b", Some(b"22"))]), later(), Presence::New).await.unwrap();
    agree(store, key, "after apply").await;
    let mut same_length = |_: Option<&[u8]>| UpdateAction::Set(b"2".to_vec());
    store.update(key, "a", &mut same_length, later(), Presence::Existing).await.unwrap();
    agree(store, key, "after an update of the same length").await;
    let mut longer = |_: Option<&[u8]>| UpdateAction::Set(b"333".to_vec());
    store.update(key, "b", &mut longer, later(), Presence::Existing).await.unwrap();
    agree(store, key, "after an update to another length").await;
    store.apply(key, &changes(&[("a", None)]), later(), Presence::Existing).await.unwrap();
    agree(store, key, "after a delete").await;
    let renamed = fresh_key();
    store.rename(key, renamed, later()).await.unwrap();
    agree(store, key, "at the old key after rename").await;
    agree(store, renamed, "at the new key after rename").await;
    store.remove(renamed).await.unwrap();
    agree(store, renamed, "after remove").await;
    // Read while live (a cache would keep it), then let it expire.
    let expiring = fresh_key();
    store.apply(expiring, &changes(&[("a", Some(b"1"))]), now_ms() + 300, Presence::New).await.unwrap();
    assert!(store.load(expiring).await.unwrap().is_some(), "a session loads until its expiry");
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    agree(store, expiring, "after expiry").await;
}

/// Whenever [`FastReads::update_now`](super::FastReads::update_now) answers, it
/// keeps `update`'s contract: presence enforced, one field changed, `Keep`
/// creates nothing, an expired session counts as missing, and `load` sees the result.
pub async fn update_now_agrees_with_update(store: &dyn SessionStore) {
    let Some(fast) = store.fast_reads() else { return };
    let (key, now) = (fresh_key(), now_ms());
    let set = |value: &'static [u8]| move |_: Option<&[u8]>| UpdateAction::Set(value.to_vec());
    // A store that answers the first call must answer them all.
    let Some(first) = fast.update_now(key, "a", &mut set(b"1"), later(), Presence::Existing, now) else { return };
    let must = |outcome: Option<Result<WriteOutcome, crate::error::StoreError>>| match outcome {
        Some(answer) => answer.unwrap(),
        None => panic!("update_now answered once, then sent the caller to update"),
    };
    assert_eq!(first.unwrap(), WriteOutcome::PresenceFailed, "update_now of a missing session with Existing");
    assert_eq!(store.load(key).await.unwrap(), None, "a failed update_now created a session");
    let mut keep = |_: Option<&[u8]>| UpdateAction::Keep;
    assert_eq!(must(fast.update_now(key, "a", &mut keep, later(), Presence::New, now)), WriteOutcome::Done);
    assert_eq!(store.load(key).await.unwrap(), None, "an update_now that keeps nothing created a session");
    assert_eq!(must(fast.update_now(key, "a", &mut set(b"1"), later(), Presence::New, now)), WriteOutcome::Done);
    store.apply(key, &changes(&[("b", Some(b"2"))]), later(), Presence::Existing).await.unwrap();
    let mut seen = None;
    let mut increment = |current: Option<&[u8]>| {
        seen = current.map(<[u8]>::to_vec);
        UpdateAction::Set(b"22".to_vec())
    };
    assert_eq!(must(fast.update_now(key, "a", &mut increment, later(), Presence::Existing, now)), WriteOutcome::Done);
    assert_eq!(seen.as_deref(), Some(&b"1"[..]), "update_now ran the closure on the stored value");
    let fields = store.load(key).await.unwrap().expect("the session").fields;
    assert_eq!((fields["a"].as_slice(), fields["b"].as_slice()), (&b"22"[..], &b"2"[..]));
    assert_eq!(
        must(fast.update_now(key, "a", &mut set(b"3"), later(), Presence::New, now)),
        WriteOutcome::PresenceFailed,
        "update_now with New must not touch a live session"
    );
    let expired = fresh_key();
    store.apply(expired, &changes(&[("a", Some(b"1"))]), now_ms() - 1, Presence::New).await.unwrap();
    let outcome = fast.update_now(expired, "a", &mut set(b"2"), later(), Presence::Existing, now_ms());
    assert_eq!(must(outcome), WriteOutcome::PresenceFailed, "an expired session counts as missing");
}

/// `remove` deletes the session; removing twice is fine.
pub async fn remove_forgets_everything(store: &dyn SessionStore) {
    let key = fresh_key();
    store.apply(key, &changes(&[("a", Some(b"1"))]), later(), Presence::New).await.unwrap();
    store.remove(key).await.unwrap();
    assert_eq!(store.load(key).await.unwrap(), None);
    store.remove(key).await.unwrap();
}

/// `list` (of [`SessionStore::admin`]) reports hashed keys with field counts, and
/// no expired session.
pub async fn list_shows_hashed_keys_only(store: &dyn SessionStore) {
    let admin = store.admin().expect("list needs the store's admin");
    let key = fresh_key();
    store.apply(key, &changes(&[("a", Some(b"1")), ("b", Some(b"2"))]), later(), Presence::New).await.unwrap();
    let expired = fresh_key();
    store.apply(expired, &changes(&[("a", Some(b"1"))]), now_ms() - 1, Presence::New).await.unwrap();
    let listed = admin.list(usize::MAX).await.unwrap();
    let me = listed.iter().find(|s| s.key == key).expect("list includes a live session");
    assert_eq!(me.fields, 2);
    assert!(listed.iter().all(|s| s.key != expired), "list must not show an expired session");
    assert!(admin.list(1).await.unwrap().len() <= 1, "list must respect its limit");
}

/// A store that cannot list says so with an error rather than an empty list.
pub async fn list_says_it_is_unsupported(store: &dyn SessionStore) {
    let admin = store.admin().expect("list needs the store's admin");
    assert!(admin.list(10).await.is_err(), "an unsupported list must be an error, not an empty answer");
}

/// `n` tasks each putting their own field of one session: all `n` fields survive.
pub async fn concurrent_writes_of_different_fields_all_survive(store: Arc<dyn SessionStore>, n: usize) {
    let key = fresh_key();
    store.apply(key, &changes(&[("seed", Some(b"1"))]), later(), Presence::New).await.unwrap();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch = changes(&[(&format!("k{i}"), Some(b"v"))]);
                store.apply(key, &batch, later(), Presence::Existing).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), WriteOutcome::Done);
    }
    let fields = store.load(key).await.unwrap().unwrap().fields;
    assert_eq!(fields.len(), n + 1, "lost concurrent writes: {} of {n} fields survived", fields.len() - 1);
}

/// `n` concurrent increments through `update` give exactly `n`.
pub async fn concurrent_updates_never_lose_an_increment(store: Arc<dyn SessionStore>, n: usize) {
    let key = fresh_key();
    store.apply(key, &changes(&[("seed", Some(b"1"))]), later(), Presence::New).await.unwrap();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut inc = |cur: Option<&[u8]>| {
                    let n: u64 = cur.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0);
                    UpdateAction::Set((n + 1).to_string().into_bytes())
                };
                store.update(key, "counter", &mut inc, later(), Presence::Existing).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), WriteOutcome::Done);
    }
    let fields = store.load(key).await.unwrap().unwrap().fields;
    assert_eq!(fields["counter"], n.to_string().into_bytes(), "lost increments");
}
