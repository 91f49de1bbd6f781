//! The dashboard's "Your sessions" over real HTTP on 127.0.0.1: every browser
//! signed in as the user is listed with its device, this one marked; one device
//! or all the others are signed out by CSRF-checked POSTs, and a signed-out
//! browser's next page is the login page saying so. The sign-out paths run on
//! the memory, SQLite and Redis stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use nex_session::store::{MemoryStore, SessionStore};
use nex_session::{users, SessionLayer};
use nex_testkit::http::Browser;
use support::{config, sign_in, sign_in_from, store_urls};

const REVOKED: &str = "You were signed out, please sign in again.";
const FIREFOX_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const NO_SUCH_DEVICE: &str = "That device is not signed in (any more); nothing was changed.";

/// One row of "Your sessions" as a browser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    handle: String,
    device: String,
    current: bool,
    /// It carries a "Sign out" form for its handle.
    sign_out_form: bool,
}

/// The rows of the `#sessions` section of a dashboard page.
fn rows(page: &str) -> Vec<Row> {
    let section = page.split("<section id=\"sessions\">").nth(1).expect("a #sessions section");
    let section = section.split("</section>").next().unwrap();
    section
        .split("<li class=\"session")
        .skip(1)
        .map(|item| {
            let item = item.split("</li>").next().unwrap();
            let between =
                |start: &str, end: &str| item.split(start).nth(1).unwrap().split(end).next().unwrap().to_owned();
            let handle = between("data-handle=\"", "\"");
            Row {
                device: between("<span class=\"device\">", "<"),
                current: item.starts_with(" current\""),
                sign_out_form: item.contains(&format!("name=\"handle\" value=\"{handle}\"")),
                handle,
            }
        })
        .collect()
}

/// The rows of `b`'s dashboard (which must be shown).
async fn dashboard_rows(b: &Browser) -> Vec<Row> {
    let page = b.get("/dashboard").await;
    assert_eq!(page.status, 200, "{:?}", page.location);
    rows(&page.body)
}

fn this_device(rows: &[Row]) -> Row {
    let marked: Vec<_> = rows.iter().filter(|r| r.current).collect();
    assert_eq!(marked.len(), 1, "exactly one row is this device: {rows:?}");
    marked[0].clone()
}

/// The browser is signed out and its next dashboard visit says why.
async fn assert_signed_out_and_told(b: &Browser, store: &str) {
    let page = b.get("/dashboard").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")), "{store}");
    let login = b.get("/login").await.body;
    assert!(login.contains(REVOKED), "{store}: {login}");
    assert_eq!(b.get("/counter").await.status, 401, "{store}");
}

async fn serve_url(url: &str) -> std::net::SocketAddr {
    let store = nex_session::store::open(url).await.unwrap();
    nex_testkit::http::serve(nex_demo::app(config(), store)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_of_one_user_each_see_both_sessions_with_their_own_marked() {
    let addr = support::serve_demo(config()).await;
    let (a, b) = (Browser::new(addr), Browser::new(addr));
    sign_in_from(&a, FIREFOX_WINDOWS).await;
    sign_in_from(&b, CHROME_LINUX).await;

    let seen_by_a = dashboard_rows(&a).await;
    let seen_by_b = dashboard_rows(&b).await;
    assert_eq!(seen_by_a.len(), 2, "{seen_by_a:?}");
    let (a_row, b_row) = (this_device(&seen_by_a), this_device(&seen_by_b));
    assert_eq!(a_row.device, "Firefox on Windows");
    assert_eq!(b_row.device, "Chrome on Linux");
    assert_ne!(a_row.handle, b_row.handle, "each browser marks its own session");
    let mut handles_a: Vec<_> = seen_by_a.iter().map(|r| r.handle.clone()).collect();
    let mut handles_b: Vec<_> = seen_by_b.iter().map(|r| r.handle.clone()).collect();
    handles_a.sort();
    handles_b.sort();
    assert_eq!(handles_a, handles_b, "both see the same two sessions");
    // A "Sign out" form for the other device only; "everywhere else" since there is one.
    for row in &seen_by_a {
        assert_eq!(row.sign_out_form, !row.current, "{row:?}");
        assert_eq!(row.handle.len(), 22, "{row:?}");
    }
    let page = a.get("/dashboard").await.body;
    assert!(page.contains("id=\"sign-out-others\""), "{page}");
    assert!(page.contains("<span class=\"this-device\">(this device)</span>"));
    assert!(page.contains("Signed in <span class=\"signed-in\">just now</span>"), "{page}");
    assert!(page.contains("last seen <span class=\"last-seen\">just now</span>"), "{page}");
    // Nothing listed is (part of) a cookie.
    let cookie_a = a.cookie("_nex_session").unwrap();
    assert!(seen_by_a.iter().all(|r| !cookie_a.contains(&r.handle)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_summary_never_shows_what_the_client_wrote() {
    let addr = support::serve_demo(config()).await;
    let (plain, hostile) = (Browser::new(addr), Browser::new(addr));
    sign_in(&plain).await;
    sign_in_from(&hostile, "<img src=x onerror=alert(1)> call 555-0100 now").await;
    let page = plain.get("/dashboard").await.body;
    let devices: Vec<_> = rows(&page).into_iter().map(|r| r.device).collect();
    assert_eq!(devices, ["Unknown browser", "Unknown browser"], "no header, and a header naming nothing known");
    assert!(!page.contains("onerror") && !page.contains("555-0100"), "{page}");
    // A lone device has nothing to sign out elsewhere.
    let alone = Browser::new(addr);
    sign_in(&alone).await;
    let token = alone.get("/dashboard").await.csrf_token();
    for b in [&plain, &hostile] {
        let token = b.get("/dashboard").await.csrf_token();
        assert_eq!(b.post_form("/logout", &[("_csrf_token", &token)]).await.status, 303);
    }
    let page = alone.get("/dashboard").await.body;
    assert_eq!(rows(&page).len(), 1, "{page}");
    assert!(!page.contains("sign-out-others") && page.contains("You are signed in on this device only."), "{page}");
    let reply = alone.post_form("/sessions/revoke-others", &[("_csrf_token", &token)]).await;
    assert_eq!((reply.status, reply.location.as_deref()), (303, Some("/dashboard")));
    assert!(alone.get("/dashboard").await.body.contains("No other device was signed in."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_a_device_by_its_handle_sends_it_to_the_login_page_on_every_store() {
    let stores = store_urls("revoke-one");
    for url in &stores.urls {
        let addr = serve_url(url).await;
        let (a, b, c) = (Browser::new(addr), Browser::new(addr), Browser::new(addr));
        for browser in [&a, &b, &c] {
            sign_in(browser).await;
        }
        let b_handle = this_device(&dashboard_rows(&b).await).handle;
        let token = a.get("/dashboard").await.csrf_token();
        let reply = a.post_form("/sessions/revoke", &[("_csrf_token", &token), ("handle", &b_handle)]).await;
        assert_eq!((reply.status, reply.location.as_deref()), (303, Some("/dashboard")), "{url}");

        let page = a.get("/dashboard").await.body;
        assert!(page.contains("Signed out 1 other device"), "{url}: {page}");
        let left = rows(&page);
        assert_eq!(left.len(), 2, "{url}: {left:?}");
        assert!(left.iter().all(|r| r.handle != b_handle), "{url}: {left:?}");
        assert_signed_out_and_told(&b, url).await;
        assert_eq!(dashboard_rows(&c).await.len(), 2, "{url}: the third device is still signed in");

        // Signing out the same device again is a no-op that says so.
        let reply = a.post_form("/sessions/revoke", &[("_csrf_token", &token), ("handle", &b_handle)]).await;
        assert_eq!(reply.location.as_deref(), Some("/dashboard"), "{url}");
        assert!(a.get("/dashboard").await.body.contains(NO_SUCH_DEVICE), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_everywhere_else_signs_out_every_other_device_on_every_store() {
    let stores = store_urls("revoke-others");
    for url in &stores.urls {
        let addr = serve_url(url).await;
        let (a, b, c) = (Browser::new(addr), Browser::new(addr), Browser::new(addr));
        for browser in [&a, &b, &c] {
            sign_in(browser).await;
        }
        let token = a.get("/dashboard").await.csrf_token();
        assert_eq!(a.post_form("/counter", &[("_csrf_token", &token)]).await.status, 303, "{url}");
        let reply = a.post_form("/sessions/revoke-others", &[("_csrf_token", &token)]).await;
        assert_eq!((reply.status, reply.location.as_deref()), (303, Some("/dashboard")), "{url}");

        let page = a.get("/dashboard").await.body;
        assert!(page.contains("Signed out 2 other devices"), "{url}: {page}");
        let left = rows(&page);
        assert!(left.len() == 1 && left[0].current, "{url}: {left:?}");
        assert_eq!(a.get("/counter").await.body, "1", "{url}: this device keeps its session");
        for gone in [&b, &c] {
            assert_signed_out_and_told(gone, url).await;
        }
        // A signed-out browser signs in again as a new device.
        sign_in(&b).await;
        assert_eq!(dashboard_rows(&a).await.len(), 2, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_posts_without_a_valid_csrf_token_are_403_and_sign_out_nothing() {
    let addr = support::serve_demo(config()).await;
    let (a, b) = (Browser::new(addr), Browser::new(addr));
    sign_in(&a).await;
    sign_in(&b).await;
    let b_handle = this_device(&dashboard_rows(&b).await).handle;
    let b_token = b.get("/dashboard").await.csrf_token();

    for token in [None, Some("SFMyNTY.forged.token"), Some(b_token.as_str())] {
        let mut fields = vec![("handle", b_handle.as_str())];
        fields.extend(token.map(|t| ("_csrf_token", t)));
        assert_eq!(a.post_form("/sessions/revoke", &fields).await.status, 403, "{token:?}");
        let fields: Vec<_> = token.map(|t| ("_csrf_token", t)).into_iter().collect();
        assert_eq!(a.post_form("/sessions/revoke-others", &fields).await.status, 403, "{token:?}");
    }
    assert_eq!(dashboard_rows(&a).await.len(), 2, "nothing was signed out");
    assert_eq!(dashboard_rows(&b).await.len(), 2, "B is still signed in");
}

/// Another app on the same store, signing its visitors in as `mallory`: a user
/// the demo does not know, whose session handles are foreign to the demo's user.
async fn serve_other_app(store: Arc<dyn SessionStore>) -> Browser {
    async fn handle() -> String {
        let sessions = users::sessions().await.unwrap();
        sessions.into_iter().find(|s| s.current).map(|s| s.handle.to_string()).unwrap_or_default()
    }
    let app = Router::new()
        .route("/login", post(|| async { users::sign_in("mallory", Some("elsewhere")).await.unwrap() }))
        .route("/handle", get(handle))
        .route("/whoami", get(|| async { format!("{:?}", users::current_user().await.unwrap()) }))
        .layer(SessionLayer::with_shared_store(store, config()));
    Browser::new(nex_testkit::http::serve(app).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_foreign_handle_changes_nothing_and_says_so() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let addr = nex_testkit::http::serve(nex_demo::app(config(), store.clone())).await;
    let (a, b) = (Browser::new(addr), Browser::new(addr));
    sign_in(&a).await;
    sign_in(&b).await;
    let mallory = serve_other_app(store.clone()).await;
    assert_eq!(mallory.post_form("/login", &[]).await.status, 200);
    let foreign = mallory.get("/handle").await.body;
    assert_eq!(foreign.len(), 22, "{foreign}");

    let token = a.get("/dashboard").await.csrf_token();
    let long = "x".repeat(5000);
    for handle in ["", "not a handle", "<script>", &long, "AAAAAAAAAAAAAAAAAAAAAA", &foreign] {
        let reply = a.post_form("/sessions/revoke", &[("_csrf_token", &token), ("handle", handle)]).await;
        assert_eq!((reply.status, reply.location.as_deref()), (303, Some("/dashboard")), "{handle:?}");
        let page = a.get("/dashboard").await.body;
        assert!(page.contains(NO_SUCH_DEVICE), "{handle:?}: {page}");
        assert!(!page.contains("<script>"), "{handle:?}");
        assert_eq!(rows(&page).len(), 2, "{handle:?}");
    }
    // A form without the field at all is the same no-op.
    let reply = a.post_form("/sessions/revoke", &[("_csrf_token", &token)]).await;
    assert_eq!(reply.location.as_deref(), Some("/dashboard"));
    assert!(a.get("/dashboard").await.body.contains(NO_SUCH_DEVICE));
    assert_eq!(mallory.get("/whoami").await.body, r#"Some("mallory")"#, "the other user's session is untouched");
    assert_eq!(dashboard_rows(&b).await.len(), 2, "B is still signed in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_this_device_by_its_handle_is_a_logout_and_strangers_are_sent_to_login() {
    let addr = support::serve_demo(config()).await;
    let (a, b) = (Browser::new(addr), Browser::new(addr));
    sign_in(&a).await;
    sign_in(&b).await;
    let own = this_device(&dashboard_rows(&a).await).handle;
    let token = a.get("/dashboard").await.csrf_token();
    let reply = a.post_form("/sessions/revoke", &[("_csrf_token", &token), ("handle", &own)]).await;
    assert_eq!((reply.status, reply.location.as_deref()), (303, Some("/")));
    assert!(reply.set_cookies.iter().any(|c| c.starts_with("_nex_session=;") && c.contains("Max-Age=0")));
    assert!(a.get("/").await.body.contains("Not signed in"));
    assert_eq!(dashboard_rows(&b).await.len(), 1, "the other device stays, alone now");

    // Without a signed-in session (a valid anonymous token), nothing to sign out.
    let stranger = Browser::new(addr);
    let token = stranger.get("/login").await.csrf_token();
    for path in ["/sessions/revoke", "/sessions/revoke-others"] {
        let reply = stranger.post_form(path, &[("_csrf_token", &token), ("handle", &own)]).await;
        assert_eq!((reply.status, reply.location.as_deref()), (303, Some("/login")), "{path}");
    }
    assert_eq!(dashboard_rows(&b).await.len(), 1);
}
