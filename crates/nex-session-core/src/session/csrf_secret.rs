//! The CSRF secret and its tokens as bytes: where the secret is stored, how a
//! token masks it, and how a token is read back (see `csrf.rs` for the rules).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::SessionError;

/// The reserved session key the CSRF secret lives under.
pub const CSRF_KEY: &str = "_nex_csrf";
/// The form field a token is read from (as Plug).
pub const CSRF_FIELD: &str = "_csrf_token";
/// The request header a token is read from (as Plug).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Bytes in a secret, and in a mask.
pub(super) const SECRET_LEN: usize = 32;

pub(super) fn fresh_secret() -> Result<Vec<u8>, SessionError> {
    let mut secret = vec![0u8; SECRET_LEN];
    getrandom::fill(&mut secret).map_err(SessionError::Random)?;
    Ok(secret)
}

/// The secret as stored in the session: a JSON string (session values are JSON).
pub(super) fn encode_stored(secret: &[u8]) -> Vec<u8> {
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(secret)).into_bytes()
}

pub(super) fn decode_stored(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?.strip_prefix('"')?.strip_suffix('"')?;
    URL_SAFE_NO_PAD.decode(text).ok().filter(|secret| secret.len() == SECRET_LEN)
}

/// The secret a token carries: `None` for anything but a well-formed token.
pub(super) fn unmask(token: &str) -> Option<Vec<u8>> {
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
