//! The cookie token: byte-compatible with Phoenix.Token / Plug.Crypto.
//!
//! A token is `b64url("HS256") . b64url(payload) . b64url(HMAC-SHA256(key, first two parts))`
//! where the key is PBKDF2-HMAC-SHA256(secret_key_base, salt, 1000 iterations, 32 bytes)
//! and the payload is the Erlang term `{data, signed_at_ms, max_age_s}`. A Rust
//! service and an Elixir one sharing `SECRET_KEY_BASE` read each other's tokens.
//!
//! ```
//! use nex_session::token::{Keyring, SecretKeyBase, TokenError};
//!
//! let secret = SecretKeyBase::new("0123456789abcdef0123456789abcdef")?;
//! let ring = Keyring::new(secret, [], "nex.session");
//! let token = ring.sign(b"user 42");
//! assert_eq!(ring.verify(&token, Some(3600))?, b"user 42");
//! assert_eq!(ring.verify("", None), Err(TokenError::Missing));
//! assert_eq!(ring.verify("SFMyNTY.bm9wZQ.bm9wZQ", None), Err(TokenError::Invalid));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Security notes: the derived key is cached per (secret, salt), never re-derived per
//! request; signatures are compared in constant time; the payload is decoded only
//! after its signature checks out, and even then defensively (see `etf`).
//! Only the `HS256` header is accepted, which is what Phoenix.Token emits by default.

pub(crate) mod ct;
mod etf;
mod secret;
mod signer;

pub use secret::{SecretError, SecretKeyBase, DEV_SECRET_KEY_BASE, MIN_SECRET_LEN};
pub use signer::{Keyring, Signer, TokenError, Verified, DEFAULT_EMBEDDED_MAX_AGE};

pub use signer::now_ms;
pub(crate) use signer::{check_age, well_formed};

/// Decodes a payload the way `verify` does, without any signature check:
/// `true` when the bytes are a well-formed payload (data, signing time, max age).
///
/// Exposed for the fuzz target only: it must never panic on any input.
#[doc(hidden)]
pub fn fuzz_decode_payload(bytes: &[u8]) -> bool {
    etf::decode(bytes).is_some()
}

/// Signs arbitrary payload bytes (not a term) with the current key.
///
/// Exposed for the fuzz target only, so it can reach the decoder behind a valid signature.
#[doc(hidden)]
pub fn fuzz_sign_raw_payload(ring: &Keyring, payload: &[u8]) -> String {
    ring.current().sign_payload(payload)
}
