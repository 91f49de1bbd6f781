//! `testing::TestSession`: handlers run as requests of one browser, without HTTP,
//! through the layer's real lifecycle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use nex_session::store::MemoryStore;
use nex_session::testing::TestSession;
use nex_session::{Session, SessionError, StoreError};
use nex_testkit::store::Instrumented;

#[tokio::test]
async fn each_run_is_one_request_of_the_same_browser() {
    let store = Arc::new(MemoryStore::new());
    let browser = TestSession::new(store.clone());
    assert!(browser.cookie().is_none());
    // A read creates nothing, as in the app.
    assert_eq!(browser.run(nex_session::get::<u64>("n")).await.unwrap().unwrap(), None);
    assert!(browser.cookie().is_none() && store.is_empty(), "a read-only request creates no session");
    browser.run(nex_session::put("n", 1u64)).await.unwrap().unwrap();
    let first = browser.cookie().expect("a put sets the session cookie");
    assert_eq!(store.len(), 1);
    assert_eq!(browser.run(nex_session::get::<u64>("n")).await.unwrap().unwrap(), Some(1));
    // `renew` moves the browser to a new id; the data follows.
    browser.run(nex_session::renew()).await.unwrap().unwrap();
    assert_ne!(browser.cookie().unwrap(), first, "renew issues a cookie for the new id");
    let via_handle = browser.run_with(|session: Session| async move { session.get::<u64>("n").await }).await;
    assert_eq!(via_handle.unwrap().unwrap(), Some(1));
    // `clear` deletes the cookie.
    browser.run(nex_session::clear()).await.unwrap().unwrap();
    assert!(browser.cookie().is_none(), "clear deletes the session cookie");
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_save_that_fails_is_an_error_and_reports_nothing_saved() {
    let store = Instrumented::new(Arc::new(MemoryStore::new()));
    let browser = TestSession::new(store.clone());
    browser.run(nex_session::put("a", 1)).await.unwrap().unwrap();
    store.fail_applies.store(true, Ordering::SeqCst);
    let failed = browser.run(nex_session::put("a", 2)).await;
    assert!(matches!(failed, Err(SessionError::Store(StoreError::Unavailable(_)))), "{failed:?}");
    store.fail_applies.store(false, Ordering::SeqCst);
    assert_eq!(
        browser.run(nex_session::get::<u64>("a")).await.unwrap().unwrap(),
        Some(1),
        "the failed put is not saved"
    );
}

#[tokio::test]
async fn the_handlers_own_errors_are_its_output() {
    let browser = TestSession::new(MemoryStore::new());
    browser.run(nex_session::put("a", "text")).await.unwrap().unwrap();
    let wrong_type = browser.run(nex_session::get::<u64>("a")).await.unwrap();
    assert!(matches!(wrong_type, Err(SessionError::Decode { .. })), "{wrong_type:?}");
}
