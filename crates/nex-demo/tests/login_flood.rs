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

/// The status code of a raw HTTP/1.1 answer (0 when there was none).
fn status_of(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(answer);
    text.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// The head of a form post to `/counter` announcing `length` bytes of body.
fn form_head(length: usize) -> String {
    format!(
        "POST /counter HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

/// 300 anonymous connections each sending a 1 MiB form, and 50 that stall
/// mid-body, against the demo binary: every big form is refused (413, or 503
/// when the layer's buffer budget is spent), every stalled one answered 408 and
/// closed within the form timeout (10 s) and a margin, and the peak resident
/// memory (`VmHWM`) grows by far less than the 300 MiB it grew before the limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_stalled_form_bodies_keep_memory_bounded_and_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let demo = start_demo("bodies").await;
    let before = demo.status_kib("VmHWM");
    let started = std::time::Instant::now();
    let mut stalled = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let addr = demo.addr;
        stalled.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            // Under the size limit, so only the time limit can end it.
            stream.write_all(form_head(32 * 1024).as_bytes()).await.unwrap();
            stream.write_all(&[b'a'; 1000]).await.unwrap();
            // Then nothing more: wait for the server to answer and close.
            let mut answer = Vec::new();
            let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
            (read.is_ok(), status_of(&answer), started.elapsed())
        });
    }
    let mut big = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let addr = demo.addr;
        big.spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut read, mut write) = stream.into_split();
            let body = vec![b'a'; 1 << 20];
            // The server may answer and close before the body is all sent.
            let sending = tokio::spawn(async move {
                let _ = write.write_all(form_head(body.len()).as_bytes()).await;
                let _ = write.write_all(&body).await;
                write
            });
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), read.read_to_end(&mut answer)).await;
            sending.abort();
            status_of(&answer)
        });
    }
    let mut statuses = std::collections::BTreeMap::new();
    while let Some(status) = big.join_next().await {
        *statuses.entry(status.unwrap()).or_insert(0u32) += 1;
    }
    let mut slowest = std::time::Duration::ZERO;
    while let Some(done) = stalled.join_next().await {
        let (closed, status, after) = done.unwrap();
        assert!(closed, "a stalled connection was still open after 30 s");
        assert_eq!(status, 408, "a stalled form is answered 408");
        slowest = slowest.max(after);
    }
    let peak = demo.status_kib("VmHWM");
    println!("1 MiB forms: {statuses:?}; stalled closed by {slowest:?}; VmHWM {before} KiB -> {peak} KiB");
    assert!(statuses.keys().all(|s| *s == 413 || *s == 503), "every big form refused: {statuses:?}");
    assert!(slowest < std::time::Duration::from_secs(15), "stalled forms closed by {slowest:?}");
    assert!(peak - before < 64 * 1024, "peak memory grew by {} KiB", peak - before);
    assert!(Browser::new(demo.addr).is_up().await, "the demo still serves");
}
