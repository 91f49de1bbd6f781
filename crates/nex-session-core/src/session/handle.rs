//! [`Session`]: the per-request handle every handler call goes through.

use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
// An async mutex (the state is held across store calls) whose uncontended lock
// and unlock are one atomic each: tokio's takes an inner lock on every unlock,
// about 150 instructions of every request that uses its session.
use futures_util::lock::Mutex;

use crate::absence::NoSession;
use crate::cookie_header::{self, CookieOptions};
use crate::error::{SessionError, StoreError};
use crate::session_cookie::{RequestCookie, SessionExpiry};
use crate::store::UpdateAction;

use super::context::Context;
use super::cookies::Cookies;
use super::state::State;

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
    pub(super) inner: Arc<Inner>,
}

/// A session's state and what it needs to reach the store; the files of this
/// module (flash, CSRF, users) work on it through [`Session`].
pub(super) struct Inner {
    pub(super) context: Arc<Context>,
    /// The session of the next session layer out, when layers are nested (each
    /// with its own cookie name); unset for the outermost ([`Session::adopt_outer`]).
    pub(super) outer: OnceLock<Session>,
    /// When the request began (ms): one clock read serves the whole request.
    pub(super) started_ms: i64,
    /// The request's span ([`crate::observe`]); `None` unless a subscriber wants it.
    pub(super) span: Option<tracing::Span>,
    pub(super) state: Mutex<State>,
}

impl Session {
    /// The session of a request that began at `started_ms`; `cookie` is the
    /// request's verified session cookie (or why there is none), `cookie_headers`
    /// its `Cookie` headers, and `span` the request's span.
    pub(crate) fn begin(
        context: Arc<Context>,
        started_ms: i64,
        cookie: Result<RequestCookie, NoSession>,
        cookie_headers: &http::header::GetAll<'_, http::HeaderValue>,
        span: Option<tracing::Span>,
    ) -> Self {
        let state = State::new(cookie, Cookies::from_request(cookie_headers));
        let outer = OnceLock::new();
        Self { inner: Arc::new(Inner { context, outer, started_ms, span, state: Mutex::new(state) }) }
    }

    /// Makes `outer`, the session of a session layer around this one, reachable by
    /// [`Session::named`]; set once, by the layer, before the handler runs.
    pub(crate) fn adopt_outer(&self, outer: Session) {
        let _ = self.inner.outer.set(outer);
    }

    /// The request's span, when a subscriber wants it.
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.inner.span.as_ref()
    }

    /// The name of this session's cookie (its layer's
    /// [`with_cookie_name`](crate::SessionConfig::with_cookie_name)).
    ///
    /// ```
    /// async fn handler(session: nex_session::Session) -> String {
    ///     session.cookie_name().to_owned() // "_nex_session" unless configured
    /// }
    /// ```
    pub fn cookie_name(&self) -> &str {
        self.inner.context.cookie.name()
    }

    /// The session of the layer whose cookie is called `cookie_name`: this one,
    /// or one of an enclosing session layer when layers are nested.
    ///
    /// With several session layers in one app (say the whole site with
    /// `_nex_session`, and `/admin` with its own store and cookie `admin_session`),
    /// the extractor and the ambient API give the *innermost* layer's session, the
    /// one closest to the handler; reach an outer one by its cookie name. Each
    /// session reads and writes only its own cookie, store and side cookies.
    ///
    /// ```
    /// use nex_session::{Session, SessionError};
    ///
    /// // A handler under `/admin`, where an `admin_session` layer sits inside the site's layer.
    /// async fn admin_home(admin: Session) -> Result<String, SessionError> {
    ///     let site = admin.named("_nex_session")?; // the outer, site-wide session
    ///     let theme: Option<String> = site.get("theme").await?;
    ///     let user: Option<String> = admin.get("admin_user").await?;
    ///     Ok(format!("{user:?} with theme {theme:?}"))
    /// }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::NoNamedLayer`] when no session layer around this request has
    /// that cookie name.
    pub fn named(&self, cookie_name: &str) -> Result<Session, SessionError> {
        let mut layer = Some(self);
        while let Some(session) = layer {
            if session.cookie_name() == cookie_name {
                return Ok(session.clone());
            }
            layer = session.inner.outer.get();
        }
        Err(SessionError::NoNamedLayer(cookie_name.to_owned()))
    }

    /// The value of `key`, or `None` when absent or when there is no session.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store cannot be read; [`SessionError::Decode`]
    /// if the stored value is not a `T` (other keys stay readable).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        // Uncontended (the usual case): no lock future to build and poll.
        let mut state = match self.inner.state.try_lock() {
            Some(state) => state,
            None => self.inner.state.lock().await,
        };
        state.ensure_loaded(&self.inner.context, self.inner.started_ms).await?;
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
    /// [`SessionError::Encode`] if `value` cannot be serialized;
    /// [`SessionError::ResponseSent`] after the response went out;
    /// [`SessionError::ReservedKey`] for `_nex_user` and `_nex_seen`.
    pub async fn put<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        writable(key)?;
        let bytes = encode(key, &value)?;
        self.inner.state.lock().await.put(key, bytes)
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
    /// nothing is changed), [`SessionError::Encode`], [`SessionError::ReservedKey`].
    pub async fn update<T, F>(&self, key: &str, default: T, mut f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned + Clone + Send,
        F: FnMut(T) -> T + Send,
    {
        writable(key)?;
        // What the last run of the closure decided; the store runs it at least once
        // before it reports success.
        let mut result: Option<Result<T, SessionError>> = None;
        let result_slot = &mut result;
        // Owns `default` so the closure is `Send` without requiring `T: Sync`.
        let mut step = move |current: Option<&[u8]>| {
            let decided = match current {
                None => Ok(default.clone()),
                Some(bytes) => decode::<T>(key, bytes),
            }
            .map(&mut f)
            .and_then(|new| encode(key, &new).map(|bytes| (new, bytes)));
            match decided {
                Ok((new, bytes)) => {
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
        let expiry = state.store_expiry(&self.inner.context, self.inner.started_ms);
        state.update(&self.inner.context, expiry, self.inner.started_ms, key, &mut step).await?;
        drop(state);
        drop(step);
        result.unwrap_or_else(|| {
            Err(SessionError::Store(StoreError::Corrupt("the store reported an update without running it".into())))
        })
    }

    /// Removes `key`. Without a session this does nothing.
    ///
    /// # Errors
    /// [`SessionError::ResponseSent`] after the response went out;
    /// [`SessionError::ReservedKey`] for `_nex_user` and `_nex_seen`.
    pub async fn delete(&self, key: &str) -> Result<(), SessionError> {
        writable(key)?;
        self.inner.state.lock().await.delete(key)
    }

    /// Removes every key and the session itself from the store, and deletes the
    /// cookie when the response goes out. A later `put` in the same request starts
    /// a fresh session with a new id.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store cannot remove it (the session is then untouched).
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.inner.state.lock().await.clear(&self.inner.context).await
    }

    /// The current session id, or `None` when there is no session.
    pub async fn id(&self) -> Option<String> {
        let mut state = self.inner.state.lock().await;
        state.accessed = true;
        state.id().map(|id| id.as_str().to_owned())
    }

    /// Gives the session a new id, keeping its data; the old id stops working at
    /// once. Call it when privileges change (at login) to defeat session fixation.
    /// Without a session this does nothing.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store cannot move the session (it keeps its old id).
    pub async fn renew(&self) -> Result<(), SessionError> {
        let mut state = self.inner.state.lock().await;
        let expiry = state.store_expiry(&self.inner.context, self.inner.started_ms);
        state.renew(&self.inner.context, expiry).await
    }

    /// Chooses how long this session lives ("remember me"): a persistent cookie
    /// with its own TTL, a browser-session cookie, or the layer's default. The
    /// response re-issues the cookie (`Max-Age` or none) and moves the store's
    /// expiry to match; later requests keep the choice (it rides in the signed
    /// cookie) until it is changed again or the session is cleared. Without a
    /// session yet, it applies to the one the request's next write creates.
    ///
    /// The absolute lifetime ([`crate::SessionConfig::with_absolute_lifetime`])
    /// still bounds every choice.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nex_session::{Session, SessionExpiry};
    ///
    /// async fn remember_me(session: Session) -> Result<(), nex_session::SessionError> {
    ///     session.set_expiry(SessionExpiry::Persistent(Duration::from_secs(30 * 86_400))).await
    /// }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::ResponseSent`] after the response went out.
    pub async fn set_expiry(&self, expiry: SessionExpiry) -> Result<(), SessionError> {
        let mode = self.inner.context.cookie.rules().mode_of(expiry);
        self.inner.state.lock().await.set_mode(mode)
    }

    /// Why there is no session, or `None` when there is one: the expired-session
    /// signal, so an app can say "Your session has expired, please sign in again"
    /// instead of treating a returning user as a stranger.
    ///
    /// | answer | when |
    /// |---|---|
    /// | `None` | the request has a session: a stored one, or one it started (a `put` after a `clear`, or after finding its old session gone) |
    /// | [`NoSession::NotSent`] | no session cookie came with the request |
    /// | [`NoSession::Invalid`] | the cookie is forged, tampered with, signed with an unknown secret, or holds no id |
    /// | [`NoSession::Expired`] | the cookie is genuine but older than the TTL, or the store forgot its session in the cookie's last refresh interval |
    /// | [`NoSession::Revoked`] | the cookie is genuine and fresh but the store no longer has its session (signed out elsewhere, revoked, evicted or lost) |
    /// | [`NoSession::Cleared`] | this request called [`Session::clear`] and started no new session |
    ///
    /// Cost: the cookie check at the start of the request already knows the first
    /// three; telling a live session from a vanished one needs the session loaded,
    /// which is the store read the request's first `get` does anyway (it is done
    /// once per request, whoever asks first). How expired and revoked are told
    /// apart, and its limits, is documented on [`NoSession::Revoked`].
    ///
    /// A browser drops a cookie when its `Max-Age` runs out, and in the default
    /// sliding mode that is when the session expires: such a browser then sends no
    /// cookie, which reads as [`NoSession::NotSent`]. [`NoSession::Expired`] reaches
    /// the app when the cookie outlives the session (a cookie without `Max-Age`,
    /// a client that kept it).
    ///
    /// ```
    /// use nex_session::{NoSession, Session};
    ///
    /// async fn dashboard(session: Session) -> Result<String, nex_session::SessionError> {
    ///     if let Some(user) = session.get::<u64>("user_id").await? {
    ///         return Ok(format!("hello {user}"));
    ///     }
    ///     Ok(match session.absence().await? {
    ///         Some(NoSession::Expired) => "Your session has expired, please sign in again.".into(),
    ///         Some(NoSession::Revoked) => "You were signed out.".into(),
    ///         _ => "Please sign in.".into(),
    ///     })
    /// }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store cannot be read.
    pub async fn absence(&self) -> Result<Option<NoSession>, SessionError> {
        self.inner.state.lock().await.absence(&self.inner.context, self.inner.started_ms).await
    }

    /// Queues a cookie for the response; see [`crate::cookie::put`].
    ///
    /// # Errors
    /// [`SessionError::InvalidCookie`] for a name or value that cannot go into a header;
    /// [`SessionError::ResponseSent`] after the response went out.
    pub async fn put_cookie(&self, name: &str, value: &str, opts: CookieOptions) -> Result<(), SessionError> {
        let header = cookie_header::set_cookie_value(name, value, &opts)?;
        let mut state = self.inner.state.lock().await;
        state.ensure_open()?;
        let kept = (!opts.is_deletion()).then(|| value.to_owned());
        state.cookies.queue(name, kept, header);
        Ok(())
    }

    /// Queues the deletion of a cookie; see [`crate::cookie::delete`].
    ///
    /// # Errors
    /// As [`Session::put_cookie`].
    pub async fn delete_cookie(&self, name: &str) -> Result<(), SessionError> {
        let opts = CookieOptions::default().with_max_age(0);
        let header = cookie_header::set_cookie_value(name, "", &opts)?;
        let mut state = self.inner.state.lock().await;
        state.ensure_open()?;
        state.cookies.queue(name, None, header);
        Ok(())
    }

    /// A cookie's value, as queued in this request or else as the request sent it;
    /// `None` when the request sent no such cookie, or this request queued its deletion.
    pub async fn get_cookie(&self, name: &str) -> Option<String> {
        self.inner.state.lock().await.cookies.get(name)
    }

    /// Every request cookie as `(name, value)`, with this request's queued changes
    /// applied; see [`crate::cookie::all`].
    pub async fn all_cookies(&self) -> Vec<(String, String)> {
        self.inner.state.lock().await.cookies.all()
    }

    /// Atomically removes `key` and returns what it held (for flash pop).
    /// Costs no store write when the key is known to be absent.
    pub(super) async fn take_raw(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        let mut state = self.inner.state.lock().await;
        state.ensure_loaded(&self.inner.context, self.inner.started_ms).await?;
        if state.view(key).is_none() {
            return Ok(None);
        }
        let expiry = state.store_expiry(&self.inner.context, self.inner.started_ms);
        let mut taken = None;
        let mut step = |current: Option<&[u8]>| {
            taken = current.map(<[u8]>::to_vec);
            if current.is_some() {
                UpdateAction::Delete
            } else {
                UpdateAction::Keep
            }
        };
        state.update(&self.inner.context, expiry, self.inner.started_ms, key, &mut step).await?;
        Ok(taken)
    }

    /// Raw bytes of `key` (for flash).
    pub(super) async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        let mut state = self.inner.state.lock().await;
        state.ensure_loaded(&self.inner.context, self.inner.started_ms).await?;
        Ok(state.view(key).map(<[u8]>::to_vec))
    }

    /// When the request began (ms since the Unix epoch): what its cookie is signed as of.
    pub(crate) fn started_ms(&self) -> i64 {
        self.inner.started_ms
    }

    /// What this session shares with the others of its layer.
    pub(crate) fn context(&self) -> &Context {
        &self.inner.context
    }
}

/// Refuses a handler's write of a reserved binding field ([`crate::store::users::is_reserved`]).
fn writable(key: &str) -> Result<(), SessionError> {
    match crate::store::users::is_reserved(key) {
        true => Err(SessionError::ReservedKey(key.to_owned())),
        false => Ok(()),
    }
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
