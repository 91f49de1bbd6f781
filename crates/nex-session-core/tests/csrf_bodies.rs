//! `CsrfLayer` keeps form bodies under control, over real HTTP on 127.0.0.1 and
//! raw sockets (to send a body slowly, or not at all): too large is `413` before
//! reading, too slow is `408` and the connection closed, too many at once is
//! `503` with `Retry-After`, and bodies that are not forms are never buffered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use nex_session::csrf::CsrfLayer;
use nex_session::token::SecretKeyBase;
use nex_session::{SessionConfig, SessionLayer};
use nex_testkit::http::serve;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn app(csrf: CsrfLayer) -> Router {
    let config = SessionConfig::new(SecretKeyBase::new("test-secret-test-secret-test-secret-42").unwrap())
        .with_secure_cookie(false);
    Router::new().route("/save", post(|| async { "saved" })).layer(csrf).layer(SessionLayer::memory(config))
}

/// Sends the head of a form POST and `body`, and keeps the connection open.
async fn start_form(addr: SocketAddr, content_length: usize, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /save HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream
}

/// Everything the server sends until it closes the connection (or `within` passes).
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_sent_too_slowly_is_answered_408_and_its_connection_closed() {
    let addr = serve(app(CsrfLayer::new().with_form_timeout(Duration::from_millis(500)))).await;
    let started = Instant::now();
    let mut stalled = start_form(addr, 1000, b"a=1&").await;
    let (reply, closed) = read_to_close(&mut stalled, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(closed, "the server must close the stalled connection: {reply}");
    assert!(started.elapsed() < Duration::from_secs(3), "cut off after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_larger_than_the_limit_is_refused_before_its_body_is_read() {
    let addr = serve(app(CsrfLayer::new())).await;
    // Declares 1 MiB and sends none of it: the answer comes anyway.
    let mut big = start_form(addr, 1 << 20, b"").await;
    let (reply, closed) = read_to_close(&mut big, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(closed, "{reply}");
    // The default limit is 64 KiB: a form just under it is read (and refused for its missing token).
    let body = "a=".to_owned() + &"x".repeat(64 * 1024 - 2);
    let mut fits = start_form(addr, body.len(), body.as_bytes()).await;
    let (reply, _) = read_to_close(&mut fits, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 403"), "read, then refused for the token: {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_beyond_the_buffer_budget_get_503_with_retry_after_until_bytes_are_freed() {
    let layer = CsrfLayer::new().with_buffer_budget(2000).with_form_timeout(Duration::from_secs(1));
    let addr = serve(app(layer)).await;
    // Two stalled forms hold 1000 bytes each.
    let mut first = start_form(addr, 1000, b"a").await;
    let mut second = start_form(addr, 1000, b"a").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = start_form(addr, 1000, b"a").await;
    let (reply, _) = read_to_close(&mut third, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("retry-after: 1"), "{reply}");
    // Once the stalled ones are cut off, their bytes are free again.
    for stalled in [&mut first, &mut second] {
        let (reply, _) = read_to_close(stalled, Duration::from_secs(5)).await;
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    }
    let mut later = start_form(addr, 3, b"a=1").await;
    let (reply, _) = read_to_close(&mut later, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 403"), "read (no token): {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_forms_are_never_buffered() {
    // No budget at all: a form could not even be read, yet JSON passes to the check.
    let addr = serve(app(CsrfLayer::new().with_buffer_budget(0))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = "POST /save HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    stream.write_all(request.as_bytes()).await.unwrap();
    let (reply, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 403"), "refused for its missing token, not for the budget: {reply}");
}

/// `CsrfLayer` outside `SessionLayer` (an easy mistake: the last `.layer` is the
/// outermost) answers the very first request, a page load, with a 500 whose body
/// says which order to use, not a bare 500 at the first form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csrf_layer_outside_the_session_layer_says_so_on_the_first_request() {
    let config = SessionConfig::new(SecretKeyBase::new("test-secret-test-secret-test-secret-42").unwrap())
        .with_secure_cookie(false);
    let wrong: Router = Router::new()
        .route("/save", post(|| async { "saved" }).get(|| async { "page" }))
        .layer(SessionLayer::memory(config))
        .layer(CsrfLayer::new());
    let client = nex_testkit::http::HttpClient::new(serve(wrong).await);
    for reply in [client.get("/save", None).await, client.post("/save", None).await] {
        assert_eq!(reply.status, 500, "{reply:?}");
        assert!(reply.body.contains("SessionLayer must wrap it"), "{}", reply.body);
        assert!(reply.body.contains(".layer(CsrfLayer::new()).layer(session_layer)"), "{}", reply.body);
    }
    // In the right order the page loads.
    let config = SessionConfig::new(SecretKeyBase::new("test-secret-test-secret-test-secret-42").unwrap())
        .with_secure_cookie(false);
    let right: Router = Router::new()
        .route("/save", post(|| async { "saved" }).get(|| async { "page" }))
        .layer(CsrfLayer::new())
        .layer(SessionLayer::memory(config));
    let client = nex_testkit::http::HttpClient::new(serve(right).await);
    assert_eq!(client.get("/save", None).await.body, "page");
}
