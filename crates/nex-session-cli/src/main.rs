//! `nex-session`: the operator CLI. Make secrets, sign and verify cookie tokens,
//! inspect and revoke stored sessions.
//!
//! Operators use `token verify` to debug a `_nex_session` cookie: paste the cookie
//! value and it prints the session id inside, or says why it is refused.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nex_session::token::{now_ms, SecretError, SecretKeyBase, Signer, DEFAULT_EMBEDDED_MAX_AGE};

mod cookie_input;
mod secret_gen;
mod sessions;
mod time;

const AFTER_HELP: &str = "\
The secret comes from the environment variable SECRET_KEY_BASE (at least 32 bytes).
Tokens are byte-compatible with Phoenix.Token: an Elixir app with the same secret
and salt reads them, and `token verify` reads the Elixir app's.

Debugging a cookie: copy the value of the `_nex_session` cookie from the browser and run
  SECRET_KEY_BASE=... nex-session token verify '<cookie value>'
It prints the session id, or `invalid` / `expired` / `missing` on stderr (exit 1).
A whole `Cookie` header or `name=value` works too: the cookie called --cookie-name
(default `_nex_session`, or NEX_SESSION_COOKIE_NAME) is picked from it.

Exit codes: 0 success, 1 token refused, 2 usage error or missing/short secret.";

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
    /// List, show, revoke or purge stored sessions.
    Sessions {
        /// The store: `memory`, `sqlite://PATH`, `redis://HOST:PORT[/DB]`, `redis+cluster://HOST:PORT,…`.
        // The env value is hidden from `--help`: it may hold a Redis password.
        #[arg(long, env = "NEX_SESSION_STORE", hide_env_values = true)]
        store: String,
        /// Create the SQLite database if no file is at the path (by default a
        /// missing file is an error, so a mistyped path cannot start an empty store).
        #[arg(long)]
        create: bool,
        #[command(subcommand)]
        command: sessions::SessionsCommand,
    },
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
        /// Max age in seconds embedded in the token.
        #[arg(long, default_value_t = DEFAULT_EMBEDDED_MAX_AGE, allow_hyphen_values = true)]
        max_age: i64,
        /// The data to sign (a session id, for a session cookie).
        data: String,
    },
    /// Verify TOKEN: print its data on stdout (exit 0), or `invalid`/`expired`/`missing` on stderr (exit 1).
    Verify {
        /// Salt (nex-session cookies use `nex.session`).
        #[arg(long, default_value = "nex.session")]
        salt: String,
        /// Max age in seconds, overriding the embedded one (default: 7 days, the session TTL).
        #[arg(long, default_value_t = 604_800, allow_hyphen_values = true)]
        max_age: i64,
        /// The session cookie's name, to pick from a pasted `name=value` or `Cookie` header.
        #[arg(long, env = "NEX_SESSION_COOKIE_NAME", default_value = nex_session::COOKIE_NAME)]
        cookie_name: String,
        /// The token, e.g. the value of the `_nex_session` cookie (or `name=value`, or a whole `Cookie` header).
        token: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::GenSecret { length } => match secret_gen::generate(usize::from(length)) {
            Ok(secret) => print_line(&secret),
            Err(err) => {
                eprintln!("error: the OS random source failed: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Token(command) => token(command),
        Command::Sessions { store, create, command } => sessions::run(&store, create, command),
    }
}

fn token(command: TokenCommand) -> ExitCode {
    let secret = match SecretKeyBase::from_env() {
        Ok(secret) => secret,
        Err(err) => return secret_error(&err),
    };
    match command {
        TokenCommand::Sign { salt, signed_at, max_age, data } => {
            let signer = Signer::new(&secret, salt);
            let token = match signed_at {
                Some(seconds) => signer.sign_at(data.as_bytes(), seconds.saturating_mul(1000), max_age),
                None => signer.sign_at(data.as_bytes(), now_ms(), max_age),
            };
            print_line(&token)
        }
        TokenCommand::Verify { salt, max_age, cookie_name, token } => {
            let token = match cookie_input::pick(&token, &cookie_name) {
                Ok(token) => token,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(2);
                }
            };
            let signer = Signer::new(&secret, salt);
            match signer.verify(token, Some(max_age)) {
                Ok(data) => print_line(&String::from_utf8_lossy(&data)),
                Err(err) => {
                    eprintln!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn secret_error(err: &SecretError) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(2)
}

fn print_line(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
