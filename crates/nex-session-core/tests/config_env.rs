//! The expiry options read from the environment (12-factor). One test in its own
//! binary: the environment is process-wide, so nothing else may read it meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use nex_session::{ConfigError, Expiry, RunMode, SessionConfig};

const SECRET: &str = "env-secret-env-secret-env-secret-env-secret";

fn read() -> Result<SessionConfig, ConfigError> {
    SessionConfig::from_env_with_mode(RunMode::Production)
}

#[test]
fn expiry_variables_are_read_and_invalid_values_name_the_variable() {
    std::env::set_var("SECRET_KEY_BASE", SECRET);
    std::env::remove_var("NEX_SESSION_EXPIRY");
    std::env::remove_var("NEX_SESSION_ABSOLUTE_LIFETIME");
    let defaults = read().unwrap();
    assert_eq!((defaults.expiry(), defaults.absolute_lifetime()), (Expiry::Sliding, None));

    std::env::set_var("NEX_SESSION_EXPIRY", "browser-session");
    std::env::set_var("NEX_SESSION_ABSOLUTE_LIFETIME", "28800");
    let config = read().unwrap();
    assert_eq!(config.expiry(), Expiry::BrowserSession);
    assert_eq!(config.absolute_lifetime(), Some(Duration::from_secs(28_800)));
    std::env::set_var("NEX_SESSION_EXPIRY", "sliding");
    assert_eq!(read().unwrap().expiry(), Expiry::Sliding);

    for bad in ["forever", "browser", ""] {
        std::env::set_var("NEX_SESSION_EXPIRY", bad);
        let err = read().unwrap_err().to_string();
        assert!(err.contains("NEX_SESSION_EXPIRY") && err.contains("browser-session"), "{bad:?}: {err}");
    }
    std::env::set_var("NEX_SESSION_EXPIRY", "sliding");
    for bad in ["0", "-5", "8h", ""] {
        std::env::set_var("NEX_SESSION_ABSOLUTE_LIFETIME", bad);
        let err = read().unwrap_err().to_string();
        assert!(err.contains("NEX_SESSION_ABSOLUTE_LIFETIME") && err.contains("seconds"), "{bad:?}: {err}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        std::env::set_var("NEX_SESSION_ABSOLUTE_LIFETIME", std::ffi::OsStr::from_bytes(b"60\xff"));
        let err = read().unwrap_err();
        assert!(matches!(err, ConfigError::NotUnicode { name: "NEX_SESSION_ABSOLUTE_LIFETIME" }), "{err}");
    }
}
