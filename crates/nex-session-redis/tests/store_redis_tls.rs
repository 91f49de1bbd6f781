//! The Redis store over TLS against real servers: a private `redis-server`
//! that listens on a TLS port only, with certificates made by the test (a
//! private CA, and a second CA nobody trusts), with and without client
//! certificates required.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use nex_session::store::{RedisOptions, RedisStore, SessionStore};
use nex_testkit::{Pki, RedisCluster, RedisServer, ServerTls};

/// A TLS-only server whose certificate names `names`, signed by `pki`.
fn tls_server(pki: &Pki, names: &[&str], client_auth: bool) -> RedisServer {
    let server = pki.server("redis", names);
    let client = client_auth.then(|| pki.client("redis-cli", "cli"));
    RedisServer::start_tls(ServerTls { ca: pki.ca_file(), server, client })
}

fn options(prefix: &str) -> RedisOptions {
    RedisOptions { prefix: prefix.to_owned(), timeout: Duration::from_secs(2), ..RedisOptions::default() }
}

async fn open(url: &str) -> Result<RedisStore, String> {
    RedisStore::open_with_options(url, options("nex:tls:")).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_shared_over_tls_and_no_increment_is_lost() {
    let pki = Pki::new("redis-shared");
    let server = tls_server(&pki, &["localhost", "127.0.0.1"], false);
    let url = format!("rediss://127.0.0.1:{}/0?sslrootcert={}", server.port, pki.ca_file().display());
    let a: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with_options(&url, options("nex:two:")).await.unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with_options(&url, options("nex:two:")).await.unwrap());
    let endpoint = a.endpoint().unwrap();
    assert!(endpoint.contains(&server.port.to_string()) && endpoint.contains("TLS verify-full"), "{endpoint}");
    // Two instances, one session, concurrent increments from both: none lost.
    nex_testkit::store::two_servers_lose_nothing(a.clone(), b).await;
    // The conformance suite holds over TLS too.
    let can = nex_session::store::conformance::Capabilities::all().without_purge_counts();
    nex_session::store::conformance::run_all_with(a, can).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_url_at_a_tls_only_port_says_to_use_rediss() {
    let pki = Pki::new("redis-plain");
    let server = tls_server(&pki, &["127.0.0.1"], false);
    let err = open(&format!("redis://127.0.0.1:{}", server.port)).await.unwrap_err();
    assert!(err.contains("rediss://"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_url_at_a_plain_port_says_the_server_does_not_speak_tls() {
    let server = RedisServer::start_private();
    let err = open(&format!("rediss://127.0.0.1:{}", server.port)).await.unwrap_err();
    assert!(err.contains("TLS handshake") && err.contains("use redis://"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_verified_and_each_refusal_names_its_fix() {
    let pki = Pki::new("redis-verify");
    let stranger = Pki::new("redis-stranger");
    let server = tls_server(&pki, &["localhost"], false);
    let port = server.port;
    let ca = pki.ca_file();

    // A CA that did not sign the server's certificate.
    let err =
        open(&format!("rediss://localhost:{port}?sslrootcert={}", stranger.ca_file().display())).await.unwrap_err();
    assert!(err.contains("not signed by the CA in sslrootcert"), "{err}");
    // The system roots do not know a private CA either.
    let err = open(&format!("rediss://localhost:{port}")).await.unwrap_err();
    assert!(err.contains("sslrootcert"), "{err}");
    // The certificate names `localhost`; 127.0.0.1 is another name.
    let err = open(&format!("rediss://127.0.0.1:{port}?sslrootcert={}", ca.display())).await.unwrap_err();
    assert!(err.contains("not valid for the host name") && err.contains("verify-ca"), "{err}");
    // verify-ca checks the chain only, so that name is accepted; verify-full by the right name too.
    open(&format!("rediss://127.0.0.1:{port}?sslmode=verify-ca&sslrootcert={}", ca.display())).await.unwrap();
    open(&format!("rediss://localhost:{port}?sslrootcert={}", ca.display())).await.unwrap();
    // ... but verify-ca still refuses a chain it cannot verify.
    let err =
        open(&format!("rediss://127.0.0.1:{port}?sslmode=verify-ca&sslrootcert={}", stranger.ca_file().display()))
            .await
            .unwrap_err();
    assert!(err.contains("sslrootcert"), "{err}");
    // require: encrypted, nothing checked (development only).
    open(&format!("rediss://127.0.0.1:{port}?sslmode=require")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_as_expired() {
    let pki = Pki::new("redis-expired");
    let server = RedisServer::start_tls(ServerTls {
        ca: pki.ca_file(),
        server: pki.expired_server("redis", &["localhost"]),
        client: None,
    });
    let err =
        open(&format!("rediss://localhost:{}?sslrootcert={}", server.port, pki.ca_file().display())).await.unwrap_err();
    assert!(err.contains("expired"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate_and_works_with_it() {
    let pki = Pki::new("redis-mtls");
    let server = tls_server(&pki, &["localhost"], true);
    let base = format!("rediss://localhost:{}?sslrootcert={}", server.port, pki.ca_file().display());
    let err = open(&base).await.unwrap_err();
    assert!(err.contains("sslcert") && err.contains("sslkey"), "{err}");
    let app = pki.client("app", "app");
    let url = format!("{base}&sslcert={}&sslkey={}", app.cert.display(), app.key.display());
    let store = RedisStore::open_with_options(&url, options("nex:mtls:")).await.unwrap();
    store.health().await.unwrap();
    // A client certificate from a CA the server does not trust is refused.
    let stranger = Pki::new("redis-mtls-stranger").client("app", "app");
    let url = format!("{base}&sslcert={}&sslkey={}", stranger.cert.display(), stranger.key.display());
    assert!(open(&url).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_certificate_files_are_start_up_errors_naming_the_parameter() {
    let err = open("rediss://localhost:1?sslrootcert=/nonexistent/ca.pem").await.unwrap_err();
    assert!(err.contains("sslrootcert=/nonexistent/ca.pem"), "{err}");
    let pki = Pki::new("redis-files");
    // A key where a certificate belongs.
    let files = pki.client("c", "c");
    let err = open(&format!("rediss://localhost:1?sslcert={}&sslkey={}", files.key.display(), files.key.display()))
        .await
        .unwrap_err();
    assert!(err.contains("sslcert") && err.contains("no PEM CERTIFICATE"), "{err}");
    let err = open("redis://localhost:1?sslrootcert=/x.pem").await.unwrap_err();
    assert!(err.contains("rediss://"), "TLS parameters on a plain URL: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_cluster_is_reached_with_rediss_cluster_and_loses_no_update() {
    let pki = Pki::new("redis-cluster");
    // Nodes announce themselves by IP: their certificates name it.
    let cluster = RedisCluster::start_tls(&ServerTls {
        ca: pki.ca_file(),
        server: pki.server("node", &["localhost", "127.0.0.1"]),
        client: None,
    });
    let url = format!("rediss+cluster://{}?sslrootcert={}", cluster.hosts(), pki.ca_file().display());
    let a: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with_options(&url, options("nex:ctls:")).await.unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(RedisStore::open_with_options(&url, options("nex:ctls:")).await.unwrap());
    assert!(a.endpoint().unwrap().contains("TLS verify-full"));
    nex_testkit::store::two_servers_lose_nothing(a, b).await;
    // The same cluster refuses a client that trusts another CA.
    let stranger = Pki::new("redis-cluster-stranger");
    let url = format!("rediss+cluster://{}?sslrootcert={}", cluster.hosts(), stranger.ca_file().display());
    let err = open(&url).await.unwrap_err();
    assert!(err.contains("sslrootcert"), "{err}");
}
