//! The calls that reach the store at once: the lazy load, `update`, the flush of
//! buffered writes, `renew`, `clear`, and what a vanished session means.

use std::time::Instant;

use super::{Current, Lost, State, WrittenField, WRITE_ATTEMPTS};
use crate::absence::{self, NoSession};
use crate::error::{SessionError, StoreError};
use crate::id::{SessionId, StoreKey};
use crate::observe::{self, Loaded, Operation};
use crate::session::context::Context;
use crate::session::csrf_secret::CSRF_KEY;
use crate::session_cookie::Mode;
use crate::store::{Change, LoadNow, Presence, Snapshot, UpdateAction, UpdateFn, WriteOutcome};

impl State {
    /// Removes the session from the store and forgets it.
    /// The CSRF secret goes with it (it was a key of the session, and a
    /// sessionless one in its cookie is deleted too): tokens issued before a
    /// logout never work after it.
    pub(in crate::session) async fn clear(&mut self, context: &Context) -> Result<(), SessionError> {
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
    pub(in crate::session) async fn absence(
        &mut self,
        context: &Context,
        now_ms: i64,
    ) -> Result<Option<NoSession>, SessionError> {
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
    pub(in crate::session) async fn renew(&mut self, context: &Context, expiry: i64) -> Result<(), SessionError> {
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

    /// Loads the stored fields on first use (at most one store read per request).
    pub(in crate::session) async fn ensure_loaded(
        &mut self,
        context: &Context,
        now_ms: i64,
    ) -> Result<(), SessionError> {
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
    pub(in crate::session) async fn update(
        &mut self,
        context: &Context,
        expiry: i64,
        now_ms: i64,
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
            // What the last run of the closure wrote, recorded as it returns (one
            // allocation, where a clone of its bytes and then the field's name took
            // two); `None` if it kept the field as it was, or never ran.
            let mut last_write: Option<WrittenField> = None;
            // Runs of the closure in this store call: more than one means the
            // store's compare-and-set lost a race and decided again.
            let mut runs = 0u64;
            let outcome = {
                let mut recording = |current: Option<&[u8]>| {
                    runs += 1;
                    let action = step(current);
                    last_write = match &action {
                        UpdateAction::Set(bytes) => Some(WrittenField::put(key, bytes)),
                        UpdateAction::Delete => Some(WrittenField::delete(key)),
                        UpdateAction::Keep => None,
                    };
                    action
                };
                store_update(context, id.store_key(), key, &mut recording, expiry, presence, now_ms).await
            };
            if runs > 1 {
                observe::update_retried(runs - 1);
            }
            let outcome = outcome?;
            match outcome {
                WriteOutcome::Done => {
                    // Nothing was written.
                    let Some(written) = last_write else { return Ok(()) };
                    self.written.insert(written);
                    self.mark_written(presence);
                    return Ok(());
                }
                WriteOutcome::PresenceFailed => self.retry_fresh(presence)?,
            }
        }
        Err(SessionError::Store(StoreError::Unavailable("could not write a fresh session after retries".into())))
    }

    /// Writes the pending batch, if any, in one store call.
    pub(in crate::session) async fn flush(&mut self, context: &Context, expiry: i64) -> Result<(), SessionError> {
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

    /// A genuine cookie whose session is gone (expired, revoked, store restarted):
    /// forget it, keeping this request's puts for a new session.
    #[cold]
    #[inline(never)]
    pub(super) fn session_gone(&mut self, context: &Context, now_ms: i64) -> Result<(), SessionError> {
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

    /// A conditional write failed: for `Existing`, the session vanished since the
    /// request began (revoked, cleared or renewed elsewhere, store restarted), so
    /// this request's writes start a fresh session; for `New`, a 192-bit id
    /// collision, so take another id.
    pub(super) fn retry_fresh(&mut self, presence: Presence) -> Result<(), SessionError> {
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

/// One timed store `update`: answered at once by a store that can
/// ([`FastReads::update_now`](crate::store::FastReads::update_now)), else
/// awaited. One clock reading times either.
async fn store_update(
    context: &Context,
    key: StoreKey,
    field: &str,
    f: UpdateFn<'_>,
    expiry: i64,
    presence: Presence,
    now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    let started = Instant::now();
    if let Some(fast) = context.store.fast_reads() {
        if let Some(outcome) = fast.update_now(key, field, &mut *f, expiry, presence, now_ms) {
            context.instruments.record(Operation::Update, started.elapsed(), outcome.as_ref().err());
            return outcome;
        }
    }
    context
        .instruments
        .call_since(Operation::Update, started, context.store.update(key, field, f, expiry, presence))
        .await
}
