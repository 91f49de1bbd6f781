//! The end of a request: whether a refresh is due, which cookie the response
//! needs, and what the request did (its outcome).

use super::{Current, Lost, State, Touch};
use crate::id::SessionId;
use crate::observe;
use crate::session::context::Context;
use crate::session::ending::{Ending, IssueCookie, Outcome, SessionCookie};

impl State {
    /// A read-only use of a stored session whose cookie is due for re-signing
    /// (the end of the request slides the store's expiry too), or an expiry
    /// mode changed since the request's last write.
    pub(in crate::session) fn touch_due(&self, context: &Context, now_ms: i64) -> bool {
        match &self.current {
            Current::Stored(id) => self.expiry_stale || (!self.wrote && self.cookie_due(context, id, now_ms)),
            Current::None | Current::Unsaved(_) => false,
        }
    }

    /// The request's cookie still names `id` but is older than the refresh
    /// interval, or was signed with a previous secret: re-sign it.
    pub(super) fn cookie_due(&self, context: &Context, id: &SessionId, now_ms: i64) -> bool {
        self.cookie.as_ref().is_some_and(|cookie| {
            cookie.id == *id
                && (!cookie.current_key || now_ms.saturating_sub(cookie.signed_at_ms) >= context.refresh_after_ms)
        })
    }

    /// What the response needs; after this, buffered writes are refused.
    pub(in crate::session) fn ending(&mut self, context: &Context, now_ms: i64, touch: Touch) -> Ending {
        self.finished = true;
        let cookie_id = self.cookie.as_ref().map(|c| &c.id);
        let session_cookie = match &self.current {
            // A new id (new session, renew): the browser must learn it.
            Current::Stored(id) if cookie_id != Some(id) => self.issue(id, now_ms),
            // A write slid the store's expiry already; like a read, it re-signs the
            // browser's cookie only when that is due (saves signing on most writes)
            // or when the session's expiry mode changed.
            Current::Stored(id) if self.wrote => match self.mode_changed || self.cookie_due(context, id, now_ms) {
                true => self.issue(id, now_ms),
                false => SessionCookie::Unchanged,
            },
            Current::Stored(id) => match touch {
                Touch::NotDue => SessionCookie::Unchanged,
                Touch::Found => self.issue(id, now_ms),
                Touch::Gone => SessionCookie::Delete,
            },
            Current::None | Current::Unsaved(_) if self.forget_cookie => SessionCookie::Delete,
            Current::None | Current::Unsaved(_) => SessionCookie::Unchanged,
        };
        // Nothing queued (most requests): skip the drain.
        let queued = if self.cookies.any_queued() { self.cookies.take_queued() } else { Vec::new() };
        if self.wrote {
            observe::session_saved();
        }
        Ending { session_cookie, queued, saved: self.wrote, accessed: self.accessed }
    }

    /// What the request did with its session, for its span (after [`State::ending`]).
    pub(in crate::session) fn outcome(&self) -> Outcome {
        match (&self.current, self.lost) {
            _ if self.created => Outcome::Created,
            _ if self.renewed => Outcome::Renewed,
            _ if self.wrote => Outcome::Saved,
            (Current::None, Lost::Cleared) => Outcome::Cleared,
            // The cookie is deleted (as `ending` decides): its session is gone.
            (Current::None | Current::Unsaved(_), _) if self.forget_cookie => Outcome::Ended,
            (Current::Stored(_), _) if self.accessed => Outcome::Read,
            (Current::Stored(_), _) => Outcome::Unused,
            _ => Outcome::None,
        }
    }

    /// After a failed save: the id of a stored session the browser does not know yet.
    pub(in crate::session) fn rescue(&mut self, now_ms: i64) -> Option<IssueCookie> {
        self.finished = true;
        match (&self.current, &self.cookie) {
            (Current::Stored(id), Some(cookie)) if cookie.id == *id => None,
            (Current::Stored(id), _) => Some(IssueCookie { id: id.clone(), lifetime: self.lifetime(now_ms) }),
            (Current::None | Current::Unsaved(_), _) => None,
        }
    }
}
