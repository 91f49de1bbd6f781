//! Random secrets for `SECRET_KEY_BASE`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// A secret of `length` characters: OS CSPRNG bytes in base64url (6 bits of entropy each).
///
/// `mix phx.gen.secret` does the same with standard base64; base64url keeps the
/// secret free of characters a shell or a `.env` file would need to escape.
pub(crate) fn generate(length: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; length.div_ceil(4) * 3];
    getrandom::fill(&mut bytes)?;
    let mut secret = URL_SAFE_NO_PAD.encode(bytes);
    secret.truncate(length);
    Ok(secret)
}

#[cfg(test)]
mod tests {
    #[test]
    fn has_the_requested_length_and_differs_each_time() {
        let a = super::generate(64).unwrap();
        let b = super::generate(64).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(super::generate(33).unwrap().len(), 33);
        assert_ne!(a, b);
    }
}
