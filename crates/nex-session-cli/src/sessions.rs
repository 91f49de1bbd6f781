//! `nex-session sessions --store URL …`: inspect and revoke stored sessions.
//!
//! Output never contains anything usable as a cookie: sessions are listed by
//! their store key (SHA-256 of the id) or, for one user's sessions, by their
//! handle (derived one way from the store key), and `show`/`revoke` take a
//! cookie value or an id and hash it before asking the store. Messages show the
//! store URL without its password and say which argument, store and step failed.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use nex_session::store::users::{Binding, Keep, SessionHandle, UserIndex};
use nex_session::store::{OpenOptions, RedactedUrl, SessionAdmin, SessionStore, StoreUrl};
use nex_session::token::now_ms;
use nex_session::{SessionId, StoreKey, SESSION_SALT};

use crate::render::{self, print_line};
use crate::secrets::Secrets;
use crate::time::count;

/// The variable that names the store when `--store` is not given.
pub(crate) const STORE_VAR: &str = "NEX_SESSION_STORE";

/// `sessions`: the store and what to do with its sessions.
#[derive(Debug, Args)]
pub(crate) struct SessionsArgs {
    /// The store the app uses: `sqlite://PATH`, `redis://HOST:PORT[/DB]`,
    /// `redis+cluster://HOST:PORT,…` or `postgres://USER@HOST:PORT/DB`; before or after the subcommand. Not `memory`:
    /// a memory store lives inside the app's process, out of this tool's reach.
    // Optional for clap (global arguments cannot be required): `run` says when it is missing.
    // The env value is hidden from `--help`: it may hold a Redis password.
    #[arg(long, global = true, env = STORE_VAR, hide_env_values = true, value_name = "URL")]
    store: Option<String>,
    /// Create the SQLite database if no file is at the path (by default a
    /// missing file is an error, so a mistyped path cannot start an empty store).
    #[arg(long, global = true)]
    create: bool,
    #[command(subcommand)]
    command: SessionsCommand,
}

/// What to do with the sessions of a store.
#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// List live sessions: store key (SHA-256 of the id), key count, expiry and the
    /// user each is bound to; or, with `--user`, one user's sessions by handle, with
    /// sign-in and last-seen times.
    List {
        /// At most this many sessions (without `--user`).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only the sessions bound to this user id.
        #[arg(long)]
        user: Option<String>,
        /// Print one JSON document: `{"sessions":[{"store_key","keys","user","expires_at_ms","expires_at",
        /// "expires_in_s"}]}` (`user` null when unbound), or with `--user`: `{"user","sessions":[{"handle",
        /// "signed_in_ms","signed_in","last_seen_ms","last_seen","expires_at_ms","expires_at","expires_in_s",
        /// "meta"}]}` (times: ms since the epoch, RFC 3339 UTC; spans in seconds).
        #[arg(long)]
        json: bool,
    },
    /// Show one session's keys and values.
    Show {
        #[command(flatten)]
        session: SessionArg,
        /// Print one JSON document: `{"store_key","expires_at_ms","expires_at","expires_in_s","values":{KEY: VALUE},
        /// "raw_values":{KEY: BASE64}}`; values are the JSON the app stored, `raw_values` holds any that is not JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete one session now: its cookie stops working.
    Revoke {
        #[command(flatten)]
        session: SessionArg,
    },
    /// Sign a user out everywhere: delete every session bound to them now.
    RevokeUser {
        /// The user id the app bound the sessions to.
        #[arg(allow_hyphen_values = true)]
        user: String,
        /// Spare the session with this handle (from `list --user`).
        // A handle is base64url: one in 64 starts with `-`, which must not read as a flag.
        #[arg(long, allow_hyphen_values = true)]
        except: Option<String>,
    },
    /// Remove expired sessions now.
    Purge,
}

/// The session `show` and `revoke` work on.
#[derive(Debug, Args)]
pub(crate) struct SessionArg {
    /// A `_nex_session` cookie value (verified with SECRET_KEY_BASE or SECRET_KEY_BASE_OLD;
    /// `name=value` or a whole `Cookie` header works too), a session id, or a store key (64 hex).
    // Session ids are base64url: one in 64 starts with `-`, which is still this value, not an option.
    #[arg(allow_hyphen_values = true)]
    session: String,
    /// The session cookie's name, to pick from a pasted `name=value` or `Cookie` header.
    #[arg(long, env = "NEX_SESSION_COOKIE_NAME", default_value = nex_session::COOKIE_NAME)]
    cookie_name: String,
    /// Verify the cookie with the public development secret: the cookie of an app in
    /// development mode without SECRET_KEY_BASE (the demo, for one).
    #[arg(long)]
    dev: bool,
}

/// Why a command failed: the message for stderr and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// The store or the session said no (exit 1).
    fn refused(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 1 }
    }

    /// The command line or the environment cannot work (exit 2, as clap's usage errors).
    fn usage(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 2 }
    }
}

/// Runs `sessions`; `store_from_env` says the URL came from [`STORE_VAR`], not `--store`,
/// so messages name the one the operator set.
pub(crate) fn run(args: SessionsArgs, store_from_env: bool) -> ExitCode {
    let origin = if store_from_env { STORE_VAR } else { "--store" };
    let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(execute(args, origin)),
        Err(e) => Err(Failure::refused(format!("could not start the async runtime: {e}"))),
    };
    match outcome {
        Ok(output) => print_line(&output),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Opens the store and runs the subcommand; the text for stdout, or why not.
async fn execute(args: SessionsArgs, origin: &str) -> Result<String, Failure> {
    let SessionsArgs { store: url, create, command } = args;
    let url = url.ok_or_else(|| {
        Failure::usage(format!("no store given: pass --store URL (before or after the subcommand) or set {STORE_VAR}"))
    })?;
    let store = open(&url, origin, create).await?;
    let shown = RedactedUrl::new(&url).to_string();
    let store = Target { store, shown };
    match command {
        SessionsCommand::List { user: Some(user), json, .. } => {
            list_user(store.index()?, &store.shown, &user, json).await
        }
        SessionsCommand::List { limit, user: None, json } => list(&store, limit, json).await,
        SessionsCommand::RevokeUser { user, except } => {
            revoke_user(store.index()?, &store.shown, &user, except.as_deref()).await
        }
        SessionsCommand::Show { session, json } => show(&store, resolve(&session)?, json).await,
        SessionsCommand::Revoke { session } => revoke(&store, resolve(&session)?).await,
        SessionsCommand::Purge => {
            let purged = store.admin()?.purge_expired(now_ms()).await;
            let n =
                purged.map_err(|e| Failure::refused(format!("purging expired sessions in {}: {e}", store.shown)))?;
            Ok(format!("purged {}", count(n, "expired session")))
        }
    }
}

/// Opens the store at `url` (named by `origin`: `--store` or the variable).
/// A memory store is refused: this process would get its own, empty one.
async fn open(url: &str, origin: &str, create: bool) -> Result<Arc<dyn SessionStore>, Failure> {
    let shown = RedactedUrl::new(url);
    match StoreUrl::parse(url) {
        Err(message) => return Err(Failure::usage(format!("{origin}: {message}"))),
        Ok(StoreUrl::Memory { .. }) => {
            return Err(Failure::usage(format!(
                "{origin}={shown}: a memory store lives inside the app's process, so this command would \
                 open a new, empty one of its own and find no sessions. Pass the store the app uses \
                 (sqlite://PATH, redis://HOST:PORT, redis+cluster://HOST:PORT,…, postgres://USER@HOST/DB); the sessions of an app \
                 on the memory store are reachable only from inside the app (store.admin(), store.users())"
            )))
        }
        Ok(_) => {}
    }
    let options = OpenOptions::new().create_missing(create);
    nex_session::store::open_with(url, options).await.map_err(|e| {
        let hint = if !create && matches!(StoreUrl::parse(url), Ok(StoreUrl::Sqlite(_) | StoreUrl::SqliteExclusive(_)))
        {
            "; to create a new database there, pass --create"
        } else if !create && matches!(StoreUrl::parse(url), Ok(StoreUrl::Postgres(_))) {
            "; to create the session tables there, pass --create"
        } else {
            ""
        };
        Failure::refused(format!("cannot open store {shown} ({origin}): {e}{hint}"))
    })
}

/// An open store and its URL as shown in messages (without a password).
struct Target {
    store: Arc<dyn SessionStore>,
    shown: String,
}

impl Target {
    /// The store's administration (listing, purging), or why there is none.
    fn admin(&self) -> Result<&dyn SessionAdmin, Failure> {
        self.store.admin().ok_or_else(|| {
            Failure::refused(format!("the store {} offers no administration (listing, purging)", self.shown))
        })
    }

    /// The store's per-user index, or why there is none.
    fn index(&self) -> Result<&dyn UserIndex, Failure> {
        self.store.users().ok_or_else(|| Failure::refused(format!("the store {} keeps no per-user index", self.shown)))
    }
}

/// Every session (up to `limit`), with the user each is bound to: one load per
/// listed session, since the listing itself does not read the sessions.
async fn list(target: &Target, limit: usize, json: bool) -> Result<String, Failure> {
    let shown = &target.shown;
    let sessions =
        target.admin()?.list(limit).await.map_err(|e| Failure::refused(format!("listing sessions in {shown}: {e}")))?;
    let mut listed = Vec::with_capacity(sessions.len());
    for session in sessions {
        let record = target.store.load(session.key).await;
        let record = record
            .map_err(|e| Failure::refused(format!("reading session {} in {shown}: {e}", session.key.to_hex())))?;
        let user = record.and_then(|r| Binding::of_fields(&r.fields)).map(|b| b.user);
        listed.push((session, user));
    }
    Ok(render::session_list(&listed, now_ms(), json))
}

/// One user's sessions, oldest sign-in first.
async fn list_user(index: &dyn UserIndex, shown: &str, user: &str, json: bool) -> Result<String, Failure> {
    let sessions = index
        .sessions(user)
        .await
        .map_err(|e| Failure::refused(format!("listing the sessions of user {user:?} in {shown}: {e}")))?;
    Ok(render::user_sessions(user, &sessions, now_ms(), json))
}

/// Deletes every session of `user` but the one `except` names. Nothing to revoke
/// (a mistyped user id, the wrong store) is an error (exit 1), as for `revoke`;
/// an `except` handle that is not one of the user's sessions is refused before
/// anything is deleted, so a typo never signs out the operator's own session.
async fn revoke_user(index: &dyn UserIndex, shown: &str, user: &str, except: Option<&str>) -> Result<String, Failure> {
    let keep = match except.map(str::parse::<SessionHandle>) {
        None => Keep::None,
        Some(Ok(handle)) => Keep::Handle(handle),
        Some(Err(e)) => return Err(Failure::refused(format!("--except: {e}"))),
    };
    if let Keep::Handle(handle) = &keep {
        // A mistyped handle must not turn "all but one" into "all": look it up
        // first. Without --except nothing is listed, so a user with any number
        // of sessions is revoked without reading them all first.
        let sessions = index
            .sessions(user)
            .await
            .map_err(|e| Failure::refused(format!("listing the sessions of user {user:?} in {shown}: {e}")))?;
        if !sessions.iter().any(|s| s.handle == *handle) {
            return Err(Failure::refused(format!(
                "--except: user {user:?} has no live session with handle {handle}: nothing revoked"
            )));
        }
    }
    let everything = matches!(keep, Keep::None);
    let n = index
        .revoke_all(user, keep)
        .await
        .map_err(|e| Failure::refused(format!("revoking the sessions of user {user:?} in {shown}: {e}")))?;
    if n == 0 && everything {
        return Err(Failure::refused(format!("user {user:?} has no live sessions in {shown}: nothing revoked")));
    }
    Ok(format!("revoked {} of user {user:?}", count(n, "session")))
}

/// Deletes one session; a session that is not there is an error (exit 1), so a
/// mistyped id or the wrong store never looks like a successful revocation.
async fn revoke(target: &Target, key: StoreKey) -> Result<String, Failure> {
    let shown = &target.shown;
    let hex = key.to_hex();
    // The store's `remove` does not say whether anything was there: look first.
    let existed = match target.store.load(key).await {
        Ok(record) => record.is_some(),
        Err(e) => return Err(Failure::refused(format!("looking up session {hex} in {shown}: {e}"))),
    };
    // Removed either way: an expired leftover goes too.
    if let Err(e) = target.store.remove(key).await {
        return Err(Failure::refused(format!("removing session {hex} from {shown}: {e}")));
    }
    if existed {
        Ok(format!("revoked {hex}"))
    } else {
        Err(Failure::refused(format!("no live session with store key {hex} in {shown}: nothing revoked")))
    }
}

async fn show(target: &Target, key: StoreKey, json: bool) -> Result<String, Failure> {
    let shown = &target.shown;
    match target.store.load(key).await {
        Ok(Some(record)) => Ok(render::record(key, &record, now_ms(), json)),
        Ok(None) => Err(Failure::refused(format!("no live session with store key {} in {shown}", key.to_hex()))),
        Err(e) => Err(Failure::refused(format!("loading session {} from {shown}: {e}", key.to_hex()))),
    }
}

/// The store key the SESSION argument names: a cookie value (bare, or cookie
/// `--cookie-name` of a pasted pair or header), an id or a store key.
fn resolve(arg: &SessionArg) -> Result<StoreKey, Failure> {
    let input = crate::cookie_input::pick(&arg.session, &arg.cookie_name)
        .map_err(|message| Failure::refused(format!("SESSION: {message}")))?;
    if let Some(key) = StoreKey::from_hex(input) {
        return Ok(key);
    }
    if let Some(id) = SessionId::parse(input) {
        return Ok(id.store_key());
    }
    if !input.starts_with("SFMyNTY.") {
        return Err(Failure::refused(
            "SESSION: not a cookie value (SFMyNTY.…), a session id (32 characters) or a store key (64 hex)",
        ));
    }
    let secrets = Secrets::choose(arg.dev).map_err(Failure::usage)?;
    // The cookie's own expiry does not matter to an operator looking it up.
    let data = secrets
        .keyring(SESSION_SALT)
        .verify(input, Some(i64::MAX / 2000))
        .map_err(|e| Failure::refused(format!("SESSION: the cookie does not verify with {}: {e}", secrets.origin())))?;
    // The data is the id, or `<id>.<created_ms>.<mode>` for a session with its own
    // expiry mode (see nex_session::SessionExpiry): ids never hold a `.`.
    let id = data.split(|byte| *byte == b'.').next().and_then(|id| std::str::from_utf8(id).ok());
    match id.and_then(SessionId::parse) {
        Some(id) => Ok(id.store_key()),
        None => Err(Failure::refused(
            "SESSION: the cookie verifies but holds no session id (another cookie of the app, or another salt?)",
        )),
    }
}
