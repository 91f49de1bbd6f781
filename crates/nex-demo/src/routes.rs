//! The demo's routes: the contract in the README, handler by handler.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use nex_session::token::Signer;
use nex_session::SessionError;
use serde::Deserialize;

use crate::auth::{self, User};
use crate::{csrf, pages, DemoState};

/// A session failure as a page: the store being unreachable is a 503 "try again"
/// page (the user is not shown as logged out); anything else a 500.
#[derive(Debug)]
pub(crate) struct PageError(SessionError);

impl From<SessionError> for PageError {
    fn from(err: SessionError) -> Self {
        Self(err)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "session error while rendering a page");
        let status = match self.0 {
            SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = (status, Html(pages::unavailable(status).into_string())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// The signed-in user, from the session's `user_id`.
async fn current_user() -> Result<Option<User>, SessionError> {
    Ok(nex_session::get::<u64>("user_id").await?.and_then(auth::find))
}

/// `GET /`: who is signed in. Anonymous visits set no cookie (no form, no session).
pub(crate) async fn home(State(state): State<DemoState>) -> Result<Html<String>, PageError> {
    let user = current_user().await?;
    let csrf = match user {
        Some(_) => Some(csrf::form_token(&state.csrf, state.secure).await?),
        None => None,
    };
    Ok(Html(pages::home(user, csrf.as_deref()).into_string()))
}

/// `GET /login`: the form, and pending flash messages, shown once.
pub(crate) async fn login_page(State(state): State<DemoState>) -> Result<Html<String>, PageError> {
    let messages = nex_session::flash::pop_all().await?;
    let token = csrf::form_token(&state.csrf, state.secure).await?;
    Ok(Html(pages::login(&messages, &token).into_string()))
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    _csrf_token: Option<String>,
}

/// `POST /login`: renew the id (against fixation), remember the user, go to the dashboard.
pub(crate) async fn login(
    State(state): State<DemoState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    if !csrf_ok(&state.csrf, &headers, form._csrf_token.as_deref()).await? {
        return Ok(forbidden());
    }
    // argon2 takes 19 MiB and a core: the gate bounds how many run at once.
    let user = match state.logins.authenticate(form.email, form.password).await {
        Ok(user) => user,
        Err(busy) => return Ok(busy.into_response()),
    };
    match user {
        Some(user) => {
            nex_session::renew().await?;
            nex_session::put("user_id", user.id).await?;
            nex_session::flash::put("info", "Welcome back!").await?;
            Ok(Redirect::to("/dashboard").into_response())
        }
        None => {
            nex_session::flash::put("error", "Invalid credentials").await?;
            Ok(Redirect::to("/login").into_response())
        }
    }
}

/// `GET /dashboard`: the user's page with the session counter.
pub(crate) async fn dashboard(State(state): State<DemoState>) -> Result<Response, PageError> {
    let Some(user) = current_user().await? else {
        nex_session::flash::put("error", "Please sign in to see your dashboard.").await?;
        return Ok(Redirect::to("/login").into_response());
    };
    let counter = nex_session::get_or("counter", 0u64).await?;
    let messages = nex_session::flash::pop_all().await?;
    let token = csrf::form_token(&state.csrf, state.secure).await?;
    Ok(Html(pages::dashboard(user, counter, &messages, &token).into_string()).into_response())
}

/// A form that carries only the CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    _csrf_token: Option<String>,
}

/// `POST /counter`: atomic increment in the store.
pub(crate) async fn increment(
    State(state): State<DemoState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, PageError> {
    if !token_form_ok(&state.csrf, &headers, &form).await? {
        return Ok(forbidden());
    }
    if current_user().await?.is_none() {
        return Ok(Redirect::to("/login").into_response());
    }
    nex_session::update("counter", 0u64, |n| n + 1).await?;
    Ok(Redirect::to("/dashboard").into_response())
}

/// `GET /counter`: the counter as text for the signed-in user, else 401.
pub(crate) async fn counter() -> Result<Response, PageError> {
    if current_user().await?.is_none() {
        return Ok((StatusCode::UNAUTHORIZED, "not signed in\n").into_response());
    }
    let counter = nex_session::get_or("counter", 0u64).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], counter.to_string()).into_response())
}

/// `POST /logout`: forget everything, back to the start page.
pub(crate) async fn logout(
    State(state): State<DemoState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, PageError> {
    if !token_form_ok(&state.csrf, &headers, &form).await? {
        return Ok(forbidden());
    }
    nex_session::clear().await?;
    Ok(Redirect::to("/").into_response())
}

/// [`csrf_ok`] for a form that carries only the token (or none, with the header).
async fn token_form_ok(
    signer: &Signer,
    headers: &HeaderMap,
    form: &Result<Form<TokenForm>, FormRejection>,
) -> Result<bool, SessionError> {
    let field = form.as_ref().ok().and_then(|Form(f)| f._csrf_token.as_deref());
    csrf_ok(signer, headers, field).await
}

/// The form field, or else the `x-csrf-token` header, must hold a valid token.
async fn csrf_ok(signer: &Signer, headers: &HeaderMap, field: Option<&str>) -> Result<bool, SessionError> {
    let header = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    csrf::is_valid(signer, field.or(header)).await
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, Html(pages::forbidden().into_string())).into_response()
}
