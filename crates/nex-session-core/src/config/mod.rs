//! Session configuration: secrets, TTL, cookie attributes, expiry, the
//! background sweep (`session_config.rs`); reading it from the environment
//! (`env.rs`); development or production (`run_mode.rs`).

mod env;
mod run_mode;
mod session_config;

pub use env::ConfigError;
pub use run_mode::{RunMode, NEX_ENV};
pub use session_config::{
    Expiry, SessionConfig, COOKIE_NAME, DEFAULT_MAX_PERSISTENT_TTL, DEFAULT_PURGE_INTERVAL, DEFAULT_TTL,
};
