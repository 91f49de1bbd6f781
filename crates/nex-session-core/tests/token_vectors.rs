//! Known-answer tests: tokens made by Plug.Crypto and by OTP itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use nex_session::token::{SecretKeyBase, Signer, TokenError};

struct Vector {
    secret: SecretKeyBase,
    salt: Vec<u8>,
    data: Vec<u8>,
    signed_at_s: i64,
    max_age: Option<i64>,
    token: String,
}

fn vectors(file: &str) -> Vec<Vector> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let rows: Vec<Vector> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 6, "malformed row in {file}: {line}");
            Vector {
                secret: SecretKeyBase::new(STANDARD.decode(cols[0]).unwrap()).unwrap(),
                salt: STANDARD.decode(cols[1]).unwrap(),
                data: STANDARD.decode(cols[2]).unwrap(),
                signed_at_s: cols[3].parse().unwrap(),
                max_age: (cols[4] != "infinity").then(|| cols[4].parse().unwrap()),
                token: cols[5].to_owned(),
            }
        })
        .collect();
    assert!(rows.len() >= 9, "{file} has only {} vectors", rows.len());
    rows
}

fn check_file(file: &str) {
    for v in vectors(file) {
        let signer = Signer::new(&v.secret, &v.salt);
        let signed_at_ms = v.signed_at_s * 1000;
        if let Some(max_age) = v.max_age {
            assert_eq!(signer.sign_at(&v.data, signed_at_ms, max_age), v.token, "sign {file} {signed_at_ms}");
        }
        // These tokens are old: verify as of the moment they were signed.
        let verified = signer.verify_at(&v.token, Some(100), signed_at_ms).expect("verifies");
        assert_eq!(verified.data, v.data);
        assert_eq!(verified.signed_at_ms, signed_at_ms);
        assert_eq!(verified.embedded_max_age, v.max_age);
        // And with a far-future override through the public `verify`.
        assert_eq!(signer.verify(&v.token, Some(i64::MAX / 2000)).unwrap(), v.data);
        // The embedded max age is what counts without an override.
        let embedded = signer.verify_at(&v.token, None, signed_at_ms);
        match v.max_age {
            Some(age) if age <= 0 => assert_eq!(embedded, Err(TokenError::Expired)),
            _ => assert!(embedded.is_ok()),
        }
    }
}

#[test]
fn signs_and_verifies_every_plug_crypto_vector_byte_exact() {
    check_file("plug_crypto_vectors.tsv");
}

#[test]
fn signs_and_verifies_every_otp_vector_byte_exact() {
    check_file("otp_vectors.tsv");
}

#[test]
fn the_shared_interop_vectors_match_our_copy() {
    // When the project's shared folder sits beside the checkout, our copy must equal it.
    let shared = format!("{}/../../../shared/interop/plug_crypto_vectors.tsv", env!("CARGO_MANIFEST_DIR"));
    if let Ok(original) = std::fs::read_to_string(&shared) {
        let ours =
            std::fs::read_to_string(format!("{}/tests/data/plug_crypto_vectors.tsv", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert_eq!(original, ours, "tests/data/plug_crypto_vectors.tsv differs from {shared}");
    }
}
