//! [`Health`]: what a readiness check of the session store found.

use std::time::Duration;

use crate::error::StoreError;

/// The most a [`SessionLayer::health`](crate::SessionLayer::health) check waits,
/// whatever the store: 2 s. Stores answer sooner by their own bound (Redis: its
/// timeout, 1 s by default); this one holds for a custom store that never answers.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What a readiness check found: whether the store answered, which store, and
/// how long the check took. Made by [`SessionLayer::health`](crate::SessionLayer::health);
/// no session was read or written for it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use nex_session::{token::SecretKeyBase, SessionConfig, SessionLayer};
///
/// let layer = SessionLayer::memory(SessionConfig::new(SecretKeyBase::development()));
/// let health = layer.health().await;
/// assert!(health.ok);
/// assert_eq!(health.store, "memory");
/// println!("{health}"); // "ok: memory store answered in 0.001 ms"
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Health {
    /// The store answered: the layer can load and save sessions.
    pub ok: bool,
    /// The store's kind ([`SessionStore::kind`](crate::store::SessionStore::kind)).
    pub store: &'static str,
    /// How long the check took (until the answer, the error or the timeout).
    pub latency: Duration,
    /// Why the store is not ready (`None` when `ok`). Its text never holds a
    /// password or anything usable as a cookie, but may name hosts or paths:
    /// think twice before showing it on a public route.
    pub error: Option<StoreError>,
    /// Where the store is connected ([`SessionStore::endpoint`](crate::store::SessionStore::endpoint)):
    /// the host that answered and how (TLS, found through sentinels), when the
    /// store says. Like `error`, it may name hosts.
    pub endpoint: Option<String>,
}

impl Health {
    /// The outcome of a check of a `store` that took `latency`.
    pub(crate) fn new(
        store: &'static str,
        latency: Duration,
        result: Result<(), StoreError>,
        endpoint: Option<String>,
    ) -> Self {
        Self { ok: result.is_ok(), store, latency, error: result.err(), endpoint }
    }
}

impl std::fmt::Display for Health {
    /// `ok: redis store answered in 0.212 ms`, or
    /// `unavailable: redis store did not answer within 1s (after 1000.310 ms)`;
    /// with the store's endpoint when it has one:
    /// `ok: redis store answered in 0.212 ms; connected to 10.0.0.5:6380 (TLS)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.latency.as_secs_f64() * 1000.0;
        match &self.error {
            None => write!(f, "ok: {} store answered in {ms:.3} ms", self.store)?,
            Some(err) => write!(f, "unavailable: {} store: {err} (after {ms:.3} ms)", self.store)?,
        }
        match &self.endpoint {
            Some(endpoint) => write!(f, "; connected to {endpoint}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_where_the_store_is_connected_when_it_says() {
        let ms = Duration::from_micros(212);
        let shown = Health::new("redis", ms, Ok(()), Some("10.0.0.5:6380 (TLS verify-full)".into())).to_string();
        assert_eq!(shown, "ok: redis store answered in 0.212 ms; connected to 10.0.0.5:6380 (TLS verify-full)");
        let down = Health::new("redis", ms, Err(StoreError::Timeout(Duration::from_secs(1))), Some("db:1".into()));
        assert!(
            down.to_string().starts_with("unavailable: redis store")
                && down.to_string().ends_with("; connected to db:1")
        );
        assert!(!Health::new("memory", ms, Ok(()), None).to_string().contains("connected"));
    }
}
