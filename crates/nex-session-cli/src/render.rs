//! How `sessions` results look: a table for people, or with `--json` one JSON
//! document for scripts. The JSON field names are part of the CLI's interface
//! (documented on the `--json` flags); times come as milliseconds since the Unix
//! epoch (`…_ms`) and as RFC 3339 in UTC (`…_at`, `signed_in`, `last_seen`).
//!
//! Nothing here prints a session id: sessions are named by store key or handle.

use std::io::Write as _;
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use nex_session::store::users::UserSession;
use nex_session::store::{Record, Summary};
use nex_session::StoreKey;
use serde_json::{json, Map, Value};

use crate::time::{rfc3339, utc};

/// Prints `text` and a newline on stdout; a closed stdout (a pipe to `head`) is a failure, not a panic.
pub(crate) fn print_line(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// `sessions list`: every listed session by store key, with its key count and expiry.
pub(crate) fn session_list(sessions: &[Summary], now_ms: i64, as_json: bool) -> String {
    if as_json {
        let list: Vec<Value> = sessions
            .iter()
            .map(|s| {
                json!({
                    "store_key": s.key.to_hex(),
                    "keys": s.fields,
                    "expires_at_ms": s.expires_at_ms,
                    "expires_at": rfc3339(s.expires_at_ms),
                })
            })
            .collect();
        return json!({ "sessions": list }).to_string();
    }
    let mut out = format!("{:<64}  {:>5}  expires in\n", "store key (sha256 of id)", "keys");
    for s in sessions {
        out += &format!("{}  {:>5}  {}s\n", s.key.to_hex(), s.fields, (s.expires_at_ms - now_ms) / 1000);
    }
    out + &format!("{} sessions", sessions.len())
}

/// `sessions list --user`: one user's sessions by handle, oldest sign-in first.
pub(crate) fn user_sessions(user: &str, sessions: &[UserSession], now_ms: i64, as_json: bool) -> String {
    if as_json {
        let list: Vec<Value> = sessions
            .iter()
            .map(|s| {
                json!({
                    "handle": s.handle.as_str(),
                    "signed_in_ms": s.signed_in_ms,
                    "signed_in": rfc3339(s.signed_in_ms),
                    "last_seen_ms": s.last_seen_ms,
                    "last_seen": rfc3339(s.last_seen_ms),
                    "expires_at_ms": s.expires_at_ms,
                    "expires_at": rfc3339(s.expires_at_ms),
                    "meta": s.meta,
                })
            })
            .collect();
        return json!({ "user": user, "sessions": list }).to_string();
    }
    let mut out = format!(
        "{:<22}  {:<20}  {:<20}  {:>10}  device\n",
        "handle", "signed in (UTC)", "last seen (UTC)", "expires in"
    );
    for s in sessions {
        out += &format!(
            "{}  {:<20}  {:<20}  {:>9}s  {}\n",
            s.handle,
            utc(s.signed_in_ms),
            utc(s.last_seen_ms),
            (s.expires_at_ms - now_ms) / 1000,
            s.meta.as_deref().unwrap_or("-"),
        );
    }
    out + &format!("{} sessions of user {user:?}", sessions.len())
}

/// What `show` prints instead of the session's CSRF secret.
const HIDDEN: &str = "(the session's CSRF secret: hidden)";

/// `sessions show`: one session's keys and values. The CSRF secret
/// ([`nex_session::csrf::CSRF_KEY`]) is never printed: with it, anyone reading the
/// output could mint valid CSRF tokens for that session.
///
/// The library stores every value as JSON, so `--json` gives each value as the
/// JSON it is (`values`); a value that is not JSON (written by something else)
/// goes to `raw_values` as standard base64, so nothing is lost or guessed.
pub(crate) fn record(key: StoreKey, record: &Record, now_ms: i64, as_json: bool) -> String {
    if as_json {
        let mut values = Map::new();
        let mut raw = Map::new();
        for (name, bytes) in &record.fields {
            if name == nex_session::csrf::CSRF_KEY {
                values.insert(name.clone(), Value::String(HIDDEN.to_owned()));
                continue;
            }
            match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => values.insert(name.clone(), value),
                Err(_) => raw.insert(name.clone(), Value::String(STANDARD.encode(bytes))),
            };
        }
        return json!({
            "store_key": key.to_hex(),
            "expires_at_ms": record.expires_at_ms,
            "expires_at": rfc3339(record.expires_at_ms),
            "values": values,
            "raw_values": raw,
        })
        .to_string();
    }
    let mut out = format!("store key: {}\nexpires in: {}s", key.to_hex(), (record.expires_at_ms - now_ms) / 1000);
    for (name, value) in &record.fields {
        match name == nex_session::csrf::CSRF_KEY {
            true => out += &format!("\n{name} = {HIDDEN}"),
            false => out += &format!("\n{name} = {}", String::from_utf8_lossy(value)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_as_json_keeps_json_values_and_base64s_the_rest() {
        let key = nex_session::SessionId::generate().unwrap().store_key();
        let mut record = Record { expires_at_ms: 1_700_000_000_123, ..Record::default() };
        record.fields.insert("cart".into(), br#"{"items":[1,2]}"#.to_vec());
        record.fields.insert("n".into(), b"42".to_vec());
        record.fields.insert("blob".into(), vec![0xff, 0x00]);
        let doc: Value = serde_json::from_str(&super::record(key, &record, 0, true)).unwrap();
        assert_eq!(doc["store_key"], key.to_hex());
        assert_eq!(doc["expires_at"], "2023-11-14T22:13:20Z");
        assert_eq!(doc["values"], json!({ "cart": { "items": [1, 2] }, "n": 42 }));
        assert_eq!(doc["raw_values"], json!({ "blob": "/wA=" }));
    }

    #[test]
    fn show_never_prints_the_csrf_secret() {
        let key = nex_session::SessionId::generate().unwrap().store_key();
        let mut record = Record { expires_at_ms: 1_700_000_000_123, ..Record::default() };
        let secret = br#""c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMw""#;
        record.fields.insert(nex_session::csrf::CSRF_KEY.into(), secret.to_vec());
        record.fields.insert("n".into(), b"42".to_vec());
        for as_json in [false, true] {
            let out = super::record(key, &record, 0, as_json);
            assert!(!out.contains("c2VjcmV0"), "{out}");
            assert!(out.contains("hidden") && out.contains("42"), "{out}");
        }
    }
}
