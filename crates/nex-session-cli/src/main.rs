//! `nex-session`: the operator CLI. Make secrets, sign and verify cookie tokens,
//! inspect and revoke stored sessions.
//!
//! Operators use `token verify` to debug a `_nex_session` cookie: paste the cookie
//! value and it prints the session id inside, or says why it is refused.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use nex_session::token::now_ms;
use render::print_line;

mod cookie_input;
mod render;
mod secret_gen;
mod secrets;
mod sessions;
mod time;

/// The max age `token sign` embeds and `token verify` enforces by default: the
/// session TTL (7 days), which the session layer embeds in its cookies.
const DEFAULT_MAX_AGE: i64 = {
    let ttl = nex_session::DEFAULT_TTL.as_secs();
    // A compile-time check instead of a cast that could wrap.
    assert!(ttl <= i64::MAX as u64);
    ttl as i64
};

const AFTER_HELP: &str = "\
The secret comes from the environment variable SECRET_KEY_BASE (at least 32 bytes);
`verify` also accepts the previous secrets of SECRET_KEY_BASE_OLD (comma-separated), as
the app does. --dev uses the public development secret instead: the one an app in
development mode signs with when SECRET_KEY_BASE is unset (the demo, for one); so does
an unset SECRET_KEY_BASE with NEX_ENV=dev or development, as in the app.
Tokens are byte-compatible with Phoenix.Token: an Elixir app with the same secret
and salt reads them, and `token verify` reads the Elixir app's.

Debugging a cookie: copy the value of the `_nex_session` cookie from the browser and run
  SECRET_KEY_BASE=... nex-session token verify '<cookie value>'
It prints the session id, then the cookie's expiry mode and times (--json: one document),
or `invalid` / `expired` / `missing` on stderr (exit 1).
A whole `Cookie` header or `name=value` works too: the cookie called --cookie-name
(default `_nex_session`, or NEX_SESSION_COOKIE_NAME) is picked from it.

Exit codes: 0 success, 1 token refused, 2 usage error or missing/short secret.";

const SESSIONS_AFTER_HELP: &str = "\
The store comes from --store or NEX_SESSION_STORE, before or after the subcommand:
  nex-session sessions --store sqlite://sessions.db list
  nex-session sessions list --store redis://127.0.0.1:6379 --json
  nex-session sessions --store postgres://app@db.internal/app?sslmode=verify-full list
Messages show the store URL without its password.

Exit codes: 0 success, 1 the store failed or the session is not there (nothing revoked),
2 usage error (no or unknown store URL, a memory store, missing/short secret).";

/// Secrets, cookie tokens and stored sessions of nex-session.
#[derive(Debug, Parser)]
#[command(name = "nex-session", version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a fresh random secret for SECRET_KEY_BASE (like `mix phx.gen.secret`).
    GenSecret {
        /// Length of the secret in characters (at least 32).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(32..))]
        length: u16,
    },
    /// Sign or verify Phoenix.Token-compatible tokens, e.g. to debug a `_nex_session` cookie.
    #[command(subcommand, after_help = AFTER_HELP)]
    Token(TokenCommand),
    /// List, show, revoke or purge the sessions of the app's SQLite, Redis or PostgreSQL store.
    #[command(after_help = SESSIONS_AFTER_HELP)]
    Sessions(sessions::SessionsArgs),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Sign DATA and print the token on stdout.
    Sign {
        /// Salt (nex-session cookies use `nex.session`).
        #[arg(long, default_value = "nex.session")]
        salt: String,
        /// Signing time in seconds since the Unix epoch (default: now).
        #[arg(long, allow_hyphen_values = true)]
        signed_at: Option<i64>,
        /// Max age in seconds embedded in the token (default: 7 days, the session TTL, as `verify`).
        #[arg(long, default_value_t = DEFAULT_MAX_AGE, allow_hyphen_values = true)]
        max_age: i64,
        /// Sign with the public development secret (as an app in development mode without SECRET_KEY_BASE).
        #[arg(long)]
        dev: bool,
        /// The data to sign (a session id, for a session cookie; one may start with `-`).
        #[arg(allow_hyphen_values = true)]
        data: String,
    },
    /// Verify TOKEN: print its data on stdout (exit 0), or `invalid`/`expired`/`missing` on stderr (exit 1).
    /// For a session cookie, the first line is the session id, then its expiry mode and times, labelled.
    Verify {
        /// Salt (nex-session cookies use `nex.session`).
        #[arg(long, default_value = "nex.session")]
        salt: String,
        /// Max age in seconds, overriding the embedded one (default: 7 days, the session TTL).
        #[arg(long, default_value_t = DEFAULT_MAX_AGE, allow_hyphen_values = true)]
        max_age: i64,
        /// The session cookie's name, to pick from a pasted `name=value` or `Cookie` header.
        #[arg(long, env = "NEX_SESSION_COOKIE_NAME", default_value = nex_session::COOKIE_NAME)]
        cookie_name: String,
        /// Verify with the public development secret: a cookie of an app in development mode
        /// without SECRET_KEY_BASE (the demo, for one).
        #[arg(long)]
        dev: bool,
        /// Print one JSON document: `{"data","signed_at_ms","signed_at","max_age_s","key_index"}`, and for a
        /// session cookie also `"id","expiry"` (`default`, `browser_session`, `persistent` or null for the
        /// short form), `"ttl_s"` (persistent), `"created_ms","created_at"` (null in the short form).
        #[arg(long)]
        json: bool,
        /// The token, e.g. the value of the `_nex_session` cookie (or `name=value`, or a whole `Cookie` header).
        token: String,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.format(&mut Cli::command()).exit(),
    };
    match cli.command {
        Command::GenSecret { length } => match secret_gen::generate(usize::from(length)) {
            Ok(secret) => print_line(&secret),
            Err(err) => {
                eprintln!("error: gen-secret: the OS random source failed: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Token(command) => token(command),
        Command::Sessions(args) => {
            // A global argument's source is recorded where it was parsed and carried up to `sessions`.
            let source = matches.subcommand_matches("sessions").and_then(|m| m.value_source("store"));
            sessions::run(args, source == Some(ValueSource::EnvVariable))
        }
    }
}

fn token(command: TokenCommand) -> ExitCode {
    match command {
        TokenCommand::Sign { salt, signed_at, max_age, dev, data } => {
            let secrets = match secrets::Secrets::choose(dev) {
                Ok(secrets) => secrets,
                Err(message) => return usage_error(&message),
            };
            let signed_at_ms = signed_at.map_or_else(now_ms, |seconds| seconds.saturating_mul(1000));
            let token = secrets.keyring(&salt).sign_at(data.as_bytes(), signed_at_ms, max_age);
            print_line(&token)
        }
        TokenCommand::Verify { salt, max_age, cookie_name, dev, json, token } => {
            let token = match cookie_input::pick(&token, &cookie_name) {
                Ok(token) => token,
                Err(message) => return usage_error(&format!("TOKEN: {message}")),
            };
            let secrets = match secrets::Secrets::choose(dev) {
                Ok(secrets) => secrets,
                Err(message) => return usage_error(&message),
            };
            match secrets.keyring(&salt).verify_at(token, Some(max_age), now_ms()) {
                Ok(verified) => {
                    let code = print_line(&render::verified(&verified, &salt, json));
                    if verified.key_index > 0 {
                        eprintln!(
                            "note: signed with previous secret #{} of SECRET_KEY_BASE_OLD; \
                             the app re-signs it with SECRET_KEY_BASE at its next request",
                            verified.key_index
                        );
                    }
                    code
                }
                Err(err) => {
                    eprintln!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// A usage or secret error: the message on stderr, exit 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
