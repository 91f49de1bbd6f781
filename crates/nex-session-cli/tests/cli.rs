//! The `nex-session` binary, run as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::process::{Command, Output};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn run(secret: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nex-session"));
    cmd.args(args).env_remove("SECRET_KEY_BASE");
    if let Some(secret) = secret {
        cmd.env("SECRET_KEY_BASE", secret);
    }
    cmd.output().expect("runs the nex-session binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap().trim_end().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn gen_secret_prints_a_fresh_secret_of_the_requested_length() {
    let a = run(None, &["gen-secret"]);
    let b = run(None, &["gen-secret"]);
    assert!(a.status.success());
    assert_eq!(stdout(&a).len(), 64);
    assert_ne!(stdout(&a), stdout(&b));
    assert_eq!(stdout(&run(None, &["gen-secret", "--length", "40"])).len(), 40);
    assert_eq!(run(None, &["gen-secret", "--length", "8"]).status.code(), Some(2));
}

#[test]
fn sign_reproduces_a_plug_crypto_vector_and_verify_reads_it_back() {
    // Row 1 of plug_crypto_vectors.tsv: the secret is base64 in the file.
    let secret = "|fV@wI?,1|j@LGAa=}EszwoWeT+8dD=e6;x_orf";
    let data = "klMB987yMhqOw6Ve43B16YssSK0TlOpG";
    let expected = "SFMyNTY.g2gDbQAAACBrbE1COTg3eU1ocU93NlZlNDNCMTZZc3NTSzBUbE9wR24GABiWHtR2AWIACTqA.W3pgL-QjPyFm9VCfxCu6d_A4NmV9dV5pD6_XAWBd-BA";
    let signed = run(Some(secret), &["token", "sign", "--signed-at", "1609876543", "--max-age", "604800", data]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    assert_eq!(stdout(&signed), expected);
    let verified = run(Some(secret), &["token", "verify", "--max-age", "999999999", expected]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert_eq!(stdout(&verified), data);
}

#[test]
fn verify_prints_invalid_expired_or_missing_first_on_stderr_and_exits_1() {
    let token = stdout(&run(Some(SECRET), &["token", "sign", "session-id"]));
    let ok = run(Some(SECRET), &["token", "verify", &token]);
    assert_eq!((ok.status.code(), stdout(&ok)), (Some(0), "session-id".to_owned()));

    let forged = format!("{}{}", &token[..token.len() - 1], if token.ends_with('A') { 'B' } else { 'A' });
    let invalid = run(Some(SECRET), &["token", "verify", &forged]);
    assert_eq!(invalid.status.code(), Some(1));
    assert_eq!(stderr(&invalid).split_whitespace().next(), Some("invalid:"));

    let old = stdout(&run(Some(SECRET), &["token", "sign", "--signed-at", "1000", "session-id"]));
    let expired = run(Some(SECRET), &["token", "verify", &old]);
    assert_eq!(expired.status.code(), Some(1));
    assert!(stderr(&expired).starts_with("expired"), "{}", stderr(&expired));

    let missing = run(Some(SECRET), &["token", "verify", ""]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).starts_with("missing"), "{}", stderr(&missing));

    let other_salt = run(Some(SECRET), &["token", "verify", "--salt", "other", &token]);
    assert!(stderr(&other_salt).starts_with("invalid"));
}

#[test]
fn a_missing_or_short_secret_exits_2_with_a_how_to() {
    let missing = run(None, &["token", "sign", "x"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("gen-secret"), "{}", stderr(&missing));
    let short = run(Some("short"), &["token", "verify", "x"]);
    assert_eq!(short.status.code(), Some(2));
    assert!(stderr(&short).contains("at least 32 bytes"), "{}", stderr(&short));
}

#[test]
fn help_tells_operators_how_to_debug_a_cookie() {
    let help = run(None, &["token", "--help"]);
    assert!(stdout(&help).contains("_nex_session"), "{}", stdout(&help));
}
