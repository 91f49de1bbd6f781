//! [`Csrf`]: protection against cross-site request forgery, bound to the session
//! (as Plug.CSRFProtection and Nex.CSRF).
//!
//! - **A per-session secret** of 32 random bytes, made on the first token asked
//!   for. With a session it is a key of the session ([`CSRF_KEY`](crate::csrf::CSRF_KEY)), created with
//!   an atomic update so two first pages of one session agree on it. Without a
//!   session (a login form shown to an anonymous visitor) it rides in the signed
//!   browser-session cookie `_nex_csrf`, so anonymous visitors cost the store
//!   nothing. Once the request has a session, only the session's secret counts:
//!   a cookie planted by an attacker (from a sibling subdomain, say) cannot stand
//!   in for it.
//! - **Masked tokens**: every token is `base64url(mask ‖ secret ⊕ mask)` with a
//!   fresh random mask, so no two responses carry the same bytes (BREACH-style
//!   compression attacks learn nothing) while all of them verify.
//! - **Rotation**: `renew` (at login) and `clear` (at logout) drop the secret, so a
//!   token issued before either stops working.
//! - **The check** unmasks and compares in constant time. [`crate::csrf::CsrfLayer`]
//!   applies it to every unsafe request; handlers can also call [`Csrf::verify`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::csrf_secret::{decode_stored, encode_stored, fresh_secret, unmask, CSRF_KEY, SECRET_LEN};
use super::handle::Session;
use crate::error::SessionError;
use crate::store::UpdateAction;
use crate::token::ct;

/// The CSRF protection of one session; get it with [`Session::csrf`].
///
/// ```
/// use nex_session::Session;
///
/// async fn form(session: Session) -> Result<String, nex_session::SessionError> {
///     let token = session.csrf().token().await?;
///     Ok(format!(r#"<form method="post"><input type="hidden" name="_csrf_token" value="{token}"></form>"#))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Csrf {
    session: Session,
}

impl Csrf {
    pub(super) fn new(session: Session) -> Self {
        Self { session }
    }

    /// A fresh masked token for a form field ([`CSRF_FIELD`](crate::csrf::CSRF_FIELD)) or a header
    /// ([`CSRF_HEADER`](crate::csrf::CSRF_HEADER)) of the response being built. Every call returns
    /// different bytes; all of them verify until the secret rotates.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store fails while the secret is read or
    /// created; [`SessionError::Random`] if the OS has no randomness.
    pub async fn token(&self) -> Result<String, SessionError> {
        let secret = self.secret().await?;
        let mut mask = [0u8; SECRET_LEN];
        getrandom::fill(&mut mask).map_err(SessionError::Random)?;
        let mut token = Vec::with_capacity(2 * SECRET_LEN);
        token.extend_from_slice(&mask);
        token.extend(secret.iter().zip(mask).map(|(s, m)| s ^ m));
        Ok(URL_SAFE_NO_PAD.encode(token))
    }

    /// Whether `token` is a valid token of this session (or, for a request
    /// without a session, of this browser's CSRF cookie). Never creates a secret.
    ///
    /// ```
    /// # async fn handler(session: nex_session::Session, sent: &str) -> Result<(), nex_session::SessionError> {
    /// if !session.csrf().verify(sent).await? {
    ///     // answer 403
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store cannot be read.
    pub async fn verify(&self, token: &str) -> Result<bool, SessionError> {
        let Some(candidate) = unmask(token) else { return Ok(false) };
        let inner = &self.session.inner;
        let mut state = inner.state.lock().await;
        state.ensure_loaded(&inner.context, inner.started_ms).await?;
        let secret = match state.id() {
            Some(_) => state.view(CSRF_KEY).and_then(decode_stored),
            None => state.cookies.read_signed(&inner.context.csrf_cookie, inner.started_ms),
        };
        Ok(secret.is_some_and(|secret| secret.len() == SECRET_LEN && ct::bytes_equal(&secret, &candidate)))
    }

    /// The secret, made on first use (see the module docs for where it lives).
    async fn secret(&self) -> Result<Vec<u8>, SessionError> {
        let inner = &self.session.inner;
        let mut state = inner.state.lock().await;
        // A cookie naming a forgotten session counts as none (see `Flash::put`).
        state.ensure_loaded(&inner.context, inner.started_ms).await?;
        if state.id().is_none() {
            let side = &inner.context.csrf_cookie;
            if let Some(secret) = state.cookies.read_signed(side, inner.started_ms).filter(|s| s.len() == SECRET_LEN) {
                return Ok(secret);
            }
            state.ensure_open()?;
            let secret = fresh_secret()?;
            state.cookies.queue_signed(side, &secret, inner.started_ms)?;
            state.fresh_csrf = Some(secret.clone());
            return Ok(secret);
        }
        if let Some(secret) = state.view(CSRF_KEY).and_then(decode_stored) {
            return Ok(secret);
        }
        // First token of this session: create the secret atomically, keeping one
        // that a concurrent request of the same session made first.
        let fresh = encode_stored(&fresh_secret()?);
        let mut chosen = None;
        let mut step = |current: Option<&[u8]>| match current {
            Some(existing) => {
                chosen = Some(existing.to_vec());
                UpdateAction::Keep
            }
            None => {
                chosen = Some(fresh.clone());
                UpdateAction::Set(fresh.clone())
            }
        };
        let expiry = state.store_expiry(&inner.context, self.session.started_ms());
        state.update(&inner.context, expiry, inner.started_ms, CSRF_KEY, &mut step).await?;
        drop(state);
        chosen.as_deref().and_then(decode_stored).ok_or_else(|| {
            SessionError::Store(crate::error::StoreError::Corrupt("the stored CSRF secret is not readable".into()))
        })
    }
}

impl Session {
    /// The CSRF protection of this session: tokens for forms, and their check.
    pub fn csrf(&self) -> Csrf {
        Csrf::new(self.clone())
    }
}
