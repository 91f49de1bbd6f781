//! The per-user index's part of the suite ([`crate::store::UserIndex`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fixtures::{changes, fresh_key, later};
use crate::id::StoreKey;
use crate::store::users::{self, Binding, Keep, SessionCap, SessionHandle, UserIndex, SEEN_FIELD};
use crate::store::{Presence, SessionStore, UpdateAction, WriteOutcome};
use crate::token::now_ms;

/// A user id no other check (or earlier run on a shared backend) uses.
fn fresh_user(label: &str) -> String {
    format!("{label}-{}", &fresh_key().to_hex()[..12])
}

fn users(store: &dyn SessionStore) -> &dyn UserIndex {
    store.users().expect("these checks need the store's user index")
}

/// A live session with one field, bound to `user`.
async fn bound_session(store: &dyn SessionStore, user: &str, meta: Option<&str>) -> StoreKey {
    let key = fresh_key();
    store.apply(key, &changes(&[("a", Some(b"1"))]), later(), Presence::New).await.unwrap();
    let binding = Binding::new(user, now_ms(), meta.map(str::to_owned)).unwrap();
    assert_eq!(users(store).bind(key, &binding, later(), None).await.unwrap(), WriteOutcome::Done);
    key
}

async fn handles(store: &dyn SessionStore, user: &str) -> Vec<SessionHandle> {
    let mut handles: Vec<_> = users(store).sessions(user).await.unwrap().into_iter().map(|s| s.handle).collect();
    handles.sort();
    handles
}

fn sorted(keys: &[StoreKey]) -> Vec<SessionHandle> {
    let mut handles: Vec<_> = keys.iter().map(|key| SessionHandle::of(*key)).collect();
    handles.sort();
    handles
}

/// Runs every check of the user index. `other` is a second handle on the same
/// backend (another app instance), or `store` again for a one-process store.
pub async fn run_users(store: Arc<dyn SessionStore>, other: Arc<dyn SessionStore>) {
    binding_indexes_the_session_and_lists_it_by_handle(&*store).await;
    binding_needs_a_live_session(&*store).await;
    a_session_has_one_user_at_a_time(&*store).await;
    the_binding_follows_renames(&*store).await;
    removed_and_expired_sessions_drop_out(&*store).await;
    revoke_by_handle_removes_one_session_of_that_user_only(&*store).await;
    revoke_all_removes_every_session_but_the_one_kept(&*store).await;
    a_revoke_all_that_keeps_a_revoked_session_revokes_nothing(&*store).await;
    the_cap_ends_the_least_recently_seen_sessions(&*store).await;
    revoke_all_wins_over_racing_requests(store, other, 8).await;
}

/// A session bound to `user`, last seen at `seen_ms` (as the session layer
/// records it: the field, then [`UserIndex::seen`]).
async fn seen_session(store: &dyn SessionStore, user: &str, seen_ms: i64) -> StoreKey {
    let key = bound_session(store, user, None).await;
    let seen = users::encode_seen(seen_ms);
    store.apply(key, &changes(&[(SEEN_FIELD, Some(&seen))]), later(), Presence::Existing).await.unwrap();
    users(store).seen(key, user, seen_ms).await.unwrap();
    key
}

/// A sign-in beyond the cap ends the user's least recently seen other sessions,
/// never the one signing in, and no other user's; without a cap nothing ends.
pub async fn the_cap_ends_the_least_recently_seen_sessions(store: &dyn SessionStore) {
    let (user, bystander) = (fresh_user("capped"), fresh_user("bystander"));
    let now = now_ms();
    // Seen in this order: `stale` longest ago, then `old`, then `recent`, `fresh`.
    let recent = seen_session(store, &user, now + 3_000).await;
    let stale = seen_session(store, &user, now + 1_000).await;
    let fresh = seen_session(store, &user, now + 4_000).await;
    let old = seen_session(store, &user, now + 2_000).await;
    let other = bound_session(store, &bystander, None).await;

    let uncapped = fresh_key();
    store.apply(uncapped, &changes(&[("a", Some(b"1"))]), later(), Presence::New).await.unwrap();
    let binding = Binding::new(&user, now_ms(), None).unwrap();
    assert_eq!(users(store).bind(uncapped, &binding, later(), None).await.unwrap(), WriteOutcome::Done);
    assert_eq!(handles(store, &user).await.len(), 5, "without a cap, a sign-in ends nothing");

    let signing_in = fresh_key();
    store.apply(signing_in, &changes(&[("a", Some(b"1"))]), later(), Presence::New).await.unwrap();
    let cap = SessionCap::new(3);
    assert_eq!(users(store).bind(signing_in, &binding, later(), cap).await.unwrap(), WriteOutcome::Done);
    let mut expected = sorted(&[recent, fresh, signing_in]);
    // `uncapped` was seen at its sign-in (now), before every seen time above.
    expected.sort();
    assert_eq!(handles(store, &user).await, expected, "the cap must keep the most recently seen sessions");
    for ended in [stale, old, uncapped] {
        assert_eq!(store.load(ended).await.unwrap(), None, "a session ended by the cap is still alive");
    }
    assert!(store.load(other).await.unwrap().is_some(), "the cap of one user ended another user's session");

    // A cap of one keeps only the session signing in, even when it was seen least recently.
    let last = fresh_key();
    store.apply(last, &changes(&[("a", Some(b"1"))]), later(), Presence::New).await.unwrap();
    let early = Binding::new(&user, now - 60_000, None).unwrap();
    assert_eq!(users(store).bind(last, &early, later(), SessionCap::new(1)).await.unwrap(), WriteOutcome::Done);
    assert_eq!(handles(store, &user).await, sorted(&[last]));
}

/// A "sign out my other devices" asked for by a session that is no longer the
/// user's (revoked in the same instant by another device) revokes nothing: the
/// store checks the kept session inside its atomic step.
pub async fn a_revoke_all_that_keeps_a_revoked_session_revokes_nothing(store: &dyn SessionStore) {
    let user = fresh_user("stale-asker");
    let asker = bound_session(store, &user, None).await;
    let survivor = bound_session(store, &user, None).await;
    assert!(users(store).revoke(&user, &SessionHandle::of(asker)).await.unwrap());
    assert_eq!(users(store).revoke_all(&user, Keep::Session(asker)).await.unwrap(), 0);
    assert!(store.load(survivor).await.unwrap().is_some(), "a revoked session signed out its user's other devices");
    assert_eq!(handles(store, &user).await, sorted(&[survivor]));
    // A session that is live but bound to someone else cannot speak for this user either.
    let stranger = bound_session(store, &fresh_user("stranger"), None).await;
    assert_eq!(users(store).revoke_all(&user, Keep::Session(stranger)).await.unwrap(), 0);
    assert_eq!(handles(store, &user).await, sorted(&[survivor]));
}

/// `bind` writes the binding and indexes the session; `sessions` lists it by
/// handle with its sign-in time and metadata, and no other user's session.
pub async fn binding_indexes_the_session_and_lists_it_by_handle(store: &dyn SessionStore) {
    let (alice, bob) = (fresh_user("alice"), fresh_user("bob"));
    let before = now_ms();
    let a1 = bound_session(store, &alice, Some("Firefox on Linux")).await;
    let a2 = bound_session(store, &alice, None).await;
    let b1 = bound_session(store, &bob, None).await;
    let unbound = fresh_key();
    store.apply(unbound, &changes(&[("a", Some(b"1"))]), later(), Presence::New).await.unwrap();

    assert_eq!(handles(store, &alice).await, sorted(&[a1, a2]), "alice's sessions");
    assert_eq!(handles(store, &bob).await, sorted(&[b1]), "bob's sessions");
    assert!(handles(store, &fresh_user("nobody")).await.is_empty(), "a user without sessions has none");
    let listed = users(store).sessions(&alice).await.unwrap();
    let first = listed.iter().find(|s| s.handle == SessionHandle::of(a1)).unwrap();
    assert_eq!(first.meta.as_deref(), Some("Firefox on Linux"));
    assert!(first.signed_in_ms >= before && first.signed_in_ms <= now_ms());
    assert!(first.last_seen_ms >= first.signed_in_ms);
    assert!(first.expires_at_ms > now_ms());
    assert!(!first.current, "a store never marks a session current");
    // The binding is a field of the session: the layer reads it with the session.
    let fields = store.load(a1).await.unwrap().unwrap().fields;
    assert_eq!(Binding::of_fields(&fields).map(|b| b.user), Some(alice));
    assert_eq!(fields["a"], b"1", "binding keeps the session's other fields");
}

/// `bind` of a missing or expired session changes nothing.
pub async fn binding_needs_a_live_session(store: &dyn SessionStore) {
    let user = fresh_user("ghost");
    let binding = Binding::new(&user, now_ms(), None).unwrap();
    assert_eq!(users(store).bind(fresh_key(), &binding, later(), None).await.unwrap(), WriteOutcome::PresenceFailed);
    let expired = fresh_key();
    store.apply(expired, &changes(&[("a", Some(b"1"))]), now_ms() - 1, Presence::New).await.unwrap();
    assert_eq!(users(store).bind(expired, &binding, later(), None).await.unwrap(), WriteOutcome::PresenceFailed);
    assert!(handles(store, &user).await.is_empty());
    assert_eq!(store.load(expired).await.unwrap(), None);
}

/// Binding a bound session to another user moves it: it is listed (and revoked)
/// under the new user only.
pub async fn a_session_has_one_user_at_a_time(store: &dyn SessionStore) {
    let (first, second) = (fresh_user("first"), fresh_user("second"));
    let key = bound_session(store, &first, None).await;
    let binding = Binding::new(&second, now_ms(), None).unwrap();
    assert_eq!(users(store).bind(key, &binding, later(), None).await.unwrap(), WriteOutcome::Done);
    assert!(handles(store, &first).await.is_empty(), "rebinding must take the session from its first user");
    assert_eq!(handles(store, &second).await, sorted(&[key]));
    assert_eq!(users(store).revoke_all(&first, Keep::None).await.unwrap(), 0);
    assert!(store.load(key).await.unwrap().is_some(), "a revoke of the first user must spare the moved session");
}

/// `rename` carries the binding: the user's list shows the new key's handle, and
/// revokes reach the session there.
pub async fn the_binding_follows_renames(store: &dyn SessionStore) {
    let user = fresh_user("renamed");
    let old = bound_session(store, &user, Some("phone")).await;
    let new = fresh_key();
    assert!(store.rename(old, new, later()).await.unwrap());
    assert_eq!(handles(store, &user).await, sorted(&[new]), "the index must follow the rename");
    let listed = users(store).sessions(&user).await.unwrap();
    assert_eq!(listed[0].meta.as_deref(), Some("phone"), "the binding moves with the session");
    assert_eq!(users(store).revoke_all(&user, Keep::None).await.unwrap(), 1);
    assert_eq!(store.load(new).await.unwrap(), None);
}

/// Removed and expired sessions are not listed, and count for nothing in revokes.
pub async fn removed_and_expired_sessions_drop_out(store: &dyn SessionStore) {
    let user = fresh_user("leaving");
    let removed = bound_session(store, &user, None).await;
    let live = bound_session(store, &user, None).await;
    let expiring = bound_session(store, &user, None).await;
    store.remove(removed).await.unwrap();
    assert!(store.touch(expiring, now_ms() + 30).await.unwrap());
    tokio::time::sleep(Duration::from_millis(60)).await;
    if let Some(admin) = store.admin() {
        admin.purge_expired(now_ms()).await.unwrap();
    }
    assert_eq!(handles(store, &user).await, sorted(&[live]), "only the live session is listed");
    assert_eq!(users(store).revoke_all(&user, Keep::None).await.unwrap(), 1, "only live sessions count as revoked");
}

/// `revoke` removes the one session its handle names, and only among the user's own.
pub async fn revoke_by_handle_removes_one_session_of_that_user_only(store: &dyn SessionStore) {
    let (alice, mallory) = (fresh_user("alice"), fresh_user("mallory"));
    let laptop = bound_session(store, &alice, None).await;
    let phone = bound_session(store, &alice, None).await;
    let theirs = bound_session(store, &mallory, None).await;
    let index = users(store);
    assert!(
        !index.revoke(&mallory, &SessionHandle::of(laptop)).await.unwrap(),
        "another user's handle revokes nothing"
    );
    assert!(store.load(laptop).await.unwrap().is_some());
    assert!(index.revoke(&alice, &SessionHandle::of(phone)).await.unwrap());
    assert_eq!(store.load(phone).await.unwrap(), None, "the revoked session is gone");
    assert!(!index.revoke(&alice, &SessionHandle::of(phone)).await.unwrap(), "a second revoke finds nothing");
    assert_eq!(handles(store, &alice).await, sorted(&[laptop]));
    assert!(store.load(theirs).await.unwrap().is_some());
}

/// `revoke_all` removes every session of the user, or all but the one kept, and
/// no one else's.
pub async fn revoke_all_removes_every_session_but_the_one_kept(store: &dyn SessionStore) {
    let (alice, bob) = (fresh_user("alice"), fresh_user("bob"));
    let keys: Vec<StoreKey> = futures_join(store, &alice, 4).await;
    let bobs = bound_session(store, &bob, None).await;
    let index = users(store);
    assert_eq!(index.revoke_all(&alice, Keep::Session(keys[0])).await.unwrap(), 3);
    for key in &keys[1..] {
        assert_eq!(store.load(*key).await.unwrap(), None, "every other session is revoked");
    }
    assert!(store.load(keys[0]).await.unwrap().is_some(), "the kept session survives");
    assert_eq!(handles(store, &alice).await, sorted(&keys[..1]), "the kept session stays indexed");
    // An operator spares a session by its handle.
    let tablet = bound_session(store, &alice, None).await;
    assert_eq!(index.revoke_all(&alice, Keep::Handle(SessionHandle::of(tablet))).await.unwrap(), 1);
    assert_eq!(store.load(keys[0]).await.unwrap(), None);
    assert_eq!(handles(store, &alice).await, sorted(&[tablet]));
    assert_eq!(index.revoke_all(&alice, Keep::None).await.unwrap(), 1);
    assert_eq!(store.load(tablet).await.unwrap(), None);
    assert!(handles(store, &alice).await.is_empty());
    assert!(store.load(bobs).await.unwrap().is_some(), "another user's session is untouched");
    // Unbound sessions are never revoked by a user's revoke.
    let unbound = fresh_key();
    store.apply(unbound, &changes(&[("a", Some(b"1"))]), later(), Presence::New).await.unwrap();
    assert_eq!(index.revoke_all(&bob, Keep::None).await.unwrap(), 1);
    assert!(store.load(unbound).await.unwrap().is_some());
}

async fn futures_join(store: &dyn SessionStore, user: &str, n: usize) -> Vec<StoreKey> {
    let mut keys = Vec::new();
    for _ in 0..n {
        keys.push(bound_session(store, user, None).await);
    }
    keys
}

/// `n` sessions of one user, each used by a task on `other` (writes, updates and
/// renames, as requests do) while `store` revokes them all: when the revoke
/// returns and each task's call in flight has ended, no session of theirs, under
/// any key it had, is alive or listed, and every task's next call finds nothing.
pub async fn revoke_all_wins_over_racing_requests(
    store: Arc<dyn SessionStore>,
    other: Arc<dyn SessionStore>,
    n: usize,
) {
    let user = fresh_user("racing");
    let mut keys = Vec::new();
    for _ in 0..n {
        keys.push(bound_session(&*store, &user, None).await);
    }
    let revoked = Arc::new(AtomicBool::new(false));
    // Every key each session had, so the end can check none is alive.
    let seen: Arc<Mutex<Vec<StoreKey>>> = Arc::new(Mutex::new(keys.clone()));
    let tasks: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let (other, revoked, seen, mut key) = (other.clone(), revoked.clone(), seen.clone(), *key);
            tokio::spawn(async move {
                // Each call: did the session still exist? Stop at the first "no"
                // that comes after the revoke returned (before it, a "no" is a bug).
                for round in 0u64.. {
                    let was_revoked = revoked.load(Ordering::SeqCst);
                    let alive = match (round + i as u64) % 3 {
                        0 => {
                            let batch = changes(&[("n", Some(round.to_string().as_bytes()))]);
                            other.apply(key, &batch, later(), Presence::Existing).await.map(|o| o == WriteOutcome::Done)
                        }
                        1 => {
                            let mut inc = |_: Option<&[u8]>| UpdateAction::Set(round.to_string().into_bytes());
                            other
                                .update(key, "m", &mut inc, later(), Presence::Existing)
                                .await
                                .map(|o| o == WriteOutcome::Done)
                        }
                        _ => {
                            let next = fresh_key();
                            seen.lock().unwrap().push(next);
                            let moved = other.rename(key, next, later()).await;
                            if matches!(moved, Ok(true)) {
                                key = next;
                            }
                            moved
                        }
                    };
                    match alive {
                        Ok(true) if was_revoked => {
                            panic!("a session revoked by revoke_all accepted a write after it returned")
                        }
                        Ok(true) => {}
                        // Gone: revoked under it.
                        Ok(false) => return round,
                        Err(err) => {
                            panic!("a request racing with revoke_all failed instead of finding the session gone: {err}")
                        }
                    }
                    if round % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                unreachable!()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let count = users(&*store).revoke_all(&user, Keep::None).await.unwrap();
    revoked.store(true, Ordering::SeqCst);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a session kept working long after it was revoked")
            .unwrap();
    }
    // A session whose renew was under way may be counted by the renew's own
    // cleanup instead (Redis Cluster), never twice.
    assert!(count <= n as u64, "revoke_all counted {count} of {n} sessions");
    let seen: Vec<StoreKey> = seen.lock().unwrap().clone();
    for key in &seen {
        assert_eq!(store.load(*key).await.unwrap(), None, "a revoked session (or its renamed successor) is alive");
        assert_eq!(other.load(*key).await.unwrap(), None, "a revoked session is alive on the other instance");
    }
    assert!(handles(&*store, &user).await.is_empty(), "a revoked user still has sessions listed");
}
