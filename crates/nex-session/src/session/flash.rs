//! [`Flash`]: Nex.Flash on one session, one-time messages that survive a redirect.
//!
//! Stored in the session under the reserved key [`FLASH_KEY`] as a map from kind
//! (`"info"`, `"error"`, …) to message. `put` and `pop_all` are atomic store
//! updates, so a message is shown exactly once even when two requests race to pop
//! it. The ambient functions (`nex_session::flash::put`, …) are in `ambient/flash.rs`.

use std::collections::BTreeMap;

use super::Session;
use crate::error::SessionError;

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
    /// # Errors
    /// [`SessionError::Store`] if the store fails.
    pub async fn put(&self, kind: &str, message: impl Into<String>) -> Result<(), SessionError> {
        let message = message.into();
        self.session
            .update(FLASH_KEY, Messages::new(), |mut all: Messages| {
                all.insert(kind.to_owned(), message.clone());
                all
            })
            .await
            .map(drop)
    }

    /// The message of `kind`, leaving it in place.
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
        match self.session.get_raw(FLASH_KEY).await? {
            Some(bytes) => decode(&bytes),
            None => Ok(Messages::new()),
        }
    }

    /// Every message, removing them: each is returned by exactly one call.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store fails (the messages then stay).
    pub async fn pop_all(&self) -> Result<Messages, SessionError> {
        match self.session.take_raw(FLASH_KEY).await? {
            Some(bytes) => decode(&bytes),
            None => Ok(Messages::new()),
        }
    }

    /// Removes every message.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store fails.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.session.take_raw(FLASH_KEY).await.map(drop)
    }
}

fn decode(bytes: &[u8]) -> Result<Messages, SessionError> {
    serde_json::from_slice(bytes).map_err(|source| SessionError::Decode { key: FLASH_KEY.to_owned(), source })
}
