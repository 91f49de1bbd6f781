//! Starting the demo: the store it opens from the environment, and start errors
//! that say what is wrong without showing a password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;

use nex_session::store::{Change, Presence, SessionStore};
use nex_session::StoreKey;

/// Runs the real `nex-demo` binary with `env`, expecting it to fail at start.
fn start_with(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nex-demo"));
    cmd.env("NEX_ENV", "dev")
        .env("SECRET_KEY_BASE", "0123456789abcdef0123456789abcdef")
        .env("PORT", "0")
        .env_remove("NEX_SESSION_STORE")
        .env_remove("NEX_SESSION_MAX_SESSIONS");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().expect("runs the nex-demo binary")
}

#[test]
fn a_store_that_cannot_be_opened_is_a_start_error_without_its_password() {
    for url in [
        "redis://:s3cret@127.0.0.1:1",
        "redis://ops:s3cret@127.0.0.1:1/0",
        "redis+cluster://:s3cret@127.0.0.1:1,:s3cret@127.0.0.1:2",
        "reddis://:s3cret@127.0.0.1:1",
    ] {
        let out = start_with(&[("NEX_SESSION_STORE", url)]);
        assert_eq!(out.status.code(), Some(1), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("NEX_SESSION_STORE") && stderr.contains("127.0.0.1:1"), "{url}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{url}: the password leaked: {stderr}");
    }
}

#[test]
fn a_bad_max_sessions_is_a_clear_start_error() {
    for (env, says) in [
        (vec![("NEX_SESSION_MAX_SESSIONS", "lots")], "NEX_SESSION_MAX_SESSIONS=\"lots\" is not a whole number"),
        (vec![("NEX_SESSION_MAX_SESSIONS", "0")], "above 0"),
        (
            vec![("NEX_SESSION_MAX_SESSIONS", "10"), ("NEX_SESSION_STORE", "sqlite://never-created.db")],
            "bounds the memory store only",
        ),
        (vec![("NEX_SESSION_MAX_SESSIONS", "10"), ("NEX_SESSION_STORE", "memory?max_sessions=20")], "give one"),
    ] {
        let out = start_with(&env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
    assert!(!std::path::Path::new("never-created.db").exists());
}

/// `n` distinct keys of one shard of a memory store (they share byte 8, which picks it).
fn keys_of_one_shard(n: u64) -> Vec<StoreKey> {
    (0..n)
        .map(|i| {
            let mut bytes = [7u8; 32];
            bytes[..8].copy_from_slice(&i.to_le_bytes());
            StoreKey::from_bytes(bytes)
        })
        .collect()
}

/// Creates `n` sessions in one shard of `store`; whether the first one is still there.
async fn first_of_one_shard_survives(store: &Arc<dyn SessionStore>, n: u64) -> bool {
    let mut batch = BTreeMap::new();
    batch.insert("k".to_owned(), Change::Put(b"v".to_vec()));
    let expires = nex_session::token::now_ms() + 60_000;
    let keys = keys_of_one_shard(n);
    for key in &keys {
        store.apply(*key, &batch, expires, Presence::New).await.unwrap();
    }
    store.load(keys[0]).await.unwrap().is_some()
}

#[tokio::test]
async fn the_memory_store_is_bounded_by_default_and_as_configured() {
    // The default, 100,000 sessions: 1,563 in each of the 64 shards.
    let default = nex_demo::open_store("memory", None).await.unwrap();
    assert!(!first_of_one_shard_survives(&default, 1564).await, "the default memory store must be bounded");
    let full = nex_demo::open_store("memory", None).await.unwrap();
    assert!(first_of_one_shard_survives(&full, 1563).await);
    // NEX_SESSION_MAX_SESSIONS=640: 10 in each shard.
    let small = nex_demo::open_store("memory", Some("640")).await.unwrap();
    assert!(!first_of_one_shard_survives(&small, 11).await);
    let small = nex_demo::open_store("memory", Some("640")).await.unwrap();
    assert!(first_of_one_shard_survives(&small, 10).await);
}
