//! `SessionStore` for `Arc<T>` and `Box<T>`: every method forwarded to `T`.
//!
//! One macro writes both impls, and the test below fails when the trait gains a
//! method that is not forwarded: a method left to its default on a wrapper would
//! silently replace the store's own version (its cache, its index, its health
//! check) with the default.

use std::sync::Arc;

use super::contract::{FastReads, SessionAdmin, SessionStore};
use super::record::{BoxFuture, Changes, Presence, Record, UpdateFn, WriteOutcome};
use super::users::UserIndex;
use crate::error::StoreError;
use crate::id::StoreKey;

/// Implements [`SessionStore`] for each named smart pointer by forwarding every
/// method (required and defaulted) to the store it points to.
macro_rules! forward_session_store {
    ($($pointer:ident),+) => {$(
        impl<T: SessionStore + ?Sized> SessionStore for $pointer<T> {
            fn load(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
                (**self).load(key)
            }
            fn apply<'a>(
                &'a self,
                key: StoreKey,
                changes: &'a Changes,
                expires_at_ms: i64,
                presence: Presence,
            ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
                (**self).apply(key, changes, expires_at_ms, presence)
            }
            fn update<'a>(
                &'a self,
                key: StoreKey,
                field: &'a str,
                f: UpdateFn<'a>,
                expires_at_ms: i64,
                presence: Presence,
            ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
                (**self).update(key, field, f, expires_at_ms, presence)
            }
            fn rename(&self, from: StoreKey, to: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
                (**self).rename(from, to, expires_at_ms)
            }
            fn remove(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
                (**self).remove(key)
            }
            fn touch(&self, key: StoreKey, expires_at_ms: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
                (**self).touch(key, expires_at_ms)
            }
            fn fast_reads(&self) -> Option<&dyn FastReads> {
                (**self).fast_reads()
            }
            fn admin(&self) -> Option<&dyn SessionAdmin> {
                (**self).admin()
            }
            fn users(&self) -> Option<&dyn UserIndex> {
                (**self).users()
            }
            fn kind(&self) -> &'static str {
                (**self).kind()
            }
            fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
                (**self).health()
            }
            fn endpoint(&self) -> Option<String> {
                (**self).endpoint()
            }
        }
    )+};
}

forward_session_store!(Arc, Box);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use super::*;
    use crate::store::{Binding, Keep, SessionCap, SessionHandle, Summary, UserSession};

    /// The methods a probe saw called.
    type Seen = Arc<Mutex<BTreeSet<&'static str>>>;

    /// A store that overrides every method of the trait and records which ran.
    struct Probe(Seen);

    impl Probe {
        fn saw(&self, method: &'static str) {
            self.0.lock().unwrap().insert(method);
        }
    }

    fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
        Box::pin(std::future::ready(value))
    }

    impl SessionStore for Probe {
        fn load(&self, _: StoreKey) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
            self.saw("load");
            ready(Ok(None))
        }
        fn apply<'a>(
            &'a self,
            _: StoreKey,
            _: &'a Changes,
            _: i64,
            _: Presence,
        ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
            self.saw("apply");
            ready(Ok(WriteOutcome::Done))
        }
        fn update<'a>(
            &'a self,
            _: StoreKey,
            _: &'a str,
            _: UpdateFn<'a>,
            _: i64,
            _: Presence,
        ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
            self.saw("update");
            ready(Ok(WriteOutcome::Done))
        }
        fn rename(&self, _: StoreKey, _: StoreKey, _: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
            self.saw("rename");
            ready(Ok(true))
        }
        fn remove(&self, _: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
            self.saw("remove");
            ready(Ok(()))
        }
        fn touch(&self, _: StoreKey, _: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
            self.saw("touch");
            ready(Ok(true))
        }
        fn fast_reads(&self) -> Option<&dyn FastReads> {
            self.saw("fast_reads");
            Some(self)
        }
        fn admin(&self) -> Option<&dyn SessionAdmin> {
            self.saw("admin");
            Some(self)
        }
        fn users(&self) -> Option<&dyn UserIndex> {
            self.saw("users");
            Some(self)
        }
        fn kind(&self) -> &'static str {
            self.saw("kind");
            "probe"
        }
        fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
            self.saw("health");
            ready(Ok(()))
        }
        fn endpoint(&self) -> Option<String> {
            self.saw("endpoint");
            Some("probe".to_owned())
        }
    }

    impl FastReads for Probe {}

    impl SessionAdmin for Probe {
        fn purge_expired(&self, _: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
            ready(Ok(0))
        }
        fn list(&self, _: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
            ready(Ok(Vec::new()))
        }
    }

    impl UserIndex for Probe {
        fn bind<'a>(
            &'a self,
            _: StoreKey,
            _: &'a Binding,
            _: i64,
            _: Option<SessionCap>,
        ) -> BoxFuture<'a, Result<WriteOutcome, StoreError>> {
            ready(Ok(WriteOutcome::Done))
        }
        fn sessions<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<UserSession>, StoreError>> {
            ready(Ok(Vec::new()))
        }
        fn revoke<'a>(&'a self, _: &'a str, _: &'a SessionHandle) -> BoxFuture<'a, Result<bool, StoreError>> {
            ready(Ok(false))
        }
        fn revoke_all<'a>(&'a self, _: &'a str, _: Keep) -> BoxFuture<'a, Result<u64, StoreError>> {
            ready(Ok(0))
        }
    }

    /// Calls every method of the trait once through `store`.
    async fn call_every_method(store: &dyn SessionStore) {
        let key = StoreKey::from_bytes([1; 32]);
        let mut keep = |_: Option<&[u8]>| crate::store::UpdateAction::Keep;
        store.load(key).await.unwrap();
        store.apply(key, &Changes::new(), 0, Presence::New).await.unwrap();
        store.update(key, "f", &mut keep, 0, Presence::New).await.unwrap();
        store.rename(key, key, 0).await.unwrap();
        store.remove(key).await.unwrap();
        store.touch(key, 0).await.unwrap();
        assert!(store.fast_reads().is_some());
        assert!(store.admin().is_some());
        assert!(store.users().is_some());
        assert_eq!(store.kind(), "probe");
        store.health().await.unwrap();
        assert_eq!(store.endpoint().as_deref(), Some("probe"));
    }

    /// The names of the methods `pub trait SessionStore` declares, read from its source.
    fn declared_methods() -> BTreeSet<&'static str> {
        let source = include_str!("contract.rs");
        let start = source.find("pub trait SessionStore").unwrap();
        let end = start + source[start..].find("\n}\n").unwrap();
        source[start..end]
            .lines()
            .filter_map(|line| line.strip_prefix("    fn "))
            .map(|rest| rest.split(['(', '<']).next().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn arc_and_box_forward_every_method_the_trait_declares() {
        let declared = declared_methods();
        assert!(declared.len() >= 11, "read too few methods from contract.rs: {declared:?}");

        let seen = Seen::default();
        call_every_method(&Arc::new(Probe(seen.clone()))).await;
        assert_eq!(*seen.lock().unwrap(), declared, "Arc<T> does not forward every method of SessionStore to T");

        let seen = Seen::default();
        call_every_method(&Box::new(Probe(seen.clone()))).await;
        assert_eq!(*seen.lock().unwrap(), declared, "Box<T> does not forward every method of SessionStore to T");
    }
}
