//! A flood of failed logins against the real `nex-demo` binary: memory stays
//! bounded and every answer is honest (a redirect back to the form, or "busy").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use nex_testkit::http::Browser;
use support::process::{demo_command, DemoProcess};

/// Concurrent bad logins in the flood.
const FLOOD: usize = 200;
/// A generous bound on the demo's peak resident memory under the flood (one
/// argon2 hash alone holds 19 MiB; 200 at once took 4.7 GiB).
const PEAK_RSS_BOUND_KIB: u64 = 300 * 1024;

async fn start_demo(name: &str) -> DemoProcess {
    let mut command = demo_command();
    command.env("NEX_ENV", "dev").env("SECRET_KEY_BASE", support::SECRET).env("RUST_LOG", "off");
    DemoProcess::start(command, name).await
}

/// A browser holding a valid CSRF token, taken from the form as a browser does.
async fn attacker(demo: &DemoProcess) -> (Browser, String) {
    let browser = Browser::new(demo.addr);
    let token = browser.get("/login").await.csrf_token();
    (browser, token)
}

async fn bad_login(browser: &Browser, token: &str) -> nex_testkit::http::Reply {
    let fields = [("email", "demo@example.com"), ("password", "wrong password"), ("_csrf_token", token)];
    browser.post_form("/login", &fields).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_bad_logins_keep_peak_memory_bounded_and_never_fail() {
    let demo = start_demo("flood").await;
    let mut attackers = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        attackers.push(attacker(&demo).await);
    }
    let before_kib = demo.status_kib("VmHWM");

    let start = std::sync::Arc::new(tokio::sync::Barrier::new(FLOOD));
    let posts: Vec<_> = attackers
        .into_iter()
        .map(|(browser, token)| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                bad_login(&browser, &token).await
            })
        })
        .collect();
    let (mut redirected, mut busy) = (0, 0);
    for post in posts {
        let reply = post.await.unwrap();
        match (reply.status, reply.location.as_deref()) {
            (303, Some("/login")) => redirected += 1,
            (429 | 503, _) => busy += 1,
            (status, location) => panic!("a bad login answered {status} (location {location:?}): {}", reply.body),
        }
    }
    let peak_kib = demo.status_kib("VmHWM");
    println!(
        "{FLOOD} concurrent bad logins: {redirected} redirected to /login, {busy} busy; \
         VmHWM {} MiB before the flood, {} MiB after",
        before_kib / 1024,
        peak_kib / 1024
    );
    assert_eq!(redirected + busy, FLOOD);
    assert!(redirected > 0, "some logins were checked");
    assert!(peak_kib < PEAK_RSS_BOUND_KIB, "peak RSS {} MiB under the login flood", peak_kib / 1024);
}

/// Eight clients failing 40 logins each: every one is checked (the queue has
/// room for eight), and resident memory does not grow with the number of hashes
/// (freed argon2 buffers once stayed in glibc's arenas: 1.9 GiB after this).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_bad_logins_from_eight_clients_all_get_checked_in_bounded_memory() {
    let demo = start_demo("repeat").await;
    let clients: Vec<_> = (0..8).map(|_| async { attacker(&demo).await }).collect();
    let mut tasks = Vec::new();
    for client in clients {
        let (browser, token) = client.await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                let reply = bad_login(&browser, &token).await;
                assert_eq!((reply.status, reply.location.as_deref()), (303, Some("/login")), "{}", reply.body);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (peak_kib, resident_kib) = (demo.status_kib("VmHWM"), demo.status_kib("VmRSS"));
    println!("8 clients x 40 bad logins: VmHWM {} MiB, VmRSS after {} MiB", peak_kib / 1024, resident_kib / 1024);
    assert!(peak_kib < PEAK_RSS_BOUND_KIB, "peak RSS {} MiB", peak_kib / 1024);
}
