//! [`Csrf`]: protection against cross-site request forgery, bound to the session
//! (as Plug.CSRFProtection and Nex.CSRF).
//!
//! - **A per-session secret** of 32 random bytes, made on the first token asked
//!   for. With a session it is a key of the session ([`CSRF_KEY`]), created with
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

use super::Session;
use crate::error::SessionError;
use crate::store::UpdateAction;
use crate::token::ct;

/// The reserved session key the CSRF secret lives under.
pub const CSRF_KEY: &str = "_nex_csrf";
/// The form field a token is read from (as Plug).
pub const CSRF_FIELD: &str = "_csrf_token";
/// The request header a token is read from (as Plug).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Bytes in a secret, and in a mask.
const SECRET_LEN: usize = 32;

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

    /// A fresh masked token for a form field ([`CSRF_FIELD`]) or a header
    /// ([`CSRF_HEADER`]) of the response being built. Every call returns
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
        state.update(&inner.context, expiry, CSRF_KEY, &mut step).await?;
        drop(state);
        chosen.as_deref().and_then(decode_stored).ok_or_else(|| {
            SessionError::Store(crate::error::StoreError::Corrupt("the stored CSRF secret is not readable".into()))
        })
    }
}

fn fresh_secret() -> Result<Vec<u8>, SessionError> {
    let mut secret = vec![0u8; SECRET_LEN];
    getrandom::fill(&mut secret).map_err(SessionError::Random)?;
    Ok(secret)
}

/// The secret as stored in the session: a JSON string (session values are JSON).
pub(super) fn encode_stored(secret: &[u8]) -> Vec<u8> {
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(secret)).into_bytes()
}

fn decode_stored(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?.strip_prefix('"')?.strip_suffix('"')?;
    URL_SAFE_NO_PAD.decode(text).ok().filter(|secret| secret.len() == SECRET_LEN)
}

/// The secret a token carries: `None` for anything but a well-formed token.
fn unmask(token: &str) -> Option<Vec<u8>> {
    // A token is 86 characters: refuse anything else before decoding.
    if token.len() != 86 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let (mask, masked) = bytes.split_at_checked(SECRET_LEN)?;
    (masked.len() == SECRET_LEN).then(|| mask.iter().zip(masked).map(|(m, x)| m ^ x).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_unmasks_to_its_secret() {
        let secret = fresh_secret().unwrap();
        let mask = [7u8; SECRET_LEN];
        let mut token = mask.to_vec();
        token.extend(secret.iter().zip(mask).map(|(s, m)| s ^ m));
        let token = URL_SAFE_NO_PAD.encode(token);
        assert_eq!(token.len(), 86);
        assert_eq!(unmask(&token), Some(secret));
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        for token in ["", "x", "%%%%", &"A".repeat(85), &"A".repeat(87), &"é".repeat(43)] {
            assert_eq!(unmask(token), None, "{token:?}");
        }
    }

    #[test]
    fn the_stored_form_round_trips_and_rejects_other_values() {
        let secret = fresh_secret().unwrap();
        assert_eq!(decode_stored(&encode_stored(&secret)), Some(secret));
        assert_eq!(decode_stored(b"\"short\""), None);
        assert_eq!(decode_stored(b"42"), None);
    }
}
