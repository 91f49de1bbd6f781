//! The HTTP test harness: an app on a free loopback port, and clients for it.
//!
//! [`HttpClient`] sends exactly what a test says (a session cookie or none);
//! [`Browser`] keeps cookies between requests as a browser does. Both answer
//! with a [`Reply`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The session cookie's name (as `nex_session_core::COOKIE_NAME`).
const SESSION_COOKIE: &str = "_nex_session";

/// Serves `app` on a free loopback port until the test's runtime ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One HTTP exchange's result.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// Every value of header `name`, joined with `, ` (`None` when absent).
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The `_nex_session` value this reply sets (`Some("")` for a deletion). For a
    /// layer with another cookie name, use [`Reply::set_cookie_value`].
    pub fn session_cookie(&self) -> Option<String> {
        self.set_cookie_value(SESSION_COOKIE)
    }

    /// The value a `Set-Cookie` of this reply gives cookie `name`.
    pub fn set_cookie_value(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.set_cookies
            .iter()
            .find_map(|c| c.strip_prefix(&prefix).map(|rest| rest.split(';').next().unwrap().to_owned()))
    }

    /// The whole `Set-Cookie` header of the `_nex_session` cookie.
    pub fn session_set_cookie_header(&self) -> Option<&String> {
        self.set_cookie_header(SESSION_COOKIE)
    }

    /// The whole `Set-Cookie` header of cookie `name` (a session cookie with a
    /// configured name, a side cookie, …).
    pub fn set_cookie_header(&self, name: &str) -> Option<&String> {
        self.set_cookies.iter().find(|c| c.strip_prefix(name).is_some_and(|rest| rest.starts_with('=')))
    }

    /// The `_csrf_token` value of the first form on the page.
    pub fn csrf_token(&self) -> String {
        let marker = "name=\"_csrf_token\" value=\"";
        let start = self.body.find(marker).unwrap_or_else(|| panic!("no CSRF field in: {}", self.body)) + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

/// A client that sends exactly the cookies a test gives it.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http(), addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `method path` with the session cookie `cookie`, if any.
    pub async fn request(&self, method: &str, path: &str, cookie: Option<&str>) -> Reply {
        let mut req = http::Request::builder().method(method).uri(self.url(path));
        if let Some(cookie) = cookie {
            req = req.header("cookie", format!("{SESSION_COOKIE}={cookie}"));
        }
        self.send(req.body(Full::new(Bytes::new())).unwrap()).await
    }

    /// `method path` with a whole `Cookie` header.
    pub async fn request_with_cookie_header(&self, method: &str, path: &str, header: &str) -> Reply {
        let req = http::Request::builder().method(method).uri(self.url(path)).header("cookie", header);
        self.send(req.body(Full::new(Bytes::new())).unwrap()).await
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.request("GET", path, cookie).await
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.request("POST", path, cookie).await
    }

    /// Sends a request as built; panics when the server cannot be reached.
    pub async fn send(&self, req: http::Request<Full<Bytes>>) -> Reply {
        self.try_send(req).await.expect("HTTP request to the test server")
    }

    /// Sends a request as built; `None` when the connection fails (a killed server).
    pub async fn try_send(&self, req: http::Request<Full<Bytes>>) -> Option<Reply> {
        let res = self.client.request(req).await.ok()?;
        let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (status, location, content_type) = (res.status().as_u16(), header("location"), header("content-type"));
        let set_cookies = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.ok()?.to_bytes().to_vec();
        Some(Reply { status, location, content_type, set_cookies, headers, body: String::from_utf8(body).unwrap() })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A browser-like client: keeps cookies, does not follow redirects.
#[derive(Clone)]
pub struct Browser {
    http: HttpClient,
    pub cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self { http: HttpClient::new(addr), cookies: Default::default() }
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.addr
    }

    /// A browser for this one's server that starts with `other`'s cookies.
    pub fn clone_with_cookies(&self, other: &Browser) -> Browser {
        let b = Browser::new(self.addr());
        *b.cookies.lock().unwrap() = other.cookies.lock().unwrap().clone();
        b
    }

    /// Whether the server answers at all.
    pub async fn is_up(&self) -> bool {
        self.http.try_send(self.build("GET", "/", None, &[])).await.is_some()
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies.lock().unwrap().insert(name.to_owned(), value.to_owned());
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }

    /// POSTs form fields (url-encoded).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.send("POST", path, Some(form(fields)), &[("content-type", "application/x-www-form-urlencoded")]).await
    }

    /// Like `post_form`, but `None` when the connection fails (a killed server).
    pub async fn try_post_form(&self, path: &str, fields: &[(&str, &str)]) -> Option<u16> {
        let req =
            self.build("POST", path, Some(form(fields)), &[("content-type", "application/x-www-form-urlencoded")]);
        let reply = self.http.try_send(req).await?;
        self.keep(&reply);
        Some(reply.status)
    }

    pub async fn post_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("POST", path, Some(String::new()), headers).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<String>, headers: &[(&str, &str)]) -> Reply {
        let reply = self.http.send(self.build(method, path, body, headers)).await;
        self.keep(&reply);
        reply
    }

    fn build(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::builder().method(method).uri(self.http.url(path));
        let cookie_header =
            self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        if !cookie_header.is_empty() {
            req = req.header("cookie", cookie_header);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Full::new(Bytes::from(body.unwrap_or_default()))).unwrap()
    }

    /// Keeps the cookies a reply sets, and forgets the ones it deletes.
    fn keep(&self, reply: &Reply) {
        let mut jar = self.cookies.lock().unwrap();
        for sc in &reply.set_cookies {
            let pair = sc.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if sc.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }
}

/// URL-encodes form fields.
fn form(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
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
