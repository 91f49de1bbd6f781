//! A minimal W3C WebDriver client for chromedriver: just what the browser test needs.
//!
//! Ours rather than `fantoccini` 0.22.1 or `thirtyfour` 0.38.1 (decided 2026-12-06),
//! because it adds no crate to `Cargo.lock`: it uses only this crate's other
//! dev-dependencies. Both libraries drive Debian's chromedriver over plain http with
//! their smallest feature set (fantoccini with no default features and a hyper
//! `HttpConnector`, thirtyfour with only `reqwest`). With that set they add crates
//! not yet in `Cargo.lock` (`cargo tree` of this crate in a scratch copy of the
//! workspace): 23 for fantoccini, including second copies of `http` 0.2, `cookie`
//! and `thiserror` 1, and 12 for thirtyfour. Their defaults add 32 (fantoccini,
//! with OpenSSL through native-tls) and 49 (thirtyfour, with aws-lc-sys). Cold
//! `cargo build` of a scratch crate on this 2-core machine, quietest of three runs:
//! our dependencies 9.5 s, fantoccini 27.4 s, thirtyfour 31.3 s. With either
//! library, starting chromedriver and Chromium and the waits would still be ours.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Finds a program on PATH or at one of the usual Debian locations.
fn find_program(names: &[&str]) -> Option<String> {
    for name in names {
        if name.starts_with('/') && std::path::Path::new(name).exists() {
            return Some((*name).to_owned());
        }
        if let Ok(out) = Command::new("which").arg(name).output() {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && !path.is_empty() {
                return Some(path);
            }
        }
    }
    None
}

/// A running chromedriver with one headless Chromium session.
pub struct Driver {
    child: Child,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    base: String,
    session: String,
    _profile: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Driver {
    /// Starts chromedriver and a headless Chromium. Panics with install instructions when missing.
    pub async fn start() -> Self {
        let install = "install them with: apt-get update && apt-get install -y chromium chromium-driver";
        let chromium = find_program(&["chromium", "chromium-browser", "/usr/bin/chromium"])
            .unwrap_or_else(|| panic!("Chromium is not installed; {install}"));
        let chromedriver = find_program(&["chromedriver", "/usr/bin/chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver is not installed; {install}"));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {chromedriver}: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let client = Client::builder(TokioExecutor::new()).build_http();
        let profile = std::env::temp_dir().join(format!("nex-demo-chromium-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&profile).unwrap();
        let mut driver = Self { child, client, base, session: String::new(), _profile: TempDir(profile.clone()) };
        driver.wait_ready().await;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1000,800",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let created = driver.call("POST", "/session", Some(caps)).await;
        driver.session =
            created["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {created}")).to_owned();
        driver
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let req = http::Request::get(format!("{}/status", self.base)).body(Full::new(Bytes::new())).unwrap();
            if let Ok(res) = self.client.request(req).await {
                if res.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready within 20 s");
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = self.client.request(req).await.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {method} {path} failed ({status}): {value}");
        value["value"].clone()
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Opens a URL and waits for the page load.
    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url }))).await;
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.call("POST", &self.at("/refresh"), Some(json!({}))).await;
    }

    /// Goes back in history.
    pub async fn back(&self) {
        self.call("POST", &self.at("/back"), Some(json!({}))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call("GET", &self.at("/url"), None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        let script = json!({"script": "return document.body.innerText", "args": []});
        self.call("POST", &self.at("/execute/sync"), Some(script)).await.as_str().unwrap_or_default().to_owned()
    }

    /// The visible text of each element matching `css`, in page order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let script = json!({
            "script": "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)",
            "args": [css],
        });
        let found = self.call("POST", &self.at("/execute/sync"), Some(script)).await;
        found
            .as_array()
            .unwrap_or_else(|| panic!("no list for {css}: {found}"))
            .iter()
            .map(|t| t.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn element(&self, css: &str) -> String {
        let found = self.call("POST", &self.at("/element"), Some(json!({"using": "css selector", "value": css}))).await;
        found[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no element {css}")).to_owned()
    }

    /// Types into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call("POST", &self.at(&format!("/element/{id}/clear")), Some(json!({}))).await;
        self.call("POST", &self.at(&format!("/element/{id}/value")), Some(json!({ "text": text }))).await;
    }

    /// Clicks the element matching `css` (a submit button waits for the next page).
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call("POST", &self.at(&format!("/element/{id}/click")), Some(json!({}))).await;
    }

    /// The value of the cookie `name` the browser holds for the current page, if any.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let all = self.call("GET", &self.at("/cookie"), None).await;
        all.as_array()?.iter().find(|c| c["name"] == name).and_then(|c| c["value"].as_str()).map(str::to_owned)
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = self.call("GET", &self.at("/screenshot"), None).await;
        base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).unwrap()
    }

    /// Waits until the page text contains `needle`, up to 10 s.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text().await;
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the browser session and chromedriver.
    pub async fn quit(mut self) {
        let _ = self.call("DELETE", &self.at(""), None).await;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the demo server listens, as a URL.
pub fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
