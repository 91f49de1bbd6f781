//! What a genuine session cookie of a request said, once verified.

use super::expiry::Lifetime;
use crate::id::SessionId;

/// What a genuine session cookie of a request said.
#[derive(Clone)]
pub(crate) struct RequestCookie {
    /// The session id the cookie carries.
    pub(crate) id: SessionId,
    /// When the cookie was signed (ms since the Unix epoch).
    pub(crate) signed_at_ms: i64,
    /// Signed with the current secret (not a previous one of the keyring).
    pub(crate) current_key: bool,
    /// The max age the cookie is verified with (s): its session's inactivity TTL.
    pub(crate) max_age_s: i64,
    /// The session's expiry mode and creation time; a bare-id token (the
    /// defaults) counts as created when it was signed.
    pub(crate) lifetime: Lifetime,
}
