//! Demo test support: the demo on a real loopback port (through the workspace's
//! one HTTP harness, `nex_testkit::http`), and the headless-Chromium driver.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod process;
pub mod webdriver;

use std::net::SocketAddr;
use std::sync::Arc;

use nex_session::store::MemoryStore;
use nex_session::token::SecretKeyBase;
use nex_session::SessionConfig;

pub const SECRET: &str = "demo-test-secret-demo-test-secret-0123";

pub fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new(SECRET).unwrap()).with_secure_cookie(false)
}

/// Serves the demo app on 127.0.0.1 (a free port) until the runtime ends.
pub async fn serve_demo(config: SessionConfig) -> SocketAddr {
    nex_testkit::http::serve(nex_demo::app(config, Arc::new(MemoryStore::new()))).await
}

/// Visits /login for a CSRF token, as a browser does, then posts the demo account's
/// email with `password`.
pub async fn sign_in_with(b: &nex_testkit::http::Browser, password: &str) -> nex_testkit::http::Reply {
    let token = b.get("/login").await.csrf_token();
    b.post_form("/login", &[("email", "demo@example.com"), ("password", password), ("_csrf_token", &token)]).await
}

/// Signs in with the demo account; the answer must be the redirect to the dashboard.
pub async fn sign_in(b: &nex_testkit::http::Browser) {
    let page = sign_in_with(b, "nex-demo").await;
    assert_eq!(page.location.as_deref(), Some("/dashboard"));
}

/// Signs in with the demo account from a browser that sends `User-Agent: user_agent`
/// (the test `Browser` sends none); the answer must be the redirect to the dashboard.
pub async fn sign_in_from(b: &nex_testkit::http::Browser, user_agent: &str) {
    use http_body_util::Full;
    use hyper::body::Bytes;

    let token = b.get("/login").await.csrf_token();
    let body = format!("email=demo%40example.com&password=nex-demo&_csrf_token={}", percent_encode(&token));
    let jar = b.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let mut request = http::Request::post(format!("http://{}/login", b.addr()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", user_agent);
    if !jar.is_empty() {
        request = request.header("cookie", jar);
    }
    let reply =
        nex_testkit::http::HttpClient::new(b.addr()).send(request.body(Full::new(Bytes::from(body))).unwrap()).await;
    assert_eq!(reply.location.as_deref(), Some("/dashboard"), "{}", reply.body);
    // Keep the cookies the answer sets and forget the ones it deletes, as `Browser` does.
    let mut jar = b.cookies.lock().unwrap();
    for set_cookie in &reply.set_cookies {
        let (name, value) = set_cookie.split(';').next().unwrap().split_once('=').unwrap();
        if set_cookie.contains("Max-Age=0") {
            jar.remove(name);
        } else {
            jar.insert(name.to_owned(), value.to_owned());
        }
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The three stores' URLs (memory, a SQLite file, a private Redis), with what must outlive them.
pub struct StoreUrls {
    pub urls: Vec<String>,
    _dir: nex_testkit::TempDir,
    _redis: nex_testkit::RedisServer,
}

/// Fresh URLs of the three stores for `test`.
pub fn store_urls(test: &str) -> StoreUrls {
    let dir = nex_testkit::TempDir::new(test);
    let redis = nex_testkit::RedisServer::start_private();
    let urls = vec!["memory".to_owned(), format!("sqlite://{}", dir.0.join("s.db").display()), redis.url()];
    StoreUrls { urls, _dir: dir, _redis: redis }
}
