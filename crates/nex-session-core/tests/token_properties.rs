//! Property and edge tests of the token: round trip, tampering, expiry, rotation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use nex_session::token::{Keyring, SecretKeyBase, Signer, TokenError};
use proptest::prelude::*;

fn secret(seed: u8) -> SecretKeyBase {
    SecretKeyBase::new([seed; 40]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify_round_trips(
        secret_bytes in proptest::collection::vec(any::<u8>(), 32..100),
        salt in proptest::collection::vec(any::<u8>(), 0..40),
        data in proptest::collection::vec(any::<u8>(), 0..600),
        signed_at_ms in -4_000_000_000_000i64..8_000_000_000_000,
        max_age in 1i64..1_000_000_000,
    ) {
        let signer = Signer::new(&SecretKeyBase::new(&secret_bytes).unwrap(), &salt);
        let token = signer.sign_at(&data, signed_at_ms, max_age);
        prop_assert!(token.starts_with("SFMyNTY."));
        let v = signer.verify_at(&token, None, signed_at_ms).unwrap();
        prop_assert_eq!(v.data, data);
        prop_assert_eq!(v.signed_at_ms, signed_at_ms);
        prop_assert_eq!(v.embedded_max_age, Some(max_age));
    }

    #[test]
    fn any_changed_byte_makes_the_token_invalid(
        data in proptest::collection::vec(any::<u8>(), 0..64),
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec()),
    ) {
        let signer = Signer::new(&secret(1), "nex.session");
        let token = signer.sign_at(&data, 1_700_000_000_000, 86_400);
        let mut bytes = token.clone().into_bytes();
        let i = position.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assert_eq!(signer.verify_at(&tampered, Some(60), 1_700_000_000_000), Err(TokenError::Invalid));
    }

    #[test]
    fn arbitrary_strings_are_never_accepted_and_never_panic(s in ".{0,300}") {
        let signer = Signer::new(&secret(2), "nex.session");
        let result = signer.verify(&s, None);
        prop_assert!(matches!(result, Err(TokenError::Invalid) | Err(TokenError::Missing)));
    }
}

#[test]
fn every_single_character_change_of_a_session_token_is_invalid() {
    let signer = Signer::new(&secret(1), "nex.session");
    let token = signer.sign_at(b"kl_MB987yMhqOw6Ve43B16YssSK0TlOp", 1_700_000_000_000, 604_800);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut tried = 0;
    for i in 0..token.len() {
        for &c in alphabet {
            let mut bytes = token.clone().into_bytes();
            if bytes[i] == c {
                continue;
            }
            bytes[i] = c;
            let tampered = String::from_utf8(bytes).unwrap();
            assert_eq!(
                signer.verify_at(&tampered, Some(60), 1_700_000_000_000),
                Err(TokenError::Invalid),
                "{tampered}"
            );
            tried += 1;
        }
    }
    assert!(tried > 6000);
}

#[test]
fn wrong_salt_or_wrong_secret_is_invalid() {
    let token = Signer::new(&secret(1), "nex.session").sign(b"id");
    assert_eq!(Signer::new(&secret(1), "nex.csrf").verify(&token, None), Err(TokenError::Invalid));
    assert_eq!(Signer::new(&secret(2), "nex.session").verify(&token, None), Err(TokenError::Invalid));
    assert_eq!(Signer::new(&secret(1), "nex.session").verify(&token, None).unwrap(), b"id");
}

#[test]
fn empty_token_is_missing() {
    assert_eq!(Signer::new(&secret(1), "s").verify("", None), Err(TokenError::Missing));
}

#[test]
fn expiry_boundary_equal_is_valid_one_ms_later_is_expired() {
    let signer = Signer::new(&secret(1), "s");
    let at = 1_700_000_000_000;
    let token = signer.sign_at(b"id", at, 10);
    assert!(signer.verify_at(&token, None, at + 10_000).is_ok(), "signed_at + max_age == now is valid");
    assert_eq!(signer.verify_at(&token, None, at + 10_001), Err(TokenError::Expired));
    // The verify-time max age overrides the embedded one, both ways.
    assert!(signer.verify_at(&token, Some(20), at + 15_000).is_ok());
    assert_eq!(signer.verify_at(&token, Some(5), at + 5_001), Err(TokenError::Expired));
}

#[test]
fn max_age_zero_or_negative_is_expired_even_at_signing_time() {
    let signer = Signer::new(&secret(1), "s");
    let at = 1_700_000_000_000;
    let token = signer.sign_at(b"id", at, 86_400);
    assert_eq!(signer.verify_at(&token, Some(0), at), Err(TokenError::Expired));
    assert_eq!(signer.verify_at(&token, Some(-5), at), Err(TokenError::Expired));
    let embedded_zero = signer.sign_at(b"id", at, 0);
    assert_eq!(signer.verify_at(&embedded_zero, None, at), Err(TokenError::Expired));
}

#[test]
fn expired_is_only_reported_for_genuine_tokens() {
    let signer = Signer::new(&secret(1), "s");
    let token = signer.sign_at(b"id", 0, 1);
    assert_eq!(signer.verify(&token, None), Err(TokenError::Expired));
    assert_eq!(Signer::new(&secret(9), "s").verify(&token, None), Err(TokenError::Invalid));
}

#[test]
fn a_rotated_out_secret_verifies_while_listed_and_not_after() {
    let old_token = Keyring::new(secret(1), [], "nex.session").sign(b"id");
    let rotated = Keyring::new(secret(2), [secret(1)], "nex.session");
    let v = rotated.verify_at(&old_token, Some(60), nex_now()).unwrap();
    assert_eq!((v.data.as_slice(), v.key_index), (b"id".as_slice(), 1));
    // New tokens are signed with the newest secret only.
    let new_token = rotated.sign(b"id");
    assert_eq!(Keyring::new(secret(2), [], "nex.session").verify(&new_token, Some(60)).unwrap(), b"id");
    assert_eq!(Keyring::new(secret(1), [], "nex.session").verify(&new_token, Some(60)), Err(TokenError::Invalid));
    // Dropped from the list: the old token stops working.
    let dropped = Keyring::new(secret(2), [], "nex.session");
    assert_eq!(dropped.verify(&old_token, Some(60)), Err(TokenError::Invalid));
}

#[test]
fn secrets_shorter_than_32_bytes_are_refused_with_a_how_to() {
    let err = SecretKeyBase::new([0u8; 31]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("at least 32 bytes") && message.contains("gen-secret"), "{message}");
    assert!(SecretKeyBase::new([0u8; 32]).is_ok());
}

#[test]
fn secret_debug_never_prints_bytes_and_equality_compares_content() {
    let s = SecretKeyBase::new("super-secret-super-secret-super-secret").unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("super"), "{shown}");
    assert_eq!(s, SecretKeyBase::new("super-secret-super-secret-super-secret").unwrap());
    assert_ne!(s, SecretKeyBase::new("super-secret-super-secret-super-secreT").unwrap());
}

fn nex_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
