//! Expiry modes: what a session's cookie carries about its lifetime, and the
//! rules that turn it into a cookie `Max-Age` and a store expiry.
//!
//! The design, and why: every request that writes or refreshes a session must
//! know that session's own inactivity TTL, or a blind write would cut a 30-day
//! "remember me" session down to the default TTL; and an absolute lifetime must
//! be enforced even on a request that never reads. Both without a store read on
//! the hot path. So the lifetime rides in the signed cookie token itself:
//!
//! - a session with the layer's defaults and no absolute lifetime keeps today's
//!   token exactly: its data is the bare session id (Nex- and Plug-compatible);
//! - otherwise the token's data is `<id>.<created_ms>.<mode>`, with mode `d`
//!   (the layer's default), `b` (browser session) or `p<seconds>` (persistent
//!   for that many seconds of inactivity), and the token's embedded max age is
//!   the session's inactivity TTL, as Phoenix.Token embeds one.
//!
//! The token is signed, so neither the mode nor the creation time can be forged;
//! a claimed persistent TTL is still bounded by the configured maximum. Costs: a
//! per-session choice reaches the browser with the response that made it
//! (a `Set-Cookie`, and a store touch when the request wrote nothing), and a
//! request already in flight with the older cookie writes with the older TTL.

use std::time::Duration;

use crate::config::{Expiry, SessionConfig};
use crate::id::SessionId;

/// How long one session lives, chosen by a handler with
/// [`Session::set_expiry`](crate::Session::set_expiry) ("remember me").
///
/// ```
/// use std::time::Duration;
/// use nex_session::{Session, SessionExpiry};
///
/// async fn login(session: Session, remember_me: bool) -> Result<(), nex_session::SessionError> {
///     session.renew().await?;
///     session.put("user_id", 42).await?;
///     let expiry = match remember_me {
///         true => SessionExpiry::Persistent(Duration::from_secs(30 * 86_400)),
///         false => SessionExpiry::BrowserSession,
///     };
///     session.set_expiry(expiry).await
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SessionExpiry {
    /// The layer's configuration ([`SessionConfig::with_expiry`], its TTL).
    #[default]
    Default,
    /// A browser-session cookie (no `Max-Age`); the store ends the session after
    /// the layer's TTL of inactivity.
    BrowserSession,
    /// A cookie with `Max-Age` = this duration, and the store ends the session
    /// after this much inactivity. Bounded by
    /// [`SessionConfig::with_max_persistent_ttl`] (400 days by default); whole
    /// seconds count, at least one.
    Persistent(Duration),
}

/// A session's expiry mode as its cookie carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The layer's configuration.
    Default,
    /// No `Max-Age`; the layer's TTL in the store.
    BrowserSession,
    /// `Max-Age` and store TTL of this many seconds.
    Persistent { ttl_s: i64 },
}

/// What the cookie of a session says about its lifetime: the mode, and when the
/// session was created (ms since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetime {
    pub(crate) mode: Mode,
    pub(crate) created_ms: i64,
}

/// The expiry rules of one layer.
#[derive(Debug, Clone)]
pub(crate) struct ExpiryRules {
    /// The layer's inactivity TTL (s).
    ttl_s: i64,
    /// The layer's cookies have no `Max-Age` ([`Expiry::BrowserSession`]).
    browser_session: bool,
    /// The absolute lifetime (ms), if any.
    absolute_ms: Option<i64>,
    /// The longest persistent TTL (s).
    max_persistent_s: i64,
}

impl ExpiryRules {
    pub(crate) fn new(config: &SessionConfig) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 1000).max(1);
        Self {
            ttl_s: config.ttl_s(),
            browser_session: config.expiry == Expiry::BrowserSession,
            absolute_ms: config.absolute_lifetime.map(|d| secs(d).saturating_mul(1000)),
            max_persistent_s: secs(config.max_persistent_ttl),
        }
    }

    /// The mode a handler's choice means here (a persistent TTL bounded).
    pub(crate) fn mode_of(&self, expiry: SessionExpiry) -> Mode {
        match expiry {
            SessionExpiry::Default => Mode::Default,
            SessionExpiry::BrowserSession => Mode::BrowserSession,
            SessionExpiry::Persistent(ttl) => {
                let ttl_s = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
                Mode::Persistent { ttl_s: ttl_s.clamp(1, self.max_persistent_s) }
            }
        }
    }

    /// The longest max age any cookie of this layer can claim (s).
    pub(crate) fn longest_s(&self) -> i64 {
        self.ttl_s.max(self.max_persistent_s)
    }

    /// How long a session of `mode` lives without use (s).
    pub(crate) fn inactivity_s(&self, mode: Mode) -> i64 {
        match mode {
            Mode::Default | Mode::BrowserSession => self.ttl_s,
            Mode::Persistent { ttl_s } => ttl_s.min(self.max_persistent_s),
        }
    }

    /// When the store forgets a session of `lifetime` written at `now_ms`: after
    /// its inactivity TTL, and never after its absolute end.
    pub(crate) fn store_expiry(&self, lifetime: Lifetime, now_ms: i64) -> i64 {
        let idle = now_ms.saturating_add(self.inactivity_s(lifetime.mode).saturating_mul(1000));
        match self.absolute_end(lifetime.created_ms) {
            Some(end) => idle.min(end),
            None => idle,
        }
    }

    /// When a session created at `created_ms` ends however active, if ever.
    pub(crate) fn absolute_end(&self, created_ms: i64) -> Option<i64> {
        self.absolute_ms.map(|lifetime| created_ms.saturating_add(lifetime))
    }

    /// The session is past its absolute lifetime at `now_ms`.
    pub(crate) fn past_absolute(&self, created_ms: i64, now_ms: i64) -> bool {
        self.absolute_end(created_ms).is_some_and(|end| end <= now_ms)
    }

    /// The cookie's `Max-Age` for a session of `lifetime` issued at `now_ms`
    /// (`None`: a browser-session cookie). With an absolute lifetime it never
    /// outlives the session's end.
    pub(crate) fn cookie_max_age(&self, lifetime: Lifetime, now_ms: i64) -> Option<i64> {
        let age = match lifetime.mode {
            Mode::Default if self.browser_session => return None,
            Mode::BrowserSession => return None,
            mode => self.inactivity_s(mode),
        };
        Some(match self.absolute_end(lifetime.created_ms) {
            // Rounded up, so the cookie never ends before the session does.
            Some(end) => age.min(end.saturating_sub(now_ms).saturating_add(999) / 1000).max(1),
            None => age,
        })
    }

    /// Whether a session of `mode` needs the long token form (see the module docs):
    /// the layer's defaults without an absolute lifetime keep the bare id.
    pub(crate) fn needs_lifetime_in_token(&self, mode: Mode) -> bool {
        mode != Mode::Default || self.absolute_ms.is_some()
    }

    /// The token data for `id` with `lifetime`.
    pub(crate) fn token_data(&self, id: &SessionId, lifetime: Lifetime) -> String {
        if !self.needs_lifetime_in_token(lifetime.mode) {
            return id.as_str().to_owned();
        }
        let mode = match lifetime.mode {
            Mode::Default => "d".to_owned(),
            Mode::BrowserSession => "b".to_owned(),
            Mode::Persistent { ttl_s } => format!("p{ttl_s}"),
        };
        format!("{}.{}.{mode}", id.as_str(), lifetime.created_ms)
    }
}

/// What a verified token's data says: the id and, in the long form, the lifetime.
/// `None` for anything else (never a panic on odd data).
pub(crate) fn parse_token_data(data: &[u8]) -> Option<(SessionId, Option<Lifetime>)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut parts = text.split('.');
    let id = SessionId::parse(parts.next()?)?;
    let Some(created) = parts.next() else { return Some((id, None)) };
    let created_ms = created.parse::<i64>().ok()?;
    let mode = match parts.next()? {
        "d" => Mode::Default,
        "b" => Mode::BrowserSession,
        persistent => Mode::Persistent { ttl_s: persistent.strip_prefix('p')?.parse::<i64>().ok().filter(|s| *s > 0)? },
    };
    if parts.next().is_some() {
        return None;
    }
    Some((id, Some(Lifetime { mode, created_ms })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SecretKeyBase;

    fn rules(config: &SessionConfig) -> ExpiryRules {
        ExpiryRules::new(config)
    }

    fn base() -> SessionConfig {
        SessionConfig::new(SecretKeyBase::development()).with_ttl(Duration::from_secs(100))
    }

    #[test]
    fn the_default_token_is_the_bare_id_and_the_long_form_round_trips() {
        let id = SessionId::generate().unwrap();
        let plain = rules(&base());
        let lifetime = Lifetime { mode: Mode::Default, created_ms: 5 };
        assert_eq!(plain.token_data(&id, lifetime), id.as_str());
        let (parsed, none) = parse_token_data(id.as_str().as_bytes()).unwrap();
        assert!(parsed == id && none.is_none());
        for mode in [Mode::Default, Mode::BrowserSession, Mode::Persistent { ttl_s: 2_592_000 }] {
            let abs = rules(&base().with_absolute_lifetime(Duration::from_secs(60)));
            let lifetime = Lifetime { mode, created_ms: 1_700_000_000_123 };
            let data = abs.token_data(&id, lifetime);
            assert_eq!(parse_token_data(data.as_bytes()), Some((id.clone(), Some(lifetime))), "{data}");
        }
    }

    #[test]
    fn odd_token_data_is_refused() {
        let id = SessionId::generate().unwrap();
        for tail in [".", ".x.d", ".1", ".1.q", ".1.p", ".1.p0", ".1.p-5", ".1.d.extra", ".1.pxyz"] {
            let data = format!("{}{tail}", id.as_str());
            assert_eq!(parse_token_data(data.as_bytes()), None, "{data:?}");
        }
        assert_eq!(parse_token_data(b"\xff\xfe"), None);
    }

    #[test]
    fn store_expiry_and_max_age_follow_the_mode_and_the_absolute_end() {
        let r = rules(&base().with_absolute_lifetime(Duration::from_secs(50)));
        let at = |mode| Lifetime { mode, created_ms: 1_000_000 };
        assert_eq!(r.store_expiry(at(Mode::Default), 1_000_000), 1_050_000, "absolute end first");
        assert_eq!(r.store_expiry(at(Mode::Default), 1_000_000 - 60_000), 1_040_000, "inactivity first");
        assert_eq!(r.cookie_max_age(at(Mode::Default), 1_010_000), Some(40));
        assert_eq!(r.cookie_max_age(at(Mode::BrowserSession), 1_010_000), None);
        assert!(r.past_absolute(1_000_000, 1_050_000) && !r.past_absolute(1_000_000, 1_049_999));
        let browser = rules(&base().with_expiry(Expiry::BrowserSession));
        assert_eq!(browser.cookie_max_age(at(Mode::Default), 0), None);
        assert_eq!(browser.cookie_max_age(at(Mode::Persistent { ttl_s: 7 }), 0), Some(7));
    }

    #[test]
    fn a_persistent_ttl_is_bounded_by_the_configured_maximum() {
        let r = rules(&base().with_max_persistent_ttl(Duration::from_secs(1000)));
        assert_eq!(r.mode_of(SessionExpiry::Persistent(Duration::from_secs(5000))), Mode::Persistent { ttl_s: 1000 });
        assert_eq!(r.mode_of(SessionExpiry::Persistent(Duration::ZERO)), Mode::Persistent { ttl_s: 1 });
        assert_eq!(r.inactivity_s(Mode::Persistent { ttl_s: 9999 }), 1000, "a claim beyond the bound");
    }
}
