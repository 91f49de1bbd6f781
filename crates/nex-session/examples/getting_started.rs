//! A complete app: a durable store, CSRF protection, a flash message, sign-in
//! and "remember me". The README's "Getting started" shows this file.
//!
//! ```sh
//! NEX_ENV=dev cargo run -p nex-session --features sqlite --example getting_started
//! ```
//!
//! Then open http://127.0.0.1:3000 and sign in as `alice` / `wonderland`.
use std::sync::Arc;
use std::time::Duration;

use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use nex_session::csrf::{CsrfLayer, CSRF_FIELD};
use nex_session::store::SessionStore;
use nex_session::{SessionConfig, SessionError, SessionExpiry, SessionLayer};
use serde::Deserialize;

#[derive(Deserialize)]
struct SignIn {
    user: String,
    password: String,
    remember: Option<String>,
}

async fn home() -> Result<Html<String>, SessionError> {
    // Shown once: taken out of the session as it is read.
    let flash = nex_session::flash::pop_all().await?.remove("info").unwrap_or_default();
    let csrf = nex_session::csrf::token().await?;
    let page = match nex_session::users::current_user().await? {
        Some(user) => format!(
            r#"<p>{flash}</p><p>Signed in as {user}.</p>
            <form method="post" action="/logout"><input type="hidden" name="{CSRF_FIELD}" value="{csrf}">
            <button>Sign out</button></form>"#
        ),
        None => format!(
            r#"<p>{flash}</p>
            <form method="post" action="/login"><input type="hidden" name="{CSRF_FIELD}" value="{csrf}">
            <input name="user" placeholder="alice"> <input name="password" type="password" placeholder="wonderland">
            <label><input type="checkbox" name="remember"> Remember me</label> <button>Sign in</button></form>"#
        ),
    };
    Ok(Html(page))
}

async fn login(Form(form): Form<SignIn>) -> Result<Redirect, SessionError> {
    // A real app checks a password hash (argon2); this one knows one account.
    if form.user != "alice" || form.password != "wonderland" {
        nex_session::flash::put("info", "Wrong user or password.").await?;
        return Ok(Redirect::to("/"));
    }
    // A new session id (no session fixation), bound to the user.
    nex_session::users::sign_in(&form.user, Some("getting started")).await?;
    if form.remember.is_some() {
        let thirty_days = Duration::from_secs(30 * 86_400);
        nex_session::set_expiry(SessionExpiry::Persistent(thirty_days)).await?;
    }
    nex_session::flash::put("info", "Welcome!").await?;
    Ok(Redirect::to("/"))
}

async fn logout() -> Result<Redirect, SessionError> {
    nex_session::clear().await?;
    Ok(Redirect::to("/"))
}

/// The app on `store`: the session layer outside, CSRF checks inside it.
pub fn app(store: Arc<dyn SessionStore>, config: SessionConfig) -> Result<Router, SessionError> {
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(CsrfLayer::new()) // inside the session layer: add it first
        .layer(SessionLayer::try_with_shared_store(store, config)?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SECRET_KEY_BASE (or NEX_ENV=dev for a development secret) and the cookie settings.
    let config = SessionConfig::from_env()?;
    // Durable: sessions survive restarts. Or redis://…, postgres://… with those features.
    let url = std::env::var("NEX_SESSION_STORE").unwrap_or_else(|_| "sqlite://sessions.db".into());
    let app = app(nex_session::store::open(&url).await?, config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app).await?;
    Ok(())
}
