//! Per-user sessions over real HTTP on 127.0.0.1, on the memory, SQLite and
//! Redis stores: signing in binds the session, a user sees each device with this
//! one marked, signs one out or all the others, and a revoked browser's next
//! request is signed out, also when its requests race with the revoke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use nex_session::store::{Keep, MemoryStore, SessionStore};
use nex_session::users::{self, SessionHandle};
use nex_session::{Session, SessionConfig, SessionError, SessionLayer};
use nex_testkit::http::{serve, HttpClient};
use nex_testkit::store::Instrumented;
use support::stores;

fn config() -> SessionConfig {
    SessionConfig::new(nex_session::token::SecretKeyBase::new("users-secret-users-secret-users-secret").unwrap())
}

fn text<T: std::fmt::Debug>(result: Result<T, SessionError>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(err) => format!("error: {err}"),
    }
}

fn routes() -> Router {
    Router::new()
        .route(
            "/login/{user}/{meta}",
            post(|Path((user, meta)): Path<(String, String)>| async move {
                text(users::sign_in(&user, Some(&meta)).await)
            }),
        )
        .route("/whoami", get(|| async { text(users::current_user().await) }))
        .route(
            "/devices",
            get(|| async {
                match users::sessions().await {
                    Ok(list) => list
                        .iter()
                        .map(|s| format!("{} {} {}", s.handle, s.meta.as_deref().unwrap_or("-"), s.current))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    Err(err) => format!("error: {err}"),
                }
            }),
        )
        .route(
            "/revoke/{handle}",
            post(|Path(handle): Path<String>| async move {
                let handle: SessionHandle = handle.parse().unwrap();
                text(users::revoke(&handle).await)
            }),
        )
        .route("/revoke-others", post(|| async { text(users::revoke_others().await) }))
        .route("/revoke-all", post(|| async { text(users::revoke_all().await) }))
        .route("/renew", post(|| async { text(nex_session::renew().await) }))
        .route("/logout", post(|| async { text(nex_session::clear().await) }))
        .route("/absence", get(|| async { text(nex_session::absence().await) }))
        .route("/put/{k}", post(|Path(k): Path<String>| async move { text(nex_session::put(&k, 1).await) }))
        .route("/cart", post(|session: Session| async move { text(session.update("cart", 0u64, |n| n + 1).await) }))
}

struct App {
    client: HttpClient,
    store: Instrumented,
}

async fn serve_on(store: Arc<dyn SessionStore>, config: SessionConfig) -> App {
    let store = Instrumented::new(store);
    let addr = serve(routes().layer(SessionLayer::new(store.clone(), config))).await;
    App { client: HttpClient::new(addr), store }
}

impl App {
    /// Signs in as `user` from a new browser; its session cookie.
    async fn sign_in(&self, user: &str, meta: &str) -> String {
        let reply = self.client.post(&format!("/login/{user}/{meta}"), None).await;
        assert_eq!(reply.body, "()");
        reply.session_cookie().expect("signing in sets the session cookie")
    }

    async fn whoami(&self, cookie: &str) -> String {
        self.client.get("/whoami", Some(cookie)).await.body
    }

    /// `(handle, meta, current)` per device, as the browser with `cookie` sees them.
    async fn devices(&self, cookie: &str) -> Vec<(String, String, bool)> {
        let body = self.client.get("/devices", Some(cookie)).await.body;
        assert!(!body.starts_with("error"), "{body}");
        body.lines()
            .map(|line| {
                let parts: Vec<&str> = line.split(' ').collect();
                (parts[0].to_owned(), parts[1].to_owned(), parts[2] == "true")
            })
            .collect()
    }

    async fn handle_of(&self, cookie: &str) -> String {
        let devices = self.devices(cookie).await;
        devices.into_iter().find(|d| d.2).expect("the current device is marked").0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_of_a_user_is_listed_with_this_one_marked_on_every_store() {
    let stores = stores("nex-users", "list").await;
    for (name, store) in stores.list.iter().cloned() {
        let app = serve_on(store, config()).await;
        let laptop = app.sign_in("alice", "laptop").await;
        let phone = app.sign_in("alice", "phone").await;
        let other = app.sign_in("bob", "desktop").await;
        assert_eq!(app.whoami(&laptop).await, r#"Some("alice")"#, "{name}");
        assert_eq!(app.whoami(&other).await, r#"Some("bob")"#, "{name}");

        let seen_by_laptop = app.devices(&laptop).await;
        let mut metas: Vec<_> = seen_by_laptop.iter().map(|d| d.1.as_str()).collect();
        metas.sort();
        assert_eq!(metas, ["laptop", "phone"], "{name}: alice's devices and nobody else's");
        let marked: Vec<_> = seen_by_laptop.iter().filter(|d| d.2).map(|d| d.1.as_str()).collect();
        assert_eq!(marked, ["laptop"], "{name}: this device is marked");
        assert_eq!(app.handle_of(&phone).await.len(), 22, "{name}");
        // Nothing listed works as (or contains) a cookie or an id.
        for (handle, _, _) in &seen_by_laptop {
            assert!(!laptop.contains(handle.as_str()) && !phone.contains(handle.as_str()), "{name}");
        }
        // A visitor without a user has no devices and no user.
        assert_eq!(app.client.get("/devices", None).await.body, "", "{name}");
        assert_eq!(app.client.get("/whoami", None).await.body, "None", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_the_other_devices_signs_them_out_at_their_next_request_on_every_store() {
    let stores = stores("nex-users", "others").await;
    for (name, store) in stores.list.iter().cloned() {
        let app = serve_on(store, config()).await;
        let a = app.sign_in("alice", "a").await;
        let b = app.sign_in("alice", "b").await;
        let c = app.sign_in("alice", "c").await;
        let bobs = app.sign_in("bob", "x").await;
        assert_eq!(app.client.post("/revoke-others", Some(&a)).await.body, "2", "{name}");
        for gone in [&b, &c] {
            assert_eq!(app.whoami(gone).await, "None", "{name}: a revoked browser is signed out");
            assert_eq!(app.client.get("/absence", Some(gone)).await.body, "Some(Revoked)", "{name}");
        }
        assert_eq!(app.whoami(&a).await, r#"Some("alice")"#, "{name}: this device stays signed in");
        assert_eq!(app.devices(&a).await.len(), 1, "{name}");
        assert_eq!(app.whoami(&bobs).await, r#"Some("bob")"#, "{name}: other users are untouched");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_is_signed_out_by_its_handle_and_only_by_its_user_on_every_store() {
    let stores = stores("nex-users", "one").await;
    for (name, store) in stores.list.iter().cloned() {
        let app = serve_on(store, config()).await;
        let a = app.sign_in("alice", "a").await;
        let b = app.sign_in("alice", "b").await;
        let mallory = app.sign_in("mallory", "m").await;
        let b_handle = app.handle_of(&b).await;
        let r = app.client.post(&format!("/revoke/{b_handle}"), Some(&mallory)).await;
        assert_eq!(r.body, "false", "{name}: another user's handle revokes nothing");
        assert_eq!(app.whoami(&b).await, r#"Some("alice")"#, "{name}");
        assert_eq!(app.client.post(&format!("/revoke/{b_handle}"), Some(&a)).await.body, "true", "{name}");
        assert_eq!(app.whoami(&b).await, "None", "{name}");
        assert_eq!(app.whoami(&a).await, r#"Some("alice")"#, "{name}");

        // Revoking this device is a logout: the response deletes the cookie.
        let a_handle = app.handle_of(&a).await;
        let r = app.client.post(&format!("/revoke/{a_handle}"), Some(&a)).await;
        assert_eq!(r.body, "true", "{name}");
        assert!(r.session_set_cookie_header().unwrap().contains("Max-Age=0"), "{name}");
        assert_eq!(app.whoami(&a).await, "None", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_everywhere_ends_this_session_too_and_the_binding_follows_renew_and_ends_with_clear() {
    let stores = stores("nex-users", "everywhere").await;
    for (name, store) in &stores.list {
        let app = serve_on(store.clone(), config()).await;
        let a = app.sign_in("alice", "a").await;
        let b = app.sign_in("alice", "b").await;
        // renew: a new id, the same user, the list follows.
        let before = app.handle_of(&a).await;
        let r = app.client.post("/renew", Some(&a)).await;
        let a2 = r.session_cookie().expect("renew sets a new cookie");
        assert_eq!(app.whoami(&a2).await, r#"Some("alice")"#, "{name}: the binding survives renew");
        assert_eq!(app.whoami(&a).await, "None", "{name}: the old id is dead");
        let after = app.handle_of(&a2).await;
        assert_ne!(before, after, "{name}: the handle follows the new id");
        assert_eq!(app.devices(&a2).await.len(), 2, "{name}");

        let r = app.client.post("/revoke-all", Some(&a2)).await;
        assert_eq!(r.body, "1", "{name}: one other session");
        assert!(r.session_set_cookie_header().unwrap().contains("Max-Age=0"), "{name}: this cookie is deleted");
        assert_eq!(app.whoami(&a2).await, "None", "{name}");
        assert_eq!(app.whoami(&b).await, "None", "{name}");
        assert!(store.users().unwrap().sessions("alice").await.unwrap().is_empty(), "{name}");

        // clear (logout) ends the binding.
        let c = app.sign_in("alice", "c").await;
        let d = app.sign_in("alice", "d").await;
        assert_eq!(app.client.post("/logout", Some(&c)).await.body, "()", "{name}");
        let left: Vec<_> = app.devices(&d).await.into_iter().map(|d| d.1).collect();
        assert_eq!(left, ["d"], "{name}: a logged-out session leaves the list");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_racing_with_a_revoke_never_bring_the_session_back_on_every_store() {
    let stores = stores("nex-users", "race").await;
    for (name, store) in &stores.list {
        let app = Arc::new(serve_on(store.clone(), config()).await);
        let a = app.sign_in("alice", "a").await;
        let b = app.sign_in("alice", "b").await;
        // Browser B fires writes while A signs everything else out.
        let writers: Vec<_> = (0..24)
            .map(|i| {
                let (app, b) = (app.clone(), b.clone());
                tokio::spawn(async move {
                    let path = if i % 2 == 0 { format!("/put/k{i}") } else { "/cart".to_owned() };
                    app.client.post(&path, Some(&b)).await
                })
            })
            .collect();
        let revoked = app.client.post("/revoke-others", Some(&a)).await;
        assert!(!revoked.body.starts_with("error"), "{name}: {}", revoked.body);
        let mut cookies = vec![b.clone()];
        for writer in writers {
            let reply = writer.await.unwrap();
            assert!(
                !reply.body.starts_with("error"),
                "{name}: a racing write fails cleanly, never with an error: {}",
                reply.body
            );
            cookies.extend(reply.session_cookie());
        }
        // Whatever cookie B ended up with: none is alice's any more.
        for cookie in &cookies {
            assert_eq!(app.whoami(cookie).await, "None", "{name}: a revoked session came back");
        }
        let listed = store.users().unwrap().sessions("alice").await.unwrap();
        assert_eq!(listed.len(), 1, "{name}: only A is left");
        // And a revoke from outside a request (an admin tool) ends A too.
        assert_eq!(store.users().unwrap().revoke_all("alice", Keep::None).await.unwrap(), 1, "{name}");
        assert_eq!(app.whoami(&a).await, "None", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_this_device_wins_over_a_renew_of_it_by_a_racing_request_on_every_store() {
    use tokio::sync::Barrier;
    let stores = stores("nex-users", "own-renew").await;
    for (name, store) in &stores.list {
        // `/revoke-me` loads its session, waits while the test renews the same
        // session from a second request, then revokes the handle it loaded: the
        // order that left the renewed id signed in.
        let (loaded, renewed) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let (l, r) = (loaded.clone(), renewed.clone());
        let revoke_me = post(move || async move {
            let me = users::sessions().await.unwrap().into_iter().find(|s| s.current).expect("signed in");
            l.wait().await;
            r.wait().await;
            text(users::revoke(&me.handle).await)
        });
        let store = Instrumented::new(store.clone());
        let addr =
            serve(routes().route("/revoke-me", revoke_me).layer(SessionLayer::new(store.clone(), config()))).await;
        let app = Arc::new(App { client: HttpClient::new(addr), store });
        let a = app.sign_in("alice", "a").await;
        let b = app.sign_in("alice", "b").await;

        let revoking = tokio::spawn({
            let (app, a) = (app.clone(), a.clone());
            async move { app.client.post("/revoke-me", Some(&a)).await }
        });
        loaded.wait().await;
        let renew = app.client.post("/renew", Some(&a)).await;
        let renewed_cookie = renew.session_cookie().expect("the renew went through first");
        assert_eq!(app.whoami(&renewed_cookie).await, r#"Some("alice")"#, "{name}: renewed before the revoke");
        renewed.wait().await;
        let reply = revoking.await.unwrap();

        assert_eq!(reply.body, "true", "{name}: the renewed session was revoked");
        assert_eq!(app.whoami(&renewed_cookie).await, "None", "{name}: the renewed id is signed out");
        assert_eq!(app.whoami(&a).await, "None", "{name}");
        let left: Vec<_> = app.devices(&b).await.into_iter().map(|d| d.1).collect();
        assert_eq!(left, ["b"], "{name}: only the other device is left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_without_a_user_never_touch_the_index_and_reading_a_user_costs_one_load() {
    let app = serve_on(Arc::new(MemoryStore::new()), config()).await;
    let anonymous = app.client.post("/put/x", None).await.session_cookie().unwrap();
    app.store.reset();
    for path in ["/put/y", "/cart"] {
        app.client.post(path, Some(&anonymous)).await;
    }
    assert_eq!(app.whoami(&anonymous).await, "None");
    assert_eq!(app.store.index_count(), 0, "a session without a user never calls the index");
    assert_eq!(app.store.counts(), (1, 2), "one load (whoami), one write per POST: as before");

    let alice = app.sign_in("alice", "a").await;
    app.store.reset();
    assert_eq!(app.whoami(&alice).await, r#"Some("alice")"#);
    assert_eq!(app.store.counts(), (1, 0), "who is signed in comes with the session's one load");
    assert_eq!(app.store.index_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_seen_moves_once_per_refresh_interval_in_a_write_made_anyway() {
    let store = Arc::new(MemoryStore::new());
    let config = config().with_refresh_interval(Duration::from_secs(1));
    let app = serve_on(store.clone(), config).await;
    let alice = app.sign_in("alice", "a").await;
    let first = store.users().unwrap().sessions("alice").await.unwrap()[0].clone();
    assert_eq!(first.last_seen_ms, first.signed_in_ms);
    app.store.reset();
    app.whoami(&alice).await;
    assert_eq!(app.store.counts(), (1, 0), "a fresh last-seen costs no write");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.store.reset();
    let reply = app.client.get("/whoami", Some(&alice)).await;
    assert_eq!(app.store.counts(), (1, 1), "one write records last-seen and slides the expiry, as the touch did");
    assert!(reply.session_cookie().is_some(), "the cookie is re-signed as with a touch");
    let later = store.users().unwrap().sessions("alice").await.unwrap()[0].clone();
    assert!(later.last_seen_ms >= first.last_seen_ms + 1000, "{later:?} vs {first:?}");
    assert_eq!(later.signed_in_ms, first.signed_in_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binding_fields_are_reserved_and_bad_user_ids_change_nothing() {
    let app = serve_on(Arc::new(MemoryStore::new()), config()).await;
    let r = app.client.post("/put/_nex_user", None).await;
    assert!(r.body.contains("reserved"), "{}", r.body);
    assert!(r.session_cookie().is_none(), "a refused put starts no session");
    let long = "u".repeat(300);
    let r = app.client.post(&format!("/login/{long}/m"), None).await;
    assert!(r.body.contains("at most 256 bytes"), "{}", r.body);
    assert!(r.session_cookie().is_none(), "a refused sign-in changes nothing");
}
