//! The state of one request's session, and every change to it: reads and
//! buffered writes here; the store calls that write at once (`store_calls.rs`),
//! the user binding (`user_binding.rs`) and the end of the request (`end.rs`) in the
//! files beside it, as more methods of the one [`State`].

use super::context::Context;
use super::cookies::Cookies;
use super::csrf_secret::{self, CSRF_KEY};
use super::ending::{IssueCookie, SessionCookie};
use crate::absence::NoSession;
use crate::error::SessionError;
use crate::id::SessionId;
use crate::observe;
use crate::session_cookie::{Lifetime, Mode, RequestCookie};
use crate::store::users;
use crate::store::{Change, Changes, Presence, Snapshot};

mod end;
mod store_calls;
mod user_binding;
mod written;

use written::{Written, WrittenField};

/// Attempts at writing a fresh session before giving up (only id collisions or a
/// session vanishing mid-request cause a retry).
const WRITE_ATTEMPTS: usize = 3;

/// Which session the request is on.
enum Current {
    /// No session: none was sent, or it was cleared or is gone.
    None,
    /// A session the store holds, as far as this request knows: from the
    /// request's cookie, or written by this request.
    Stored(SessionId),
    /// A freshly generated id, not written to the store yet.
    Unsaved(SessionId),
}

/// Whether this request lost the session its cookie named.
#[derive(Clone, Copy)]
enum Lost {
    /// No: it still has it, or the cookie named none.
    Not,
    /// The store no longer held it (found on load or on a conditional write).
    Vanished,
    /// The request cleared it.
    Cleared,
}

/// Whether the end of the request slid the expiry of a session it only read.
#[derive(Clone, Copy)]
pub(in crate::session) enum Touch {
    /// No refresh was due.
    NotDue,
    /// The store found the session and slid its expiry.
    Found,
    /// The store no longer has the session.
    Gone,
}

/// One request's session state.
pub(in crate::session) struct State {
    current: Current,
    /// What the request's genuine session cookie said, if it sent one.
    cookie: Option<RequestCookie>,
    /// Why the request sent no genuine, unexpired session cookie (`None` if it did).
    cookie_absence: Option<NoSession>,
    /// Whether the request lost the session its cookie named, and how.
    lost: Lost,
    /// The stored fields as of the (lazy) load; `None` until loaded.
    loaded: Option<Snapshot>,
    /// Values this request already wrote to the store (flushed or `update`d).
    written: Written,
    /// Puts and deletes not yet written.
    pending: Changes,
    /// A store write of this request succeeded: the cookie may need (re)issuing.
    wrote: bool,
    /// This request wrote a new session to the store.
    created: bool,
    /// This request moved its session to a new id.
    renewed: bool,
    /// The request's cookie no longer names a session: delete it unless a new one is set.
    forget_cookie: bool,
    /// The response has been given its cookies: later buffered writes could never be saved.
    finished: bool,
    /// The handler used the session: the response depends on the request's cookies.
    pub(super) accessed: bool,
    /// A CSRF secret this request made for the `_nex_csrf` cookie (no session yet):
    /// if the request then starts a session, the secret moves into it, so the
    /// tokens already rendered with it keep working. Only a secret made here, never
    /// one a request brought: a planted cookie must not become a session's secret.
    pub(super) fresh_csrf: Option<Vec<u8>>,
    /// The request's cookies and the ones queued for the response.
    pub(super) cookies: Cookies,
    /// The session's expiry mode: its cookie's, or a handler's choice.
    mode: Mode,
    /// When the session was created (ms); `None`: by this request.
    created_ms: Option<i64>,
    /// A handler changed the mode: re-issue the cookie.
    mode_changed: bool,
    /// The mode changed after this request's last store write: the end of the
    /// request moves the store's expiry (a rare extra `touch`).
    expiry_stale: bool,
}

impl State {
    pub(in crate::session) fn new(cookie: Result<RequestCookie, NoSession>, cookies: Cookies) -> Self {
        let (current, cookie, cookie_absence) = match cookie {
            Ok(cookie) => (Current::Stored(cookie.id.clone()), Some(cookie), None),
            Err(reason) => (Current::None, None, Some(reason)),
        };
        let (mode, created_ms) = match &cookie {
            Some(cookie) => (cookie.lifetime.mode, Some(cookie.lifetime.created_ms)),
            None => (Mode::Default, None),
        };
        Self {
            current,
            cookie,
            cookie_absence,
            lost: Lost::Not,
            loaded: None,
            written: Written::default(),
            pending: Changes::new(),
            wrote: false,
            created: false,
            renewed: false,
            forget_cookie: false,
            finished: false,
            accessed: false,
            fresh_csrf: None,
            cookies,
            mode,
            created_ms,
            mode_changed: false,
            expiry_stale: false,
        }
    }

    /// The session's lifetime as of a request that began at `now_ms`.
    pub(super) fn lifetime(&self, now_ms: i64) -> Lifetime {
        Lifetime { mode: self.mode, created_ms: self.created_ms.unwrap_or(now_ms) }
    }

    /// The expiry a write of a request that began at `now_ms` gives the session:
    /// its own inactivity TTL, never past its absolute end.
    pub(in crate::session) fn store_expiry(&self, context: &Context, now_ms: i64) -> i64 {
        context.cookie.rules().store_expiry(self.lifetime(now_ms), now_ms)
    }

    /// A handler's choice of expiry mode for this session.
    pub(in crate::session) fn set_mode(&mut self, mode: Mode) -> Result<(), SessionError> {
        self.ensure_open()?;
        self.accessed = true;
        if mode != self.mode {
            self.mode = mode;
            self.mode_changed = true;
            self.expiry_stale = true;
        }
        Ok(())
    }

    /// The cookie to sign for `id`.
    pub(super) fn issue(&self, id: &SessionId, now_ms: i64) -> SessionCookie {
        SessionCookie::Issue(Box::new(IssueCookie { id: id.clone(), lifetime: self.lifetime(now_ms) }))
    }

    /// The current id, stored or not.
    pub(in crate::session) fn id(&self) -> Option<&SessionId> {
        match &self.current {
            Current::None => None,
            Current::Stored(id) | Current::Unsaved(id) => Some(id),
        }
    }

    /// Refuses buffered writes once the response has its cookies.
    pub(in crate::session) fn ensure_open(&self) -> Result<(), SessionError> {
        if self.finished {
            return Err(SessionError::ResponseSent);
        }
        Ok(())
    }

    /// The request's current view of `key`: pending, else written, else loaded.
    pub(in crate::session) fn view(&self, key: &str) -> Option<&[u8]> {
        if let Some(change) = self.pending.get(key) {
            return change.value();
        }
        if let Some(written) = self.written.get(key) {
            return written.value();
        }
        self.loaded.as_ref()?.get(key)
    }

    pub(in crate::session) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Buffers a put, starting a session if there is none.
    pub(in crate::session) fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SessionError> {
        self.ensure_open()?;
        self.accessed = true;
        if let Current::None = self.current {
            self.start_new()?;
        }
        self.pending.insert(key.to_owned(), Change::Put(bytes));
        Ok(())
    }

    /// Buffers a delete; without a session there is nothing to delete.
    pub(in crate::session) fn delete(&mut self, key: &str) -> Result<(), SessionError> {
        self.ensure_open()?;
        self.accessed = true;
        if self.id().is_some() {
            self.pending.insert(key.to_owned(), Change::Delete);
        }
        Ok(())
    }

    /// Starts a new, unsaved session; returns its id.
    pub(super) fn start_new(&mut self) -> Result<SessionId, SessionError> {
        let id = SessionId::generate().map_err(SessionError::Random)?;
        self.current = Current::Unsaved(id.clone());
        // A new session starts its (absolute) life now.
        self.created_ms = None;
        // Nothing is stored under a new id: no read needed.
        self.loaded.get_or_insert_with(Snapshot::default);
        if let Some(secret) = self.fresh_csrf.take() {
            self.pending.insert(CSRF_KEY.to_owned(), Change::Put(csrf_secret::encode_stored(&secret)));
        }
        Ok(id)
    }

    /// The pending puts alone: what a fresh session must get. Deletes are dropped,
    /// since a fresh session has nothing to delete (and deletes alone must not
    /// create one).
    pub(super) fn take_puts(&mut self) -> Changes {
        let mut puts = std::mem::take(&mut self.pending);
        // The user binding never carries over: a fresh session is nobody's until bound.
        puts.retain(|field, change| matches!(change, Change::Put(_)) && !users::is_reserved(field));
        puts
    }

    pub(super) fn reset_to_no_session(&mut self) {
        self.current = Current::None;
        self.created_ms = None;
        // A gone session's expiry choice does not carry over, unless this request made it.
        if !self.mode_changed {
            self.mode = Mode::Default;
        }
        self.loaded = Some(Snapshot::default());
        self.written.clear();
        self.pending.clear();
        self.wrote = false;
    }

    pub(super) fn mark_written(&mut self, presence: Presence) {
        if presence == Presence::New {
            self.created = true;
            created();
        }
        if let Current::Unsaved(id) = &self.current {
            self.current = Current::Stored(id.clone());
        }
        self.wrote = true;
        // Every write sets the expiry the current mode gives.
        self.expiry_stale = false;
    }
}

/// Out of line: the event is rare, and its code would sit in every write's path.
#[cold]
#[inline(never)]
fn created() {
    observe::session_created();
    tracing::debug!(target: "nex_session", "session created");
}
