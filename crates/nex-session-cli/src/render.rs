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
use nex_session::token::Verified;
use nex_session::{CookieExpiry, SessionCookieData, StoreKey, SESSION_SALT};
use serde_json::{json, Map, Value};

use crate::time::{count, human, rfc3339, utc};

/// Prints `text` and a newline on stdout; a closed stdout (a pipe to `head`) is a failure, not a panic.
pub(crate) fn print_line(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// `sessions list`: every listed session by store key, with its key count, its
/// expiry and the user it is bound to (`-` for none).
pub(crate) fn session_list(sessions: &[(Summary, Option<String>)], now_ms: i64, as_json: bool) -> String {
    if as_json {
        let list: Vec<Value> = sessions
            .iter()
            .map(|(s, user)| {
                json!({
                    "store_key": s.key.to_hex(),
                    "keys": s.fields,
                    "user": user,
                    "expires_at_ms": s.expires_at_ms,
                    "expires_at": rfc3339(s.expires_at_ms),
                    "expires_in_s": (s.expires_at_ms - now_ms) / 1000,
                })
            })
            .collect();
        return json!({ "sessions": list }).to_string();
    }
    let mut out = format!("{:<64}  {:>5}  {:>10}  user\n", "store key (sha256 of id)", "keys", "expires in");
    for (s, user) in sessions {
        let expires = human((s.expires_at_ms - now_ms) / 1000);
        let user = user.as_deref().unwrap_or("-");
        out += &format!("{}  {:>5}  {expires:>10}  {user}\n", s.key.to_hex(), s.fields);
    }
    out + &count(sessions.len() as u64, "session")
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
                    "expires_in_s": (s.expires_at_ms - now_ms) / 1000,
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
            "{}  {:<20}  {:<20}  {:>10}  {}\n",
            s.handle,
            utc(s.signed_in_ms),
            utc(s.last_seen_ms),
            human((s.expires_at_ms - now_ms) / 1000),
            s.meta.as_deref().unwrap_or("-"),
        );
    }
    out + &format!("{} of user {user:?}", count(sessions.len() as u64, "session"))
}

/// `token verify`: the token's data; for a session cookie (salt `nex.session`),
/// the session id on the first line, then what else the cookie carries, labelled.
pub(crate) fn verified(token: &Verified, salt: &str, as_json: bool) -> String {
    let cookie = (salt == SESSION_SALT).then(|| SessionCookieData::parse(&token.data)).flatten();
    let data = String::from_utf8_lossy(&token.data);
    let expiry_text = |expiry: Option<CookieExpiry>| match expiry {
        None | Some(CookieExpiry::Default) => "the app's default".to_owned(),
        Some(CookieExpiry::BrowserSession) => "browser session (the cookie ends with the browser)".to_owned(),
        Some(CookieExpiry::Persistent { ttl_s }) => format!("remember me, {} of inactivity", human(ttl_s)),
    };
    if as_json {
        let mut doc = json!({
            "data": data,
            "signed_at_ms": token.signed_at_ms,
            "signed_at": rfc3339(token.signed_at_ms),
            "max_age_s": token.embedded_max_age,
            "key_index": token.key_index,
        });
        if let (Some(cookie), Value::Object(map)) = (&cookie, &mut doc) {
            let (expiry, ttl_s) = match cookie.expiry {
                None => (Value::Null, Value::Null),
                Some(CookieExpiry::Default) => (json!("default"), Value::Null),
                Some(CookieExpiry::BrowserSession) => (json!("browser_session"), Value::Null),
                Some(CookieExpiry::Persistent { ttl_s }) => (json!("persistent"), json!(ttl_s)),
            };
            map.insert("id".into(), json!(cookie.id.as_str()));
            map.insert("expiry".into(), expiry);
            map.insert("ttl_s".into(), ttl_s);
            map.insert("created_ms".into(), json!(cookie.created_ms));
            map.insert("created_at".into(), json!(cookie.created_ms.map(rfc3339)));
        }
        return doc.to_string();
    }
    let Some(cookie) = cookie else { return data.into_owned() };
    let mut out = format!("{}\nexpiry: {}", cookie.id.as_str(), expiry_text(cookie.expiry));
    if let Some(created) = cookie.created_ms {
        out += &format!("\ncreated: {} UTC", utc(created));
    }
    out + &format!("\nsigned: {} UTC", utc(token.signed_at_ms))
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
            "expires_in_s": (record.expires_at_ms - now_ms) / 1000,
            "values": values,
            "raw_values": raw,
        })
        .to_string();
    }
    let expires = human((record.expires_at_ms - now_ms) / 1000);
    let mut out = format!("store key: {}\nexpires in: {expires} (at {} UTC)", key.to_hex(), utc(record.expires_at_ms));
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
