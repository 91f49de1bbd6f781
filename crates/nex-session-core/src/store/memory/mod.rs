//! The in-memory store: the default, for one process. See [`MemoryStore`].

mod admin;
mod clock;
mod index;
mod store;
mod table;
#[cfg(test)]
mod tests;
mod users;

pub use store::{MemoryStore, DEFAULT_MAX_SESSIONS};
