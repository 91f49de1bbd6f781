//! The `nex-session` binary, run as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::process::{Command, Output};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn run(secret: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nex-session"));
    cmd.args(args);
    for var in ["SECRET_KEY_BASE", "SECRET_KEY_BASE_OLD", "NEX_ENV", "NEX_SESSION_COOKIE_NAME", "NEX_SESSION_STORE"] {
        cmd.env_remove(var);
    }
    if let Some(secret) = secret {
        cmd.env("SECRET_KEY_BASE", secret);
    }
    cmd.output().expect("runs the nex-session binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap().trim_end().to_owned()
}

/// The first line of stdout (`token verify` prints a session cookie's id there).
fn first_line(o: &Output) -> String {
    stdout(o).lines().next().unwrap_or_default().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn gen_secret_prints_a_fresh_secret_of_the_requested_length() {
    let a = run(None, &["gen-secret"]);
    let b = run(None, &["gen-secret"]);
    assert!(a.status.success());
    assert_eq!(stdout(&a).len(), 64);
    assert_ne!(stdout(&a), stdout(&b));
    assert_eq!(stdout(&run(None, &["gen-secret", "--length", "40"])).len(), 40);
    assert_eq!(run(None, &["gen-secret", "--length", "8"]).status.code(), Some(2));
}

#[test]
fn sign_reproduces_a_plug_crypto_vector_and_verify_reads_it_back() {
    // Row 1 of plug_crypto_vectors.tsv: the secret is base64 in the file.
    let secret = "|fV@wI?,1|j@LGAa=}EszwoWeT+8dD=e6;x_orf";
    let data = "klMB987yMhqOw6Ve43B16YssSK0TlOpG";
    let expected = "SFMyNTY.g2gDbQAAACBrbE1COTg3eU1ocU93NlZlNDNCMTZZc3NTSzBUbE9wR24GABiWHtR2AWIACTqA.W3pgL-QjPyFm9VCfxCu6d_A4NmV9dV5pD6_XAWBd-BA";
    let signed = run(Some(secret), &["token", "sign", "--signed-at", "1609876543", "--max-age", "604800", data]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    assert_eq!(stdout(&signed), expected);
    let verified = run(Some(secret), &["token", "verify", "--max-age", "999999999", expected]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    // The data is a session id, so it comes first, then the cookie's expiry, labelled.
    assert_eq!(first_line(&verified), data);
    assert!(
        stdout(&verified).contains("\nexpiry: the app's default\nsigned: 2021-01-05 19:55:43 UTC"),
        "{}",
        stdout(&verified)
    );
}

#[test]
fn verify_prints_invalid_expired_or_missing_first_on_stderr_and_exits_1() {
    let token = stdout(&run(Some(SECRET), &["token", "sign", "session-id"]));
    let ok = run(Some(SECRET), &["token", "verify", &token]);
    assert_eq!((ok.status.code(), stdout(&ok)), (Some(0), "session-id".to_owned()));

    let forged = format!("{}{}", &token[..token.len() - 1], if token.ends_with('A') { 'B' } else { 'A' });
    let invalid = run(Some(SECRET), &["token", "verify", &forged]);
    assert_eq!(invalid.status.code(), Some(1));
    assert_eq!(stderr(&invalid).split_whitespace().next(), Some("invalid:"));

    let old = stdout(&run(Some(SECRET), &["token", "sign", "--signed-at", "1000", "session-id"]));
    let expired = run(Some(SECRET), &["token", "verify", &old]);
    assert_eq!(expired.status.code(), Some(1));
    assert!(stderr(&expired).starts_with("expired"), "{}", stderr(&expired));

    let missing = run(Some(SECRET), &["token", "verify", ""]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).starts_with("missing"), "{}", stderr(&missing));

    let other_salt = run(Some(SECRET), &["token", "verify", "--salt", "other", &token]);
    assert!(stderr(&other_salt).starts_with("invalid"));
}

/// A session cookie's data as the layer writes it: the id alone (defaults), or
/// `<id>.<created_ms>.<mode>`. `token verify` prints the id first, then the rest
/// labelled, and all of it in `--json`.
#[test]
fn verify_tells_the_id_then_the_expiry_mode_and_times_of_a_session_cookie() {
    let id = nex_session::SessionId::generate().unwrap();
    let remembered = format!("{}.1796550368793.p2592000", id.as_str());
    let token = stdout(&run(Some(SECRET), &["token", "sign", &remembered]));
    let shown = run(Some(SECRET), &["token", "verify", &token]);
    let lines: Vec<String> = stdout(&shown).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], id.as_str(), "{lines:?}");
    assert_eq!(lines[1], "expiry: remember me, 30d 0h of inactivity");
    assert_eq!(lines[2], "created: 2026-12-06 09:46:08 UTC");
    assert!(lines[3].starts_with("signed: ") && lines[3].ends_with(" UTC"), "{lines:?}");

    let json = run(Some(SECRET), &["token", "verify", "--json", &token]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(doc["id"], id.as_str());
    assert_eq!((doc["expiry"].as_str(), doc["ttl_s"].as_i64()), (Some("persistent"), Some(2_592_000)));
    assert_eq!(
        (doc["created_ms"].as_i64(), doc["created_at"].as_str()),
        (Some(1_796_550_368_793), Some("2026-12-06T09:46:08Z"))
    );
    assert_eq!(doc["data"], remembered);

    let browser = stdout(&run(Some(SECRET), &["token", "sign", &format!("{}.5.b", id.as_str())]));
    let out = stdout(&run(Some(SECRET), &["token", "verify", &browser]));
    assert!(out.contains("expiry: browser session"), "{out}");
    let plain = stdout(&run(Some(SECRET), &["token", "sign", id.as_str()]));
    let doc: serde_json::Value =
        serde_json::from_str(&stdout(&run(Some(SECRET), &["token", "verify", "--json", &plain]))).unwrap();
    assert_eq!(
        (doc["id"].as_str(), doc["expiry"].is_null(), doc["created_ms"].is_null()),
        (Some(id.as_str()), true, true)
    );
    // Not a session cookie (another salt, or other data): the data as it is.
    let other = stdout(&run(Some(SECRET), &["token", "sign", "--salt", "other", &remembered]));
    assert_eq!(stdout(&run(Some(SECRET), &["token", "verify", "--salt", "other", &other])), remembered);
}

#[test]
fn a_missing_or_short_secret_exits_2_with_a_how_to() {
    let missing = run(None, &["token", "sign", "x"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("gen-secret"), "{}", stderr(&missing));
    let short = run(Some("short"), &["token", "verify", "x"]);
    assert_eq!(short.status.code(), Some(2));
    assert!(stderr(&short).contains("at least 32 bytes"), "{}", stderr(&short));
}

#[test]
fn verify_picks_the_named_cookie_from_a_pasted_cookie_header() {
    let token = stdout(&run(Some(SECRET), &["token", "sign", "session-id"]));
    let header = format!("Cookie: _nex_session=SFMyNTY.x.y; admin_session={token}");
    let named = run(Some(SECRET), &["token", "verify", "--cookie-name", "admin_session", &header]);
    assert_eq!((named.status.code(), stdout(&named)), (Some(0), "session-id".to_owned()), "{}", stderr(&named));
    let by_env = Command::new(env!("CARGO_BIN_EXE_nex-session"))
        .args(["token", "verify", &format!("admin_session={token}")])
        .env("SECRET_KEY_BASE", SECRET)
        .env("NEX_SESSION_COOKIE_NAME", "admin_session")
        .output()
        .unwrap();
    assert_eq!(stdout(&by_env), "session-id", "{}", stderr(&by_env));
    let default_name = run(Some(SECRET), &["token", "verify", &format!("_nex_session={token}")]);
    assert_eq!(stdout(&default_name), "session-id");
    let absent = run(Some(SECRET), &["token", "verify", &format!("admin_session={token}")]);
    assert_eq!(absent.status.code(), Some(2));
    assert!(stderr(&absent).contains("--cookie-name"), "{}", stderr(&absent));
}

#[test]
fn help_tells_operators_how_to_debug_a_cookie() {
    let help = run(None, &["token", "--help"]);
    assert!(stdout(&help).contains("_nex_session"), "{}", stdout(&help));
}

/// A SQLite store with one session, made through the library.
fn sqlite_with_one_session(dir: &std::path::Path) -> (String, String) {
    let path = dir.join("s.db");
    let id = nex_session::SessionId::generate().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use nex_session::store::SessionStore;
        let store = nex_session::store::SqliteStore::open(&path).await.unwrap();
        let mut batch = std::collections::BTreeMap::new();
        batch.insert("user_id".to_owned(), nex_session::store::Change::Put(b"42".to_vec()));
        let exp = nex_session::token::now_ms() + 3_600_000;
        store.apply(id.store_key(), &batch, exp, nex_session::store::Presence::New).await.unwrap();
    });
    (format!("sqlite://{}", path.display()), id.as_str().to_owned())
}

#[test]
fn sessions_list_show_revoke_and_purge_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("nex-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (store, id) = sqlite_with_one_session(&dir);
    let listed = run(None, &["sessions", "--store", &store, "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let out = stdout(&listed);
    let key = nex_session::SessionId::parse(&id).unwrap().store_key().to_hex();
    assert!(out.contains(&key) && out.contains("\n1 session"), "{out}");
    assert!(!out.contains(&id), "list must not print the id (it works as a cookie)");

    let cookie =
        nex_session::token::Signer::new(&nex_session::token::SecretKeyBase::new(SECRET).unwrap(), "nex.session")
            .sign(id.as_bytes());
    let shown = run(Some(SECRET), &["sessions", "--store", &store, "show", &cookie]);
    assert!(stdout(&shown).contains("user_id = 42"), "{} {}", stdout(&shown), stderr(&shown));
    let by_id = run(None, &["sessions", "--store", &store, "show", &id]);
    assert!(stdout(&by_id).contains("user_id = 42"));
    // A whole `Cookie` header of an app with a named session cookie, as copied from a browser.
    let header = format!("theme=dark; _nex_session=SFMyNTY.other.x; admin_session={cookie}");
    let named = run(Some(SECRET), &["sessions", "--store", &store, "show", "--cookie-name", "admin_session", &header]);
    assert!(stdout(&named).contains("user_id = 42"), "{} {}", stdout(&named), stderr(&named));
    let missing = run(Some(SECRET), &["sessions", "--store", &store, "show", "theme=dark"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no cookie named \"_nex_session\""), "{}", stderr(&missing));

    let revoked = run(None, &["sessions", "--store", &store, "revoke", &id]);
    assert!(revoked.status.success());
    let gone = run(None, &["sessions", "--store", &store, "show", &key]);
    assert_eq!(gone.status.code(), Some(1));
    let purged = run(None, &["sessions", "--store", &store, "purge"]);
    assert!(stdout(&purged).starts_with("purged"), "{}", stdout(&purged));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sessions_list_on_a_real_redis() {
    let server = nex_testkit::RedisServer::start_private();
    let listed = run(None, &["sessions", "--store", &server.url(), "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).contains("0 sessions"));
    let bad = run(None, &["sessions", "--store", "redis://127.0.0.1:1", "list"]);
    assert_eq!(bad.status.code(), Some(1), "an unreachable store is a clear error");
    assert!(stderr(&bad).contains("cannot open store"));
}

#[test]
fn a_store_that_refuses_our_tls_settings_exits_1_naming_the_parameter() {
    let pki = nex_testkit::Pki::new("cli-tls");
    let redis = nex_testkit::RedisServer::start_tls(nex_testkit::ServerTls {
        ca: pki.ca_file(),
        server: pki.server("redis", &["localhost"]),
        client: None,
    });
    // The name in the URL is not the one in the certificate.
    let url = format!("rediss://127.0.0.1:{}?sslrootcert={}", redis.port, pki.ca_file().display());
    let refused = run(None, &["sessions", "--store", &url, "list"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("verify-ca"), "{}", stderr(&refused));
    // By its name, over TLS, it lists.
    let url = format!("rediss://localhost:{}?sslrootcert={}", redis.port, pki.ca_file().display());
    let listed = run(None, &["sessions", "--store", &url, "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
}

/// A fresh temporary directory for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nex-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn revoking_a_session_that_is_not_there_exits_1_and_says_so() {
    let dir = temp_dir("revoke-missing");
    let (store, id) = sqlite_with_one_session(&dir);
    let stranger = nex_session::SessionId::generate().unwrap();
    let missing = run(None, &["sessions", "--store", &store, "revoke", stranger.as_str()]);
    assert_eq!(missing.status.code(), Some(1), "{}", stdout(&missing));
    assert!(stderr(&missing).contains("nothing revoked"), "{}", stderr(&missing));
    assert!(!stdout(&missing).contains("revoked"), "must not claim a revocation: {}", stdout(&missing));

    let first = run(None, &["sessions", "--store", &store, "revoke", &id]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).starts_with("revoked"));
    let again = run(None, &["sessions", "--store", &store, "revoke", &id]);
    assert_eq!(again.status.code(), Some(1), "a second revocation finds nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_mistyped_sqlite_path_is_an_error_naming_it_and_creates_nothing() {
    let dir = temp_dir("typo");
    let typo = dir.join("sesions.db");
    let url = format!("sqlite://{}", typo.display());
    let refused = run(None, &["sessions", "--store", &url, "list"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(err.contains("sesions.db") && err.contains("--create"), "{err}");
    assert!(!typo.exists(), "no empty database may appear at a mistyped path");

    let created = run(None, &["sessions", "--store", &url, "--create", "list"]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("0 sessions"));
    assert!(typo.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn store_errors_and_help_never_show_a_redis_password() {
    for url in [
        "redis://:s3cret@127.0.0.1:1",
        "redis://ops:s3cret@127.0.0.1:1/2",
        "redis://ops:s3cr%65t@127.0.0.1:1",
        "redis+cluster://:s3cret@127.0.0.1:1,:s3cret@127.0.0.1:2",
        "reddis://:s3cret@127.0.0.1:1",
    ] {
        let out = run(None, &["sessions", "--store", url, "list"]);
        // An unknown scheme is a usage error (2); an unreachable server a failure (1).
        let expected = if url.starts_with("reddis") { 2 } else { 1 };
        assert_eq!(out.status.code(), Some(expected), "{url}");
        let (err, text) = (stderr(&out), stdout(&out));
        assert!(!err.contains("s3cr") && !text.contains("s3cr"), "{url}: {err}{text}");
        assert!(err.contains("127.0.0.1:1"), "the host stays visible: {err}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_nex-session"))
        .args(["sessions", "--help"])
        .env("NEX_SESSION_STORE", "redis://:s3cret@127.0.0.1:1")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(!stdout(&help).contains("s3cret"), "{}", stdout(&help));
}

/// Sessions bound to users, made through the library on the store at `url`:
/// alice on two devices, bob on one. Returns alice's store keys.
fn bind_sessions(url: &str) -> Vec<nex_session::StoreKey> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use nex_session::store::SessionStore;
        let store = nex_session::store::open_with(url, nex_session::store::OpenOptions::new().create_missing(true))
            .await
            .unwrap();
        let index = store.users().expect("every store of the crate indexes users");
        let mut alices = Vec::new();
        for (user, meta) in [("alice", "Firefox on Linux"), ("alice", "Safari on iPhone"), ("bob", "curl")] {
            let key = nex_session::SessionId::generate().unwrap().store_key();
            let mut batch = std::collections::BTreeMap::new();
            batch.insert("cart".to_owned(), nex_session::store::Change::Put(b"3".to_vec()));
            let exp = nex_session::token::now_ms() + 3_600_000;
            store.apply(key, &batch, exp, nex_session::store::Presence::New).await.unwrap();
            let binding =
                nex_session::users::Binding::new(user, nex_session::token::now_ms(), Some(meta.into())).unwrap();
            index.bind(key, &binding, exp, None).await.unwrap();
            if user == "alice" {
                alices.push(key);
            }
        }
        alices
    })
}

/// `list --user` and `revoke-user [--except]` against the store at `url`.
fn check_user_commands(url: &str) {
    let alices = bind_sessions(url);
    let listed = run(None, &["sessions", "--store", url, "list", "--user", "alice"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let out = stdout(&listed);
    assert!(out.contains("2 sessions of user \"alice\""), "{out}");
    assert!(out.contains("Firefox on Linux") && out.contains("Safari on iPhone") && !out.contains("curl"), "{out}");
    let handles: Vec<String> =
        alices.iter().map(|k| nex_session::users::SessionHandle::of(*k).as_str().to_owned()).collect();
    for (handle, key) in handles.iter().zip(&alices) {
        assert!(out.contains(handle.as_str()), "the list names sessions by handle: {out}");
        assert!(!out.contains(&key.to_hex()), "never by store key");
    }
    let json = run(None, &["sessions", "list", "--user", "alice", "--json", "--store", url]);
    assert!(json.status.success(), "{}", stderr(&json));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(doc["user"], "alice");
    let listed = doc["sessions"].as_array().unwrap();
    let mut listed_handles: Vec<&str> = listed.iter().map(|s| s["handle"].as_str().unwrap()).collect();
    let mut expected_handles: Vec<&str> = handles.iter().map(String::as_str).collect();
    listed_handles.sort_unstable();
    expected_handles.sort_unstable();
    assert_eq!(listed_handles, expected_handles);
    let mut metas: Vec<&str> = listed.iter().map(|s| s["meta"].as_str().unwrap()).collect();
    metas.sort_unstable();
    assert_eq!(metas, ["Firefox on Linux", "Safari on iPhone"]);
    let now = nex_session::token::now_ms();
    for s in listed {
        let (signed_in, expires) = (s["signed_in_ms"].as_i64().unwrap(), s["expires_at_ms"].as_i64().unwrap());
        assert!(signed_in <= now && now - signed_in < 600_000 && expires > now, "{s}");
        assert!(s["signed_in"].as_str().unwrap().ends_with('Z') && s["last_seen_ms"].as_i64().unwrap() >= signed_in);
    }

    // Plain `list` says whose each session is, with expiries for people (and seconds in JSON).
    let all = run(None, &["sessions", "--store", url, "list"]);
    let out = stdout(&all);
    let user_column = |key: &nex_session::StoreKey| {
        let line = out.lines().find(|l| l.starts_with(&key.to_hex())).unwrap_or_else(|| panic!("{out}"));
        line.split_whitespace().last().unwrap().to_owned()
    };
    assert!(alices.iter().all(|k| user_column(k) == "alice"), "{out}");
    assert!(out.contains("bob") && out.contains("\n3 sessions") && out.contains("59m "), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&stdout(&run(None, &["sessions", "--store", url, "list", "--json"]))).unwrap();
    let mut users: Vec<&str> =
        doc["sessions"].as_array().unwrap().iter().map(|s| s["user"].as_str().unwrap()).collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "alice", "bob"]);
    let left = doc["sessions"][0]["expires_in_s"].as_i64().unwrap();
    assert!((3_000..=3_600).contains(&left), "{left}");

    // A handle that is not alice's: refused, nothing revoked.
    let typo = run(None, &["sessions", "--store", url, "revoke-user", "alice", "--except", "AAAAAAAAAAAAAAAAAAAAAA"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(stderr(&typo).contains("nothing revoked"), "{}", stderr(&typo));
    let not_a_handle = run(None, &["sessions", "--store", url, "revoke-user", "alice", "--except", "x"]);
    // One handle in 64 starts with `-` (base64url): still a value, not a flag.
    let hyphen = run(None, &["sessions", "--store", url, "revoke-user", "alice", "--except", "-AAAAAAAAAAAAAAAAAAAAA"]);
    assert!(stderr(&hyphen).contains("nothing revoked"), "read as a handle: {}", stderr(&hyphen));
    assert_eq!(not_a_handle.status.code(), Some(1));
    assert!(stdout(&run(None, &["sessions", "--store", url, "list", "--user", "alice"])).contains("2 sessions"));

    let spared = run(None, &["sessions", "--store", url, "revoke-user", "alice", "--except", &handles[0]]);
    assert!(spared.status.success(), "{}", stderr(&spared));
    assert_eq!(stdout(&spared), "revoked 1 session of user \"alice\"");
    let left = stdout(&run(None, &["sessions", "--store", url, "list", "--user", "alice"]));
    assert!(left.contains(&handles[0]) && !left.contains(&handles[1]), "{left}");

    let all = run(None, &["sessions", "--store", url, "revoke-user", "alice"]);
    assert_eq!(stdout(&all), "revoked 1 session of user \"alice\"");
    let none = run(None, &["sessions", "--store", url, "revoke-user", "alice"]);
    assert_eq!(none.status.code(), Some(1), "nothing to revoke is an error, as for a mistyped user id");
    assert!(stderr(&none).contains("no live sessions"), "{}", stderr(&none));
    assert!(stdout(&run(None, &["sessions", "--store", url, "list", "--user", "bob"])).contains("\n1 session"));
}

/// `revoke-user` of a user with 100,000 sessions (made through the library)
/// finishes and leaves none: the operator's "sign out everywhere" at scale.
fn revoke_user_at_scale(url: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let store = rt.block_on(async {
        let options = nex_session::store::OpenOptions::new().create_missing(true);
        nex_session::store::open_with(url, options).await.unwrap()
    });
    let keys = rt.block_on(nex_testkit::scale::sign_in_many(std::sync::Arc::clone(&store), "heavy", 100_000));
    let started = std::time::Instant::now();
    let revoked = run(None, &["sessions", "--store", url, "revoke-user", "heavy"]);
    println!("revoke-user took {:.2} s", started.elapsed().as_secs_f64());
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert_eq!(stdout(&revoked), "revoked 100000 sessions of user \"heavy\"");
    rt.block_on(nex_testkit::scale::assert_none_left(&*store, "heavy", &keys));
}

#[test]
fn revoke_user_signs_out_100_000_sessions_on_sqlite() {
    let dir = temp_dir("scale");
    revoke_user_at_scale(&format!("sqlite://{}", dir.join("scale.db").display()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn revoke_user_signs_out_100_000_sessions_on_redis() {
    let server = nex_testkit::RedisServer::start_private();
    revoke_user_at_scale(&server.url());
}

#[test]
fn a_users_sessions_are_listed_by_handle_and_revoked_on_sqlite() {
    let dir = temp_dir("users");
    check_user_commands(&format!("sqlite://{}", dir.join("users.db").display()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_users_sessions_are_listed_by_handle_and_revoked_on_redis() {
    let server = nex_testkit::RedisServer::start_private();
    check_user_commands(&server.url());
}

#[test]
fn a_users_sessions_are_listed_by_handle_and_revoked_on_redis_cluster() {
    let cluster = nex_testkit::RedisCluster::start();
    check_user_commands(&cluster.url());
    // Listing every session works on a cluster too: each master is scanned.
    let listed = run(None, &["sessions", "--store", &cluster.url(), "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).contains("\n1 session"), "bob's session is left: {}", stdout(&listed));
}

/// `run` with extra environment variables.
fn run_env(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nex-session"));
    cmd.args(args);
    for var in ["SECRET_KEY_BASE", "SECRET_KEY_BASE_OLD", "NEX_ENV", "NEX_SESSION_COOKIE_NAME", "NEX_SESSION_STORE"] {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().copied()).output().expect("runs the nex-session binary")
}

#[test]
fn the_store_is_accepted_before_or_after_the_subcommand_or_from_the_environment() {
    let dir = temp_dir("store-position");
    let (store, id) = sqlite_with_one_session(&dir);
    let key = nex_session::SessionId::parse(&id).unwrap().store_key().to_hex();
    for args in [
        vec!["sessions", "--store", &store, "list"],
        vec!["sessions", "list", "--store", &store],
        vec!["sessions", "list", "--limit", "5", "--store", &store],
    ] {
        let out = run(None, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains(&key) && stdout(&out).contains("\n1 session"), "{args:?}: {}", stdout(&out));
    }
    let shown = run(None, &["sessions", "show", &id, "--store", &store]);
    assert!(stdout(&shown).contains("user_id = 42"), "{}", stderr(&shown));
    let from_env = run_env(&[("NEX_SESSION_STORE", &store)], &["sessions", "list"]);
    assert!(stdout(&from_env).contains(&key), "{}", stderr(&from_env));
    // The flag wins over the variable.
    let both = run_env(&[("NEX_SESSION_STORE", "redis://127.0.0.1:1")], &["sessions", "list", "--store", &store]);
    assert!(stdout(&both).contains(&key), "{}", stderr(&both));

    let none = run(None, &["sessions", "list"]);
    assert_eq!(none.status.code(), Some(2));
    let err = stderr(&none);
    assert!(err.contains("--store") && err.contains("NEX_SESSION_STORE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_memory_store_is_refused_with_an_explanation() {
    for args in [
        vec!["sessions", "--store", "memory", "list"],
        vec!["sessions", "list", "--store", "memory?max_sessions=10"],
        vec!["sessions", "purge", "--store", "memory://"],
    ] {
        let out = run(None, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("--store") && err.contains("inside the app's process"), "{err}");
        assert!(err.contains("empty") && err.contains("sqlite://"), "says why and what to pass instead: {err}");
        assert!(stdout(&out).is_empty(), "{args:?} must not look like an empty list: {}", stdout(&out));
    }
    let from_env = run_env(&[("NEX_SESSION_STORE", "memory")], &["sessions", "list"]);
    assert_eq!(from_env.status.code(), Some(2));
    assert!(stderr(&from_env).contains("NEX_SESSION_STORE=memory"), "names the variable: {}", stderr(&from_env));
}

#[test]
fn list_and_show_print_json_for_scripts() {
    let dir = temp_dir("json");
    let (store, id) = sqlite_with_one_session(&dir);
    let key = nex_session::SessionId::parse(&id).unwrap().store_key().to_hex();
    let now = nex_session::token::now_ms();

    let listed = run(None, &["sessions", "--store", &store, "list", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(!stdout(&listed).contains(&id), "never the id: it works as a cookie");
    let doc: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{doc}");
    assert_eq!(sessions[0]["store_key"], key.as_str());
    assert_eq!(sessions[0]["keys"], 1);
    let expires = sessions[0]["expires_at_ms"].as_i64().unwrap();
    assert!(expires > now && expires <= now + 3_600_000, "{doc}");
    assert!(sessions[0]["expires_at"].as_str().unwrap().ends_with('Z'), "{doc}");

    let shown = run(None, &["sessions", "show", "--json", &id, "--store", &store]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&shown)).unwrap();
    assert_eq!(doc["store_key"], key.as_str());
    assert_eq!(doc["values"], serde_json::json!({ "user_id": 42 }), "values are the JSON the app stored");
    assert_eq!(doc["raw_values"], serde_json::json!({}));
    assert_eq!(doc["expires_at_ms"].as_i64(), Some(expires));

    let empty = temp_dir("json-empty");
    let url = format!("sqlite://{}", empty.join("none.db").display());
    let nothing = run(None, &["sessions", "--store", &url, "--create", "list", "--json"]);
    assert_eq!(stdout(&nothing), r#"{"sessions":[]}"#);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn dev_reads_cookies_made_with_the_development_secret() {
    let dev = nex_session::token::SecretKeyBase::development();
    let id = nex_session::SessionId::generate().unwrap();
    let cookie = nex_session::token::Signer::new(&dev, "nex.session").sign(id.as_str().as_bytes());

    let with_dev = run(None, &["token", "verify", "--dev", &cookie]);
    assert_eq!(
        (with_dev.status.code(), first_line(&with_dev)),
        (Some(0), id.as_str().to_owned()),
        "{}",
        stderr(&with_dev)
    );
    // --dev wins over an exported production secret.
    assert_eq!(first_line(&run(Some(SECRET), &["token", "verify", "--dev", &cookie])), id.as_str());
    let with_prod = run(Some(SECRET), &["token", "verify", &cookie]);
    assert_eq!(with_prod.status.code(), Some(1));
    assert!(stderr(&with_prod).starts_with("invalid"), "{}", stderr(&with_prod));
    // No secret at all: the message points at --dev.
    let none = run(None, &["token", "verify", &cookie]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr(&none).contains("SECRET_KEY_BASE is not set") && stderr(&none).contains("--dev"),
        "{}",
        stderr(&none)
    );
    // As the app: NEX_ENV=dev without SECRET_KEY_BASE means the development secret.
    let nex_env = run_env(&[("NEX_ENV", "dev")], &["token", "verify", &cookie]);
    assert_eq!(first_line(&nex_env), id.as_str(), "{}", stderr(&nex_env));
    let staging = run_env(&[("NEX_ENV", "staging")], &["token", "verify", &cookie]);
    assert_eq!(staging.status.code(), Some(2), "any other NEX_ENV is production");

    let signed = stdout(&run(None, &["token", "sign", "--dev", "abc"]));
    assert_eq!(nex_session::token::Signer::new(&dev, "nex.session").verify(&signed, Some(60)).unwrap(), b"abc");

    // `sessions show --dev` finds the session of a development cookie.
    let dir = temp_dir("dev-show");
    let (store, stored_id) = sqlite_with_one_session(&dir);
    let stored_cookie = nex_session::token::Signer::new(&dev, "nex.session").sign(stored_id.as_bytes());
    let shown = run(None, &["sessions", "--store", &store, "show", "--dev", &stored_cookie]);
    assert!(stdout(&shown).contains("user_id = 42"), "{}", stderr(&shown));
    let refused = run(Some(SECRET), &["sessions", "--store", &store, "show", &stored_cookie]);
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(err.contains("SESSION") && err.contains("does not verify with SECRET_KEY_BASE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sign_embeds_the_max_age_verify_enforces_by_default_the_session_ttl() {
    let ttl = i64::try_from(nex_session::DEFAULT_TTL.as_secs()).unwrap();
    let secret = nex_session::token::SecretKeyBase::new(SECRET).unwrap();
    let signer = nex_session::token::Signer::new(&secret, "nex.session");
    let token = stdout(&run(Some(SECRET), &["token", "sign", "id"]));
    let verified = signer.verify_at(&token, None, nex_session::token::now_ms()).unwrap();
    assert_eq!(verified.embedded_max_age, Some(ttl), "sign embeds the session TTL");

    // verify's default is the same: a token just inside it passes, one just past it does not.
    let now_s = nex_session::token::now_ms() / 1000;
    let inside = (now_s - ttl + 120).to_string();
    let past = (now_s - ttl - 120).to_string();
    let young = stdout(&run(Some(SECRET), &["token", "sign", "--signed-at", &inside, "id"]));
    let old = stdout(&run(Some(SECRET), &["token", "sign", "--signed-at", &past, "id"]));
    assert_eq!(stdout(&run(Some(SECRET), &["token", "verify", &young])), "id");
    assert!(stderr(&run(Some(SECRET), &["token", "verify", &old])).starts_with("expired"));
    // And an Elixir-style verify that trusts the embedded max age agrees.
    assert!(signer.verify(&young, None).is_ok());
    assert_eq!(signer.verify(&old, None), Err(nex_session::token::TokenError::Expired));
}

#[test]
fn verify_accepts_the_previous_secrets_as_the_app_does() {
    let old_secret = "an-older-secret-of-at-least-32-bytes!";
    let cookie = stdout(&run(Some(old_secret), &["token", "sign", "session-id"]));
    let rotated =
        run_env(&[("SECRET_KEY_BASE", SECRET), ("SECRET_KEY_BASE_OLD", old_secret)], &["token", "verify", &cookie]);
    assert_eq!(stdout(&rotated), "session-id", "{}", stderr(&rotated));
    assert!(stderr(&rotated).contains("previous secret #1"), "{}", stderr(&rotated));
    let short =
        run_env(&[("SECRET_KEY_BASE", SECRET), ("SECRET_KEY_BASE_OLD", "hunter2")], &["token", "verify", &cookie]);
    assert_eq!(short.status.code(), Some(2));
    let err = stderr(&short);
    assert!(err.contains("SECRET_KEY_BASE_OLD") && !err.contains("hunter2"), "{err}");
}

#[test]
fn a_cookie_with_its_own_expiry_mode_is_found_by_its_id() {
    // Sessions with a non-default expiry carry `<id>.<created_ms>.<mode>` in the token.
    let dir = temp_dir("long-form");
    let (store, id) = sqlite_with_one_session(&dir);
    let secret = nex_session::token::SecretKeyBase::new(SECRET).unwrap();
    let data = format!("{id}.{}.p2592000", nex_session::token::now_ms());
    let cookie = nex_session::token::Signer::new(&secret, "nex.session").sign(data.as_bytes());
    let shown = run(Some(SECRET), &["sessions", "--store", &store, "show", &cookie]);
    assert!(stdout(&shown).contains("user_id = 42"), "{}", stderr(&shown));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_argument_the_store_and_the_step_without_credentials() {
    let dir = temp_dir("errors");
    let (store, _) = sqlite_with_one_session(&dir);
    let garbage = run(None, &["sessions", "--store", &store, "show", "not-a-session"]);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(stderr(&garbage).contains("SESSION: not a cookie value"), "{}", stderr(&garbage));
    let stranger = nex_session::SessionId::generate().unwrap();
    let missing = run(None, &["sessions", "--store", &store, "show", stranger.as_str()]);
    assert!(stderr(&missing).contains("no live session") && stderr(&missing).contains(&store), "{}", stderr(&missing));
    let bad_except = run(None, &["sessions", "--store", &store, "revoke-user", "alice", "--except", "x"]);
    assert!(stderr(&bad_except).contains("--except"), "{}", stderr(&bad_except));
    let _ = std::fs::remove_dir_all(&dir);

    // Which store, and where its URL came from.
    let flag = run(None, &["sessions", "list", "--store", "redis://ops:s3cret@127.0.0.1:1"]);
    assert!(stderr(&flag).contains("cannot open store redis://ops:***@127.0.0.1:1 (--store)"), "{}", stderr(&flag));
    let var = run_env(&[("NEX_SESSION_STORE", "redis://ops:s3cret@127.0.0.1:1")], &["sessions", "list"]);
    assert!(stderr(&var).contains("(NEX_SESSION_STORE)") && !stderr(&var).contains("s3cret"), "{}", stderr(&var));

    // A store that opens but refuses one step: a real Redis whose user may not SCAN.
    let server = nex_testkit::RedisServer::start_private();
    let acl = Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "ACL", "SETUSER", "ops", "on", ">s3cret", "~*", "&*", "+@all", "-scan"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&acl.stdout).trim(), "OK", "{}", String::from_utf8_lossy(&acl.stderr));
    let url = format!("redis://ops:s3cret@127.0.0.1:{}", server.port);
    let shown = format!("redis://ops:***@127.0.0.1:{}", server.port);
    for (command, step) in [("list", "listing sessions in"), ("purge", "purging expired sessions in")] {
        let out = run(None, &["sessions", "--store", &url, command]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let err = stderr(&out);
        assert!(err.contains(&format!("{step} {shown}")), "{command}: {err}");
        assert!(!err.contains("s3cret"), "{command}: {err}");
    }
}

#[test]
fn a_session_id_or_data_starting_with_a_hyphen_is_a_value_not_an_option() {
    // One session id in 64 starts with `-` (base64url): it must still be the SESSION argument.
    let hyphen_id = format!("-{}", "A".repeat(31));
    let key = nex_session::SessionId::parse(&hyphen_id).expect("a valid id").store_key().to_hex();
    let dir = temp_dir("hyphen");
    let (store, _) = sqlite_with_one_session(&dir);
    for args in [
        vec!["sessions", "--store", &store, "show", &hyphen_id],
        vec!["sessions", "--store", &store, "show", &hyphen_id, "--json"],
        vec!["sessions", "--store", &store, "revoke", &hyphen_id],
    ] {
        let out = run(None, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("no live session with store key {key}")), "{}", stderr(&out));
    }
    let signed = run(Some(SECRET), &["token", "sign", &hyphen_id]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    assert_eq!(first_line(&run(Some(SECRET), &["token", "verify", &stdout(&signed)])), hyphen_id);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_postgres_database_without_session_tables_is_refused_unless_create_is_given() {
    let server = nex_testkit::PostgresServer::start_private();
    server.psql("CREATE DATABASE typo_db");
    let url = server.url().replace("/postgres", "/typo_db");
    let refused = run(None, &["sessions", "--store", &url, "list"]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(stderr(&refused).contains("pass --create"), "{}", stderr(&refused));
    // Nothing was created: asking again is refused again.
    assert_ne!(run(None, &["sessions", "--store", &url, "list"]).status.code(), Some(0));
    let created = run(None, &["sessions", "--store", &url, "--create", "list"]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("0 sessions"), "{}", stdout(&created));
    assert!(run(None, &["sessions", "--store", &url, "list"]).status.success(), "the tables exist now");
}
