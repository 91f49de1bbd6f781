//! The demo's HTML: server-rendered with maud (escapes every interpolation),
//! inline CSS, no JavaScript, nothing fetched from elsewhere.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use nex_session::flash::Messages;
use nex_session::users::UserSession;

use crate::auth::{User, DEMO_PASSWORD_HINT, DEMO_USER};
use crate::device::UNKNOWN_BROWSER;
use crate::time_ago;

const CSS: &str = "
body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f;background:#fafafa}
header{display:flex;justify-content:space-between;align-items:center;border-bottom:1px solid #ddd;margin-bottom:1.5rem}
a{color:#5b3cc4}
.flash{padding:.7rem 1rem;border-radius:.4rem;margin:.8rem 0}
.flash.info{background:#e8f5e9;border:1px solid #a5d6a7}
.flash.error{background:#fdecea;border:1px solid #f5a5a0}
form.stack{display:grid;gap:.7rem}
input[type=email],input[type=password]{padding:.5rem;font-size:1rem;border:1px solid #bbb;border-radius:.3rem}
button{padding:.5rem 1rem;font-size:1rem;border:0;border-radius:.3rem;background:#5b3cc4;color:#fff;cursor:pointer}
.counter{font-size:3rem;font-weight:700;margin:.5rem 0}
.hint{color:#666;font-size:.9rem}
.row{display:flex;gap:.7rem;align-items:center}
ul.sessions{list-style:none;padding:0}
.session{padding:.6rem 0;border-bottom:1px solid #eee}
.session form{margin-top:.4rem}
.session.current .device{font-weight:700}
";

fn layout(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · nex-session demo" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { a href="/" { "nex-session demo" } }
                }
                (body)
            }
        }
    }
}

fn flashes(messages: &Messages) -> Markup {
    html! {
        @for (kind, message) in messages {
            p class={ "flash " (kind) } role="status" { (message) }
        }
    }
}

fn logout_form(csrf: &str) -> Markup {
    html! {
        form method="post" action="/logout" {
            input type="hidden" name="_csrf_token" value=(csrf);
            button type="submit" id="logout" { "Log out" }
        }
    }
}

/// `GET /`.
pub(crate) fn home(user: Option<User>, csrf: Option<&str>) -> Markup {
    layout(
        "Home",
        &html! {
            @match user {
                Some(user) => {
                    p { "Signed in as " strong { (user.email) } }
                    p { a href="/dashboard" { "Go to your dashboard" } }
                    @if let Some(csrf) = csrf { (logout_form(csrf)) }
                }
                None => {
                    p { "Not signed in" }
                    p { a href="/login" id="login-link" { "Sign in" } }
                }
            }
        },
    )
}

/// `GET /login`.
pub(crate) fn login(messages: &Messages, csrf: &str) -> Markup {
    layout(
        "Sign in",
        &html! {
            h2 { "Sign in" }
            (flashes(messages))
            form.stack method="post" action="/login" {
                input type="hidden" name="_csrf_token" value=(csrf);
                label { "Email" br; input type="email" name="email" id="email" required autocomplete="username"; }
                label { "Password" br; input type="password" name="password" id="password" required autocomplete="current-password"; }
                button type="submit" id="submit" { "Sign in" }
            }
            p.hint { "Demo account: " code { (DEMO_USER.email) } " / " code { (DEMO_PASSWORD_HINT) } }
        },
    )
}

/// What `GET /dashboard` shows.
pub(crate) struct Dashboard<'a> {
    pub(crate) user: User,
    pub(crate) counter: u64,
    /// The user's sessions, this one marked.
    pub(crate) devices: &'a [UserSession],
    /// The instant the times in the list are relative to.
    pub(crate) now_ms: i64,
    pub(crate) messages: &'a Messages,
    pub(crate) csrf: &'a str,
}

/// `GET /dashboard`.
pub(crate) fn dashboard(view: &Dashboard<'_>) -> Markup {
    let csrf = view.csrf;
    layout(
        "Dashboard",
        &html! {
            h2 { "Dashboard" }
            (flashes(view.messages))
            p { "Signed in as " strong #email { (view.user.email) } }
            p { "Your session counter:" }
            p.counter #counter { (view.counter) }
            div.row {
                form method="post" action="/counter" {
                    input type="hidden" name="_csrf_token" value=(csrf);
                    button type="submit" id="increment" { "Increment" }
                }
                (logout_form(csrf))
            }
            p.hint { "The counter lives in the server-side session; the browser holds only a signed id." }
            (your_sessions(view.devices, view.now_ms, csrf))
        },
    )
}

/// "Your sessions": each device signed in as this user, this one marked, a
/// sign-out form for each other one and one for all of them.
fn your_sessions(devices: &[UserSession], now_ms: i64, csrf: &str) -> Markup {
    let others = devices.iter().filter(|d| !d.current).count();
    html! {
        section #sessions {
            h3 { "Your sessions" }
            ul.sessions {
                @for device in devices {
                    li.session.current[device.current] data-handle=(device.handle) {
                        span.device { (device.meta.as_deref().unwrap_or(UNKNOWN_BROWSER)) }
                        @if device.current { " " span.this-device { "(this device)" } }
                        br;
                        span.hint {
                            "Signed in " span.signed-in { (time_ago::ago(now_ms, device.signed_in_ms)) }
                            ", last seen " span.last-seen { (time_ago::ago(now_ms, device.last_seen_ms)) }
                        }
                        @if !device.current {
                            form.sign-out method="post" action="/sessions/revoke" {
                                input type="hidden" name="_csrf_token" value=(csrf);
                                input type="hidden" name="handle" value=(device.handle);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
            }
            @if others > 0 {
                form method="post" action="/sessions/revoke-others" {
                    input type="hidden" name="_csrf_token" value=(csrf);
                    button type="submit" id="sign-out-others" { "Sign out everywhere else" }
                }
            } @else {
                p.hint #no-other-sessions { "You are signed in on this device only." }
            }
        }
    }
}

/// What the failure page can honestly tell the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The store was unreachable and the write certainly did not happen (503).
    NotApplied,
    /// A write was sent but never confirmed: it may have happened (503).
    OutcomeUnknown,
    /// Anything else (500).
    Internal,
}

/// The page for a session failure; its status is the caller's.
pub(crate) fn unavailable(failure: Failure, status: axum::http::StatusCode) -> Markup {
    let (title, text, link) = match failure {
        Failure::NotApplied => {
            let text = "The session service is unreachable for a moment. Nothing was changed; please try again.";
            ("Please try again", text, "Try again")
        }
        // A retry could apply the action twice (an increment, a purchase).
        Failure::OutcomeUnknown => (
            "Please check before retrying",
            "The session service did not confirm your last action: we could not tell whether it was saved. \
             Please check before retrying.",
            "Back to the start page",
        ),
        Failure::Internal => {
            ("Something went wrong", "An internal error occurred. Please try again later.", "Try again")
        }
    };
    layout(
        title,
        &html! {
            h2 { (status.as_u16()) " " (title) }
            p { (text) }
            p { a href="/" { (link) } }
        },
    )
}

/// The 404 page: a path the demo does not serve.
pub(crate) fn not_found() -> Markup {
    layout(
        "Not found",
        &html! {
            h2 { "404 Not found" }
            p { "There is no page at this address." }
            p { a href="/" { "Back to the start page" } }
        },
    )
}

/// The 503 page for a login that found every password hasher busy.
pub(crate) fn busy() -> Markup {
    layout(
        "Busy",
        &html! {
            h2 { "503 Too many sign-ins at once" }
            p { "The server is checking many passwords right now. Please try again in a moment." }
            p { a href="/login" { "Back to sign in" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use nex_session::store::users::SessionHandle;
    use nex_session::SessionId;

    use super::*;

    fn device(meta: Option<&str>, current: bool) -> UserSession {
        let handle = SessionHandle::of(SessionId::generate().unwrap().store_key());
        let now = 1_764_417_600_000;
        UserSession {
            handle,
            signed_in_ms: now - 3 * 3_600_000,
            last_seen_ms: now - 5 * 60_000,
            expires_at_ms: now + 3_600_000,
            meta: meta.map(str::to_owned),
            sign_in_id: None,
            current,
        }
    }

    fn render(devices: &[UserSession]) -> String {
        let messages = Messages::new();
        let view = Dashboard {
            user: DEMO_USER,
            counter: 0,
            devices,
            now_ms: 1_764_417_600_000,
            messages: &messages,
            csrf: "token",
        };
        dashboard(&view).into_string()
    }

    #[test]
    fn each_device_is_listed_with_its_times_and_only_others_get_a_sign_out_form() {
        let devices = [device(Some("Firefox on Windows"), true), device(None, false)];
        let page = render(&devices);
        assert_eq!(page.matches("<li class=\"session current\"").count(), 1, "{page}");
        assert_eq!(page.matches("<li class=\"session\"").count(), 1, "{page}");
        assert!(page.contains("<span class=\"device\">Firefox on Windows</span>"), "{page}");
        assert!(page.contains("<span class=\"device\">Unknown browser</span>"), "no summary stored: {page}");
        assert!(page.contains("Signed in <span class=\"signed-in\">3 hours ago</span>"), "{page}");
        assert!(page.contains("last seen <span class=\"last-seen\">5 minutes ago</span>"), "{page}");
        let other = devices[1].handle.as_str();
        assert!(page.contains(&format!("name=\"handle\" value=\"{other}\"")), "{page}");
        assert_eq!(page.matches("name=\"handle\"").count(), 1, "no sign-out form for this device: {page}");
        assert!(page.contains("id=\"sign-out-others\""), "{page}");
    }

    #[test]
    fn stored_metadata_is_escaped() {
        // Another app on the same store may have written any text there.
        let page = render(&[device(Some("<script>alert(1)</script>"), true)]);
        assert!(!page.contains("<script>") && page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("sign-out-others") && page.contains("no-other-sessions"), "{page}");
    }
}
