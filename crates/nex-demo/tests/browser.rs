//! The demo in a real headless Chromium, driven through chromedriver.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use nex_session::store::{MemoryStore, SessionStore};
use nex_session::token::{SecretKeyBase, Signer};
use support::webdriver::{base_url, Driver};
use support::{config, serve_demo, SECRET};

const EXPIRED: &str = "Your session has expired, please sign in again.";
const REVOKED: &str = "You were signed out, please sign in again.";
const STRANGER: &str = "Please sign in to see your dashboard.";

/// Signs in through the form and waits for the dashboard.
async fn sign_in(browser: &Driver, base: &str) {
    browser.goto(&format!("{base}/login")).await;
    browser.type_into("#email", "demo@example.com").await;
    browser.type_into("#password", "nex-demo").await;
    browser.click("#submit").await;
    let text = browser.wait_for_text("Dashboard").await;
    assert!(text.contains("Signed in as"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_counter_reload_logout_in_a_real_browser() {
    let addr = serve_demo(config()).await;
    let base = base_url(addr);
    let browser = Driver::start().await;

    // A wrong password shows the error once; a reload no longer shows it.
    browser.goto(&format!("{base}/login")).await;
    browser.type_into("#email", "demo@example.com").await;
    browser.type_into("#password", "wrong password").await;
    browser.click("#submit").await;
    let text = browser.wait_for_text("Invalid credentials").await;
    assert!(text.contains("Invalid credentials"), "error flash after a wrong password: {text}");
    assert!(browser.url().await.ends_with("/login"));
    browser.refresh().await;
    let text = browser.text().await;
    assert!(text.contains("Sign in") && !text.contains("Invalid credentials"), "the flash is shown once: {text}");

    // The right password reaches the dashboard.
    browser.type_into("#email", "demo@example.com").await;
    browser.type_into("#password", "nex-demo").await;
    browser.click("#submit").await;
    let text = browser.wait_for_text("Dashboard").await;
    assert!(browser.url().await.ends_with("/dashboard"), "{}", browser.url().await);
    assert!(text.contains("Welcome back!") && text.contains("demo@example.com"), "{text}");

    // The counter button increments; a reload keeps the state.
    for expected in 1..=3 {
        browser.click("#increment").await;
        // A click can return before the redirected page has loaded: wait for it (up to 10 s).
        let counter_of = |text: &str| text.lines().find_map(|l| l.trim().parse::<u64>().ok());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut text = browser.text().await;
        while counter_of(&text) != Some(expected) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            text = browser.text().await;
        }
        assert_eq!(counter_of(&text), Some(expected), "{text}");
    }
    browser.refresh().await;
    let text = browser.text().await;
    assert!(text.lines().any(|l| l.trim() == "3") && !text.contains("Welcome back!"), "state kept on reload: {text}");
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/nex-demo-dashboard.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    std::fs::write(&shot, &png).unwrap();
    println!("dashboard screenshot: {}", shot.display());

    // Logout returns to "Not signed in"; the dashboard then redirects to login.
    browser.click("#logout").await;
    let text = browser.wait_for_text("Not signed in").await;
    assert!(text.contains("Not signed in"), "{text}");
    browser.back().await;
    browser.goto(&format!("{base}/dashboard")).await;
    assert!(browser.url().await.ends_with("/login"), "dashboard after logout goes to login: {}", browser.url().await);
    assert!(browser.text().await.contains("Please sign in"));
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_told_on_the_login_page_in_a_real_browser() {
    // A browser-session cookie (no Max-Age) outlives its session, as after a long
    // pause with the browser left open. (With the default cookie, Max-Age is the
    // TTL, so Chromium drops it when the session expires and comes back as a stranger.)
    // The TTL must outlast filling in the login form on a loaded machine (the form's
    // CSRF token lives in the session; a 2 s TTL once expired it mid-form in CI).
    let config = config().with_ttl(Duration::from_secs(6)).with_expiry(nex_session::Expiry::BrowserSession);
    let addr = serve_demo(config).await;
    let base = base_url(addr);
    let browser = Driver::start().await;

    // A stranger is only asked to sign in.
    browser.goto(&format!("{base}/dashboard")).await;
    let text = browser.wait_for_text(STRANGER).await;
    assert!(browser.url().await.ends_with("/login"), "{}", browser.url().await);
    assert!(text.contains(STRANGER) && !text.contains(EXPIRED), "{text}");

    sign_in(&browser, &base).await;
    // Let the 6 s TTL pass untouched (any visit would slide it), then come back.
    tokio::time::sleep(Duration::from_millis(7000)).await;
    browser.goto(&format!("{base}/dashboard")).await;
    let text = browser.wait_for_text(EXPIRED).await;
    assert!(browser.url().await.ends_with("/login"), "{}", browser.url().await);
    assert!(text.contains(EXPIRED) && !text.contains(STRANGER), "{text}");
    let png = browser.screenshot().await;
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/nex-demo-expired.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    std::fs::write(&shot, &png).unwrap();
    println!("expired-session screenshot: {}", shot.display());

    // Signing in again works, and the message is gone.
    sign_in(&browser, &base).await;
    browser.goto(&format!("{base}/login")).await;
    assert!(!browser.text().await.contains(EXPIRED));
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_is_told_on_the_login_page_in_a_real_browser() {
    let store = Arc::new(MemoryStore::new());
    let addr = nex_testkit::http::serve(nex_demo::app(config(), store.clone())).await;
    let base = base_url(addr);
    let browser = Driver::start().await;

    sign_in(&browser, &base).await;
    // An operator revokes the session (the store's `remove`, from outside the app).
    let cookie = browser.cookie("_nex_session").await.expect("signed in");
    let id = Signer::new(&SecretKeyBase::new(SECRET).unwrap(), "nex.session").verify(&cookie, None).unwrap();
    let key = nex_session::SessionId::parse(std::str::from_utf8(&id).unwrap()).unwrap().store_key();
    store.remove(key).await.unwrap();

    browser.goto(&format!("{base}/dashboard")).await;
    let text = browser.wait_for_text(REVOKED).await;
    assert!(browser.url().await.ends_with("/login"), "{}", browser.url().await);
    assert!(text.contains(REVOKED) && !text.contains(EXPIRED) && !text.contains(STRANGER), "{text}");
    // The cookie is gone now: a reload shows a plain sign-in form.
    browser.refresh().await;
    let text = browser.text().await;
    assert!(!text.contains(REVOKED) && !text.contains(EXPIRED), "{text}");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_everywhere_else_from_one_browser_signs_out_the_other_in_real_browsers() {
    let addr = serve_demo(config()).await;
    let base = base_url(addr);
    // Two browsers with their own profiles (cookie jars): two devices of one user.
    let a = Driver::start().await;
    let b = Driver::start().await;
    sign_in(&a, &base).await;
    sign_in(&b, &base).await;

    a.goto(&format!("{base}/dashboard")).await;
    let devices = a.texts("#sessions .session .device").await;
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert!(devices.iter().all(|d| d.contains("Chrom")), "a summary of each browser: {devices:?}");
    let current = a.texts("#sessions .session.current").await;
    assert!(current.len() == 1 && current[0].contains("(this device)"), "{current:?}");
    assert_eq!(a.texts("#sessions .session:not(.current) form button").await, ["Sign out"]);
    let png = a.screenshot().await;
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/nex-demo-sessions.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    std::fs::write(&shot, &png).unwrap();
    println!("your-sessions screenshot: {}", shot.display());

    a.click("#sign-out-others").await;
    let text = a.wait_for_text("Signed out 1 other device").await;
    assert!(text.contains("Signed out 1 other device"), "{text}");
    assert!(a.url().await.ends_with("/dashboard"), "{}", a.url().await);
    assert_eq!(a.texts("#sessions .session").await.len(), 1);
    assert!(a.texts("#sign-out-others").await.is_empty(), "nothing else to sign out");

    // B's next page load is the login page, saying why.
    b.goto(&format!("{base}/dashboard")).await;
    let text = b.wait_for_text(REVOKED).await;
    assert!(b.url().await.ends_with("/login"), "{}", b.url().await);
    assert!(text.contains(REVOKED) && !text.contains(STRANGER) && !text.contains(EXPIRED), "{text}");
    // A is still signed in.
    a.refresh().await;
    assert!(a.text().await.contains("Signed in as"));
    a.quit().await;
    b.quit().await;
}
