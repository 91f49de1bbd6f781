//! Test support: the demo on a real loopback port, and a cookie-keeping HTTP client.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod webdriver;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use nex_session::store::MemoryStore;
use nex_session::token::SecretKeyBase;
use nex_session::SessionConfig;

pub const SECRET: &str = "demo-test-secret-demo-test-secret-0123";

pub fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new(SECRET).unwrap()).with_secure_cookie(false)
}

/// Serves the demo app on 127.0.0.1 (a free port) until the runtime ends.
pub async fn serve_demo(config: SessionConfig) -> SocketAddr {
    let app = nex_demo::app(config, Arc::new(MemoryStore::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// The `_csrf_token` value of the first form on the page.
    pub fn csrf_token(&self) -> String {
        let marker = "name=\"_csrf_token\" value=\"";
        let start = self.body.find(marker).unwrap_or_else(|| panic!("no CSRF field in: {}", self.body)) + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

/// A browser-like client: keeps cookies, does not follow redirects.
#[derive(Clone)]
pub struct Browser {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    pub cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http(), addr, cookies: Default::default() }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client for another server that starts with `other`'s cookies.
    pub fn clone_with_cookies(&self, other: &Browser) -> Browser {
        let b = Browser::new(self.addr);
        *b.cookies.lock().unwrap() = other.cookies.lock().unwrap().clone();
        b
    }

    /// Whether the server answers at all.
    pub async fn is_up(&self) -> bool {
        let req = http::Request::get(format!("http://{}/", self.addr)).body(Full::new(Bytes::new())).unwrap();
        self.client.request(req).await.is_ok()
    }

    /// Like `post_form`, but `None` when the connection fails (server killed).
    pub async fn try_post_form(&self, path: &str, fields: &[(&str, &str)]) -> Option<u16> {
        let body = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
        let cookie_header =
            self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let req = http::Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie_header)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = self.client.request(req).await.ok()?;
        let status = res.status().as_u16();
        res.into_body().collect().await.ok()?;
        Some(status)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies.lock().unwrap().insert(name.to_owned(), value.to_owned());
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send("GET", path, None, &[]).await
    }

    /// POSTs form fields (url-encoded).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
        self.send("POST", path, Some(body), &[("content-type", "application/x-www-form-urlencoded")]).await
    }

    pub async fn post_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(String::new()), headers).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<String>, headers: &[(&str, &str)]) -> Page {
        let mut req = http::Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        let cookie_header =
            self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        if !cookie_header.is_empty() {
            req = req.header("cookie", cookie_header);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res =
            self.client.request(req.body(Full::new(Bytes::from(body.unwrap_or_default()))).unwrap()).await.unwrap();
        let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (status, location, content_type) = (res.status().as_u16(), header("location"), header("content-type"));
        let set_cookies: Vec<String> =
            res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        for sc in &set_cookies {
            let pair = sc.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if sc.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Page { status, location, content_type, set_cookies, body }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
