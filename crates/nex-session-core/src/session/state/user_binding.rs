//! The session's user: its binding, signing in, revoking the user's other
//! sessions, and "last seen".

use super::{Current, State, WrittenField, WRITE_ATTEMPTS};
use crate::error::{SessionError, StoreError};
use crate::observe::Operation;
use crate::session::context::Context;
use crate::store::users::{self, Binding, Keep, SEEN_FIELD, USER_FIELD};
use crate::store::{Change, Presence, WriteOutcome};

impl State {
    /// The binding of the request's session, as the request sees it (loads first).
    pub(in crate::session) async fn binding(
        &mut self,
        context: &Context,
        now_ms: i64,
    ) -> Result<Option<Binding>, SessionError> {
        self.ensure_loaded(context, now_ms).await?;
        Ok(self.view(USER_FIELD).and_then(Binding::decode))
    }

    /// The store key of the session the request is on, if the store holds it.
    pub(in crate::session) fn stored_key(&self) -> Option<crate::id::StoreKey> {
        match &self.current {
            Current::Stored(id) => Some(id.store_key()),
            Current::None | Current::Unsaved(_) => None,
        }
    }

    /// Binds the session to `binding.user` (see `Session::bind_user`): writes what
    /// is pending first, creating the session if there is none yet, then binds it
    /// in the store's index. A session that vanished meanwhile (revoked) is
    /// replaced by a fresh one, which is bound instead: this is a sign-in.
    pub(in crate::session) async fn bind_user(
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
            match context
                .instruments
                .call(Operation::UserBind, index.bind(id.store_key(), binding, expiry, context.user_cap))
                .await?
            {
                WriteOutcome::Done => {
                    self.written.insert(WrittenField::put(USER_FIELD, &binding.encode()));
                    self.wrote = true;
                    self.expiry_stale = false;
                    tracing::debug!(target: "nex_session", "session bound to a user");
                    return Ok(());
                }
                WriteOutcome::PresenceFailed => {
                    // Gone since the flush (revoked): what this request wrote goes
                    // into the fresh session, as a failed flush would carry it.
                    let mut carried = std::mem::take(&mut self.written).into_changes();
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
    pub(in crate::session) async fn revoke_others(
        &mut self,
        context: &Context,
        now_ms: i64,
    ) -> Result<u64, SessionError> {
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
    pub(in crate::session) fn seen_due(&self, context: &Context, now_ms: i64) -> bool {
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
    pub(in crate::session) fn record_seen(&mut self, now_ms: i64) {
        self.pending.insert(SEEN_FIELD.to_owned(), Change::Put(users::encode_seen(now_ms)));
    }

    /// After a flush that wrote the last-seen time queued by [`State::record_seen`]:
    /// tells the store's index ([`UserIndex::seen`](crate::store::UserIndex::seen)),
    /// for a store that orders a user's sessions by last use. A failure costs
    /// only that order (the cap may end this session a little early), so it is
    /// logged, not returned.
    pub(in crate::session) async fn report_seen(&self, context: &Context, seen_ms: i64) {
        let (Some(index), Some(key)) = (context.store.users(), self.stored_key()) else { return };
        let Some(binding) = self.view(USER_FIELD).and_then(Binding::decode) else { return };
        if let Err(err) = index.seen(key, &binding.user, seen_ms).await {
            tracing::debug!(target: "nex_session", error = %err, "could not record last use in the user index");
        }
    }
}
