//! The README's "Getting started" app (`examples/getting_started.rs`) over real
//! HTTP on 127.0.0.1 with a real SQLite file: a wrong password, sign-in with
//! "remember me", the flash shown once, sign-out, a form without its CSRF token;
//! and the README shows exactly that file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

#[path = "../examples/getting_started.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use nex_session::token::SecretKeyBase;
use nex_session::SessionConfig;
use nex_testkit::http::{serve, Browser};
use nex_testkit::TempDb;

#[test]
fn the_readme_shows_the_example_as_it_is() {
    let readme = include_str!("../../../README.md");
    let example = include_str!("../examples/getting_started.rs");
    assert!(
        // `no_run`: the README's blocks are doctests, and this one serves forever.
        readme.contains(&format!("```rust,no_run\n{example}```")),
        "the README's Getting started block differs from crates/nex-session/examples/getting_started.rs: \
         copy the file into the README"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_remember_me_shows_the_flash_once_and_signs_out() {
    let db = TempDb::new("getting-started");
    let store = nex_session::store::open(&format!("sqlite://{}", db.0.display())).await.unwrap();
    let secret = SecretKeyBase::new("getting-started-getting-started-42").unwrap();
    let app = example::app(store, SessionConfig::new(secret).with_secure_cookie(false)).unwrap();
    let browser = Browser::new(serve(app).await);

    let page = browser.get("/").await;
    assert!(page.body.contains("Sign in"), "{}", page.body);
    let csrf = page.csrf_token();
    let wrong = [("_csrf_token", csrf.as_str()), ("user", "alice"), ("password", "nope")];
    assert_eq!(browser.post_form("/login", &wrong).await.status, 303);
    let page = browser.get("/").await;
    assert!(page.body.contains("Wrong user or password.") && page.body.contains("Sign in"), "{}", page.body);

    let csrf = page.csrf_token();
    let right = [("_csrf_token", csrf.as_str()), ("user", "alice"), ("password", "wonderland"), ("remember", "on")];
    let signed_in = browser.post_form("/login", &right).await;
    assert_eq!(signed_in.status, 303);
    let cookie = signed_in.session_set_cookie_header().expect("a session cookie");
    assert!(cookie.contains("Max-Age=2592000"), "remember me keeps the cookie 30 days: {cookie}");
    let page = browser.get("/").await;
    assert!(page.body.contains("Welcome!") && page.body.contains("Signed in as alice."), "{}", page.body);
    let again = browser.get("/").await;
    assert!(!again.body.contains("Welcome!") && again.body.contains("Signed in as alice."), "{}", again.body);

    // A form without its token changes nothing.
    assert_eq!(browser.post_form("/logout", &[]).await.status, 403);
    assert!(browser.get("/").await.body.contains("Signed in as alice."));
    let csrf = again.csrf_token();
    assert_eq!(browser.post_form("/logout", &[("_csrf_token", csrf.as_str())]).await.status, 303);
    let out = browser.get("/").await;
    assert!(out.body.contains("Sign in") && !out.body.contains("Signed in as"), "{}", out.body);
}
