//! [`RunMode`]: development or production, from `NEX_ENV`.

use std::ffi::OsStr;

/// The environment variable that selects the [`RunMode`].
pub const NEX_ENV: &str = "NEX_ENV";

/// Development or production: development alone may use the public development
/// secret and cookies without `Secure`.
///
/// The one rule, for the library and the demo alike: a set `NEX_ENV` means
/// development only when it is exactly `dev` or `development` (lowercase, as
/// written); any other set value (`prod`, `PROD`, `staging`, `Dev`, empty, not
/// UTF-8) means production, so a misspelling fails closed. What an *unset*
/// `NEX_ENV` means is the application's documented choice: production for
/// [`SessionConfig::from_env`](crate::SessionConfig::from_env), development for a tool meant to run locally
/// with no setup (the demo).
///
/// ```
/// use std::ffi::OsStr;
/// use nex_session::RunMode;
///
/// assert_eq!(RunMode::from_nex_env(Some(OsStr::new("dev")), RunMode::Production), RunMode::Development);
/// assert_eq!(RunMode::from_nex_env(Some(OsStr::new("PROD")), RunMode::Development), RunMode::Production);
/// assert_eq!(RunMode::from_nex_env(Some(OsStr::new("staging")), RunMode::Development), RunMode::Production);
/// assert_eq!(RunMode::from_nex_env(None, RunMode::Production), RunMode::Production);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Local development: a missing secret falls back to the public development one (with a loud warning).
    Development,
    /// Anything else: a valid `SECRET_KEY_BASE` is required and cookies are `Secure` by default.
    Production,
}

impl RunMode {
    /// The mode a `NEX_ENV` value selects (`None`: unset), `when_unset` if it is not set.
    pub fn from_nex_env(value: Option<&OsStr>, when_unset: RunMode) -> RunMode {
        match value {
            None => when_unset,
            Some(value) if value == "dev" || value == "development" => RunMode::Development,
            Some(_) => RunMode::Production,
        }
    }

    /// The mode `NEX_ENV` in this process's environment selects, `when_unset` if it is not set.
    ///
    /// ```
    /// let mode = nex_session::RunMode::from_env(nex_session::RunMode::Production);
    /// # let _ = mode;
    /// ```
    pub fn from_env(when_unset: RunMode) -> RunMode {
        Self::from_nex_env(std::env::var_os(NEX_ENV).as_deref(), when_unset)
    }

    /// True for [`RunMode::Development`].
    ///
    /// ```
    /// assert!(nex_session::RunMode::Development.is_development());
    /// ```
    pub fn is_development(self) -> bool {
        self == RunMode::Development
    }
}
