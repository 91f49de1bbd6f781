//! The demo's routes: the contract in the README, handler by handler.

use axum::extract::{Form, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, USER_AGENT, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use nex_session::token::now_ms;
use nex_session::users::{self, SessionHandle};
use nex_session::{NoSession, SessionError};
use serde::Deserialize;

use crate::auth::{self, User};
use crate::{device, pages, DemoState};

/// A session failure as a page: the store being unreachable is a 503 "try again"
/// page (the user is not shown as logged out), or a 503 "check before retrying"
/// when a write may have been saved after all; anything else a 500.
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
        let (status, failure) = match &self.0 {
            err if err.may_have_applied() => (StatusCode::SERVICE_UNAVAILABLE, pages::Failure::OutcomeUnknown),
            SessionError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, pages::Failure::NotApplied),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, pages::Failure::Internal),
        };
        let mut response = (status, Html(pages::unavailable(failure, status).into_string())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// The signed-in user: the one the session is bound to (read with the session,
/// no extra store access).
async fn current_user() -> Result<Option<User>, SessionError> {
    Ok(users::current_user().await?.as_deref().and_then(auth::find_bound))
}

/// Any path the demo does not serve: a 404 page (never touches the session).
pub(crate) async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Html(pages::not_found().into_string())).into_response()
}

/// `GET /`: who is signed in. Anonymous visits set no cookie (no form, no session).
pub(crate) async fn home() -> Result<Response, PageError> {
    let user = current_user().await?;
    let signed_in = user.is_some();
    let csrf = match user {
        Some(_) => Some(nex_session::csrf::token().await?),
        None => None,
    };
    Ok(page(pages::home(user, csrf.as_deref()).into_string(), signed_in))
}

/// What to tell a visitor without a session about the one they had: that it
/// expired, or that they were signed out; nothing for a stranger (no cookie, or
/// one that is not ours).
pub(crate) const EXPIRED_NOTICE: &str = "Your session has expired, please sign in again.";
/// See [`EXPIRED_NOTICE`].
pub(crate) const REVOKED_NOTICE: &str = "You were signed out, please sign in again.";

fn ended_notice(absence: Option<NoSession>) -> Option<&'static str> {
    match absence? {
        NoSession::Expired => Some(EXPIRED_NOTICE),
        NoSession::Revoked => Some(REVOKED_NOTICE),
        _ => None,
    }
}

/// `GET /login`: the form, and pending flash messages, shown once; a browser
/// that comes back with an ended session is told so.
pub(crate) async fn login_page() -> Result<Response, PageError> {
    // Asked first: the answer depends on the request's cookie (free) or on the
    // one store read the page would do anyway.
    let notice = ended_notice(nex_session::absence().await?);
    let mut messages = nex_session::flash::pop_all().await?;
    if let Some(notice) = notice {
        // The dashboard may have said so already (its redirect carries a flash).
        messages.entry("error".to_owned()).or_insert_with(|| notice.to_owned());
    }
    let token = nex_session::csrf::token().await?;
    Ok(page(pages::login(&messages, &token).into_string(), false))
}

/// An HTML page that no other site may frame (clickjacking); a signed-in page is
/// also never stored by any cache, the browser's included (it shows the user's data).
fn page(html: String, signed_in: bool) -> Response {
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'"));
    if signed_in {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST /login`: sign in (a new id against fixation, the session bound to the
/// user with a summary of the device), go to the dashboard.
/// (Its CSRF token was checked by `CsrfLayer` before it runs.)
pub(crate) async fn login(
    State(state): State<DemoState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    // argon2 takes 19 MiB and a core: the gate bounds how many run at once.
    let user = match state.logins.authenticate(form.email, form.password).await {
        Ok(user) => user,
        Err(busy) => return Ok(busy.into_response()),
    };
    match user {
        Some(user) => {
            let agent = headers.get(USER_AGENT).and_then(|value| value.to_str().ok());
            users::sign_in(&user.session_user(), Some(&device::summary(agent))).await?;
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
pub(crate) async fn dashboard() -> Result<Response, PageError> {
    let Some(user) = current_user().await? else {
        // After the read above, asking why costs no store access.
        let message = ended_notice(nex_session::absence().await?).unwrap_or("Please sign in to see your dashboard.");
        nex_session::flash::put("error", message).await?;
        return Ok(Redirect::to("/login").into_response());
    };
    let counter = nex_session::get_or("counter", 0u64).await?;
    let devices = users::sessions().await?;
    let messages = nex_session::flash::pop_all().await?;
    let token = nex_session::csrf::token().await?;
    let view =
        pages::Dashboard { user, counter, devices: &devices, now_ms: now_ms(), messages: &messages, csrf: &token };
    Ok(page(pages::dashboard(&view).into_string(), true))
}

/// `POST /counter`: atomic increment in the store.
pub(crate) async fn increment() -> Result<Response, PageError> {
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
pub(crate) async fn logout() -> Result<Response, PageError> {
    nex_session::clear().await?;
    Ok(Redirect::to("/").into_response())
}

/// The "Sign out" form of one device in "Your sessions".
#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    handle: String,
}

/// `POST /sessions/revoke`: signs out one of the user's devices, named by its
/// handle. A malformed handle, or one that names no session of this user (gone
/// already, or another user's), changes nothing and says so. Naming this
/// device signs it out, as `POST /logout` does.
pub(crate) async fn revoke_session(Form(form): Form<RevokeForm>) -> Result<Response, PageError> {
    if current_user().await?.is_none() {
        return Ok(Redirect::to("/login").into_response());
    }
    let Ok(handle) = form.handle.parse::<SessionHandle>() else {
        nex_session::flash::put("error", NO_SUCH_DEVICE).await?;
        return Ok(Redirect::to("/dashboard").into_response());
    };
    if !users::revoke(&handle).await? {
        nex_session::flash::put("error", NO_SUCH_DEVICE).await?;
        return Ok(Redirect::to("/dashboard").into_response());
    }
    // The library cleared this session if the handle was its own: a logout.
    if nex_session::id().await?.is_none() {
        return Ok(Redirect::to("/").into_response());
    }
    nex_session::flash::put("info", &signed_out_message(1)).await?;
    Ok(Redirect::to("/dashboard").into_response())
}

/// `POST /sessions/revoke-others`: signs out every device of the user but this one.
pub(crate) async fn revoke_other_sessions() -> Result<Response, PageError> {
    if current_user().await?.is_none() {
        return Ok(Redirect::to("/login").into_response());
    }
    let others = users::revoke_others().await?;
    nex_session::flash::put("info", &signed_out_message(others)).await?;
    Ok(Redirect::to("/dashboard").into_response())
}

/// What a sign-out of a device that is not (or no longer) the user's says.
pub(crate) const NO_SUCH_DEVICE: &str = "That device is not signed in (any more); nothing was changed.";

/// "Signed out 1 other device", "Signed out 3 other devices", or that there were none.
fn signed_out_message(count: u64) -> String {
    match count {
        0 => "No other device was signed in.".to_owned(),
        1 => "Signed out 1 other device".to_owned(),
        n => format!("Signed out {n} other devices"),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use nex_session::StoreError;

    use super::*;

    async fn page(err: SessionError) -> (StatusCode, String) {
        let response = PageError(err).into_response();
        let status = response.status();
        let body = response.into_body().collect().await.expect("a body").to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn the_503_page_promises_nothing_was_changed_only_when_the_store_says_so() {
        let timeout = std::time::Duration::from_secs(1);
        let (status, body) = page(SessionError::Store(StoreError::Timeout(timeout))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("Nothing was changed; please try again"), "{body}");

        let unconfirmed = StoreError::OutcomeUnknown(Box::new(StoreError::Timeout(timeout)));
        let (status, body) = page(SessionError::Store(unconfirmed)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("could not tell whether it was saved"), "{body}");
        assert!(!body.contains("Nothing was"), "no promise it cannot keep: {body}");
    }
}
