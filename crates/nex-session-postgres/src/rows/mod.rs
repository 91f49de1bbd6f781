//! Statements on single rows, run inside a call's transaction: the ones both the
//! store (`store/`) and the user index (`users.rs`) need. They depend on the pool
//! only, so the store and the index import them and never each other for them.

pub(crate) mod session;
pub(crate) mod user_index;
