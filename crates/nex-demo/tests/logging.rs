//! The real `nex-demo` binary logs through `tracing` to stderr, `RUST_LOG`
//! decides what, and a store failure behind a 503 shows up in the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use nex_testkit::http::Browser;
use nex_testkit::RedisServer;
use support::process::{demo_command, DemoProcess};

const STARTED: &str = "nex-demo listening";

fn command(rust_log: Option<&str>, store: &str) -> std::process::Command {
    let mut command = demo_command();
    command.env("NEX_ENV", "dev").env("SECRET_KEY_BASE", support::SECRET).env("NEX_SESSION_STORE", store);
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_logs_an_info_line_to_stderr_by_default() {
    let demo = DemoProcess::start(command(None, "memory"), "log-default").await;
    let stderr = demo.wait_for_stderr(STARTED).await;
    let line = stderr.lines().find(|l| l.contains(STARTED)).unwrap_or_else(|| panic!("no start line in: {stderr}"));
    assert!(line.contains("INFO") && line.contains(&demo.addr.to_string()), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_off_silences_the_log() {
    let demo = DemoProcess::start(command(Some("off"), "memory"), "log-off").await;
    // Served a request, so start-up is long past; still nothing was logged.
    assert_eq!(Browser::new(demo.addr).get("/").await.status, 200);
    assert_eq!(demo.stderr(), "", "RUST_LOG=off logs nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_behind_a_503_is_logged_as_an_error() {
    let mut redis = RedisServer::start_private();
    let demo = DemoProcess::start(command(None, &redis.url()), "log-outage").await;
    // Signed in, the next page needs the store.
    let browser = Browser::new(demo.addr);
    let token = browser.get("/login").await.csrf_token();
    let fields = [("email", "demo@example.com"), ("password", "nex-demo"), ("_csrf_token", token.as_str())];
    assert_eq!(browser.post_form("/login", &fields).await.status, 303);
    redis.stop();
    assert_eq!(browser.get("/dashboard").await.status, 503);
    let stderr = demo.wait_for_stderr("session error while rendering a page").await;
    let line = stderr
        .lines()
        .find(|l| l.contains("session error while rendering a page"))
        .unwrap_or_else(|| panic!("the 503's cause is not logged: {stderr}"));
    assert!(line.contains("ERROR"), "{line}");
}
