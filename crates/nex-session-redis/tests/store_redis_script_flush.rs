//! A Redis that forgot the store's scripts (a restart without persistence, a
//! failover to a replica that never loaded them, `SCRIPT FLUSH`): every write
//! still lands, once. The hot write sends its compare-and-set as a prebuilt
//! `EVALSHA` (`script_call.rs`); on `NOSCRIPT` the store loads the script and
//! sends it again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nex_session::store::{Change, Changes, Presence, RedisStore, SessionStore, UpdateAction};
use nex_session::SessionId;
use nex_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_script_flush_load_the_script_and_land_once() {
    let server = RedisServer::start_private();
    // Every update, cached field or not, ends in the compare-and-set script.
    let store = RedisStore::open_with(&server.url(), "nex:flush:", Duration::from_secs(2)).await.unwrap();
    let key = SessionId::generate().unwrap().store_key();
    let later = nex_session::token::now_ms() + 60_000;
    let mut first = Changes::new();
    first.insert("n".to_owned(), Change::Put(b"0".to_vec()));
    store.apply(key, &first, later, Presence::New).await.unwrap();
    let mut increment = |current: Option<&[u8]>| {
        let n: u64 = std::str::from_utf8(current.unwrap_or(b"0")).unwrap().parse().unwrap();
        UpdateAction::Set((n + 1).to_string().into_bytes())
    };
    let flush = || {
        let flushed = server.cli(&["SCRIPT", "FLUSH"]);
        assert!(flushed.contains("OK"), "SCRIPT FLUSH answered {flushed:?}");
    };
    for round in 1..=5u64 {
        flush();
        let done = store.update(key, "n", &mut increment, later, Presence::Existing).await;
        assert!(done.is_ok(), "round {round}: an update after SCRIPT FLUSH failed: {done:?}");
        flush();
        let mut put = Changes::new();
        put.insert("m".to_owned(), Change::Put(round.to_string().into_bytes()));
        let applied = store.apply(key, &put, later + 1_000 * round as i64, Presence::Existing).await;
        assert!(applied.is_ok(), "round {round}: a put after SCRIPT FLUSH failed: {applied:?}");
        flush();
        let touched = store.touch(key, later + 2_000 * round as i64).await;
        assert!(matches!(touched, Ok(true)), "round {round}: a touch after SCRIPT FLUSH: {touched:?}");
        let record = store.load(key).await.unwrap().unwrap();
        assert_eq!(record.fields["n"], round.to_string().into_bytes(), "round {round}: counted once");
        assert_eq!(record.fields["m"], round.to_string().into_bytes(), "round {round}: the put landed");
        assert_eq!(record.expires_at_ms, later + 2_000 * round as i64, "round {round}: the touch landed");
    }
}
