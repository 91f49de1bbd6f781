//! How the real `nex-demo` binary reads `NEX_ENV` and `SECRET_KEY_BASE`: only an
//! explicit `dev`/`development` may use the public development secret; any other
//! set value is production, which refuses to start without a secret.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use nex_testkit::http::Browser;
use support::process::{demo_command, free_port, DemoProcess};

/// Runs the demo with `env` (no secret unless given) and expects it to exit:
/// its exit code (`None` if it was still serving after 20 s, a hang guard) and stderr.
fn refused_start(env: &[(&str, OsString)]) -> (Option<i32>, String) {
    // One file per call (the environment may hold paths: no use in the name).
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stderr_path = std::env::temp_dir().join(format!("nex-demo-start-env-{}-{call}.stderr", std::process::id()));
    let mut command = demo_command();
    command.env("PORT", free_port().to_string()).env("NEX_SESSION_STORE", "memory");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    (code, stderr)
}

#[test]
fn a_misspelt_production_env_without_a_secret_refuses_to_start_and_says_what_to_set() {
    for value in ["PROD", "staging", "Production", ""] {
        let (code, stderr) = refused_start(&[("NEX_ENV", value.into())]);
        assert_eq!(code, Some(1), "NEX_ENV={value:?} must not start; stderr: {stderr}");
        assert!(stderr.contains("production mode"), "NEX_ENV={value:?}: {stderr}");
        assert!(stderr.contains("SECRET_KEY_BASE is not set"), "NEX_ENV={value:?}: {stderr}");
        assert!(stderr.contains("nex-session gen-secret"), "NEX_ENV={value:?}: {stderr}");
        assert!(!stderr.contains("PUBLIC development secret"), "NEX_ENV={value:?}: {stderr}");
    }
}

#[cfg(unix)]
#[test]
fn a_non_utf8_secret_refuses_to_start_even_in_development() {
    use std::os::unix::ffi::OsStringExt;
    let mut secret = support::SECRET.as_bytes().to_vec();
    secret[0] = 0xff;
    let (code, stderr) = refused_start(&[("NEX_ENV", "dev".into()), ("SECRET_KEY_BASE", OsString::from_vec(secret))]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("SECRET_KEY_BASE is set but is not valid UTF-8"), "{stderr}");
    assert!(!stderr.contains("PUBLIC development secret"), "{stderr}");
}

/// A failed login writes a flash; without a session it rides in the `_nex_flash`
/// cookie, which carries the layer's cookie attributes.
async fn flash_set_cookie_after_a_bad_login(demo: &DemoProcess) -> String {
    let browser = Browser::new(demo.addr);
    let token = browser.get("/login").await.csrf_token();
    let fields = [("email", "demo@example.com"), ("password", "wrong"), ("_csrf_token", token.as_str())];
    let reply = browser.post_form("/login", &fields).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    reply.set_cookies.iter().find(|c| c.starts_with("_nex_flash=")).expect("the flash set its cookie").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_set_nex_env_other_than_dev_gets_secure_cookies() {
    let mut command = demo_command();
    command.env("NEX_ENV", "staging").env("SECRET_KEY_BASE", support::SECRET);
    let demo = DemoProcess::start(command, "staging").await;
    let cookie = flash_set_cookie_after_a_bad_login(&demo).await;
    assert!(cookie.contains("; Secure"), "NEX_ENV=staging is production: {cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_env_at_all_the_demo_starts_in_development_with_a_loud_warning() {
    // The README's first command: a fresh machine, nothing set.
    let demo = DemoProcess::start(demo_command(), "no-env").await;
    let cookie = flash_set_cookie_after_a_bad_login(&demo).await;
    assert!(!cookie.contains("Secure"), "development cookies work over plain http: {cookie}");
    let stderr = demo.stderr();
    assert_eq!(stderr.matches("PUBLIC development secret").count(), 1, "the warning, once: {stderr}");
}

#[test]
fn a_store_url_that_is_not_utf8_refuses_to_start_instead_of_using_memory() {
    use std::os::unix::ffi::OsStringExt;
    let url = OsString::from_vec(b"sqlite:\xffsessions.db".to_vec());
    let (code, stderr) = refused_start(&[("NEX_SESSION_STORE", url)]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("NEX_SESSION_STORE is set but is not valid UTF-8"), "{stderr}");
}

/// Production connectivity: each refusal at start is exit 1 before serving,
/// with a message that names the URL parameter to fix and hides the password.
#[test]
fn tls_and_sentinel_misconfigurations_refuse_to_start_and_name_the_fix() {
    use nex_testkit::{Pki, RedisServer, ServerTls};
    let pki = Pki::new("demo-start");
    let stranger = Pki::new("demo-start-stranger");
    let redis = RedisServer::start_tls(ServerTls {
        ca: pki.ca_file(),
        server: pki.server("redis", &["localhost"]),
        client: None,
    });
    // A CA that did not sign the server's certificate.
    let url = format!("rediss://:hunter2@localhost:{}?sslrootcert={}", redis.port, stranger.ca_file().display());
    let (code, stderr) = refused_start(&[("NEX_ENV", "dev".into()), ("NEX_SESSION_STORE", url.into())]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("sslrootcert") && !stderr.contains("hunter2"), "{stderr}");
    // A plain client at the TLS-only port.
    let url = format!("redis://localhost:{}", redis.port);
    let (code, stderr) = refused_start(&[("NEX_ENV", "dev".into()), ("NEX_SESSION_STORE", url.into())]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("rediss://"), "{stderr}");
    // A service name no sentinel knows.
    let sentinels = nex_testkit::SentinelSet::start();
    let url = sentinels.url().replace(nex_testkit::sentinel::SERVICE, "typo");
    let (code, stderr) = refused_start(&[("NEX_ENV", "dev".into()), ("NEX_SESSION_STORE", url.into())]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("does not know the service name"), "{stderr}");
    // PostgreSQL that accepts only TLS, asked without sslmode.
    let postgres = nex_testkit::PostgresServer::start_private_tls(
        &pki.server("postgres", &["127.0.0.1"]),
        &pki.ca_file(),
        nex_testkit::postgres::ClientCerts::NotRequired,
    );
    let (code, stderr) = refused_start(&[("NEX_ENV", "dev".into()), ("NEX_SESSION_STORE", postgres.url().into())]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("sslmode=verify-full"), "{stderr}");
}

/// Cookie settings each valid alone but not together: exit 1 with the rule,
/// before the port is bound (no "listening" line) and without a panic.
#[test]
fn cookie_settings_that_do_not_go_together_refuse_to_start_without_a_panic() {
    let cases: [&[(&str, &str)]; 2] = [
        &[("NEX_SESSION_SAME_SITE", "none"), ("NEX_SESSION_SECURE_COOKIE", "false")],
        &[("NEX_SESSION_COOKIE_NAME", "__Host-session"), ("NEX_SESSION_COOKIE_DOMAIN", "example.com")],
    ];
    for env in cases {
        let mut all: Vec<(&str, OsString)> = env.iter().map(|(k, v)| (*k, OsString::from(v))).collect();
        all.push(("NEX_ENV", "dev".into()));
        let (code, stderr) = refused_start(&all);
        assert_eq!(code, Some(1), "{env:?}: {stderr}");
        assert!(stderr.contains("do not go together") && !stderr.contains("panicked"), "{env:?}: {stderr}");
        assert!(!stderr.contains("listening"), "{env:?}: {stderr}");
    }
}
