//! What an app prints when `fn main() -> Result<(), ConfigError>` returns the
//! error of `SessionConfig::from_env` with `?`: Rust's runtime writes
//! `Error: {err:?}` to stderr and exits with 1, so the error's `Debug` must be
//! the helpful message (and the variant), not `Error: Secret(Missing)`.
//!
//! Only a real `main` shows what Rust prints, so this test is its own program
//! (`harness = false`): it runs itself again as that app, with an environment of
//! its choosing, and reads the child's stderr and exit status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use nex_session::token::SecretError;
use nex_session::{ConfigError, SessionConfig};

/// Set in the child: run as the app.
const AS_APP: &str = "NEX_MAIN_ERROR_AS_APP";

fn main() -> Result<(), ConfigError> {
    if std::env::var_os(AS_APP).is_some() {
        // The app, as a user writes it.
        let _config = SessionConfig::from_env()?;
        return Ok(());
    }
    let missing = format!("Error: {} (ConfigError::Secret(SecretError::Missing))\n", SecretError::Missing);
    assert!(missing.contains("SECRET_KEY_BASE is not set") && missing.contains("nex-session gen-secret"));
    expect(&[], Some(1), &missing);
    expect(&[("NEX_ENV", "production")], Some(1), &missing);
    let short = format!("Error: {} (ConfigError::Secret(SecretError::TooShort))\n", SecretError::TooShort(5));
    assert!(short.contains("at least 32 bytes, got 5"));
    expect(&[("SECRET_KEY_BASE", "short")], Some(1), &short);
    expect(
        &[("SECRET_KEY_BASE", &"s".repeat(40)), ("NEX_SESSION_TTL", "soon")],
        Some(1),
        "Error: environment variable NEX_SESSION_TTL=\"soon\" is invalid: a positive number of seconds \
         (ConfigError::Invalid)\n",
    );
    // A good configuration: no output, success.
    expect(&[("SECRET_KEY_BASE", &"s".repeat(40))], Some(0), "");
    println!("main_error: `Error: {{err:?}}` shows the message for each refused configuration");
    Ok(())
}

/// Runs this program as the app with only `vars` set; asserts its exit code and stderr.
fn expect(vars: &[(&str, &str)], code: Option<i32>, stderr: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env_clear()
        .env(AS_APP, "1")
        .envs(vars.iter().copied())
        .output()
        .expect("runs this test program again as the app");
    let shown = String::from_utf8(out.stderr).unwrap();
    assert_eq!(shown, stderr, "with {vars:?}");
    assert_eq!(out.status.code(), code, "with {vars:?}: {shown}");
}
