//! Cookie options over real HTTP on 127.0.0.1: every attribute asserted exactly,
//! on the memory, SQLite and Redis stores; refused combinations; and several
//! session layers with their own cookie names in one app.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use nex_session::cookie::SameSite;
use nex_session::csrf::CsrfLayer;
use nex_session::store::{MemoryStore, RedisStore, SessionStore, SqliteStore};
use nex_session::token::SecretKeyBase;
use nex_session::{CookieConfigError, Session, SessionConfig, SessionError, SessionLayer};
use nex_testkit::http::{serve, Browser, HttpClient, Reply};
use nex_testkit::single_node;
use nex_testkit::TempDb;

const SECRET: &str = "test-secret-test-secret-test-secret-42";

fn config() -> SessionConfig {
    SessionConfig::new(SecretKeyBase::new(SECRET).unwrap())
}

fn text(r: Result<Option<String>, SessionError>) -> String {
    match r {
        Ok(value) => value.unwrap_or_else(|| "none".into()),
        Err(e) => format!("error: {e}"),
    }
}

/// `POST {prefix}/put/{k}/{v}` and `GET {prefix}/get/{k}` on the innermost session, ambiently.
fn put_get_routes(prefix: &str) -> Router {
    Router::new()
        .route(
            &format!("{prefix}/put/{{k}}/{{v}}"),
            post(|Path((k, v)): Path<(String, String)>| async move {
                nex_session::put(&k, v).await.unwrap();
                "ok"
            }),
        )
        .route(
            &format!("{prefix}/get/{{k}}"),
            get(|Path(k): Path<String>| async move { text(nex_session::get(&k).await) }),
        )
}

/// The routes of a small app under `/shop`, using the ambient API.
fn shop_routes() -> Router {
    put_get_routes("/shop")
        .route(
            "/shop/clear",
            post(|| async {
                nex_session::clear().await.unwrap();
                "cleared"
            }),
        )
        .route(
            "/shop/flash",
            post(|| async {
                nex_session::flash::put("info", "hi").await.unwrap();
                "flashed"
            }),
        )
}

/// The `Set-Cookie` header of cookie `name` in `reply`, with its value replaced by `<v>`.
fn shape(reply: &Reply, name: &str) -> String {
    let header =
        reply.set_cookie_header(name).unwrap_or_else(|| panic!("no Set-Cookie for {name}: {:?}", reply.set_cookies));
    let (_, rest) = header.split_once(';').unwrap();
    let value = &header[name.len() + 1..header.len() - rest.len() - 1];
    if value.is_empty() {
        header.clone()
    } else {
        format!("{name}=<v>;{rest}")
    }
}

/// One store, end to end: the configured cookie and its deletion carry exactly the
/// configured attributes; a cookie of another name is not read; the side cookie
/// shares the attributes.
async fn configured_cookie_round_trip(store: Arc<dyn SessionStore>) {
    let config = config()
        .with_cookie_name("shop_session")
        .with_cookie_path("/shop")
        .with_cookie_domain("example.test")
        .with_same_site(SameSite::Strict)
        .with_http_only(false)
        .with_ttl(Duration::from_secs(60));
    let addr = serve(shop_routes().layer(SessionLayer::with_shared_store(store, config))).await;
    let client = HttpClient::new(addr);

    let put = client.post("/shop/put/cart/3", None).await;
    assert_eq!(put.status, 200);
    assert_eq!(put.set_cookies.len(), 1, "{:?}", put.set_cookies);
    assert_eq!(
        shape(&put, "shop_session"),
        "shop_session=<v>; Path=/shop; Domain=example.test; Max-Age=60; Secure; SameSite=Strict"
    );
    let token = put.set_cookie_value("shop_session").unwrap();

    let own = client.request_with_cookie_header("GET", "/shop/get/cart", &format!("shop_session={token}")).await;
    assert_eq!(own.body, "3", "the configured name is read");
    let other = client.request_with_cookie_header("GET", "/shop/get/cart", &format!("_nex_session={token}")).await;
    assert_eq!(other.body, "none", "the default name is not this layer's cookie");

    let cleared = client.request_with_cookie_header("POST", "/shop/clear", &format!("shop_session={token}")).await;
    assert_eq!(
        shape(&cleared, "shop_session"),
        "shop_session=; Path=/shop; Domain=example.test; Max-Age=0; Secure; SameSite=Strict"
    );
    let after = client.request_with_cookie_header("GET", "/shop/get/cart", &format!("shop_session={token}")).await;
    assert_eq!(after.body, "none", "the store forgot the cleared session");

    let flashed = client.post("/shop/flash", None).await;
    assert_eq!(
        shape(&flashed, "shop_session_flash"),
        "shop_session_flash=<v>; Path=/shop; Domain=example.test; Max-Age=300; HttpOnly; Secure; SameSite=Strict",
        "side cookies share the session cookie's attributes but stay HttpOnly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_cookie_attributes_are_sent_exactly_on_the_memory_store() {
    configured_cookie_round_trip(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_cookie_attributes_are_sent_exactly_on_the_sqlite_store() {
    let db = TempDb::new("attributes");
    configured_cookie_round_trip(Arc::new(SqliteStore::open(&db.0).await.unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_cookie_attributes_are_sent_exactly_on_the_redis_store() {
    let (url, _server) = single_node();
    let prefix = format!("nex-test:{}:cookie-options:{}:", std::process::id(), nex_session::token::now_ms());
    let store = RedisStore::open_with(&url, &prefix, Duration::from_secs(1)).await.unwrap();
    configured_cookie_round_trip(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cookie_is_unchanged() {
    let addr = serve(shop_routes().layer(SessionLayer::memory(config()))).await;
    let put = HttpClient::new(addr).post("/shop/put/cart/1", None).await;
    assert_eq!(shape(&put, "_nex_session"), "_nex_session=<v>; Path=/; Max-Age=604800; HttpOnly; Secure; SameSite=Lax");
    let flashed = HttpClient::new(addr).post("/shop/flash", None).await;
    assert_eq!(shape(&flashed, "_nex_flash"), "_nex_flash=<v>; Path=/; Max-Age=300; HttpOnly; Secure; SameSite=Lax");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_site_none_with_secure_and_a_host_prefixed_name_are_sent_as_configured() {
    let config = config().with_cookie_name("__Host-widget").with_same_site(SameSite::None);
    let addr = serve(shop_routes().layer(SessionLayer::memory(config))).await;
    let put = HttpClient::new(addr).post("/shop/put/cart/1", None).await;
    assert_eq!(
        shape(&put, "__Host-widget"),
        "__Host-widget=<v>; Path=/; Max-Age=604800; HttpOnly; Secure; SameSite=None"
    );
}

#[test]
fn invalid_cookie_options_are_refused_when_the_layer_is_built_with_the_reason() {
    let cases: Vec<(SessionConfig, CookieConfigError, &str)> = vec![
        (
            config().with_same_site(SameSite::None).with_secure_cookie(false),
            CookieConfigError::SameSiteNoneWithoutSecure,
            "SameSite=None needs a Secure cookie",
        ),
        (
            config().with_cookie_name("__Host-sid").with_secure_cookie(false),
            CookieConfigError::PrefixWithoutSecure("__Host-sid".into()),
            "only on a Secure cookie",
        ),
        (
            config().with_cookie_name("__Host-sid").with_cookie_domain("example.com"),
            CookieConfigError::HostPrefixWithDomain("__Host-sid".into()),
            "without a Domain",
        ),
        (
            config().with_cookie_name("__Host-sid").with_cookie_path("/admin"),
            CookieConfigError::HostPrefixWithPath { name: "__Host-sid".into(), path: "/admin".into() },
            "only with Path=/",
        ),
        (
            config().with_cookie_name("__Secure-sid").with_secure_cookie(false),
            CookieConfigError::PrefixWithoutSecure("__Secure-sid".into()),
            "only on a Secure cookie",
        ),
        (config().with_cookie_name("my session"), CookieConfigError::InvalidName("my session".into()), "RFC 6265"),
        (config().with_cookie_path("/a;b"), CookieConfigError::InvalidPath("/a;b".into()), "path-value"),
        (config().with_cookie_domain("a;b"), CookieConfigError::InvalidDomain("a;b".into()), "host name"),
    ];
    for (config, expected, says) in cases {
        assert_eq!(config.validate().as_ref(), Err(&expected));
        let err = SessionLayer::try_with_shared_store(Arc::new(MemoryStore::new()), config.clone()).unwrap_err();
        assert!(matches!(&err, SessionError::Config(e) if *e == expected), "{err:?}");
        assert!(err.to_string().contains(says), "{err}");
        let panic = std::panic::catch_unwind(|| SessionLayer::memory(config)).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.starts_with("invalid session configuration: ") && message.contains(says), "{message}");
    }
}

/// A site-wide layer (`_nex_session`, memory store) around an `/admin` router with
/// its own layer (`admin_session`, SQLite store, `Path=/admin`, shorter TTL) and CSRF check.
fn two_layer_app(admin_store: Arc<dyn SessionStore>) -> Router {
    let site = put_get_routes("")
        .route("/form", get(|| async { nex_session::csrf::token().await.unwrap() }))
        .route("/flash", get(|| async { format!("{:?}", nex_session::flash::pop_all().await.unwrap()) }));
    let admin = put_get_routes("")
        .route(
            "/extract/{k}",
            get(|session: Session, Path(k): Path<String>| async move {
                format!("{}:{}", session.cookie_name(), text(session.get(&k).await))
            }),
        )
        .route(
            "/site/{k}",
            get(|Path(k): Path<String>| async move {
                text(async { nex_session::named("_nex_session")?.get(&k).await }.await)
            }),
        )
        .route(
            "/site-put/{k}/{v}",
            post(|session: Session, Path((k, v)): Path<(String, String)>| async move {
                session.named("_nex_session").unwrap().put(&k, v).await.unwrap();
                "ok"
            }),
        )
        .route(
            "/missing",
            get(|| async {
                match nex_session::named("nope") {
                    Err(SessionError::NoNamedLayer(name)) => format!("no layer {name}"),
                    other => format!("unexpected: {other:?}"),
                }
            }),
        )
        .route(
            "/clear",
            post(|| async {
                nex_session::clear().await.unwrap();
                "cleared"
            }),
        )
        .route("/form", get(|| async { nex_session::csrf::token().await.unwrap() }))
        .route(
            "/flash",
            post(|| async {
                nex_session::flash::put("info", "admin only").await.unwrap();
                "flashed"
            }),
        )
        .route("/flash", get(|| async { format!("{:?}", nex_session::flash::pop_all().await.unwrap()) }))
        .layer(CsrfLayer::new())
        .layer(SessionLayer::with_shared_store(
            admin_store,
            config().with_cookie_name("admin_session").with_cookie_path("/admin").with_ttl(Duration::from_secs(600)),
        ));
    site.nest("/admin", admin).layer(SessionLayer::memory(config()))
}

fn names(reply: &Reply) -> Vec<String> {
    reply.set_cookies.iter().map(|c| c.split('=').next().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_session_layers_on_one_router_keep_their_cookies_stores_csrf_and_flash_apart() {
    let db = TempDb::new("two-layers");
    let admin_store = Arc::new(SqliteStore::open(&db.0).await.unwrap());
    let addr = serve(two_layer_app(admin_store)).await;
    let browser = Browser::new(addr);

    // Each layer sets only its own cookie.
    let r = browser.post_form("/put/theme/dark", &[]).await;
    assert_eq!(names(&r), ["_nex_session"]);
    let form = browser.get("/admin/form").await;
    assert_eq!(names(&form), ["admin_session_csrf"], "the admin CSRF secret rides in the admin layer's side cookie");
    assert!(form.set_cookies[0].contains("Path=/admin"), "{:?}", form.set_cookies);
    let admin_token = form.body;
    // The site session exists, so its CSRF secret lives in the site session.
    let site_token = browser.get("/form").await.body;

    // CSRF per layer: no token or the site's token is refused by the admin layer's check.
    assert_eq!(browser.post_with_headers("/admin/put/user/root", &[]).await.status, 403);
    assert_eq!(browser.post_with_headers("/admin/put/user/root", &[("x-csrf-token", &site_token)]).await.status, 403);
    let r = browser.post_with_headers("/admin/put/user/root", &[("x-csrf-token", &admin_token)]).await;
    assert_eq!(r.status, 200);
    assert!(names(&r).contains(&"admin_session".to_owned()) && !names(&r).contains(&"_nex_session".to_owned()));
    let admin_cookie = r.set_cookies.iter().find(|c| c.starts_with("admin_session=")).unwrap();
    assert!(admin_cookie.contains("Path=/admin") && admin_cookie.contains("Max-Age=600"), "{admin_cookie}");
    // Now that the admin session exists, its CSRF secret lives there.
    let admin_token = browser.get("/admin/form").await.body;

    // The ambient API and the extractor reach the innermost layer; the outer by name.
    assert_eq!(browser.get("/admin/get/user").await.body, "root");
    assert_eq!(browser.get("/admin/get/theme").await.body, "none", "the admin session is its own");
    assert_eq!(browser.get("/get/user").await.body, "none", "the site session is its own");
    assert_eq!(browser.get("/admin/extract/user").await.body, "admin_session:root");
    assert_eq!(browser.get("/admin/site/theme").await.body, "dark");
    let r = browser.post_with_headers("/admin/site-put/lang/fr", &[("x-csrf-token", &admin_token)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(browser.get("/get/lang").await.body, "fr", "written through the outer session by name");
    assert_eq!(browser.get("/admin/missing").await.body, "no layer nope");

    // `clear` in the admin layer deletes only its cookie and session.
    let r = browser.post_with_headers("/admin/clear", &[("x-csrf-token", &admin_token)]).await;
    assert_eq!(r.status, 200);
    assert!(names(&r).iter().all(|n| n.starts_with("admin_session")), "only admin cookies: {:?}", r.set_cookies);
    assert!(r.set_cookies[0].starts_with("admin_session=; Path=/admin;") && r.set_cookies[0].contains("Max-Age=0"));
    assert_eq!(browser.get("/admin/get/user").await.body, "none");
    assert!(browser.cookie("_nex_session").is_some());
    assert_eq!(browser.get("/get/theme").await.body, "dark", "the site session survives the admin logout");

    // Flash per layer, for a visitor without a session: the admin flash is not the site's.
    let visitor = Browser::new(addr);
    let token = visitor.get("/admin/form").await.body;
    let r = visitor.post_with_headers("/admin/flash", &[("x-csrf-token", &token)]).await;
    assert_eq!(r.status, 200);
    assert!(names(&r).contains(&"admin_session_flash".to_owned()), "{:?}", r.set_cookies);
    assert!(!names(&r).iter().any(|n| n == "_nex_flash" || n == "_nex_session" || n == "admin_session"));
    assert_eq!(visitor.get("/flash").await.body, "{}", "the site layer sees no admin flash");
    assert!(visitor.get("/admin/flash").await.body.contains("admin only"));
}
