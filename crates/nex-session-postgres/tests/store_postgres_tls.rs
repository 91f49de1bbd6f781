//! The PostgreSQL store over TLS, against real servers: private `postgres`
//! processes that accept only TLS over TCP (`hostnossl … reject`), with
//! certificates made at test time. Each test asserts what a user sees: a store
//! that works, or an error at open that names the URL parameter to fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nex_session::store::{
    Changes, FastReads, LoadNow, PostgresOptions, PostgresStore, Presence, SessionStore, UpdateAction,
};
use nex_session::{SessionId, StoreError, StoreKey};
use nex_testkit::postgres::ClientCerts;
use nex_testkit::{Pki, PostgresServer};

fn options() -> PostgresOptions {
    // Concurrent increments queue for the row on a busy 2-core machine.
    PostgresOptions { timeout: Duration::from_secs(5), ..PostgresOptions::default() }
}

async fn open(url: &str) -> Result<PostgresStore, StoreError> {
    PostgresStore::open_with_options(url, options()).await
}

/// The message a user sees when `open` fails (the error's `Display`).
async fn open_error(url: &str) -> String {
    match open(url).await {
        Ok(_) => panic!("opening {url} should have failed"),
        Err(err) => err.to_string(),
    }
}

fn later() -> i64 {
    nex_session::token::now_ms() + 600_000
}

fn key() -> StoreKey {
    SessionId::generate().unwrap().store_key()
}

/// A TLS-only server whose certificate, from `pki`, names `names`.
fn server(pki: &Pki, names: &[&str], clients: ClientCerts) -> PostgresServer {
    let cert = pki.server("server", names);
    PostgresServer::start_private_tls(&cert, &pki.ca_file(), clients)
}

fn url(server: &PostgresServer, query: &str) -> String {
    format!("{}?{query}", server.url())
}

fn path(file: &Path) -> String {
    file.display().to_string()
}

/// A store works: a session written is read back.
async fn round_trip(store: &PostgresStore) {
    let k = key();
    store.apply(k, &Changes::new(), later(), Presence::New).await.unwrap();
    assert!(store.load(k).await.unwrap().is_some());
}

async fn increment(store: &PostgresStore, key: StoreKey) -> Result<(), StoreError> {
    let mut f = |current: Option<&[u8]>| {
        let n: u64 = current.map_or(0, |b| std::str::from_utf8(b).unwrap().parse().unwrap());
        UpdateAction::Set((n + 1).to_string().into_bytes())
    };
    store.update(key, "n", &mut f, later(), Presence::Existing).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_shares_sessions_between_two_stores_and_loses_no_increment() {
    let pki = Pki::new("shared");
    let server = server(&pki, &["localhost", "127.0.0.1"], ClientCerts::NotRequired);
    let url = url(&server, &format!("sslmode=verify-full&sslrootcert={}", path(&pki.ca_file())));
    let (a, b) = (Arc::new(open(&url).await.unwrap()), Arc::new(open(&url).await.unwrap()));

    let k = key();
    a.apply(k, &Changes::new(), later(), Presence::New).await.unwrap();
    assert!(b.load(k).await.unwrap().is_some(), "a session written by one store is read by the other");
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        for _ in 0..100 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { increment(&store, k).await }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(a.load(k).await.unwrap().unwrap().fields["n"], b"200");
    assert_eq!(b.load(k).await.unwrap().unwrap().fields["n"], b"200");

    // The client cache's LISTEN connection speaks TLS too: its pings come back and it answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !matches!(b.load_now(k, nex_session::token::now_ms()), LoadNow::Found(_)) {
        assert!(std::time::Instant::now() < deadline, "the client cache never answered over TLS");
        b.load(k).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let endpoint = a.endpoint().expect("a connected store says where");
    assert_eq!(endpoint, format!("127.0.0.1:{} (TLS, sslmode=verify-full)", server.port));
    // The server agrees: every connection of the store is encrypted.
    let plain = server.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
         WHERE application_name = 'nex-session' AND NOT ssl",
    );
    assert_eq!(plain, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_against_a_tls_only_server_is_told_to_set_sslmode() {
    let pki = Pki::new("plain-client");
    let server = server(&pki, &["127.0.0.1"], ClientCerts::NotRequired);
    let err = open_error(&server.url()).await;
    assert!(err.contains("accepts only TLS") && err.contains("sslmode=verify-full"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_fails_naming_sslrootcert() {
    let (pki, stranger) = (Pki::new("trusted"), Pki::new("stranger"));
    let server = server(&pki, &["127.0.0.1"], ClientCerts::NotRequired);
    let err =
        open_error(&url(&server, &format!("sslmode=verify-full&sslrootcert={}", path(&stranger.ca_file())))).await;
    assert!(err.contains("certificate not trusted") && err.contains("set sslrootcert"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_name_fails_verify_full_and_passes_verify_ca() {
    let pki = Pki::new("other-name");
    // The certificate names `localhost`; the URL says 127.0.0.1.
    let server = server(&pki, &["localhost"], ClientCerts::NotRequired);
    let root = path(&pki.ca_file());
    let err = open_error(&url(&server, &format!("sslmode=verify-full&sslrootcert={root}"))).await;
    assert!(err.contains("host name") && err.contains("sslmode=verify-ca"), "{err}");

    let store = open(&url(&server, &format!("sslmode=verify-ca&sslrootcert={root}"))).await.unwrap();
    round_trip(&store).await;
    assert!(store.endpoint().unwrap().ends_with("(TLS, sslmode=verify-ca)"));
    // The libpq rule: `require` with a root certificate checks like `verify-ca`.
    let store = open(&url(&server, &format!("sslmode=require&sslrootcert={root}"))).await.unwrap();
    round_trip(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_fails_saying_so_and_require_without_roots_takes_it() {
    let pki = Pki::new("expired");
    let cert = pki.expired_server("old", &["127.0.0.1"]);
    let server = PostgresServer::start_private_tls(&cert, &pki.ca_file(), ClientCerts::NotRequired);
    let err = open_error(&url(&server, &format!("sslmode=verify-full&sslrootcert={}", path(&pki.ca_file())))).await;
    assert!(err.contains("expired"), "{err}");

    // `require` without sslrootcert encrypts and checks nothing (as libpq does).
    let store = open(&url(&server, "sslmode=require")).await.unwrap();
    round_trip(&store).await;
    assert_eq!(store.endpoint().unwrap(), format!("127.0.0.1:{} (TLS, sslmode=require)", server.port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_asked_for_it_says_to_use_prefer_or_disable() {
    let server = PostgresServer::start_private();
    let err = open_error(&url(&server, "sslmode=require")).await;
    assert!(err.contains("does not support TLS") && err.contains("sslmode=prefer or disable"), "{err}");

    // `prefer` falls back to plain, and the endpoint says so.
    let store = open(&url(&server, "sslmode=prefer")).await.unwrap();
    round_trip(&store).await;
    let endpoint = store.endpoint().unwrap();
    assert!(endpoint.contains("no TLS: the server does not offer it, sslmode=prefer"), "{endpoint}");
    // No sslmode: plain, as before TLS existed.
    let store = open(&server.url()).await.unwrap();
    assert_eq!(store.endpoint().unwrap(), format!("127.0.0.1:{} (no TLS)", server.port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_fails_clearly_without_a_client_certificate_and_works_with_one() {
    let pki = Pki::new("mutual");
    let server = server(&pki, &["127.0.0.1"], ClientCerts::Required);
    let root = path(&pki.ca_file());
    let err = open_error(&url(&server, &format!("sslmode=verify-full&sslrootcert={root}"))).await;
    assert!(err.contains("client certificate") && err.contains("sslcert and sslkey"), "{err}");

    // The server's `cert` method wants the certificate's common name to be the user.
    let client = pki.client("client", "nex");
    let query =
        format!("sslmode=verify-full&sslrootcert={root}&sslcert={}&sslkey={}", path(&client.cert), path(&client.key));
    let store = open(&url(&server, &query)).await.unwrap();
    round_trip(&store).await;

    // A certificate for another user is refused, and the message says which file to check.
    let other = pki.client("other", "someone-else");
    let query =
        format!("sslmode=verify-full&sslrootcert={root}&sslcert={}&sslkey={}", path(&other.cert), path(&other.key));
    let err = open_error(&url(&server, &query)).await;
    assert!(err.contains("refused the client certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unusable_tls_files_are_start_up_errors_naming_the_parameter() {
    // No server needed: the files are read before any connection is tried.
    let url = "postgres://nex@127.0.0.1:1/postgres";
    let err = open_error(&format!("{url}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")).await;
    assert!(err.contains("sslrootcert=/nonexistent/ca.pem") && err.contains("No such file"), "{err}");
    let pki = Pki::new("files");
    let client = pki.client("client", "nex");
    // A certificate where the key should be.
    let err =
        open_error(&format!("{url}?sslmode=require&sslcert={}&sslkey={}", path(&client.cert), path(&client.cert)))
            .await;
    assert!(err.contains(&format!("sslkey={}", path(&client.cert))), "{err}");
    let err = open_error(&format!("{url}?sslmode=require&sslcert={}", path(&client.cert))).await;
    assert!(err.contains("sslcert and sslkey go together"), "{err}");
    let err = open_error(&format!("{url}?sslmode=allow")).await;
    assert!(err.contains("sslmode=allow is not supported"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_value_form_with_verify_full_works() {
    let pki = Pki::new("key-value");
    let server = server(&pki, &["127.0.0.1"], ClientCerts::NotRequired);
    let conn = format!(
        "host=127.0.0.1 port={} user=nex dbname=postgres sslmode=verify-full sslrootcert='{}'",
        server.port,
        path(&pki.ca_file())
    );
    let store = open(&conn).await.unwrap();
    round_trip(&store).await;
    assert_eq!(store.endpoint().unwrap(), format!("127.0.0.1:{} (TLS, sslmode=verify-full)", server.port));
}
