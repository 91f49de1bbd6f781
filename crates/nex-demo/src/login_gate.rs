//! Bounds the password hashes that logins run at once, so that no login flood
//! can take the server's memory.
//!
//! Each argon2 check needs 19 MiB of working memory. Unbounded, 200 concurrent
//! bad logins held 200 of them (3.7 GiB resident), and glibc kept much of it
//! after the flood. The gate lets at most `hashers` checks run (one per core is
//! as fast as it gets: argon2 is CPU-bound), keeps a short queue of `waiting`
//! logins behind them, and answers anyone beyond that at once with
//! "busy, retry in a second" ([`LoginBusy`], a 503). Each running check borrows
//! one of at most `hashers` buffers that are kept and reused, so the memory for
//! hashing is `hashers × 19 MiB`, whatever arrives.

use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::auth::{HashError, HashMemory, PasswordCheck, User};
use crate::pages;

/// How many logins may wait for a hasher by default; more are answered "busy".
pub const DEFAULT_WAITING: usize = 16;

/// The most hashers [`LoginGate::for_this_machine`] uses, whatever the core count.
pub const MAX_DEFAULT_HASHERS: usize = 4;

/// Runs password checks, a bounded number at a time. Cheap to clone (shared).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nex_demo::{auth::PasswordCheck, login_gate::LoginGate};
/// let gate = LoginGate::new(PasswordCheck::demo()?, 1, 4);
/// let user = gate.authenticate("demo@example.com".into(), "nex-demo".into()).await?;
/// assert_eq!(user, Some(nex_demo::auth::DEMO_USER));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LoginGate {
    inner: Arc<Inner>,
}

struct Inner {
    /// Permits for every login past the gate: hashing or waiting to.
    admitted: Arc<Semaphore>,
    /// Permits for running a hash; the permit travels with the blocking task,
    /// so a client that disconnects mid-hash still counts until the hash ends.
    hashing: Arc<Semaphore>,
    /// Buffers of finished hashes, ready for the next (never more than `hashers`).
    spare_memory: Mutex<Vec<HashMemory>>,
    check: PasswordCheck,
}

/// The answer to a login the gate had no room for: 503 with `Retry-After: 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBusy;

impl std::fmt::Display for LoginBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many logins at once; retry in a second")
    }
}

impl std::error::Error for LoginBusy {}

impl IntoResponse for LoginBusy {
    fn into_response(self) -> Response {
        let page = Html(pages::busy().into_string());
        (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, HeaderValue::from_static("1"))], page).into_response()
    }
}

impl LoginGate {
    /// A gate running at most `hashers` checks at once (at least 1) with at most
    /// `waiting` logins queued behind them.
    pub fn new(check: PasswordCheck, hashers: usize, waiting: usize) -> Self {
        let hashers = hashers.max(1);
        let inner = Inner {
            admitted: Arc::new(Semaphore::new(hashers.saturating_add(waiting).min(Semaphore::MAX_PERMITS))),
            hashing: Arc::new(Semaphore::new(hashers)),
            spare_memory: Mutex::new(Vec::with_capacity(hashers)),
            check,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The demo's gate: one hasher per core (at most [`MAX_DEFAULT_HASHERS`]),
    /// [`DEFAULT_WAITING`] waiting.
    ///
    /// ```
    /// let gate = nex_demo::login_gate::LoginGate::for_this_machine()?;
    /// # let _ = gate;
    /// # Ok::<(), nex_demo::auth::HashError>(())
    /// ```
    ///
    /// # Errors
    /// Only if the demo's built-in password hash were malformed.
    pub fn for_this_machine() -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self::new(PasswordCheck::demo()?, cores.min(MAX_DEFAULT_HASHERS), DEFAULT_WAITING))
    }

    /// Checks the credentials on the blocking pool (argon2 would stall the async
    /// workers), waiting for a hasher if the queue has room.
    ///
    /// # Errors
    /// [`LoginBusy`] at once when every hasher and queue place is taken.
    pub async fn authenticate(&self, email: String, password: String) -> Result<Option<User>, LoginBusy> {
        let Ok(_admitted) = self.inner.admitted.clone().try_acquire_owned() else {
            tracing::warn!("login refused: every password hasher is busy and the queue is full");
            return Err(LoginBusy);
        };
        let hashing = self.inner.hashing.clone().acquire_owned().await.map_err(|_| LoginBusy)?;
        let inner = self.inner.clone();
        let check = tokio::task::spawn_blocking(move || {
            let _hashing = hashing; // dropped last: after the memory is back in the pool
            let mut memory = inner.take_memory();
            let user = inner.check.authenticate(&email, &password, &mut memory);
            inner.put_back(memory);
            user
        });
        check.await.map_err(|err| {
            tracing::error!(error = %err, "the password check did not finish");
            LoginBusy
        })
    }
}

impl Inner {
    fn take_memory(&self) -> HashMemory {
        let spare = self.spare_memory.lock().unwrap_or_else(PoisonError::into_inner).pop();
        spare.unwrap_or_else(|| self.check.new_memory())
    }

    fn put_back(&self, memory: HashMemory) {
        self.spare_memory.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_gate_answers_busy_and_frees_its_places_afterwards() {
        let gate = LoginGate::new(PasswordCheck::demo().unwrap(), 1, 1);
        // Take both places (the hasher and the one queue place) by hand.
        let held = gate.inner.admitted.clone().try_acquire_many_owned(2).unwrap();
        assert_eq!(gate.authenticate("demo@example.com".into(), "nex-demo".into()).await, Err(LoginBusy));
        drop(held);
        let user = gate.authenticate("demo@example.com".into(), "nex-demo".into()).await;
        assert_eq!(user, Ok(Some(crate::auth::DEMO_USER)));
        assert_eq!(gate.inner.spare_memory.lock().unwrap().len(), 1, "the buffer is kept for the next check");
    }

    #[test]
    fn a_busy_answer_is_503_with_retry_after() {
        let response = LoginBusy.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
