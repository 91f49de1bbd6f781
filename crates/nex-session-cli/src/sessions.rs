//! `nex-session sessions --store URL …`: inspect and revoke stored sessions.
//!
//! Output never contains anything usable as a cookie: sessions are listed by
//! their store key (SHA-256 of the id) or, for one user's sessions, by their
//! handle (derived one way from the store key), and `show`/`revoke` take a
//! cookie value or an id and hash it before asking the store.

use std::process::ExitCode;

use clap::Subcommand;
use nex_session::store::users::{Keep, SessionHandle, UserIndex, UserSession};
use nex_session::store::{OpenOptions, RedactedUrl, SessionAdmin, SessionStore};
use nex_session::token::{now_ms, SecretKeyBase, Signer};
use nex_session::{SessionId, StoreKey, SESSION_SALT};

/// What to do with the sessions of a store.
#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// List live sessions: store key (SHA-256 of the id), key count, expiry; or,
    /// with `--user`, one user's sessions by handle, with sign-in and last-seen times.
    List {
        /// At most this many sessions (without `--user`).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only the sessions bound to this user id.
        #[arg(long)]
        user: Option<String>,
    },
    /// Show one session's keys and values.
    Show {
        /// A `_nex_session` cookie value (verified with SECRET_KEY_BASE; `name=value` or a whole
        /// `Cookie` header works too), a session id, or a store key (64 hex).
        session: String,
        /// The session cookie's name, to pick from a pasted `name=value` or `Cookie` header.
        #[arg(long, env = "NEX_SESSION_COOKIE_NAME", default_value = nex_session::COOKIE_NAME)]
        cookie_name: String,
    },
    /// Delete one session now: its cookie stops working.
    Revoke {
        /// A `_nex_session` cookie value (verified with SECRET_KEY_BASE; `name=value` or a whole
        /// `Cookie` header works too), a session id, or a store key (64 hex).
        session: String,
        /// The session cookie's name, to pick from a pasted `name=value` or `Cookie` header.
        #[arg(long, env = "NEX_SESSION_COOKIE_NAME", default_value = nex_session::COOKIE_NAME)]
        cookie_name: String,
    },
    /// Sign a user out everywhere: delete every session bound to them now.
    RevokeUser {
        /// The user id the app bound the sessions to.
        user: String,
        /// Spare the session with this handle (from `list --user`).
        #[arg(long)]
        except: Option<String>,
    },
    /// Remove expired sessions now.
    Purge,
}

/// Runs a `sessions` subcommand against the store at `url`; `create` allows
/// creating a missing SQLite file. Messages show the URL without its password.
pub(crate) fn run(url: &str, create: bool, command: SessionsCommand) -> ExitCode {
    let shown = RedactedUrl::new(url);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("could not start the async runtime: {e}")),
    };
    runtime.block_on(async {
        let options = OpenOptions::new().create_missing(create);
        let store = match nex_session::store::open_with(url, options).await {
            Ok(store) => store,
            Err(e) if !create && url.trim().starts_with("sqlite://") => {
                return fail(&format!("cannot open store {shown}: {e}; to create a new database there, pass --create"))
            }
            Err(e) => return fail(&format!("cannot open store {shown}: {e}")),
        };
        // Listing and purging need the store's administration.
        let admin = || store.admin().ok_or_else(|| fail(&format!("the store {shown} offers no administration")));
        // A user's sessions need the store's per-user index.
        let index = || store.users().ok_or_else(|| fail(&format!("the store {shown} keeps no per-user index")));
        match command {
            SessionsCommand::List { user: Some(user), .. } => match index() {
                Ok(index) => list_user(index, &user).await,
                Err(code) => code,
            },
            SessionsCommand::List { limit, user: None } => match admin() {
                Ok(admin) => list(admin, limit).await,
                Err(code) => code,
            },
            SessionsCommand::RevokeUser { user, except } => match index() {
                Ok(index) => revoke_user(index, &user, except.as_deref()).await,
                Err(code) => code,
            },
            SessionsCommand::Show { session, cookie_name } => match resolve(&session, &cookie_name) {
                Ok(key) => show(&*store, key).await,
                Err(code) => code,
            },
            SessionsCommand::Revoke { session, cookie_name } => match resolve(&session, &cookie_name) {
                Ok(key) => revoke(&*store, key).await,
                Err(code) => code,
            },
            SessionsCommand::Purge => match admin() {
                Ok(admin) => match admin.purge_expired(now_ms()).await {
                    Ok(n) => {
                        println!("purged {n} expired sessions");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e.to_string()),
                },
                Err(code) => code,
            },
        }
    })
}

async fn list(admin: &dyn SessionAdmin, limit: usize) -> ExitCode {
    match admin.list(limit).await {
        Ok(sessions) => {
            println!("{:<64}  {:>5}  expires in", "store key (sha256 of id)", "keys");
            let now = now_ms();
            for s in &sessions {
                println!("{}  {:>5}  {}s", s.key.to_hex(), s.fields, (s.expires_at_ms - now) / 1000);
            }
            println!("{} sessions", sessions.len());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// One user's sessions, oldest sign-in first: handle, times, what the app recorded.
async fn list_user(index: &dyn UserIndex, user: &str) -> ExitCode {
    match index.sessions(user).await {
        Ok(sessions) => {
            println!(
                "{:<22}  {:<20}  {:<20}  {:>10}  device",
                "handle", "signed in (UTC)", "last seen (UTC)", "expires in"
            );
            let now = now_ms();
            for s in &sessions {
                print_user_session(s, now);
            }
            println!("{} sessions of user {user:?}", sessions.len());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn print_user_session(s: &UserSession, now: i64) {
    println!(
        "{}  {:<20}  {:<20}  {:>9}s  {}",
        s.handle,
        crate::time::utc(s.signed_in_ms),
        crate::time::utc(s.last_seen_ms),
        (s.expires_at_ms - now) / 1000,
        s.meta.as_deref().unwrap_or("-"),
    );
}

/// Deletes every session of `user` but the one `except` names. Nothing to revoke
/// (a mistyped user id, the wrong store) is an error (exit 1), as for `revoke`;
/// an `except` handle that is not one of the user's sessions is refused before
/// anything is deleted, so a typo never signs out the operator's own session.
async fn revoke_user(index: &dyn UserIndex, user: &str, except: Option<&str>) -> ExitCode {
    let keep = match except.map(str::parse::<SessionHandle>) {
        None => Keep::None,
        Some(Ok(handle)) => Keep::Handle(handle),
        Some(Err(e)) => return fail(&format!("--except: {e}")),
    };
    let sessions = match index.sessions(user).await {
        Ok(sessions) => sessions,
        Err(e) => return fail(&e.to_string()),
    };
    if let Keep::Handle(handle) = &keep {
        if !sessions.iter().any(|s| s.handle == *handle) {
            return fail(&format!("user {user:?} has no live session with handle {handle}: nothing revoked"));
        }
    }
    if sessions.is_empty() {
        return fail(&format!("user {user:?} has no live sessions: nothing revoked"));
    }
    match index.revoke_all(user, keep).await {
        Ok(n) => {
            println!("revoked {n} sessions of user {user:?}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// Deletes one session; a session that is not there is an error (exit 1), so a
/// mistyped id or the wrong store never looks like a successful revocation.
async fn revoke(store: &dyn SessionStore, key: StoreKey) -> ExitCode {
    // The store's `remove` does not say whether anything was there: look first.
    let existed = match store.load(key).await {
        Ok(record) => record.is_some(),
        Err(e) => return fail(&e.to_string()),
    };
    // Removed either way: an expired leftover goes too.
    if let Err(e) = store.remove(key).await {
        return fail(&e.to_string());
    }
    if existed {
        println!("revoked {}", key.to_hex());
        ExitCode::SUCCESS
    } else {
        fail(&format!("no live session with store key {}: nothing revoked", key.to_hex()))
    }
}

async fn show(store: &dyn SessionStore, key: StoreKey) -> ExitCode {
    match store.load(key).await {
        Ok(Some(record)) => {
            println!("store key: {}", key.to_hex());
            println!("expires in: {}s", (record.expires_at_ms - now_ms()) / 1000);
            for (field, value) in &record.fields {
                println!("{field} = {}", String::from_utf8_lossy(value));
            }
            ExitCode::SUCCESS
        }
        Ok(None) => fail(&format!("no live session with store key {}", key.to_hex())),
        Err(e) => fail(&e.to_string()),
    }
}

/// A cookie value (bare, or cookie `cookie_name` of a pasted pair or header), an
/// id or a store key, as a store key.
fn resolve(input: &str, cookie_name: &str) -> Result<StoreKey, ExitCode> {
    let input = crate::cookie_input::pick(input, cookie_name).map_err(|message| fail(&message))?;
    if let Some(key) = StoreKey::from_hex(input) {
        return Ok(key);
    }
    if let Some(id) = SessionId::parse(input) {
        return Ok(id.store_key());
    }
    if input.starts_with("SFMyNTY.") {
        let secret = SecretKeyBase::from_env().map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })?;
        // The cookie's own expiry does not matter to an operator looking it up.
        let data = Signer::new(&secret, SESSION_SALT).verify(input, Some(i64::MAX / 2000)).map_err(|e| {
            eprintln!("{e}");
            ExitCode::FAILURE
        })?;
        let id = std::str::from_utf8(&data).ok().and_then(SessionId::parse).ok_or_else(|| {
            eprintln!("invalid: the cookie does not hold a session id");
            ExitCode::FAILURE
        })?;
        return Ok(id.store_key());
    }
    Err(fail("not a cookie value, a session id (32 characters) or a store key (64 hex)"))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
