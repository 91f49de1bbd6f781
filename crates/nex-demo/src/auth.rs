//! The demo's one account. Only an argon2id hash of its password is kept.
//!
//! A login recomputes that hash into memory the caller lends ([`HashMemory`]),
//! so a server can keep a few 19 MiB buffers and reuse them instead of
//! allocating one per attempt (see [`crate::login_gate`]).

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// A user of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// The id; sessions are bound to it as text ([`User::session_user`]).
    pub id: u64,
    /// The login email.
    pub email: &'static str,
}

impl User {
    /// The user id a signed-in session is bound to (`nex_session::users::sign_in`):
    /// the numeric id as text.
    ///
    /// ```
    /// use nex_demo::auth::{find_bound, DEMO_USER};
    /// assert_eq!(DEMO_USER.session_user(), "1");
    /// assert_eq!(find_bound(&DEMO_USER.session_user()), Some(DEMO_USER));
    /// ```
    pub fn session_user(&self) -> String {
        self.id.to_string()
    }
}

/// The demo account, shown as a hint on the login page.
pub const DEMO_USER: User = User { id: 1, email: "demo@example.com" };
/// The demo password, shown as a hint on the login page (it is public on purpose).
pub const DEMO_PASSWORD_HINT: &str = "nex-demo";

/// argon2id (m=19 MiB, t=2, p=1, OWASP's minimum) of the demo password.
const DEMO_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$d1xEULAJzWRrYqrfRrSdJw$NKfN89m2f6hdL31481O8Fljv/PyTu4qH8Nn6D1Je/Uo";

/// The working memory of one argon2 computation (19 MiB for the demo's hash).
/// Reusable: argon2 writes every block before it reads it.
pub type HashMemory = Box<[Block]>;

/// Why the stored hash cannot be used.
#[derive(Debug)]
pub struct HashError(String);

impl std::fmt::Display for HashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the stored password hash is unusable: {}", self.0)
    }
}

impl std::error::Error for HashError {}

/// The demo account's password check, parsed once from its PHC string.
///
/// ```
/// let check = nex_demo::auth::PasswordCheck::demo()?;
/// let mut memory = check.new_memory();
/// let user = check.authenticate("demo@example.com", "nex-demo", &mut memory);
/// assert_eq!(user, Some(nex_demo::auth::DEMO_USER));
/// # Ok::<(), nex_demo::auth::HashError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PasswordCheck {
    argon2: Argon2<'static>,
    salt: Vec<u8>,
    expected: Output,
}

impl PasswordCheck {
    /// The check of the demo account's password.
    ///
    /// # Errors
    /// Only if the built-in hash were malformed (a unit test pins that it is not).
    pub fn demo() -> Result<Self, HashError> {
        Self::parse(DEMO_PASSWORD_HASH)
    }

    fn parse(phc: &str) -> Result<Self, HashError> {
        let err = |e: &dyn std::fmt::Display| HashError(e.to_string());
        let hash = PasswordHash::new(phc).map_err(|e| err(&e))?;
        let algorithm = Algorithm::try_from(hash.algorithm.as_str()).map_err(|e| err(&e))?;
        let version = hash.version.map_or(Ok(Version::default()), Version::try_from).map_err(|e| err(&e))?;
        let params = Params::try_from(&hash).map_err(|e| err(&e))?;
        let expected = hash.hash.ok_or_else(|| HashError("it holds no hash output".into()))?;
        // The PHC parser has decoded the salt already.
        let salt = hash.salt.ok_or_else(|| HashError("it holds no salt".into()))?;
        Ok(Self { argon2: Argon2::new(algorithm, version, params), salt: salt.as_ref().to_vec(), expected })
    }

    /// Fresh working memory for [`PasswordCheck::authenticate`].
    pub fn new_memory(&self) -> HashMemory {
        vec![Block::default(); self.argon2.params().block_count()].into_boxed_slice()
    }

    /// The user with these credentials, if any. Runs the hash even for an unknown
    /// email, so timing does not reveal which emails exist. `memory` should come
    /// from [`PasswordCheck::new_memory`]; a smaller one fails the check.
    pub fn authenticate(&self, email: &str, password: &str, memory: &mut HashMemory) -> Option<User> {
        let password_ok = self.password_matches(password.as_bytes(), memory);
        let email_ok = email.trim().eq_ignore_ascii_case(DEMO_USER.email);
        (password_ok && email_ok).then_some(DEMO_USER)
    }

    fn password_matches(&self, password: &[u8], memory: &mut HashMemory) -> bool {
        let mut out = vec![0u8; self.expected.len()];
        if self.argon2.hash_password_into_with_memory(password, &self.salt, &mut out, &mut **memory).is_err() {
            return false;
        }
        // `Output`'s equality is constant-time (documented by password-hash).
        Output::new(&out).is_ok_and(|computed| computed == self.expected)
    }
}

/// The user with this id.
///
/// ```
/// assert_eq!(nex_demo::auth::find(1), Some(nex_demo::auth::DEMO_USER));
/// assert_eq!(nex_demo::auth::find(2), None);
/// ```
pub fn find(id: u64) -> Option<User> {
    (id == DEMO_USER.id).then_some(DEMO_USER)
}

/// The user a session is bound to, from the bound id ([`User::session_user`]);
/// `None` for an id that names no user.
///
/// ```
/// assert_eq!(nex_demo::auth::find_bound("1"), Some(nex_demo::auth::DEMO_USER));
/// assert_eq!(nex_demo::auth::find_bound("alice"), None);
/// ```
pub fn find_bound(session_user: &str) -> Option<User> {
    session_user.parse().ok().and_then(find)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_demo_credentials() {
        let check = PasswordCheck::demo().unwrap();
        let mut memory = check.new_memory();
        assert_eq!(check.authenticate("demo@example.com", "nex-demo", &mut memory), Some(DEMO_USER));
        assert_eq!(check.authenticate(" Demo@Example.com ", "nex-demo", &mut memory), Some(DEMO_USER));
        assert_eq!(check.authenticate("demo@example.com", "wrong", &mut memory), None);
        assert_eq!(check.authenticate("other@example.com", "nex-demo", &mut memory), None);
        // Reused memory still gives the right answer after a failed attempt.
        assert_eq!(check.authenticate("demo@example.com", "nex-demo", &mut memory), Some(DEMO_USER));
    }

    #[test]
    fn the_demo_hash_keeps_owasp_minimum_parameters() {
        let params = PasswordCheck::demo().unwrap().argon2.params().clone();
        assert!(params.m_cost() >= 19 * 1024 && params.t_cost() >= 2 && params.p_cost() >= 1, "{params:?}");
    }

    #[test]
    fn too_little_memory_fails_the_check_instead_of_panicking() {
        let check = PasswordCheck::demo().unwrap();
        let mut small: HashMemory = vec![Block::default(); 8].into_boxed_slice();
        assert_eq!(check.authenticate("demo@example.com", "nex-demo", &mut small), None);
    }
}
