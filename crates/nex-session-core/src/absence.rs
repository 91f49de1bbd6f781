//! Why a request has no session: the expired-session signal.
//!
//! Apps use it to tell a returning user "Your session has expired, please sign in
//! again" instead of treating them as a stranger. Finding out costs nothing extra:
//!
//! - the cookie check at the start of every request already tells a missing
//!   cookie, a forged or unreadable one and a genuine but expired one apart
//!   (`session_cookie/`), with no store access;
//! - that the store no longer holds the session of a genuine, unexpired cookie is
//!   learned when the session is loaded: the one store read the request does
//!   anyway for its first `get`. [`classify_gone`] then tells an expiry from a
//!   revocation by the cookie's age alone, so nothing extra is stored either.

/// Why the current request has no session; see [`Session::absence`](crate::Session::absence).
///
/// ```
/// use nex_session::NoSession;
///
/// async fn login_page() -> Result<&'static str, nex_session::SessionError> {
///     Ok(match nex_session::absence().await? {
///         Some(NoSession::Expired) => "Your session has expired, please sign in again.",
///         Some(NoSession::Revoked) => "You were signed out.",
///         _ => "Sign in",
///     })
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoSession {
    /// The request sent no session cookie: a stranger, or a browser that dropped
    /// its cookie (it does so when the cookie's `Max-Age` runs out, which in the
    /// default sliding mode is the moment the session expires).
    NotSent,
    /// A session cookie was sent but is not ours: forged, tampered with, signed
    /// with a secret no longer configured, or not holding a session id. Treat the
    /// visitor as a stranger.
    Invalid,
    /// The cookie is genuine but its session has ended by time: the cookie is older
    /// than the TTL, or the store forgot the session at its expiry (see
    /// [`Revoked`](NoSession::Revoked) for how the two are told apart).
    Expired,
    /// The cookie is genuine and within its lifetime, but the store no longer holds
    /// its session: it was removed before its time. That is a sign-out in another
    /// request (`clear`), a revocation (`revoke`, `revoke_user`, the `nex-session`
    /// CLI, the store's `remove`), a concurrent `renew` of the same session, or
    /// the store losing it (a bounded memory store evicting it under pressure, a
    /// store restarted without persistence, Redis evicting keys under its
    /// `maxmemory` policy). The layer cannot tell these apart without storing more.
    Revoked,
    /// This request cleared its session ([`Session::clear`](crate::Session::clear),
    /// e.g. at logout) and started no new one. Later requests see
    /// [`NotSent`](NoSession::NotSent): the response deletes the cookie.
    Cleared,
}

/// The reason for a genuine, unexpired cookie whose session the store no longer
/// holds: expired or revoked, by the cookie's age alone.
///
/// Every request that signs a cookie also sets the store's expiry to that moment
/// plus the TTL, and later writes and refreshes only push it further: so the store
/// never forgets a session by inactivity while its cookie is younger than the TTL.
/// A session gone while the cookie is fresh was therefore removed before its
/// time: [`NoSession::Revoked`]. Within the last refresh interval of the cookie's
/// life (the resolution at which the layer slides expiries; 1/100 of the TTL by
/// default), clocks of app instances and the store that differ a little could
/// make an ordinary expiry look early, so a session gone then counts as
/// [`NoSession::Expired`] (a revocation in that last stretch is reported as an
/// expiry: the message "please sign in again" fits both).
pub(crate) fn classify_gone(signed_at_ms: i64, now_ms: i64, ttl_ms: i64, refresh_after_ms: i64) -> NoSession {
    let age = now_ms.saturating_sub(signed_at_ms);
    let fresh_for = ttl_ms.saturating_sub(refresh_after_ms.max(0));
    if age < fresh_for {
        NoSession::Revoked
    } else {
        NoSession::Expired
    }
}

/// Of two reasons found in one request's cookies (several `_nex_session` cookies
/// can be sent, e.g. for different paths), the one that says most: a genuine but
/// expired cookie beats a forged one, which beats none.
pub(crate) fn stronger(a: NoSession, b: NoSession) -> NoSession {
    let rank = |reason: NoSession| match reason {
        NoSession::NotSent => 0,
        NoSession::Invalid => 1,
        _ => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_gone_while_its_cookie_is_fresh_was_revoked_else_it_expired() {
        let (ttl, refresh) = (100_000, 1_000);
        assert_eq!(classify_gone(0, 0, ttl, refresh), NoSession::Revoked);
        assert_eq!(classify_gone(0, 98_999, ttl, refresh), NoSession::Revoked);
        assert_eq!(classify_gone(0, 99_000, ttl, refresh), NoSession::Expired);
        assert_eq!(classify_gone(0, 150_000, ttl, refresh), NoSession::Expired);
        // A refresh interval at least as long as the TTL leaves no fresh stretch.
        assert_eq!(classify_gone(0, 0, ttl, 200_000), NoSession::Expired);
        // Extreme inputs never panic.
        assert_eq!(classify_gone(i64::MAX, i64::MIN, i64::MAX, i64::MIN), NoSession::Revoked);
    }

    #[test]
    fn an_expired_cookie_says_more_than_a_forged_one_which_says_more_than_none() {
        use NoSession::*;
        assert_eq!(stronger(NotSent, Invalid), Invalid);
        assert_eq!(stronger(Invalid, NotSent), Invalid);
        assert_eq!(stronger(Invalid, Expired), Expired);
        assert_eq!(stronger(Expired, Invalid), Expired);
        assert_eq!(stronger(NotSent, NotSent), NotSent);
    }
}
