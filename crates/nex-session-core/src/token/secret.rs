//! The application secret (`SECRET_KEY_BASE`).

use std::ffi::OsString;
use std::fmt;

use subtle::ConstantTimeEq;

use crate::error::{debug_as_message, VariantPath};

/// The shortest secret accepted, in bytes (as Phoenix demands).
pub const MIN_SECRET_LEN: usize = 32;

/// The fixed secret used only in development mode, with a loud warning.
///
/// Public on purpose: anyone can forge cookies signed with it.
pub const DEV_SECRET_KEY_BASE: &str = "nex-session-development-secret-never-use-in-production-0123456789abcdef";

/// A `SECRET_KEY_BASE`: the root secret every signing key is derived from.
///
/// Its `Debug` output never shows the bytes, and `==` runs in constant time.
///
/// ```
/// use nex_session::token::SecretKeyBase;
///
/// let secret = SecretKeyBase::new("a secret that is at least 32 bytes long!")?;
/// assert_eq!(format!("{secret:?}"), "SecretKeyBase(40 bytes)");
/// assert!(SecretKeyBase::new("too short").is_err());
/// # Ok::<(), nex_session::token::SecretError>(())
/// ```
#[derive(Clone)]
pub struct SecretKeyBase(Box<[u8]>);

/// Why a secret was refused.
///
/// Its `Debug` is the message and the variant, so `fn main() -> Result<(), SecretError>`
/// prints what to do:
///
/// ```
/// use nex_session::token::SecretError;
/// assert_eq!(
///     format!("Error: {:?}", SecretError::TooShort(5)),
///     "Error: SECRET_KEY_BASE must be at least 32 bytes, got 5; generate one with \
///      `nex-session gen-secret` (or `mix phx.gen.secret`) (SecretError::TooShort)"
/// );
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The environment variable is not set.
    #[error(
        "SECRET_KEY_BASE is not set; generate one with `nex-session gen-secret` \
         (or `mix phx.gen.secret`) and export it"
    )]
    Missing,
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error(
        "SECRET_KEY_BASE must be at least {MIN_SECRET_LEN} bytes, got {0}; \
         generate one with `nex-session gen-secret` (or `mix phx.gen.secret`)"
    )]
    TooShort(usize),
    /// The environment variable is set but is not valid UTF-8 (a broken export,
    /// never to be mistaken for "not set").
    #[error(
        "SECRET_KEY_BASE is set but is not valid UTF-8; generate one with `nex-session gen-secret` \
         (or `mix phx.gen.secret`) and export it"
    )]
    NotUnicode,
}

debug_as_message!(SecretError);

impl VariantPath for SecretError {
    fn write_variant(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "SecretError::Missing",
            Self::TooShort(_) => "SecretError::TooShort",
            Self::NotUnicode => "SecretError::NotUnicode",
        })
    }
}

impl SecretKeyBase {
    /// Accepts a secret of at least [`MIN_SECRET_LEN`] bytes.
    ///
    /// # Errors
    /// [`SecretError::TooShort`] for a shorter one; the message says how to make one.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, SecretError> {
        let bytes = secret.as_ref();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(Self(bytes.into()))
    }

    /// Reads `SECRET_KEY_BASE` from the environment.
    ///
    /// # Errors
    /// [`SecretError::Missing`] when unset, [`SecretError::NotUnicode`] when set
    /// but not UTF-8, [`SecretError::TooShort`] when short.
    pub fn from_env() -> Result<Self, SecretError> {
        Self::from_env_value(std::env::var_os("SECRET_KEY_BASE"))
    }

    /// [`SecretKeyBase::from_env`] for a given value of the variable (`None`: unset).
    fn from_env_value(value: Option<OsString>) -> Result<Self, SecretError> {
        let value = value.ok_or(SecretError::Missing)?;
        // Secrets are text (what `gen-secret` and `mix phx.gen.secret` print); anything
        // else is a broken export, refused in every mode.
        let value = value.into_string().map_err(|_| SecretError::NotUnicode)?;
        Self::new(value)
    }

    /// The well-known development secret ([`DEV_SECRET_KEY_BASE`]).
    ///
    /// ```
    /// let dev = nex_session::token::SecretKeyBase::development();
    /// assert!(dev.is_development());
    /// ```
    pub fn development() -> Self {
        Self(DEV_SECRET_KEY_BASE.as_bytes().into())
    }

    /// True when this is the public development secret.
    pub fn is_development(&self) -> bool {
        bool::from(self.0.ct_eq(DEV_SECRET_KEY_BASE.as_bytes()))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretKeyBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKeyBase({} bytes)", self.0.len())
    }
}

impl PartialEq for SecretKeyBase {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SecretKeyBase {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_secret_is_missing() {
        assert_eq!(SecretKeyBase::from_env_value(None).unwrap_err(), SecretError::Missing);
    }

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_secret_is_an_error_not_missing() {
        use std::os::unix::ffi::OsStringExt;
        let mut bytes = vec![b'x'; 40];
        bytes[3] = 0xff;
        let err = SecretKeyBase::from_env_value(Some(OsString::from_vec(bytes))).unwrap_err();
        assert_eq!(err, SecretError::NotUnicode);
        assert!(err.to_string().contains("nex-session gen-secret"), "{err}");
    }

    #[test]
    fn a_set_secret_is_checked_for_length() {
        assert_eq!(SecretKeyBase::from_env_value(Some("short".into())).unwrap_err(), SecretError::TooShort(5));
        assert!(SecretKeyBase::from_env_value(Some("x".repeat(32).into())).is_ok());
    }
}
