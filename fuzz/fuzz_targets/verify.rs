//! Fuzz `verify` with arbitrary strings, and with validly signed tokens whose
//! payload is arbitrary bytes (so the term decoder sees hostile input after the
//! signature check passes). Nothing may panic; nothing but a genuine token of
//! ours may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nex_session::token::{Keyring, SecretKeyBase, TokenError};
use std::sync::OnceLock;

fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        let secret = SecretKeyBase::new("fuzzing-secret-fuzzing-secret-fuzzing!!").expect("32+ bytes");
        Keyring::new(secret, [], "nex.session")
    })
}

fuzz_target!(|input: &[u8]| {
    let ring = ring();
    // 1. Arbitrary text as a cookie value.
    if let Ok(text) = std::str::from_utf8(input) {
        match ring.verify(text, None) {
            Err(TokenError::Invalid | TokenError::Missing | TokenError::Expired) => {}
            Ok(_) => panic!("an unsigned input verified: {text:?}"),
            Err(_) => {}
        }
    }
    // 2. Arbitrary payload bytes behind a valid signature.
    let _ = nex_session::token::fuzz_decode_payload(input);
    let token = nex_session::token::fuzz_sign_raw_payload(ring, input);
    let _ = ring.verify(&token, Some(60));
});
