//! The per-request session: what handlers read and write.
//!
//! A [`Session`] is created by the layer for each request and shared (cheaply
//! cloned) between the ambient API and the extractor. Its state (`state.rs`) keeps:
//!
//! - the id from the verified cookie, if any (verifying costs no store access);
//! - a snapshot of the stored fields, loaded lazily on the first `get` (at most
//!   one store read per request);
//! - this request's pending puts and deletes, written as one batch at the end
//!   (at most one store write per request for them);
//! - what `update`, `renew` and `clear` did right away in the store;
//! - the request's cookies and the ones queued for the response (`cookies.rs`).
//!
//! At the end of the request the layer asks the session to save what is pending
//! and to say which session cookie the response needs ([`Ending`]); turning that
//! into `Set-Cookie` headers is the layer's job (`middleware/persist.rs`).
//!
//! The [`Context`] every session of a layer shares holds the store, the expiry
//! rules and the layer's cookie codec. The session itself never uses the codec:
//! it is there so that one reference per request serves both the session and
//! the persist step, which reaches the codec through the session. (A second
//! `Arc` per request would cost two more atomic operations on a cache line that
//! every core touches.)

mod context;
mod cookies;
mod csrf;
mod csrf_secret;
mod ending;
mod finish;
mod flash;
mod handle;
mod state;
mod users;

pub(crate) use context::Context;
pub use csrf::Csrf;
pub use csrf_secret::{CSRF_FIELD, CSRF_HEADER, CSRF_KEY};
pub(crate) use ending::{Ending, SessionCookie};
pub use flash::{Flash, Messages, FLASH_KEY};
pub use handle::Session;
