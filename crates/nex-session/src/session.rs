//! The per-request session: what handlers read and write, and what the layer persists.
//!
//! A [`Session`] is created by the layer for each request and shared (cheaply
//! cloned) between the ambient API and the extractor. It keeps:
//!
//! - the id from the verified cookie, if any (verifying costs no store access);
//! - a snapshot of the stored fields, loaded lazily on the first `get` (at most
//!   one store read per request);
//! - this request's pending puts and deletes, written as one batch at the end
//!   (at most one store write per request for them);
//! - what `update`, `renew` and `clear` did right away in the store.

use std::sync::Arc;

use http::HeaderValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::cookie::{self, CookieOptions, SameSite};
use crate::error::{SessionError, StoreError};
use crate::flash::Flash;
use crate::id::SessionId;
use crate::middleware::{Shared, VerifiedCookie};
use crate::store::{Changes, PackedFields, Presence, UpdateAction, WriteOutcome};

/// The name of the session cookie (as Nex).
pub const COOKIE_NAME: &str = "_nex_session";

/// Attempts at writing a fresh session before giving up (only id collisions or a
/// session vanishing mid-request cause a retry).
const WRITE_ATTEMPTS: usize = 3;

/// The current request's session: the explicit handle, also an axum extractor.
///
/// Every method has an ambient twin at the crate root (`nex_session::get`, …)
/// with the same meaning. Cloning is cheap and shares the state.
///
/// ```
/// use nex_session::Session;
///
/// async fn handler(session: Session) -> Result<String, nex_session::SessionError> {
///     let visits: u64 = session.update("visits", 0, |n: u64| n + 1).await?;
///     session.put("last_page", "/home").await?;
///     let name: Option<String> = session.get("name").await?;
///     Ok(format!("visit {visits} by {}", name.as_deref().unwrap_or("someone")))
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// When the request began (ms): one clock read serves the whole request.
    started_ms: i64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The current id: from the cookie, generated for a new session, or none.
    id: Option<SessionId>,
    /// The id refers to a session that exists in the store (as far as we know).
    in_store: bool,
    cookie: Option<VerifiedCookie>,
    /// Stored fields as of the (lazy) load; `None` until loaded.
    loaded: Option<PackedFields>,
    /// Values this request already wrote to the store (flushed or `update`d).
    written: Changes,
    /// Puts and deletes not yet written.
    pending: Changes,
    /// A store write of this request succeeded: the cookie must be (re)issued.
    wrote: bool,
    /// The request's cookie no longer names a session: delete it unless a new one is set.
    forget_cookie: bool,
    first_cookie_header: Option<HeaderValue>,
    more_cookie_headers: Vec<HeaderValue>,
    /// The response has been given its cookies: later buffered writes could never be saved.
    finished: bool,
    /// Queued cookies of the cookie helper: name, and `Some(value)` or `None` for delete.
    response_cookies: Vec<(String, Option<String>, HeaderValue)>,
}

/// What the layer must add to the response.
pub(crate) struct Outgoing {
    pub(crate) set_cookies: Vec<HeaderValue>,
}

impl Session {
    /// The state of a request: `cookie_id` comes from an already verified cookie.
    pub(crate) fn begin(
        shared: Arc<Shared>,
        started_ms: i64,
        cookie: Option<VerifiedCookie>,
        first_cookie_header: Option<HeaderValue>,
        more_cookie_headers: Vec<HeaderValue>,
    ) -> Self {
        let state = State {
            id: cookie.as_ref().map(|c| c.id.clone()),
            in_store: cookie.is_some(),
            cookie,
            first_cookie_header,
            more_cookie_headers,
            ..State::default()
        };
        Self { inner: Arc::new(Inner { shared, started_ms, state: Mutex::new(state) }) }
    }

    /// The value of `key`, or `None` when absent or when there is no session.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store cannot be read; [`SessionError::Decode`]
    /// if the stored value is not a `T` (other keys stay readable).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        // Uncontended (the usual case): no lock future to build and poll.
        let mut state = match self.inner.state.try_lock() {
            Ok(state) => state,
            Err(_) => self.inner.state.lock().await,
        };
        self.ensure_loaded(&mut state).await?;
        match state.view(key) {
            None => Ok(None),
            Some(bytes) => decode(key, bytes).map(Some),
        }
    }

    /// The value of `key`, or `default` (Nex's `get(key, default)`).
    ///
    /// # Errors
    /// As [`Session::get`].
    pub async fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, SessionError> {
        Ok(self.get(key).await?.unwrap_or(default))
    }

    /// Stores `value` under `key`, creating the session (new random id) if there is none.
    ///
    /// The write reaches the store when the response is sent, batched with the
    /// request's other puts and deletes; only the keys written change there, so
    /// concurrent requests writing other keys are never overwritten.
    ///
    /// # Errors
    /// [`SessionError::Encode`] if `value` cannot be serialized.
    pub async fn put<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let bytes = encode(key, &value)?;
        let mut state = self.inner.state.lock().await;
        state.ensure_open()?;
        if state.id.is_none() {
            state.start_new()?;
        }
        state.pending.insert(key.to_owned(), Some(bytes));
        Ok(())
    }

    /// Atomically replaces `key` with `f(current or default)` in the store and
    /// returns the new value (Nex's `update(key, default, fun)`).
    ///
    /// Unlike a get-then-put, concurrent updates of one key never lose each other:
    /// the store runs the read-modify-write atomically. `f` **may run more than
    /// once** (stores that compare-and-set retry on conflict), so keep it free of
    /// side effects. Creates the session if there is none.
    ///
    /// # Errors
    /// [`SessionError::Store`], [`SessionError::Decode`] (stored value not a `T`;
    /// nothing is changed), [`SessionError::Encode`].
    pub async fn update<T, F>(&self, key: &str, default: T, mut f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned + Clone + Send,
        F: FnMut(T) -> T + Send,
    {
        let mut result: Option<Result<T, SessionError>> = None;
        let result_slot = &mut result;
        // Owns `default` so the closure is `Send` without requiring `T: Sync`.
        let mut step = move |current: Option<&[u8]>| {
            let value = match current {
                None => default.clone(),
                Some(bytes) => match decode::<T>(key, bytes) {
                    Ok(value) => value,
                    Err(err) => {
                        *result_slot = Some(Err(err));
                        return UpdateAction::Keep;
                    }
                },
            };
            let new = f(value);
            match encode(key, &new) {
                Ok(bytes) => {
                    *result_slot = Some(Ok(new));
                    UpdateAction::Set(bytes)
                }
                Err(err) => {
                    *result_slot = Some(Err(err));
                    UpdateAction::Keep
                }
            }
        };
        let mut state = self.inner.state.lock().await;
        self.update_raw(&mut state, key, &mut step).await?;
        drop(state);
        drop(step);
        match result {
            Some(Ok(value)) => Ok(value),
            Some(Err(err)) => Err(err),
            // The store always calls the closure before reporting success.
            None => Err(SessionError::Store(StoreError::Corrupt("store reported an update without running it".into()))),
        }
    }

    /// Removes `key`. Without a session this does nothing.
    ///
    /// # Errors
    /// None today; `Result` for symmetry and future stores.
    pub async fn delete(&self, key: &str) -> Result<(), SessionError> {
        let mut state = self.inner.state.lock().await;
        state.ensure_open()?;
        if state.id.is_some() {
            state.pending.insert(key.to_owned(), None);
        }
        Ok(())
    }

    /// Removes every key and the session itself from the store, and deletes the
    /// cookie when the response goes out. A later `put` in the same request starts
    /// a fresh session with a new id.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store cannot remove it (the session is then untouched).
    pub async fn clear(&self) -> Result<(), SessionError> {
        let mut state = self.inner.state.lock().await;
        if let (Some(id), true) = (&state.id, state.in_store) {
            self.inner.shared.store.remove(id.store_key()).await?;
            tracing::debug!(target: "nex_session", "session cleared");
        }
        state.forget_cookie = state.cookie.is_some();
        state.reset_to_no_session();
        Ok(())
    }

    /// The current session id, or `None` when there is no session.
    pub async fn id(&self) -> Option<String> {
        self.inner.state.lock().await.id.as_ref().map(|id| id.as_str().to_owned())
    }

    /// Gives the session a new id, keeping its data; the old id stops working at
    /// once. Call it when privileges change (at login) to defeat session fixation.
    /// Without a session this does nothing.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store cannot move the session (it keeps its old id).
    pub async fn renew(&self) -> Result<(), SessionError> {
        let mut state = self.inner.state.lock().await;
        let Some(old) = state.id.clone() else {
            return Ok(());
        };
        let new = SessionId::generate().map_err(SessionError::Random)?;
        if state.in_store {
            let moved = self.inner.shared.store.rename(old.store_key(), new.store_key(), self.expiry()).await?;
            if moved {
                state.wrote = true;
                tracing::debug!(target: "nex_session", "session renewed");
            } else {
                // The old session vanished meanwhile: start afresh under the new id,
                // keeping this request's unsaved puts (they are written as a new session).
                let pending = std::mem::take(&mut state.pending);
                state.reset_to_no_session();
                state.pending = pending;
                state.pending.retain(|_, change| change.is_some());
                state.forget_cookie = state.cookie.is_some();
            }
        }
        state.id = Some(new);
        Ok(())
    }

    /// The flash messages of this session (Nex.Flash).
    pub fn flash(&self) -> Flash {
        Flash::new(self.clone())
    }

    /// Queues a cookie for the response; see [`crate::cookie::put`].
    ///
    /// # Errors
    /// [`SessionError::InvalidCookie`] for a name or value that cannot go into a header.
    pub async fn put_cookie(&self, name: &str, value: &str, opts: CookieOptions) -> Result<(), SessionError> {
        let header = cookie::set_cookie_value(name, value, &opts)?;
        let mut state = self.inner.state.lock().await;
        state.ensure_open()?;
        state.response_cookies.retain(|(n, _, _)| n != name);
        let kept = (!opts.is_deletion()).then(|| value.to_owned());
        state.response_cookies.push((name.to_owned(), kept, header));
        Ok(())
    }

    /// Queues the deletion of a cookie; see [`crate::cookie::delete`].
    ///
    /// # Errors
    /// [`SessionError::InvalidCookie`] for a name that cannot go into a header.
    pub async fn delete_cookie(&self, name: &str) -> Result<(), SessionError> {
        let opts = CookieOptions::default().with_max_age(0);
        let header = cookie::set_cookie_value(name, "", &opts)?;
        let mut state = self.inner.state.lock().await;
        state.ensure_open()?;
        state.response_cookies.retain(|(n, _, _)| n != name);
        state.response_cookies.push((name.to_owned(), None, header));
        Ok(())
    }

    /// A cookie's value, as queued in this request or else as the request sent it.
    pub async fn get_cookie(&self, name: &str) -> Option<String> {
        let state = self.inner.state.lock().await;
        if let Some((_, value, _)) = state.response_cookies.iter().find(|(n, _, _)| n == name) {
            return value.clone();
        }
        state.request_cookie_pairs().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every request cookie, with this request's queued changes applied.
    pub async fn all_cookies(&self) -> Vec<(String, String)> {
        let state = self.inner.state.lock().await;
        let mut all: Vec<(String, String)> = state
            .request_cookie_pairs()
            .into_iter()
            .filter(|(n, _)| !state.response_cookies.iter().any(|(r, _, _)| r == n))
            .collect();
        all.extend(state.response_cookies.iter().filter_map(|(n, v, _)| Some((n.clone(), v.clone()?))));
        all
    }

    /// Atomically removes `key` and returns what it held (for flash pop).
    /// Costs no store write when the key is known to be absent.
    pub(crate) async fn take_raw(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        let mut state = self.inner.state.lock().await;
        self.ensure_loaded(&mut state).await?;
        if state.view(key).is_none() {
            return Ok(None);
        }
        let mut taken = None;
        let mut step = |current: Option<&[u8]>| {
            taken = current.map(<[u8]>::to_vec);
            if current.is_some() {
                UpdateAction::Delete
            } else {
                UpdateAction::Keep
            }
        };
        self.update_raw(&mut state, key, &mut step).await?;
        Ok(taken)
    }

    /// Raw bytes of `key` (for flash).
    pub(crate) async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        let mut state = self.inner.state.lock().await;
        self.ensure_loaded(&mut state).await?;
        Ok(state.view(key).map(<[u8]>::to_vec))
    }

    /// Runs an atomic store update of one key, after writing any pending batch
    /// (so the request's earlier puts come first).
    async fn update_raw(
        &self,
        state: &mut State,
        key: &str,
        step: &mut (dyn FnMut(Option<&[u8]>) -> UpdateAction + Send),
    ) -> Result<(), SessionError> {
        self.flush(state).await?;
        let store = &self.inner.shared.store;
        for _ in 0..WRITE_ATTEMPTS {
            if state.id.is_none() {
                // A new session's cookie could no longer reach the browser.
                state.ensure_open()?;
                state.start_new()?;
            }
            let Some(id) = state.id.clone() else { break };
            let presence = if state.in_store { Presence::Existing } else { Presence::New };
            let mut last_action = None;
            let outcome = {
                let mut recording = |current: Option<&[u8]>| {
                    let action = step(current);
                    last_action = Some(action.clone());
                    action
                };
                store.update(id.store_key(), key, &mut recording, self.expiry(), presence).await?
            };
            match outcome {
                WriteOutcome::Done => {
                    let change = match last_action {
                        Some(UpdateAction::Set(bytes)) => Some(bytes),
                        Some(UpdateAction::Delete) => None,
                        Some(UpdateAction::Keep) | None => return Ok(()),
                    };
                    state.written.insert(key.to_owned(), change);
                    state.mark_written(presence);
                    return Ok(());
                }
                WriteOutcome::PresenceFailed => state.retry_fresh(presence)?,
            }
        }
        Err(SessionError::Store(StoreError::Unavailable("could not write a fresh session after retries".into())))
    }

    /// Writes the pending batch, if any, in one store call.
    async fn flush(&self, state: &mut State) -> Result<(), SessionError> {
        if state.pending.is_empty() {
            return Ok(());
        }
        if state.id.is_none() {
            state.start_new()?;
        }
        let store = &self.inner.shared.store;
        for _ in 0..WRITE_ATTEMPTS {
            if state.pending.is_empty() {
                // Only deletes of a vanished session were pending: nothing to create.
                state.id = None;
                return Ok(());
            }
            let Some(id) = state.id.clone() else { break };
            let presence = if state.in_store { Presence::Existing } else { Presence::New };
            match store.apply(id.store_key(), &state.pending, self.expiry(), presence).await? {
                WriteOutcome::Done => {
                    let pending = std::mem::take(&mut state.pending);
                    state.written.extend(pending);
                    state.mark_written(presence);
                    return Ok(());
                }
                WriteOutcome::PresenceFailed => state.retry_fresh(presence)?,
            }
        }
        Err(SessionError::Store(StoreError::Unavailable("could not write a fresh session after retries".into())))
    }

    async fn ensure_loaded(&self, state: &mut State) -> Result<(), SessionError> {
        if state.loaded.is_some() {
            return Ok(());
        }
        let fields = match (&state.id, state.in_store) {
            (Some(id), true) => {
                let store = &self.inner.shared.store;
                let loaded = match store.load_now(id.store_key(), self.inner.started_ms) {
                    Some(now) => now?,
                    None => store.load(id.store_key()).await?.map(|record| PackedFields::from_fields(&record.fields)),
                };
                match loaded {
                    Some(fields) => {
                        tracing::trace!(target: "nex_session", "session loaded");
                        fields
                    }
                    None => {
                        state.session_gone()?;
                        PackedFields::default()
                    }
                }
            }
            _ => PackedFields::default(),
        };
        state.loaded = Some(fields);
        Ok(())
    }

    fn expiry(&self) -> i64 {
        self.inner.started_ms.saturating_add(self.inner.shared.config.ttl_s().saturating_mul(1000))
    }

    /// The end of the request without waiting, when nothing needs the store:
    /// no pending writes and no refresh due. `None` means: call [`Session::persist`].
    pub(crate) fn try_persist_now(&self) -> Option<Result<Outgoing, SessionError>> {
        let mut state = self.inner.state.try_lock().ok()?;
        if !state.pending.is_empty() || self.touch_due(&state) {
            return None;
        }
        Some(self.outgoing(&mut state, None))
    }

    /// The end of the request: write what is pending, slide the expiry when due,
    /// and say which cookies to set. On error nothing is reported as saved.
    pub(crate) async fn persist(&self) -> Result<Outgoing, SessionError> {
        let mut state = self.inner.state.lock().await;
        self.flush(&mut state).await?;
        let touched = match &state.id {
            Some(id) if self.touch_due(&state) => {
                Some(self.inner.shared.store.touch(id.store_key(), self.expiry()).await?)
            }
            _ => None,
        };
        self.outgoing(&mut state, touched)
    }

    /// After a failed save: the cookie for a stored session whose id changed in this
    /// request (a successful `renew`), so the 503 does not strand the browser on a
    /// dead id. `None` when there is nothing to rescue.
    pub(crate) fn rescue_cookie(&self) -> Option<HeaderValue> {
        let mut state = self.inner.state.try_lock().ok()?;
        state.finished = true;
        let id = state.id.as_ref().filter(|_| state.in_store)?;
        if state.cookie.as_ref().is_some_and(|c| c.id == *id) {
            return None;
        }
        self.signed_cookie(id).ok()
    }

    /// A read-only use of a stored session whose cookie is due for re-signing.
    fn touch_due(&self, state: &State) -> bool {
        state.in_store && !state.wrote && self.cookie_due(state)
    }

    /// The request's cookie still names the current session but is older than the
    /// refresh interval, or was signed with a previous secret: re-sign it.
    fn cookie_due(&self, state: &State) -> bool {
        match (&state.id, &state.cookie) {
            (Some(id), Some(cookie)) => {
                cookie.id == *id
                    && (!cookie.current_key
                        || self.inner.started_ms - cookie.signed_at_ms >= self.inner.shared.config.refresh_after_ms())
            }
            _ => false,
        }
    }

    /// The `Set-Cookie` headers to send, given whether a due touch found the session.
    fn outgoing(&self, state: &mut State, touched: Option<bool>) -> Result<Outgoing, SessionError> {
        state.finished = true;
        let shared = &self.inner.shared;
        let cookie_id = state.cookie.as_ref().map(|c| &c.id);
        // Some(Some(id)): (re)issue the cookie for id; Some(None): delete it.
        // A write slid the expiry in the store already; like a read, it re-signs
        // the browser's cookie only when that is due (saves signing on most writes).
        let session_cookie = match (&state.id, state.in_store) {
            (Some(id), true) if cookie_id != Some(id) => Some(Some(id)),
            (Some(id), true) if state.wrote => self.cookie_due(state).then_some(Some(id)),
            (Some(id), true) => touched.map(|found| found.then_some(id)),
            _ if state.forget_cookie => Some(None),
            _ => None,
        };
        if session_cookie.is_none() && state.response_cookies.is_empty() {
            // Most requests: nothing to set.
            return Ok(Outgoing { set_cookies: Vec::new() });
        }
        let mut set_cookies = Vec::new();
        match session_cookie {
            Some(Some(id)) => {
                set_cookies.push(self.signed_cookie(id)?);
                if state.wrote {
                    tracing::debug!(target: "nex_session", "session saved");
                }
            }
            Some(None) => set_cookies.push(shared.deletion_cookie.clone()),
            None => {}
        }
        set_cookies.extend(state.response_cookies.drain(..).map(|(_, _, header)| header));
        Ok(Outgoing { set_cookies })
    }

    /// A freshly signed session cookie for `id` (at most once per refresh interval
    /// per browser, so out of line: see `Shared::verify_cookie_fully`).
    #[cold]
    #[inline(never)]
    fn signed_cookie(&self, id: &SessionId) -> Result<HeaderValue, SessionError> {
        let shared = &self.inner.shared;
        let token = shared.keyring.sign_at(id.as_str().as_bytes(), self.inner.started_ms, shared.config.ttl_s());
        shared.session_cookie(&token)
    }
}

impl State {
    /// Refuses buffered writes once the response has its cookies.
    fn ensure_open(&self) -> Result<(), SessionError> {
        if self.finished {
            return Err(SessionError::ResponseSent);
        }
        Ok(())
    }

    /// The request's current view of `key`: pending, else written, else loaded.
    fn view(&self, key: &str) -> Option<&[u8]> {
        if let Some(change) = self.pending.get(key).or_else(|| self.written.get(key)) {
            return change.as_deref();
        }
        self.loaded.as_ref()?.get(key)
    }

    fn start_new(&mut self) -> Result<(), SessionError> {
        self.id = Some(SessionId::generate().map_err(SessionError::Random)?);
        self.in_store = false;
        self.loaded.get_or_insert_with(PackedFields::default);
        Ok(())
    }

    /// A genuine cookie whose session is gone (expired, revoked, store restarted):
    /// forget it, keeping this request's puts for a new session.
    #[cold]
    #[inline(never)]
    fn session_gone(&mut self) -> Result<(), SessionError> {
        tracing::debug!(target: "nex_session", "cookie names no stored session");
        let pending = std::mem::take(&mut self.pending);
        self.reset_to_no_session();
        self.forget_cookie = true;
        if !pending.is_empty() {
            self.start_new()?;
            self.pending = pending;
        }
        Ok(())
    }

    fn reset_to_no_session(&mut self) {
        self.id = None;
        self.in_store = false;
        self.loaded = Some(PackedFields::default());
        self.written.clear();
        self.pending.clear();
        self.wrote = false;
    }

    fn mark_written(&mut self, presence: Presence) {
        if presence == Presence::New {
            created();
        }
        self.in_store = true;
        self.wrote = true;
    }

    /// A conditional write failed: for `Existing`, the session vanished since the
    /// request began (revoked, cleared or renewed elsewhere, store restarted), so
    /// this request's writes start a fresh session; for `New`, a 192-bit id
    /// collision, so take another id.
    fn retry_fresh(&mut self, presence: Presence) -> Result<(), SessionError> {
        if presence == Presence::Existing {
            tracing::info!(target: "nex_session", "session vanished during the request; writing to a fresh session");
            self.written.clear();
            self.loaded = Some(PackedFields::default());
            self.forget_cookie = self.cookie.is_some();
            // Deleting keys of a vanished session is already done; only puts start a new one.
            self.pending.retain(|_, change| change.is_some());
        }
        self.id = Some(SessionId::generate().map_err(SessionError::Random)?);
        self.in_store = false;
        Ok(())
    }

    fn request_cookie_pairs(&self) -> Vec<(String, String)> {
        let mut headers = http::HeaderMap::new();
        for value in self.first_cookie_header.iter().chain(&self.more_cookie_headers) {
            headers.append(http::header::COOKIE, value.clone());
        }
        cookie::request_pairs(&headers).map(|(n, v)| (n.to_owned(), v.to_owned())).collect()
    }
}

impl Shared {
    /// `_nex_session=<token>` plus the attributes fixed at layer creation.
    fn session_cookie(&self, token: &str) -> Result<HeaderValue, SessionError> {
        let value = [COOKIE_NAME, "=", token, &self.cookie_attributes].concat();
        HeaderValue::try_from(value).map_err(|_| SessionError::InvalidCookie(COOKIE_NAME.to_owned()))
    }
}

/// The session cookie's attributes (`; Path=/; Max-Age=…; HttpOnly; …`) and its
/// deletion header, computed once per layer.
pub(crate) fn session_cookie_headers(
    config: &crate::config::SessionConfig,
) -> Result<(String, HeaderValue), SessionError> {
    let mut opts =
        CookieOptions::default().with_max_age(config.ttl_s()).with_secure(config.secure).with_same_site(SameSite::Lax);
    if let Some(domain) = &config.domain {
        opts = opts.with_domain(domain.clone());
    }
    let full = cookie::set_cookie_value(COOKIE_NAME, "", &opts)?;
    let attributes =
        full.to_str().unwrap_or_default().trim_start_matches(COOKIE_NAME).trim_start_matches('=').to_owned();
    let deletion = cookie::set_cookie_value(COOKIE_NAME, "", &opts.with_max_age(0))?;
    Ok((attributes, deletion))
}

/// Out of line: the event is rare, and its code would sit in every write's path.
#[cold]
#[inline(never)]
fn created() {
    tracing::debug!(target: "nex_session", "session created");
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, SessionError> {
    serde_json::to_vec(value).map_err(|source| SessionError::Encode { key: key.to_owned(), source })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, SessionError> {
    serde_json::from_slice(bytes).map_err(|source| SessionError::Decode { key: key.to_owned(), source })
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(..)")
    }
}
