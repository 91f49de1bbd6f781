//! # nex-session
//!
//! Server-side sessions for tower / axum apps, with the semantics of Nex.Session
//! (Elixir) and cookies byte-compatible with Phoenix.Token.
//!
//! This crate currently provides the [`token`] module: the signed cookie token.

pub mod token;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
