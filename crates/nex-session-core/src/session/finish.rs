//! The end of a request, as the layer asks it of the [`Session`]: save what is
//! pending and say which cookies the response needs, or, after a failed save,
//! what can be rescued; and what the request's span and logs tell of it.

use crate::error::SessionError;
use crate::observe::Operation;
use crate::store::users::SessionHandle;

use super::ending::{Ending, IssueCookie, Outcome};
use super::handle::Session;
use super::state::Touch;

/// Characters of a session handle in logs: enough to follow one session through
/// a log, too few to look a handle up.
const LOG_HANDLE_CHARS: usize = 8;

impl Session {
    /// What the request did with its session, for its span (`None` while
    /// another task holds the state).
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        Some(self.inner.state.try_lock()?.outcome())
    }

    /// The end of the request without waiting, when nothing needs the store:
    /// no pending writes and no refresh due. `None`: call [`Session::finish`].
    pub(crate) fn finish_now(&self) -> Option<Ending> {
        let mut state = self.inner.state.try_lock()?;
        let (context, now) = (&self.inner.context, self.inner.started_ms);
        if state.has_pending() || state.touch_due(context, now) || state.seen_due(context, now) {
            return None;
        }
        Some(state.ending(&self.inner.context, self.inner.started_ms, Touch::NotDue))
    }

    /// The end of the request: write what is pending, slide the expiry when due,
    /// and say which cookies the response needs. On error nothing is reported as saved.
    pub(crate) async fn finish(&self) -> Result<Ending, SessionError> {
        let context = &self.inner.context;
        let mut state = self.inner.state.lock().await;
        let expiry = state.store_expiry(context, self.inner.started_ms);
        let seen = state.seen_due(context, self.inner.started_ms);
        if seen {
            // Rides on the write below, or replaces the touch of a read-only request.
            state.record_seen(self.inner.started_ms);
        }
        state.flush(context, expiry).await?;
        if seen {
            state.report_seen(context, self.inner.started_ms).await;
        }
        let touch = match state.id() {
            Some(id) if state.touch_due(context, self.inner.started_ms) => {
                match context.instruments.call(Operation::Touch, context.store.touch(id.store_key(), expiry)).await? {
                    true => Touch::Found,
                    false => Touch::Gone,
                }
            }
            _ => Touch::NotDue,
        };
        Ok(state.ending(context, self.inner.started_ms, touch))
    }

    /// The first 8 characters of the session's [`SessionHandle`], for logs: a
    /// one-way digest of its key, never usable as a cookie. `None` without a
    /// session (or while another task holds the state).
    pub(crate) fn log_handle(&self) -> Option<String> {
        let state = self.inner.state.try_lock()?;
        let handle = SessionHandle::of(state.id()?.store_key());
        Some(handle.as_str().chars().take(LOG_HANDLE_CHARS).collect())
    }

    /// After a failed save: the id of a stored session whose id changed in this
    /// request (a successful `renew`), so the 503 can still move the browser to
    /// it instead of stranding it on a dead id. `None` when there is nothing to rescue.
    pub(crate) fn rescue(&self) -> Option<IssueCookie> {
        self.inner.state.try_lock()?.rescue(self.inner.started_ms)
    }
}
