//! [`SessionCookieData`]: what a verified session cookie's data says, for tools
//! that inspect cookies (the CLI's `token verify`), in public terms.

use super::expiry::{parse_token_data, Mode};
use crate::id::SessionId;

/// What a verified session cookie carries: the session id, and, for a session
/// with its own expiry mode (or a layer with an absolute lifetime), the mode and
/// when the session was created. The data of a cookie is `<id>` (the layer's
/// defaults, as Nex and Plug write it) or `<id>.<created_ms>.<mode>`.
///
/// ```
/// use nex_session::{CookieExpiry, SessionCookieData};
///
/// let id = nex_session::SessionId::generate().unwrap();
/// let plain = SessionCookieData::parse(id.as_str().as_bytes()).unwrap();
/// assert_eq!((plain.id.as_str(), plain.created_ms, plain.expiry), (id.as_str(), None, None));
///
/// let remembered = format!("{}.1796550368793.p2592000", id.as_str());
/// let data = SessionCookieData::parse(remembered.as_bytes()).unwrap();
/// assert_eq!(data.created_ms, Some(1_796_550_368_793));
/// assert_eq!(data.expiry, Some(CookieExpiry::Persistent { ttl_s: 2_592_000 }));
/// assert!(SessionCookieData::parse(b"not a session cookie").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookieData {
    /// The session's id.
    pub id: SessionId,
    /// When the session was created (ms since the Unix epoch); `None` for the short form.
    pub created_ms: Option<i64>,
    /// The expiry mode the cookie carries; `None` for the short form (the layer's defaults).
    pub expiry: Option<CookieExpiry>,
}

/// A session's expiry mode as its cookie carries it
/// ([`SessionExpiry`](crate::SessionExpiry) as chosen by the handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieExpiry {
    /// The layer's configured expiry.
    Default,
    /// A browser-session cookie (no `Max-Age`); the layer's TTL in the store.
    BrowserSession,
    /// "Remember me": this many seconds of inactivity, in the cookie and the store.
    Persistent {
        /// The session's inactivity TTL in seconds.
        ttl_s: i64,
    },
}

impl SessionCookieData {
    /// Reads the data of a verified session cookie; `None` when it is not one
    /// (never a panic, whatever the bytes).
    pub fn parse(data: &[u8]) -> Option<Self> {
        let (id, lifetime) = parse_token_data(data)?;
        let expiry = lifetime.map(|l| match l.mode {
            Mode::Default => CookieExpiry::Default,
            Mode::BrowserSession => CookieExpiry::BrowserSession,
            Mode::Persistent { ttl_s } => CookieExpiry::Persistent { ttl_s },
        });
        Some(Self { id, created_ms: lifetime.map(|l| l.created_ms), expiry })
    }
}
