//! A session's user: binding it at sign-in, and the user's other sessions
//! ("your devices", "sign out everywhere"). The store side is
//! [`crate::store::UserIndex`]; this is what handlers call.

use super::handle::Session;
use crate::error::SessionError;
use crate::observe::Operation;
use crate::store::users::{Binding, Keep, SessionHandle, UserSession};
use crate::token::now_ms;

impl Session {
    /// Binds this session to `user` (at sign-in), with optional `meta` the app
    /// wants shown in the user's list of sessions (a device summary, say; at most
    /// 512 bytes, never a secret). Creates the session if the request has none
    /// yet. The binding survives [`renew`](Self::renew), ends with
    /// [`clear`](Self::clear) and expires with the session; binding again replaces
    /// it (a session has at most one user). Call [`sign_in`](Self::sign_in) to
    /// renew and bind in one step.
    ///
    /// ```
    /// use nex_session::Session;
    ///
    /// async fn after_password_check(session: Session) -> Result<(), nex_session::SessionError> {
    ///     session.renew().await?;
    ///     session.bind_user("alice", Some("Firefox on Linux")).await
    /// }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Binding`] for an empty or overlong user id or metadata,
    /// [`SessionError::NoUserIndex`] if the store keeps no per-user index, and
    /// [`SessionError::Store`] if the store fails.
    pub async fn bind_user(&self, user: &str, meta: Option<&str>) -> Result<(), SessionError> {
        self.bind(&Binding::new(user, now_ms(), meta.map(str::to_owned))?).await
    }

    async fn bind(&self, binding: &Binding) -> Result<(), SessionError> {
        let mut state = self.inner.state.lock().await;
        let expiry = state.store_expiry(&self.inner.context, self.inner.started_ms);
        state.bind_user(&self.inner.context, expiry, binding).await
    }

    /// Signs the request in as `user`: [`renew`](Self::renew) (a new id against
    /// session fixation, a new CSRF secret) then [`bind_user`](Self::bind_user).
    ///
    /// ```
    /// use nex_session::Session;
    ///
    /// async fn login(session: Session) -> Result<&'static str, nex_session::SessionError> {
    ///     // … after checking the password:
    ///     session.sign_in("alice", None).await?;
    ///     Ok("welcome")
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`renew`](Self::renew) and [`bind_user`](Self::bind_user).
    pub async fn sign_in(&self, user: &str, meta: Option<&str>) -> Result<(), SessionError> {
        // Checked before the renew, so a bad user id or metadata, or a store
        // without an index, changes nothing.
        let binding = Binding::new(user, now_ms(), meta.map(str::to_owned))?;
        if self.inner.context.store.users().is_none() {
            return Err(SessionError::NoUserIndex);
        }
        self.renew().await?;
        self.bind(&binding).await
    }

    /// The user this session is bound to, if any (no extra store access: the
    /// binding is read with the session).
    ///
    /// ```
    /// use nex_session::Session;
    ///
    /// async fn whoami(session: Session) -> Result<String, nex_session::SessionError> {
    ///     Ok(session.user().await?.unwrap_or_else(|| "nobody".into()))
    /// }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Store`] if loading the session fails.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        let mut state = self.inner.state.lock().await;
        Ok(state.binding(&self.inner.context, self.inner.started_ms).await?.map(|b| b.user))
    }

    /// The sessions of this session's user, oldest sign-in first, with this one
    /// marked [`current`](UserSession::current); empty when the session has no user.
    ///
    /// ```
    /// use nex_session::Session;
    ///
    /// async fn devices(session: Session) -> Result<String, nex_session::SessionError> {
    ///     let mut page = String::new();
    ///     for device in session.user_sessions().await? {
    ///         let this = if device.current { " (this device)" } else { "" };
    ///         page += &format!("{}{this}: signed in at {} ms\n", device.handle, device.signed_in_ms);
    ///     }
    ///     Ok(page)
    /// }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::NoUserIndex`] or [`SessionError::Store`].
    pub async fn user_sessions(&self) -> Result<Vec<UserSession>, SessionError> {
        let mut state = self.inner.state.lock().await;
        let Some(binding) = state.binding(&self.inner.context, self.inner.started_ms).await? else {
            return Ok(Vec::new());
        };
        let current = state.stored_key().map(SessionHandle::of);
        let context = &self.inner.context;
        let index = context.store.users().ok_or(SessionError::NoUserIndex)?;
        let mut sessions = context.instruments.call(Operation::UserList, index.sessions(&binding.user)).await?;
        for session in &mut sessions {
            session.current = current.as_ref() == Some(&session.handle);
        }
        Ok(sessions)
    }

    /// Signs out one session of this session's user, named by its handle (from
    /// [`user_sessions`](Self::user_sessions)); `Ok(false)` if the user has no such
    /// session (a handle of another user's session revokes nothing). Revoking the
    /// current session clears it, as [`clear`](Self::clear) does, and wins over a
    /// [`renew`](Self::renew) of it by a concurrent request of the same browser:
    /// the renewed session (its new id has a new handle) is revoked too.
    ///
    /// # Errors
    /// [`SessionError::NoUserIndex`] or [`SessionError::Store`].
    pub async fn revoke_session(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        let mut state = self.inner.state.lock().await;
        let context = &self.inner.context;
        let Some(binding) = state.binding(context, self.inner.started_ms).await? else {
            return Ok(false);
        };
        let index = context.store.users().ok_or(SessionError::NoUserIndex)?;
        let mut revoked = context.instruments.call(Operation::UserRevoke, index.revoke(&binding.user, handle)).await?;
        if state.stored_key().map(SessionHandle::of).as_ref() == Some(handle) {
            if !revoked {
                revoked = self.revoke_renamed(&binding).await?;
            }
            state.clear(context).await?;
        }
        Ok(revoked)
    }

    /// Revokes this session after a concurrent request renamed it: the request
    /// loaded it under the id its cookie names, and found that id gone when it
    /// came to revoke it. The session may have expired or been revoked meanwhile,
    /// or been renewed (a new id, a new handle, the same binding): it is then the
    /// user's session with this binding's [`sign_in_id`](Binding::sign_in_id).
    /// The old id is already gone, so nothing can rename from it again; a request
    /// carrying the new id may rename once more, hence a few rounds.
    async fn revoke_renamed(&self, binding: &Binding) -> Result<bool, SessionError> {
        /// Renames of the same session within one revoke: each needs a request of
        /// the browser to come and go in between, so three is generous.
        const ROUNDS: usize = 3;
        let Some(sign_in_id) = binding.sign_in_id else { return Ok(false) };
        let context = &self.inner.context;
        let index = context.store.users().ok_or(SessionError::NoUserIndex)?;
        let mut revoked = false;
        for _ in 0..ROUNDS {
            let sessions = context.instruments.call(Operation::UserList, index.sessions(&binding.user)).await?;
            let Some(successor) = sessions.iter().find(|s| s.sign_in_id == Some(sign_in_id)) else {
                return Ok(revoked);
            };
            let call = index.revoke(&binding.user, &successor.handle);
            revoked |= context.instruments.call(Operation::UserRevoke, call).await?;
        }
        Ok(revoked)
    }

    /// Signs out every other session of this session's user ("sign out my other
    /// devices"); returns how many. Nothing without a user.
    ///
    /// ```
    /// use nex_session::Session;
    ///
    /// async fn after_password_change(session: Session) -> Result<(), nex_session::SessionError> {
    ///     let others = session.revoke_other_sessions().await?;
    ///     nex_session::flash::put("info", &format!("Signed out {others} other devices")).await
    /// }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::NoUserIndex`] or [`SessionError::Store`].
    pub async fn revoke_other_sessions(&self) -> Result<u64, SessionError> {
        let mut state = self.inner.state.lock().await;
        state.revoke_others(&self.inner.context, self.inner.started_ms).await
    }

    /// Signs out every session of this session's user, this one included ("log
    /// out everywhere"); returns how many **other** sessions it ended (this one
    /// ends too but is not counted: a user on two devices gets 1). This session is
    /// cleared as by [`clear`](Self::clear). `Ok(0)`, and nothing done, without a user.
    ///
    /// # Errors
    /// [`SessionError::NoUserIndex`] or [`SessionError::Store`].
    pub async fn revoke_all_sessions(&self) -> Result<u64, SessionError> {
        let mut state = self.inner.state.lock().await;
        let context = &self.inner.context;
        let Some(binding) = state.binding(context, self.inner.started_ms).await? else {
            return Ok(0);
        };
        let index = context.store.users().ok_or(SessionError::NoUserIndex)?;
        // This session first: a renew of it by a concurrent request then finds
        // nothing to move, or has moved it already, and the revoke below (which
        // follows renames) takes the new key. The other way round, a renew between
        // the two steps would leave this session alive under its new id.
        if let Some(own) = state.stored_key() {
            context.instruments.call(Operation::Remove, context.store.remove(own)).await?;
        }
        let others =
            context.instruments.call(Operation::UserRevokeAll, index.revoke_all(&binding.user, Keep::None)).await?;
        state.clear(context).await?;
        Ok(others)
    }
}
