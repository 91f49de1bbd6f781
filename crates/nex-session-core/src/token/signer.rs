//! Signing and verifying tokens: [`Signer`] for one secret, [`Keyring`] for rotation.

use std::time::{SystemTime, UNIX_EPOCH};

use super::ct;
use super::etf::{self, MaxAge};
use super::secret::SecretKeyBase;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `b64url("HS256")`: the protected header every token starts with.
const HEADER: &str = "SFMyNTY";
/// The max age Phoenix.Token embeds when none is given: one day.
pub const DEFAULT_EMBEDDED_MAX_AGE: i64 = 86_400;
/// PBKDF2 parameters of `Plug.Crypto.KeyGenerator` defaults.
const PBKDF2_ITERATIONS: u32 = 1000;
/// Payloads up to this size decode on the stack; a session-id token needs ~54 bytes.
const STACK_PAYLOAD: usize = 256;

/// Why a token was not accepted; the three cases Plug.Crypto tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// There was no token (an empty string).
    #[error("missing: no token was given")]
    Missing,
    /// Malformed, forged, signed with another secret or salt, or not our payload shape.
    #[error("invalid: the token is malformed or its signature does not match")]
    Invalid,
    /// Genuine, but older than the max age (or the max age is not positive).
    #[error("expired: the token is genuine but older than its max age")]
    Expired,
}

/// What a successful verification tells beyond the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed data.
    pub data: Vec<u8>,
    /// When it was signed, in milliseconds since the Unix epoch.
    pub signed_at_ms: i64,
    /// The max age embedded at signing, in seconds; `None` for `:infinity`.
    pub embedded_max_age: Option<i64>,
    /// Which secret of a [`Keyring`] verified it: 0 is the current one.
    pub key_index: usize,
}

/// Signs and verifies with one (secret, salt) pair.
///
/// The PBKDF2 derivation runs once, in [`Signer::new`]; the HMAC state after the
/// key is absorbed is kept too, so each sign or verify is one HMAC over the token.
///
/// ```
/// use nex_session::token::{SecretKeyBase, Signer};
///
/// let secret = SecretKeyBase::new("0123456789abcdef0123456789abcdef")?;
/// let signer = Signer::new(&secret, "nex.session");
/// let token = signer.sign(b"session-id");
/// assert!(token.starts_with("SFMyNTY."));
/// assert_eq!(signer.verify(&token, Some(60))?, b"session-id");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// Derives the signing key: PBKDF2-HMAC-SHA256(secret, salt, 1000, 32 bytes).
    pub fn new(secret: &SecretKeyBase, salt: impl AsRef<[u8]>) -> Self {
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt.as_ref(), PBKDF2_ITERATIONS, &mut key);
        // HMAC zero-pads keys shorter than the 64-byte block, so padding it
        // ourselves gives the same MAC with an infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key);
        let mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
        Self { mac }
    }

    /// Signs `data` now, embedding Phoenix's default max age of one day; returns the token.
    pub fn sign(&self, data: &[u8]) -> String {
        self.sign_at(data, now_ms(), DEFAULT_EMBEDDED_MAX_AGE)
    }

    /// Signs `data` as if at `signed_at_ms`, embedding `max_age_s`; returns the token.
    ///
    /// ```
    /// # use nex_session::token::{SecretKeyBase, Signer};
    /// # let signer = Signer::new(&SecretKeyBase::new([7u8; 32])?, "salt");
    /// let a = signer.sign_at(b"id", 1_609_876_543_000, 604_800);
    /// assert_eq!(a, signer.sign_at(b"id", 1_609_876_543_000, 604_800)); // deterministic
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sign_at(&self, data: &[u8], signed_at_ms: i64, max_age_s: i64) -> String {
        let mut payload = Vec::new();
        if etf::encode(data, signed_at_ms, max_age_s, &mut payload).is_none() {
            // Over 4 GiB of data is not something a cookie can carry; sign nothing usable.
            payload.clear();
        }
        self.sign_payload(&payload)
    }

    /// Signs already encoded payload bytes: header, payload and tag joined by dots.
    pub(crate) fn sign_payload(&self, payload: &[u8]) -> String {
        let mut token = String::with_capacity(HEADER.len() + 2 + payload.len() * 4 / 3 + 48);
        token.push_str(HEADER);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let tag = mac.finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        token
    }

    /// Verifies `token` now, returning the data it signs. `max_age` (seconds)
    /// overrides the embedded one when given.
    ///
    /// # Errors
    /// [`TokenError::Missing`], [`TokenError::Invalid`] or [`TokenError::Expired`].
    pub fn verify(&self, token: &str, max_age: Option<i64>) -> Result<Vec<u8>, TokenError> {
        self.verify_at(token, max_age, now_ms()).map(|v| v.data)
    }

    /// Verifies `token` as of `now_ms`, returning the data and when it was signed.
    ///
    /// # Errors
    /// As [`Signer::verify`].
    pub fn verify_at(&self, token: &str, max_age: Option<i64>, now_ms: i64) -> Result<Verified, TokenError> {
        let parts = split(token)?;
        if !self.signature_matches(&parts) {
            return Err(TokenError::Invalid);
        }
        parts.open(max_age, now_ms, 0)
    }

    fn signature_matches(&self, parts: &Parts<'_>) -> bool {
        let mut mac = self.mac.clone();
        mac.update(parts.signed.as_bytes());
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        ct::bytes_equal(&expected, &parts.tag)
    }
}

/// One current secret that signs, and older ones that still verify.
///
/// Rotate by putting the new secret first and keeping the old one listed until
/// every cookie it signed has expired; then drop it and its cookies stop working.
///
/// ```
/// use nex_session::token::{Keyring, SecretKeyBase};
///
/// let old = SecretKeyBase::new("the secret we used until yesterday!!")?;
/// let new = SecretKeyBase::new("the secret we sign with from today on")?;
/// let before = Keyring::new(old.clone(), [], "nex.session").sign(b"id");
///
/// let ring = Keyring::new(new.clone(), [old], "nex.session");
/// assert_eq!(ring.verify(&before, Some(60))?, b"id");
/// assert!(Keyring::new(new, [], "nex.session").verify(&before, Some(60)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Keyring {
    signers: Vec<Signer>,
}

impl Keyring {
    /// A keyring that signs with `current` and also accepts tokens of `previous`.
    pub fn new(
        current: SecretKeyBase,
        previous: impl IntoIterator<Item = SecretKeyBase>,
        salt: impl AsRef<[u8]>,
    ) -> Self {
        let salt = salt.as_ref();
        let signers = std::iter::once(current).chain(previous).map(|secret| Signer::new(&secret, salt)).collect();
        Self { signers }
    }

    /// The signer of the current secret.
    pub fn current(&self) -> &Signer {
        // `new` always puts the current secret first.
        #[allow(clippy::indexing_slicing)]
        &self.signers[0]
    }

    /// Signs with the current secret; see [`Signer::sign`].
    pub fn sign(&self, data: &[u8]) -> String {
        self.current().sign(data)
    }

    /// Signs with the current secret; see [`Signer::sign_at`].
    pub fn sign_at(&self, data: &[u8], signed_at_ms: i64, max_age_s: i64) -> String {
        self.current().sign_at(data, signed_at_ms, max_age_s)
    }

    /// Verifies with any listed secret; see [`Signer::verify`].
    ///
    /// # Errors
    /// As [`Signer::verify`].
    pub fn verify(&self, token: &str, max_age: Option<i64>) -> Result<Vec<u8>, TokenError> {
        self.verify_at(token, max_age, now_ms()).map(|v| v.data)
    }

    /// Verifies with any listed secret as of `now_ms`; see [`Signer::verify_at`].
    /// [`Verified::key_index`] says which secret matched.
    ///
    /// # Errors
    /// As [`Signer::verify`].
    pub fn verify_at(&self, token: &str, max_age: Option<i64>, now_ms: i64) -> Result<Verified, TokenError> {
        let parts = split(token)?;
        let index =
            self.signers.iter().position(|signer| signer.signature_matches(&parts)).ok_or(TokenError::Invalid)?;
        parts.open(max_age, now_ms, index)
    }
}

/// Whether `token` has a token's shape (header, payload, a 32-byte tag), whatever
/// its signature: tells a forged token from garbage, after a failed verification.
pub(crate) fn well_formed(token: &str) -> bool {
    split(token).is_ok()
}

/// A token split into its signed part and its decoded tag.
struct Parts<'a> {
    signed: &'a str,
    payload_b64: &'a str,
    tag: [u8; 32],
}

/// Characters of a base64url HMAC-SHA256 tag.
const TAG_B64_LEN: usize = 43;

fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    // Fixed-width ends: `HEADER.` in front, `.` and a 43-character tag at the back.
    // Checking them by position avoids scanning the token for dots.
    let tag_start = token.len().checked_sub(TAG_B64_LEN).ok_or(TokenError::Invalid)?;
    let signed = token.get(..tag_start.saturating_sub(1)).ok_or(TokenError::Invalid)?;
    let payload_b64 = signed.strip_prefix(HEADER).and_then(|rest| rest.strip_prefix('.')).ok_or(TokenError::Invalid)?;
    if token.as_bytes().get(tag_start.wrapping_sub(1)) != Some(&b'.') || payload_b64.contains('.') {
        return Err(TokenError::Invalid);
    }
    let tag_b64 = token.get(tag_start..).ok_or(TokenError::Invalid)?;
    let mut tag = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(tag_b64, &mut tag) {
        Ok(32) => Ok(Parts { signed, payload_b64, tag }),
        _ => Err(TokenError::Invalid),
    }
}

impl Parts<'_> {
    /// Decodes the (already authenticated) payload and checks expiry.
    fn open(&self, max_age: Option<i64>, now_ms: i64, key_index: usize) -> Result<Verified, TokenError> {
        let mut stack = [0u8; STACK_PAYLOAD];
        let mut heap = Vec::new();
        let decoded_len = self.payload_b64.len() / 4 * 3 + 3;
        let buf: &mut [u8] = if decoded_len <= STACK_PAYLOAD {
            &mut stack
        } else {
            // Authenticated input only, so this is a size we signed ourselves.
            heap.resize(decoded_len, 0);
            &mut heap
        };
        let n = URL_SAFE_NO_PAD.decode_slice(self.payload_b64, buf).map_err(|_| TokenError::Invalid)?;
        let payload = etf::decode(buf.get(..n).ok_or(TokenError::Invalid)?).ok_or(TokenError::Invalid)?;
        let embedded_max_age = match payload.max_age {
            MaxAge::Seconds(s) => Some(s),
            MaxAge::Infinity => None,
        };
        check_age(payload.signed_at_ms, max_age.or(embedded_max_age), now_ms)?;
        Ok(Verified { data: payload.data.to_vec(), signed_at_ms: payload.signed_at_ms, embedded_max_age, key_index })
    }
}

/// Plug.Crypto's expiry rule: a token signed at `signed_at_ms` with max age
/// `age` (seconds; `None` is `:infinity`) is expired once `now_ms` is past
/// `signed_at + age`, and always when `age <= 0`.
pub(crate) fn check_age(signed_at_ms: i64, age: Option<i64>, now_ms: i64) -> Result<(), TokenError> {
    if let Some(age) = age {
        let deadline = signed_at_ms.saturating_add(age.saturating_mul(1000));
        if age <= 0 || deadline < now_ms {
            return Err(TokenError::Expired);
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it): the clock tokens use.
///
/// ```
/// assert!(nex_session::token::now_ms() > 1_700_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
