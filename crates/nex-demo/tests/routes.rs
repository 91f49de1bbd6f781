//! Every route of the demo's contract, over real HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use nex_session::token::{SecretKeyBase, Signer};
use nex_testkit::http::Browser;
use support::{config, serve_demo, sign_in_with as sign_in, SECRET};

async fn start() -> Browser {
    Browser::new(serve_demo(config()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_home_says_not_signed_in_and_sets_no_cookie() {
    let b = start().await;
    let page = b.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Not signed in"));
    assert!(page.set_cookies.is_empty(), "{:?}", page.set_cookies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_a_404_page_that_sets_no_cookie() {
    let b = start().await;
    let page = b.get("/no-such-page").await;
    assert_eq!(page.status, 404);
    assert!(page.content_type.as_deref().is_some_and(|t| t.starts_with("text/html")), "{:?}", page.content_type);
    assert!(page.body.contains("404 Not found") && page.body.contains("href=\"/\""), "{}", page.body);
    assert!(page.set_cookies.is_empty(), "{:?}", page.set_cookies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_page_has_the_form_with_a_csrf_field() {
    let b = start().await;
    let page = b.get("/login").await;
    assert_eq!(page.status, 200);
    for needle in
        ["action=\"/login\"", "name=\"email\"", "name=\"password\"", "name=\"_csrf_token\"", "demo@example.com"]
    {
        assert!(page.body.contains(needle), "{needle} missing");
    }
    assert!(b.cookie("_nex_session").is_none(), "the login form creates no session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_then_successful_login_changes_the_session_id() {
    let b = start().await;
    let failed = sign_in(&b, "wrong").await;
    assert_eq!((failed.status, failed.location.as_deref()), (303, Some("/login")));
    assert!(b.cookie("_nex_session").is_none(), "a failed login stores no session (its flash rides in a cookie)");
    let page = b.get("/login").await;
    assert!(page.body.contains("Invalid credentials"));
    assert!(!b.get("/login").await.body.contains("Invalid credentials"), "the flash is shown once");

    let first = sign_in(&b, "nex-demo").await;
    assert_eq!((first.status, first.location.as_deref()), (303, Some("/dashboard")));
    let before = b.cookie("_nex_session").unwrap();
    // Signing in again on a session (one an attacker could have planted) moves it to a new id.
    let ok = sign_in(&b, "nex-demo").await;
    assert_eq!((ok.status, ok.location.as_deref()), (303, Some("/dashboard")));
    let after = b.cookie("_nex_session").unwrap();
    let signer = Signer::new(&SecretKeyBase::new(SECRET).unwrap(), "nex.session");
    let (old_id, new_id) = (signer.verify(&before, None).unwrap(), signer.verify(&after, None).unwrap());
    assert_ne!(old_id, new_id, "login renews the session id (fixation)");
    let planted = Browser::new(b.addr());
    planted.set_cookie("_nex_session", &before);
    assert!(planted.get("/").await.body.contains("Not signed in"), "the old id is dead");

    let dash = b.get("/dashboard").await;
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("Welcome back!") && dash.body.contains("demo@example.com"));
    assert!(b.get("/").await.body.contains("Signed in as <strong>demo@example.com</strong>"));

    // The pre-login cookie is not logged in.
    let old = Browser::new(b.addr());
    old.set_cookie("_nex_session", &before);
    assert!(old.get("/").await.body.contains("Not signed in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_requires_login_with_a_flash() {
    let b = start().await;
    let page = b.get("/dashboard").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")));
    assert!(b.get("/login").await.body.contains("Please sign in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_increments_atomically_and_reads_as_text() {
    let b = start().await;
    assert_eq!(b.get("/counter").await.status, 401);
    sign_in(&b, "nex-demo").await;
    let counter = b.get("/counter").await;
    assert_eq!((counter.status, counter.body.as_str()), (200, "0"));
    assert!(counter.content_type.unwrap().starts_with("text/plain"));
    let token = b.get("/dashboard").await.csrf_token();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (b, token) = (b.clone(), token.clone());
            tokio::spawn(async move { b.post_form("/counter", &[("_csrf_token", &token)]).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 303);
    }
    assert_eq!(b.get("/counter").await.body, "50", "no lost increments");
    // The header form of the token works too.
    assert_eq!(b.post_with_headers("/counter", &[("x-csrf-token", &token)]).await.status, 303);
    assert_eq!(b.get("/counter").await.body, "51");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_post_when_logged_out_redirects_to_login() {
    let b = start().await;
    let token = b.get("/login").await.csrf_token();
    let page = b.post_form("/counter", &[("_csrf_token", &token)]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_clears_the_session_and_the_old_cookie_stops_working() {
    let b = start().await;
    sign_in(&b, "nex-demo").await;
    let logged_in = b.cookie("_nex_session").unwrap();
    let token = b.get("/dashboard").await.csrf_token();
    let page = b.post_form("/logout", &[("_csrf_token", &token)]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/")));
    assert!(page.set_cookies.iter().any(|c| c.starts_with("_nex_session=;") && c.contains("Max-Age=0")));
    assert!(b.get("/").await.body.contains("Not signed in"));
    let replay = Browser::new(b.addr());
    replay.set_cookie("_nex_session", &logged_in);
    assert!(replay.get("/").await.body.contains("Not signed in"), "a copied cookie is dead after logout");
    assert_eq!(replay.get("/counter").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_without_a_valid_csrf_token_are_403_and_change_nothing() {
    let b = start().await;
    b.get("/login").await;
    let no_token = b.post_form("/login", &[("email", "demo@example.com"), ("password", "nex-demo")]).await;
    assert_eq!(no_token.status, 403);
    assert!(b.cookie("_nex_session").is_none(), "nothing changed");
    let forged = b
        .post_form("/login", &[("email", "demo@example.com"), ("password", "nex-demo"), ("_csrf_token", "SFMyNTY.x.y")])
        .await;
    assert_eq!(forged.status, 403);

    sign_in(&b, "nex-demo").await;
    // A token from another browser (bound to its cookie) does not work here.
    let other = Browser::new(b.addr());
    let foreign = other.get("/login").await.csrf_token();
    assert_eq!(b.post_form("/counter", &[("_csrf_token", &foreign)]).await.status, 403);
    assert_eq!(b.post_form("/logout", &[]).await.status, 403);
    assert_eq!(b.get("/counter").await.body, "0", "no increment happened");
    assert!(b.get("/").await.body.contains("Signed in as"), "no logout happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_expired_session_cookies_are_anonymous_never_500() {
    let b = start().await;
    let signer = Signer::new(&SecretKeyBase::new(SECRET).unwrap(), "nex.session");
    let expired = signer.sign_at(b"kl_MB987yMhqOw6Ve43B16YssSK0TlOp", 1_000, 60);
    for bad in ["garbage", "SFMyNTY.AAAA.BBBB", expired.as_str()] {
        let fresh = Browser::new(b.addr());
        fresh.set_cookie("_nex_session", bad);
        for path in ["/", "/login", "/counter", "/dashboard"] {
            let page = fresh.get(path).await;
            assert!(page.status < 500, "{path} with cookie {bad:?} gave {}", page.status);
        }
        assert!(fresh.get("/").await.body.contains("Not signed in"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_visits_to_the_dashboard_leave_no_session_behind() {
    let store = std::sync::Arc::new(nex_session::store::MemoryStore::new());
    let addr = nex_testkit::http::serve(nex_demo::app(config(), store.clone())).await;
    let client = nex_testkit::http::HttpClient::new(addr);
    for method in ["GET", "HEAD"].iter().cycle().take(400) {
        let page = client.request(method, "/dashboard", None).await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")));
        assert!(page.session_cookie().is_none(), "an anonymous visit created a session");
    }
    assert!(store.is_empty(), "{} sessions stored for anonymous visitors", store.len());
    // The flash still reaches the browser that was redirected.
    let b = Browser::new(addr);
    b.get("/dashboard").await;
    assert!(b.get("/login").await.body.contains("Please sign in to see your dashboard."));
    assert!(store.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_tokens_die_at_login_and_at_logout() {
    let b = start().await;
    let before_login = b.get("/login").await.csrf_token();
    sign_in(&b, "nex-demo").await;
    assert_eq!(b.post_form("/counter", &[("_csrf_token", &before_login)]).await.status, 403);
    let signed_in = b.get("/dashboard").await.csrf_token();
    assert_eq!(b.post_form("/counter", &[("_csrf_token", &signed_in)]).await.status, 303);
    assert_eq!(b.post_form("/logout", &[("_csrf_token", &signed_in)]).await.status, 303);
    // The token from before the logout no longer posts anything, also not a login.
    let replay = b
        .post_form("/login", &[("email", "demo@example.com"), ("password", "nex-demo"), ("_csrf_token", &signed_in)])
        .await;
    assert_eq!(replay.status, 403);
    assert!(b.get("/").await.body.contains("Not signed in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_refuse_framing_and_signed_in_pages_are_never_cached() {
    let b = start().await;
    let login = b.get("/login").await;
    assert_eq!(login.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(login.header("content-security-policy").as_deref(), Some("frame-ancestors 'none'"));
    assert_eq!(login.header("cache-control").as_deref(), Some("private, no-cache"), "it sets the CSRF cookie");
    sign_in(&b, "nex-demo").await;
    for path in ["/", "/dashboard"] {
        let page = b.get(path).await;
        assert_eq!(page.header("cache-control").as_deref(), Some("no-store"), "{path}");
        assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(page.header("vary").as_deref(), Some("Cookie"), "{path}");
    }
}
