//! The state of one request's session, and every change to it: reads, buffered
//! writes, the store calls that write at once, and what the response needs.

use super::context::Context;
use super::cookies::Cookies;
use super::csrf_secret::{self, CSRF_KEY};
use super::ending::{Ending, IssueCookie, Outcome, SessionCookie};
use crate::absence::{self, NoSession};
use crate::error::{SessionError, StoreError};
use crate::id::SessionId;
use crate::observe::{self, Loaded, Operation};
use crate::session_cookie::{Lifetime, Mode, RequestCookie};
use crate::store::users::{self, Binding, Keep, SEEN_FIELD, USER_FIELD};
use crate::store::{Change, Changes, LoadNow, Presence, Snapshot, UpdateAction, WriteOutcome};

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
pub(super) enum Touch {
    /// No refresh was due.
    NotDue,
    /// The store found the session and slid its expiry.
    Found,
    /// The store no longer has the session.
    Gone,
}

/// One request's session state.
pub(super) struct State {
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
    written: Changes,
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
    pub(super) fn new(cookie: Result<RequestCookie, NoSession>, cookies: Cookies) -> Self {
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
            written: Changes::new(),
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
    fn lifetime(&self, now_ms: i64) -> Lifetime {
        Lifetime { mode: self.mode, created_ms: self.created_ms.unwrap_or(now_ms) }
    }

    /// The expiry a write of a request that began at `now_ms` gives the session:
    /// its own inactivity TTL, never past its absolute end.
    pub(super) fn store_expiry(&self, context: &Context, now_ms: i64) -> i64 {
        context.cookie.rules().store_expiry(self.lifetime(now_ms), now_ms)
    }

    /// A handler's choice of expiry mode for this session.
    pub(super) fn set_mode(&mut self, mode: Mode) -> Result<(), SessionError> {
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
    fn issue(&self, id: &SessionId, now_ms: i64) -> SessionCookie {
        SessionCookie::Issue(Box::new(IssueCookie { id: id.clone(), lifetime: self.lifetime(now_ms) }))
    }

    /// The current id, stored or not.
    pub(super) fn id(&self) -> Option<&SessionId> {
        match &self.current {
            Current::None => None,
            Current::Stored(id) | Current::Unsaved(id) => Some(id),
        }
    }

    /// Refuses buffered writes once the response has its cookies.
    pub(super) fn ensure_open(&self) -> Result<(), SessionError> {
        if self.finished {
            return Err(SessionError::ResponseSent);
        }
        Ok(())
    }

    /// The request's current view of `key`: pending, else written, else loaded.
    pub(super) fn view(&self, key: &str) -> Option<&[u8]> {
        if let Some(change) = self.pending.get(key).or_else(|| self.written.get(key)) {
            return change.value();
        }
        self.loaded.as_ref()?.get(key)
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Buffers a put, starting a session if there is none.
    pub(super) fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), SessionError> {
        self.ensure_open()?;
        self.accessed = true;
        if let Current::None = self.current {
            self.start_new()?;
        }
        self.pending.insert(key.to_owned(), Change::Put(bytes));
        Ok(())
    }

    /// Buffers a delete; without a session there is nothing to delete.
    pub(super) fn delete(&mut self, key: &str) -> Result<(), SessionError> {
        self.ensure_open()?;
        self.accessed = true;
        if self.id().is_some() {
            self.pending.insert(key.to_owned(), Change::Delete);
        }
        Ok(())
    }

    /// Removes the session from the store and forgets it.
    /// The CSRF secret goes with it (it was a key of the session, and a
    /// sessionless one in its cookie is deleted too): tokens issued before a
    /// logout never work after it.
    pub(super) async fn clear(&mut self, context: &Context) -> Result<(), SessionError> {
        self.accessed = true;
        if let Current::Stored(id) = &self.current {
            context.instruments.call(Operation::Remove, context.store.remove(id.store_key())).await?;
            observe::session_cleared();
            tracing::debug!(target: "nex_session", "session cleared");
        }
        self.forget_cookie = self.cookie.is_some();
        self.reset_to_no_session();
        self.lost = Lost::Cleared;
        // Clearing forgets the session's expiry choice too.
        self.mode = Mode::Default;
        self.mode_changed = false;
        self.expiry_stale = false;
        self.cookies.delete_if_present(&context.csrf_cookie);
        self.fresh_csrf = None;
        Ok(())
    }

    /// Why the request has no session, `None` when it has one (stored, or started
    /// by this request). Loads the session first if the cookie names one: that is
    /// the request's one store read, done at most once.
    pub(super) async fn absence(&mut self, context: &Context, now_ms: i64) -> Result<Option<NoSession>, SessionError> {
        self.ensure_loaded(context, now_ms).await?;
        if !matches!(self.current, Current::None) {
            return Ok(None);
        }
        let reason = match (self.lost, &self.cookie) {
            (Lost::Cleared, _) => NoSession::Cleared,
            (Lost::Vanished, Some(cookie)) => absence::classify_gone(
                cookie.signed_at_ms,
                now_ms,
                cookie.max_age_s.saturating_mul(1000),
                context.refresh_after_ms,
            ),
            (Lost::Vanished | Lost::Not, _) => self.cookie_absence.unwrap_or(NoSession::NotSent),
        };
        Ok(Some(reason))
    }

    /// Moves the session to a new id (see `Session::renew`).
    ///
    /// Rotates the CSRF secret too (as a login should): the session's is dropped
    /// and a sessionless one's cookie deleted, so the next token uses a new secret.
    pub(super) async fn renew(&mut self, context: &Context, expiry: i64) -> Result<(), SessionError> {
        self.accessed = true;
        self.cookies.delete_if_present(&context.csrf_cookie);
        self.fresh_csrf = None;
        let old = match &self.current {
            Current::None => return Ok(()),
            Current::Stored(old) => Some(old.store_key()),
            Current::Unsaved(_) => None,
        };
        let new = SessionId::generate().map_err(SessionError::Random)?;
        match old {
            Some(old)
                if context
                    .instruments
                    .call(Operation::Rename, context.store.rename(old, new.store_key(), expiry))
                    .await? =>
            {
                self.wrote = true;
                self.renewed = true;
                self.expiry_stale = false;
                self.current = Current::Stored(new);
                self.pending.insert(CSRF_KEY.to_owned(), Change::Delete);
                observe::session_renewed();
                tracing::debug!(target: "nex_session", "session renewed");
            }
            Some(_) => {
                // The old session vanished meanwhile: start afresh under the new id,
                // keeping this request's unsaved puts (written as a new session).
                let puts = self.take_puts();
                self.reset_to_no_session();
                self.lost = Lost::Vanished;
                self.pending = puts;
                self.forget_cookie = self.cookie.is_some();
                self.current = Current::Unsaved(new);
            }
            None => {
                self.current = Current::Unsaved(new);
                self.pending.remove(CSRF_KEY);
            }
        }
        Ok(())
    }

    /// The binding of the request's session, as the request sees it (loads first).
    pub(super) async fn binding(&mut self, context: &Context, now_ms: i64) -> Result<Option<Binding>, SessionError> {
        self.ensure_loaded(context, now_ms).await?;
        Ok(self.view(USER_FIELD).and_then(Binding::decode))
    }

    /// The store key of the session the request is on, if the store holds it.
    pub(super) fn stored_key(&self) -> Option<crate::id::StoreKey> {
        match &self.current {
            Current::Stored(id) => Some(id.store_key()),
            Current::None | Current::Unsaved(_) => None,
        }
    }

    /// Binds the session to `binding.user` (see `Session::bind_user`): writes what
    /// is pending first, creating the session if there is none yet, then binds it
    /// in the store's index. A session that vanished meanwhile (revoked) is
    /// replaced by a fresh one, which is bound instead: this is a sign-in.
    pub(super) async fn bind_user(
        &mut self,
        context: &Context,
        expiry: i64,
        binding: &Binding,
    ) -> Result<(), SessionError> {
        self.ensure_open()?;
        self.accessed = true;
        let index = context.store.users().ok_or(SessionError::NoUserIndex)?;
        for _ in 0..WRITE_ATTEMPTS {
            // Signed in = seen now. Also makes sure the session exists before the
            // index names it; after a `renew` (a `sign_in`) the flush happens anyway.
            self.put(SEEN_FIELD, users::encode_seen(binding.signed_in_ms))?;
            self.flush(context, expiry).await?;
            let Current::Stored(id) = &self.current else { continue };
            match context.instruments.call(Operation::UserBind, index.bind(id.store_key(), binding, expiry)).await? {
                WriteOutcome::Done => {
                    self.written.insert(USER_FIELD.to_owned(), Change::Put(binding.encode()));
                    self.wrote = true;
                    self.expiry_stale = false;
                    tracing::debug!(target: "nex_session", "session bound to a user");
                    return Ok(());
                }
                WriteOutcome::PresenceFailed => {
                    // Gone since the flush (revoked): what this request wrote goes
                    // into the fresh session, as a failed flush would carry it.
                    let mut carried = std::mem::take(&mut self.written);
                    carried.retain(|field, change| matches!(change, Change::Put(_)) && !users::is_reserved(field));
                    self.retry_fresh(Presence::Existing)?;
                    // This request's later puts win over what it wrote before.
                    let later = std::mem::replace(&mut self.pending, carried);
                    self.pending.extend(later);
                }
            }
        }
        Err(SessionError::Store(StoreError::Unavailable("could not bind a fresh session after retries".into())))
    }

    /// Revokes every session of the request's user but its own; how many.
    pub(super) async fn revoke_others(&mut self, context: &Context, now_ms: i64) -> Result<u64, SessionError> {
        let (Some(binding), Some(key)) = (self.binding(context, now_ms).await?, self.stored_key()) else {
            return Ok(0);
        };
        let index = context.store.users().ok_or(SessionError::NoUserIndex)?;
        let revoke = index.revoke_all(&binding.user, Keep::Session(key));
        Ok(context.instruments.call(Operation::UserRevokeAll, revoke).await?)
    }

    /// A bound session whose last-seen time is older than the refresh interval:
    /// the end of the request records it, in the write it makes anyway (or in
    /// place of the expiry-sliding touch). Only a session the request loaded, so
    /// this never costs a read; an unbound session never pays more than a lookup.
    pub(super) fn seen_due(&self, context: &Context, now_ms: i64) -> bool {
        if !matches!(self.current, Current::Stored(_)) || self.loaded.is_none() || self.finished {
            return false;
        }
        self.view(USER_FIELD).is_some()
            && self
                .view(SEEN_FIELD)
                .and_then(users::decode_seen)
                .is_none_or(|seen| now_ms.saturating_sub(seen) >= context.refresh_after_ms)
    }

    /// Queues the last-seen time of a bound session (see [`State::seen_due`]).
    pub(super) fn record_seen(&mut self, now_ms: i64) {
        self.pending.insert(SEEN_FIELD.to_owned(), Change::Put(users::encode_seen(now_ms)));
    }

    /// Loads the stored fields on first use (at most one store read per request).
    pub(super) async fn ensure_loaded(&mut self, context: &Context, now_ms: i64) -> Result<(), SessionError> {
        self.accessed = true;
        if self.loaded.is_some() {
            return Ok(());
        }
        let key = match &self.current {
            Current::Stored(id) => id.store_key(),
            Current::None | Current::Unsaved(_) => {
                self.loaded = Some(Snapshot::default());
                return Ok(());
            }
        };
        let found = match context.store.fast_reads() {
            Some(fast) => match fast.load_now(key, now_ms) {
                LoadNow::Found(fields) => Some(fields),
                LoadNow::Missing => None,
                LoadNow::Unknown => context.instruments.call(Operation::Load, fast.load_snapshot(key)).await?,
            },
            // A store without a fast read path: its record, as a snapshot.
            None => context
                .instruments
                .call(Operation::Load, context.store.load(key))
                .await?
                .map(|record| Snapshot::from_fields(&record.fields)),
        };
        let fields = match found {
            Some(fields) => {
                observe::session_loaded(Loaded::Found);
                tracing::trace!(target: "nex_session", "session loaded");
                fields
            }
            None => {
                self.session_gone(context, now_ms)?;
                Snapshot::default()
            }
        };
        self.loaded = Some(fields);
        Ok(())
    }

    /// Runs an atomic store update of one key, after writing any pending batch
    /// (so the request's earlier puts come first).
    pub(super) async fn update(
        &mut self,
        context: &Context,
        expiry: i64,
        key: &str,
        step: &mut (dyn FnMut(Option<&[u8]>) -> UpdateAction + Send),
    ) -> Result<(), SessionError> {
        self.accessed = true;
        self.flush(context, expiry).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let (id, presence) = match &self.current {
                Current::Stored(id) => (id.clone(), Presence::Existing),
                Current::Unsaved(id) => (id.clone(), Presence::New),
                Current::None => {
                    // A new session's cookie could no longer reach the browser.
                    self.ensure_open()?;
                    (self.start_new()?, Presence::New)
                }
            };
            let mut last_action = None;
            // Runs of the closure in this store call: more than one means the
            // store's compare-and-set lost a race and decided again.
            let mut runs = 0u64;
            let outcome = {
                let mut recording = |current: Option<&[u8]>| {
                    runs += 1;
                    let action = step(current);
                    last_action = Some(action.clone());
                    action
                };
                let update = context.store.update(id.store_key(), key, &mut recording, expiry, presence);
                context.instruments.call(Operation::Update, update).await
            };
            if runs > 1 {
                observe::update_retried(runs - 1);
            }
            let outcome = outcome?;
            match outcome {
                WriteOutcome::Done => {
                    let change = match last_action {
                        Some(UpdateAction::Set(bytes)) => Change::Put(bytes),
                        Some(UpdateAction::Delete) => Change::Delete,
                        // Nothing was written.
                        Some(UpdateAction::Keep) | None => return Ok(()),
                    };
                    self.written.insert(key.to_owned(), change);
                    self.mark_written(presence);
                    return Ok(());
                }
                WriteOutcome::PresenceFailed => self.retry_fresh(presence)?,
            }
        }
        Err(SessionError::Store(StoreError::Unavailable("could not write a fresh session after retries".into())))
    }

    /// Writes the pending batch, if any, in one store call.
    pub(super) async fn flush(&mut self, context: &Context, expiry: i64) -> Result<(), SessionError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        for _ in 0..WRITE_ATTEMPTS {
            let (id, presence) = match &self.current {
                Current::Stored(id) => (id.clone(), Presence::Existing),
                Current::Unsaved(id) => (id.clone(), Presence::New),
                Current::None => (self.start_new()?, Presence::New),
            };
            let apply = context.store.apply(id.store_key(), &self.pending, expiry, presence);
            match context.instruments.call(Operation::Apply, apply).await? {
                WriteOutcome::Done => {
                    let pending = std::mem::take(&mut self.pending);
                    self.written.extend(pending);
                    self.mark_written(presence);
                    return Ok(());
                }
                WriteOutcome::PresenceFailed => {
                    self.retry_fresh(presence)?;
                    if self.pending.is_empty() {
                        // Only deletes of a vanished session were pending: nothing to create.
                        self.current = Current::None;
                        return Ok(());
                    }
                }
            }
        }
        Err(SessionError::Store(StoreError::Unavailable("could not write a fresh session after retries".into())))
    }

    /// A read-only use of a stored session whose cookie is due for re-signing
    /// (the end of the request slides the store's expiry too), or an expiry
    /// mode changed since the request's last write.
    pub(super) fn touch_due(&self, context: &Context, now_ms: i64) -> bool {
        match &self.current {
            Current::Stored(id) => self.expiry_stale || (!self.wrote && self.cookie_due(context, id, now_ms)),
            Current::None | Current::Unsaved(_) => false,
        }
    }

    /// The request's cookie still names `id` but is older than the refresh
    /// interval, or was signed with a previous secret: re-sign it.
    fn cookie_due(&self, context: &Context, id: &SessionId, now_ms: i64) -> bool {
        self.cookie.as_ref().is_some_and(|cookie| {
            cookie.id == *id
                && (!cookie.current_key || now_ms.saturating_sub(cookie.signed_at_ms) >= context.refresh_after_ms)
        })
    }

    /// What the response needs; after this, buffered writes are refused.
    pub(super) fn ending(&mut self, context: &Context, now_ms: i64, touch: Touch) -> Ending {
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
    pub(super) fn outcome(&self) -> Outcome {
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
    pub(super) fn rescue(&mut self, now_ms: i64) -> Option<IssueCookie> {
        self.finished = true;
        match (&self.current, &self.cookie) {
            (Current::Stored(id), Some(cookie)) if cookie.id == *id => None,
            (Current::Stored(id), _) => Some(IssueCookie { id: id.clone(), lifetime: self.lifetime(now_ms) }),
            (Current::None | Current::Unsaved(_), _) => None,
        }
    }

    /// Starts a new, unsaved session; returns its id.
    fn start_new(&mut self) -> Result<SessionId, SessionError> {
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
    fn take_puts(&mut self) -> Changes {
        let mut puts = std::mem::take(&mut self.pending);
        // The user binding never carries over: a fresh session is nobody's until bound.
        puts.retain(|field, change| matches!(change, Change::Put(_)) && !users::is_reserved(field));
        puts
    }

    /// A genuine cookie whose session is gone (expired, revoked, store restarted):
    /// forget it, keeping this request's puts for a new session.
    #[cold]
    #[inline(never)]
    fn session_gone(&mut self, context: &Context, now_ms: i64) -> Result<(), SessionError> {
        let gone = self.cookie.as_ref().map(|cookie| {
            let max_age_ms = cookie.max_age_s.saturating_mul(1000);
            absence::classify_gone(cookie.signed_at_ms, now_ms, max_age_ms, context.refresh_after_ms)
        });
        let outcome = match gone {
            Some(NoSession::Expired) => Loaded::Expired,
            _ => Loaded::Missing,
        };
        observe::session_loaded(outcome);
        tracing::debug!(target: "nex_session", outcome = outcome.as_str(), "cookie names no stored session");
        let puts = self.take_puts();
        self.reset_to_no_session();
        self.lost = Lost::Vanished;
        self.forget_cookie = true;
        if !puts.is_empty() {
            self.start_new()?;
            self.pending = puts;
        }
        Ok(())
    }

    fn reset_to_no_session(&mut self) {
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

    fn mark_written(&mut self, presence: Presence) {
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

    /// A conditional write failed: for `Existing`, the session vanished since the
    /// request began (revoked, cleared or renewed elsewhere, store restarted), so
    /// this request's writes start a fresh session; for `New`, a 192-bit id
    /// collision, so take another id.
    fn retry_fresh(&mut self, presence: Presence) -> Result<(), SessionError> {
        if presence == Presence::Existing {
            tracing::info!(target: "nex_session", "session vanished during the request; writing to a fresh session");
            self.written.clear();
            self.loaded = Some(Snapshot::default());
            self.lost = Lost::Vanished;
            self.forget_cookie = self.cookie.is_some();
            self.pending = self.take_puts();
            self.created_ms = None;
        }
        self.current = Current::Unsaved(SessionId::generate().map_err(SessionError::Random)?);
        Ok(())
    }
}

/// Out of line: the event is rare, and its code would sit in every write's path.
#[cold]
#[inline(never)]
fn created() {
    observe::session_created();
    tracing::debug!(target: "nex_session", "session created");
}
