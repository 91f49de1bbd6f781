//! The demo's one account. Only an argon2id hash of its password is kept.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;

/// A user of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// The id stored in the session as `user_id`.
    pub id: u64,
    /// The login email.
    pub email: &'static str,
}

/// The demo account, shown as a hint on the login page.
pub const DEMO_USER: User = User { id: 1, email: "demo@example.com" };
/// The demo password, shown as a hint on the login page (it is public on purpose).
pub const DEMO_PASSWORD_HINT: &str = "nex-demo";

/// argon2id (m=19 MiB, t=2, p=1, OWASP's minimum) of the demo password.
const DEMO_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$d1xEULAJzWRrYqrfRrSdJw$NKfN89m2f6hdL31481O8Fljv/PyTu4qH8Nn6D1Je/Uo";

/// The user with these credentials, if any. Runs the hash check even for an
/// unknown email, so timing does not reveal which emails exist.
pub fn authenticate(email: &str, password: &str) -> Option<User> {
    let hash = PasswordHash::new(DEMO_PASSWORD_HASH).ok()?;
    let password_ok = Argon2::default().verify_password(password.as_bytes(), &hash).is_ok();
    let email_ok = email.trim().eq_ignore_ascii_case(DEMO_USER.email);
    (password_ok && email_ok).then_some(DEMO_USER)
}

/// The user with this id.
pub fn find(id: u64) -> Option<User> {
    (id == DEMO_USER.id).then_some(DEMO_USER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_demo_credentials() {
        assert_eq!(authenticate("demo@example.com", "nex-demo"), Some(DEMO_USER));
        assert_eq!(authenticate(" Demo@Example.com ", "nex-demo"), Some(DEMO_USER));
        assert_eq!(authenticate("demo@example.com", "wrong"), None);
        assert_eq!(authenticate("other@example.com", "nex-demo"), None);
    }
}
