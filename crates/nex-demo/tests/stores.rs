//! The demo on each store: two instances sharing SQLite or Redis see one login;
//! a Redis outage answers 503 "try again" and heals; SQLite keeps every
//! acknowledged write through `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use nex_testkit::TempDir;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nex_session::store::SessionStore;
use nex_testkit::http::Browser;
use nex_testkit::RedisServer;
use support::{config, sign_in};

async fn serve_on(store: Arc<dyn SessionStore>) -> Browser {
    Browser::new(nex_testkit::http::serve(nex_demo::app(config(), store)).await)
}

/// Signs in on instance A and checks instance B (same store, same secret) sees it.
async fn login_is_shared(url: &str) {
    let a = serve_on(nex_session::store::open(url).await.unwrap()).await;
    let b = serve_on(nex_session::store::open(url).await.unwrap()).await;
    sign_in(&a).await;
    let on_b = b.clone_with_cookies(&a);
    assert!(on_b.get("/").await.body.contains("Signed in as"), "instance B sees the login of instance A ({url})");
    let token = on_b.get("/dashboard").await.csrf_token();
    assert_eq!(on_b.post_form("/counter", &[("_csrf_token", &token)]).await.status, 303);
    assert_eq!(a.get("/counter").await.body, "1", "A sees B's increment ({url})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demo_instances_share_logins_through_sqlite() {
    let dir = TempDir::new("shared-sqlite");
    login_is_shared(&format!("sqlite://{}", dir.0.join("s.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demo_instances_share_logins_through_redis() {
    let server = RedisServer::start_private();
    login_is_shared(&server.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_503_try_again_within_a_second_and_heals() {
    let mut server = RedisServer::start_private_durable();
    let b = serve_on(nex_session::store::open(&server.url()).await.unwrap()).await;
    sign_in(&b).await;
    let token = b.get("/dashboard").await.csrf_token();
    server.stop();
    let started = Instant::now();
    let post = b.post_form("/counter", &[("_csrf_token", &token)]).await;
    assert_eq!(post.status, 503, "a write during the outage: {}", post.body);
    assert!(started.elapsed() < Duration::from_millis(1600), "POST took {:?}", started.elapsed());
    for path in ["/", "/dashboard", "/counter", "/login"] {
        let started = Instant::now();
        let page = b.get(path).await;
        let took = started.elapsed();
        assert_eq!(page.status, 503, "{path} during the outage: {}", page.body);
        assert!(page.body.to_lowercase().contains("try again"), "{path}: {}", page.body);
        assert!(took < Duration::from_millis(1600), "{path} took {took:?}");
    }
    server.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = b.get("/").await;
        if page.status == 200 {
            assert!(page.body.contains("Signed in as"), "the login survived the outage: {}", page.body);
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not recover after Redis came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct DemoProcess(Child);
impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_demo(port: u16, store: &str) -> DemoProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_nex-demo"))
        .env("PORT", port.to_string())
        .env("NEX_SESSION_STORE", store)
        .env("SECRET_KEY_BASE", support::SECRET)
        .env("NEX_ENV", "dev")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    DemoProcess(child)
}

async fn wait_up(b: &Browser) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !b.is_up().await {
        assert!(Instant::now() < deadline, "the demo did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_write_through_kill_9() {
    let dir = TempDir::new("kill9");
    let store = format!("sqlite://{}", dir.0.join("s.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut demo = spawn_demo(port, &store);
    let b = Browser::new(addr);
    wait_up(&b).await;
    sign_in(&b).await;
    let token = b.get("/dashboard").await.csrf_token();
    // Increment from 8 concurrent clients; count what the server acknowledged (303).
    let acknowledged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (b, token, acked) = (b.clone(), token.clone(), acknowledged.clone());
            tokio::spawn(async move {
                loop {
                    match b.try_post_form("/counter", &[("_csrf_token", &token)]).await {
                        Some(303) => {
                            acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    demo.0.kill().unwrap(); // SIGKILL mid-load
    demo.0.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    assert!(acked > 10, "the load ran ({acked} acknowledged increments)");
    let _restarted = spawn_demo(port, &store);
    wait_up(&b).await;
    let counter: u64 = b.get("/counter").await.body.parse().unwrap();
    println!("acknowledged {acked} increments before kill -9; counter after restart: {counter}");
    assert!(counter >= acked, "lost acknowledged writes: counter {counter} < acknowledged {acked}");
    assert!(counter <= acked + 8, "at most the in-flight requests may have landed unacknowledged");
}
