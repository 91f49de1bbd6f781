//! Step 3 of the lifecycle, **persist**: save what the request left pending and
//! turn the session's [`Ending`] into `Set-Cookie` headers.
//!
//! Most requests need neither a store write nor a cookie: [`persist_now`] answers
//! them without waiting (and without an allocation). The rest go through
//! [`persist`], which writes pending changes and slides the expiry when due.

use http::HeaderValue;

use crate::error::SessionError;
use crate::session::{Ending, Session, SessionCookie};

/// What the response gets from the session at the end of a request.
pub(crate) struct Finished {
    /// `Set-Cookie` values to add, the session cookie first.
    pub(crate) set_cookies: Vec<HeaderValue>,
    /// The handler used the session: the response depends on the request's cookies.
    pub(crate) accessed: bool,
}

/// The end of the request without waiting, when nothing needs the store.
/// `None`: call [`persist`].
pub(super) fn persist_now(session: &Session) -> Option<Result<Finished, SessionError>> {
    let ending = session.finish_now()?;
    Some(set_cookies(session, ending))
}

/// The end of the request: write what is pending, slide the expiry when due,
/// and give the `Set-Cookie` headers to add. On error nothing is reported as saved.
///
/// # Errors
/// [`SessionError::Store`] when the store cannot save the session.
pub(crate) async fn persist(session: &Session) -> Result<Finished, SessionError> {
    let ending = session.finish().await?;
    set_cookies(session, ending)
}

/// After a failed save: the cookie for a stored session whose id changed in this
/// request (a successful `renew`), so the 503 does not strand the browser on a
/// dead id. `None` when there is nothing to rescue.
pub(super) fn rescue_cookie(session: &Session) -> Option<HeaderValue> {
    let cookie = session.rescue()?;
    session.context().cookie.issue(&cookie.id, cookie.lifetime, session.started_ms()).ok()
}

fn set_cookies(session: &Session, ending: Ending) -> Result<Finished, SessionError> {
    let Ending { session_cookie, mut queued, saved, accessed } = ending;
    let codec = &session.context().cookie;
    let session_header = match session_cookie {
        // Most requests: nothing to set.
        SessionCookie::Unchanged => return Ok(Finished { set_cookies: queued, accessed }),
        SessionCookie::Issue(cookie) => {
            if saved {
                tracing::debug!(target: "nex_session", "session saved");
            }
            codec.issue(&cookie.id, cookie.lifetime, session.started_ms())?
        }
        SessionCookie::Delete => codec.deletion(),
    };
    queued.insert(0, session_header);
    Ok(Finished { set_cookies: queued, accessed })
}
