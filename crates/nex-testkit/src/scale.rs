//! A user with very many sessions, made through the store's own calls (as that
//! many sign-ins would make them: a session written, then bound), and the check
//! that a revoke-all left none of them.

use std::sync::Arc;
use std::time::Instant;

use nex_session_core::store::users::Binding;
use nex_session_core::store::{Change, Changes, Presence, SessionStore, WriteOutcome};
use nex_session_core::token::now_ms;
use nex_session_core::{SessionId, StoreKey};

/// Tasks creating sessions at once.
const WORKERS: usize = 64;

/// Creates `n` live sessions bound to `user` (no cap), 64 at a time; their keys.
///
/// # Panics
/// When the store refuses a write: the test cannot go on.
pub async fn sign_in_many(store: Arc<dyn SessionStore>, user: &str, n: usize) -> Vec<StoreKey> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (store, user) = (Arc::clone(&store), user.to_owned());
        let count = n / WORKERS + usize::from(worker < n % WORKERS);
        tasks.spawn(async move {
            let mut keys = Vec::with_capacity(count);
            let expires = now_ms() + 3_600_000;
            let mut changes = Changes::new();
            changes.insert("cart".to_owned(), Change::Put(b"[]".to_vec()));
            for _ in 0..count {
                let key = SessionId::generate().expect("an id").store_key();
                let written = store.apply(key, &changes, expires, Presence::New).await.expect("a session write");
                assert_eq!(written, WriteOutcome::Done);
                let binding = Binding::new(&user, now_ms(), None).expect("a binding");
                let users = store.users().expect("a store with a user index");
                let bound = users.bind(key, &binding, expires, None).await.expect("a bind");
                assert_eq!(bound, WriteOutcome::Done);
                keys.push(key);
            }
            keys
        });
    }
    let mut keys = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        keys.extend(done.expect("a sign-in task"));
    }
    println!("{n} sessions of one user created in {:.1} s", started.elapsed().as_secs_f64());
    keys
}

/// Checks that `user` has no session left and that none of `keys` loads (every
/// 100th key, and the first and last).
///
/// # Panics
/// When a session survived.
pub async fn assert_none_left(store: &dyn SessionStore, user: &str, keys: &[StoreKey]) {
    let users = store.users().expect("a store with a user index");
    let left = users.sessions(user).await.expect("the user's sessions");
    assert!(left.is_empty(), "{} sessions of the user survived the revoke", left.len());
    let sample = keys.iter().step_by(100).chain(keys.last());
    for key in sample {
        assert_eq!(store.load(*key).await.expect("a load"), None, "a revoked session still loads");
    }
}

/// One more sign-in of `user` with `cap`, as the layer makes it (the session
/// written, then bound): its key.
///
/// # Panics
/// When the store refuses it: a sign-in over the cap must still work.
pub async fn sign_in_capped(
    store: &dyn SessionStore,
    user: &str,
    cap: nex_session_core::store::SessionCap,
) -> StoreKey {
    let key = SessionId::generate().expect("an id").store_key();
    let expires = now_ms() + 3_600_000;
    let mut changes = Changes::new();
    changes.insert("cart".to_owned(), Change::Put(b"[]".to_vec()));
    store.apply(key, &changes, expires, Presence::New).await.expect("a session write");
    let binding = Binding::new(user, now_ms(), None).expect("a binding");
    let users = store.users().expect("a store with a user index");
    let bound = users.bind(key, &binding, expires, Some(cap)).await.expect("a sign-in far over the cap");
    assert_eq!(bound, WriteOutcome::Done);
    key
}

/// The whole scenario of the stores' scale tests: 100,000 sessions of one user;
/// one sign-in with the default cap (far over it: it must still work within the
/// store timeout, ending a batch of 1,000); then one `revoke_all`, which must end
/// the other 99,001, leaving nothing.
///
/// # Panics
/// When any step fails or a session survives.
pub async fn sign_out_100_000(store: Arc<dyn SessionStore>) {
    let keys = sign_in_many(Arc::clone(&store), "heavy", 100_000).await;
    let fresh = sign_in_capped(&*store, "heavy", nex_session_core::store::SessionCap::DEFAULT).await;
    let started = Instant::now();
    let users = store.users().expect("a store with a user index");
    let revoked = users.revoke_all("heavy", nex_session_core::store::Keep::None).await.expect("a revoke_all");
    println!("revoked {revoked} in {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(revoked, 100_000 + 1 - 1_000, "the capped sign-in ended 1,000, the revoke the rest");
    assert_eq!(store.load(fresh).await.expect("a load"), None);
    assert_none_left(&*store, "heavy", &keys).await;
}
