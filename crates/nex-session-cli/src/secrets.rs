//! Which secrets the CLI signs and verifies with: the app's, found as the app
//! finds them, so a cookie the app accepts is one `token verify` accepts.
//!
//! - `--dev`: the public development secret alone (what an app in development
//!   mode uses when `SECRET_KEY_BASE` is unset, the demo for one).
//! - Otherwise `SECRET_KEY_BASE`; when it is unset and `NEX_ENV` selects
//!   development (exactly `dev` or `development`, the library's [`RunMode`]
//!   rule), the development secret, as `SessionConfig::from_env` does.
//! - Verification also accepts `SECRET_KEY_BASE_OLD` (comma-separated previous
//!   secrets), as the app does during a rotation; signing uses the current one.
//!
//! Messages name the variable or the flag at fault and never print a secret.

use nex_session::token::{Keyring, SecretError, SecretKeyBase, MIN_SECRET_LEN};
use nex_session::RunMode;

/// The variable holding the previous secrets.
const PREVIOUS_VAR: &str = "SECRET_KEY_BASE_OLD";

/// The secrets a command works with.
pub(crate) struct Secrets {
    current: SecretKeyBase,
    previous: Vec<SecretKeyBase>,
    /// Where they came from, for messages (never the secrets themselves).
    origin: String,
}

impl Secrets {
    /// The development secret with `dev`, else the environment's secrets (see the module docs).
    ///
    /// # Errors
    /// A message naming the variable that is missing, too short or not UTF-8.
    pub(crate) fn choose(dev: bool) -> Result<Self, String> {
        if dev {
            let origin = "the development secret (--dev)".to_owned();
            return Ok(Self { current: SecretKeyBase::development(), previous: Vec::new(), origin });
        }
        let (current, origin) = match SecretKeyBase::from_env() {
            Ok(secret) => (secret, "SECRET_KEY_BASE"),
            Err(SecretError::Missing) if RunMode::from_env(RunMode::Production).is_development() => (
                SecretKeyBase::development(),
                "the development secret (NEX_ENV selects development, SECRET_KEY_BASE is unset)",
            ),
            Err(err @ SecretError::Missing) => {
                return Err(format!(
                    "{err}. For a cookie of an app in development mode (the public development secret), pass --dev"
                ))
            }
            Err(err) => return Err(err.to_string()),
        };
        let previous = previous_from_env()?;
        let origin = if previous.is_empty() { origin.to_owned() } else { format!("{origin} or {PREVIOUS_VAR}") };
        Ok(Self { current, previous, origin })
    }

    /// Which secrets these are, for a message: "SECRET_KEY_BASE", "the development secret (--dev)", ….
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Every secret a token may verify with for `salt`, the current one first
    /// (the one [`Keyring::sign`] signs with).
    pub(crate) fn keyring(&self, salt: &str) -> Keyring {
        Keyring::new(self.current.clone(), self.previous.iter().cloned(), salt)
    }
}

/// The secrets of `SECRET_KEY_BASE_OLD`, empty entries skipped (as the library does).
fn previous_from_env() -> Result<Vec<SecretKeyBase>, String> {
    let Some(value) = std::env::var_os(PREVIOUS_VAR) else { return Ok(Vec::new()) };
    let value = value.into_string().map_err(|_| format!("{PREVIOUS_VAR} is set but is not valid UTF-8"))?;
    parse_previous(&value)
}

/// Comma-separated secrets; a short one is an error naming its position, not its value.
fn parse_previous(value: &str) -> Result<Vec<SecretKeyBase>, String> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, secret)| {
            SecretKeyBase::new(secret).map_err(|_| {
                format!(
                    "{PREVIOUS_VAR}: previous secret #{} is {} bytes; each must be at least {MIN_SECRET_LEN}",
                    i + 1,
                    secret.len()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_previous;

    #[test]
    fn previous_secrets_are_split_on_commas_and_a_short_one_is_named_by_position() {
        let long = "p".repeat(32);
        assert_eq!(parse_previous(&format!("{long},,{long}")).unwrap().len(), 2);
        assert!(parse_previous("").unwrap().is_empty());
        let err = parse_previous(&format!("{long},hunter2")).err().unwrap();
        assert!(err.contains("#2") && err.contains("7 bytes") && !err.contains("hunter2"), "{err}");
    }
}
