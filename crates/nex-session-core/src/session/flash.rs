//! [`Flash`]: Nex.Flash on one session, one-time messages that survive a redirect.
//!
//! Where a message lives depends on whether the request has a session:
//!
//! - **With a session** (stored, or created by this request's writes): in the
//!   session under the reserved key [`FLASH_KEY`], a map from kind (`"info"`,
//!   `"error"`, …) to message. `put` and `pop_all` are atomic store updates, so a
//!   message is shown exactly once even when two requests race to pop it.
//! - **Without one** (an anonymous visitor: "please sign in"): in a short-lived
//!   signed cookie, `_nex_flash` (5 minutes), and never in the store. A flash
//!   alone must not create a stored session, or every anonymous request (a
//!   crawler, a flood) would leave a 7-day session behind. Such a message is
//!   shown once per browser; two requests racing to pop it may both show it.
//!
//! Reads see both (the session's messages win for one kind); `pop_all` and
//! `clear` empty both. The ambient functions are in `ambient/flash.rs`.

use std::collections::BTreeMap;

use super::handle::Session;
use crate::error::SessionError;

/// The largest flash (as JSON) carried in a cookie (browsers cap a cookie at
/// about 4 KiB, and the token's base64 adds a third).
const COOKIE_LIMIT: usize = 2048;

/// The reserved session key flash messages live under.
pub const FLASH_KEY: &str = "_nex_flash";

/// Messages by kind.
pub type Messages = BTreeMap<String, String>;

/// The flash of one session; get it with [`Session::flash`].
#[derive(Debug, Clone)]
pub struct Flash {
    session: Session,
}

impl Flash {
    pub(super) fn new(session: Session) -> Self {
        Self { session }
    }

    /// Sets the message of `kind` (replacing an earlier one of that kind).
    ///
    /// Without a session, the message goes into the `_nex_flash` cookie and no
    /// session is created (see the module docs).
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store fails; [`SessionError::FlashTooLarge`]
    /// when a sessionless visitor's messages exceed 2 KiB of JSON (never stored
    /// instead: that would let anonymous traffic create sessions).
    pub async fn put(&self, kind: &str, message: impl Into<String>) -> Result<(), SessionError> {
        let message = message.into();
        if self.put_in_cookie(kind, &message).await? {
            return Ok(());
        }
        self.session
            .update(FLASH_KEY, Messages::new(), |mut all: Messages| {
                all.insert(kind.to_owned(), message.clone());
                all
            })
            .await
            .map(drop)
    }

    /// Puts the message in the flash cookie when the request has no session;
    /// `false` when it belongs in the session.
    ///
    /// # Errors
    /// As [`Flash::put`].
    async fn put_in_cookie(&self, kind: &str, message: &str) -> Result<bool, SessionError> {
        let inner = &self.session.inner;
        let mut state = inner.state.lock().await;
        // A cookie naming a session the store forgot counts as none (a read, at
        // most once per request): otherwise a stale cookie replayed in a flood
        // would create a fresh session per request.
        state.ensure_loaded(&inner.context, inner.started_ms).await?;
        if state.id().is_some() {
            return Ok(false);
        }
        state.ensure_open()?;
        let side = &inner.context.flash_cookie;
        let mut all = state.cookies.read_signed(side, inner.started_ms).map(|bytes| decode(&bytes)).unwrap_or_default();
        all.insert(kind.to_owned(), message.to_owned());
        let bytes =
            serde_json::to_vec(&all).map_err(|source| SessionError::Encode { key: FLASH_KEY.to_owned(), source })?;
        if bytes.len() > COOKIE_LIMIT {
            return Err(SessionError::FlashTooLarge { bytes: bytes.len(), limit: COOKIE_LIMIT });
        }
        state.cookies.queue_signed(side, &bytes, inner.started_ms)?;
        Ok(true)
    }

    /// The messages of the flash cookie (none when the browser has none).
    async fn cookie_messages(&self) -> Messages {
        let inner = &self.session.inner;
        let state = inner.state.lock().await;
        state.cookies.read_signed(&inner.context.flash_cookie, inner.started_ms).map(|b| decode(&b)).unwrap_or_default()
    }

    /// Deletes the flash cookie if the browser has one.
    async fn delete_cookie(&self) {
        let inner = &self.session.inner;
        inner.state.lock().await.cookies.delete_if_present(&inner.context.flash_cookie);
    }

    /// The message of `kind`, leaving it in place; `None` when there is none.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store fails.
    pub async fn get(&self, kind: &str) -> Result<Option<String>, SessionError> {
        Ok(self.peek_all().await?.remove(kind))
    }

    /// Every message, leaving them in place.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store fails.
    pub async fn peek_all(&self) -> Result<Messages, SessionError> {
        let mut all = self.cookie_messages().await;
        if let Some(bytes) = self.session.get_raw(FLASH_KEY).await? {
            all.extend(decode_stored(&bytes)?);
        }
        Ok(all)
    }

    /// Every message, removing them: each is returned by exactly one call.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store fails (the messages then stay).
    pub async fn pop_all(&self) -> Result<Messages, SessionError> {
        let mut all = self.cookie_messages().await;
        if let Some(bytes) = self.session.take_raw(FLASH_KEY).await? {
            all.extend(decode_stored(&bytes)?);
        }
        self.delete_cookie().await;
        Ok(all)
    }

    /// Removes every message.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store fails.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.session.take_raw(FLASH_KEY).await?;
        self.delete_cookie().await;
        Ok(())
    }
}

fn decode_stored(bytes: &[u8]) -> Result<Messages, SessionError> {
    serde_json::from_slice(bytes).map_err(|source| SessionError::Decode { key: FLASH_KEY.to_owned(), source })
}

/// A genuine cookie that does not decode was made by another version: no messages.
fn decode(bytes: &[u8]) -> Messages {
    serde_json::from_slice(bytes).unwrap_or_default()
}

impl Session {
    /// The flash messages of this session (Nex.Flash).
    pub fn flash(&self) -> Flash {
        Flash::new(self.clone())
    }
}
