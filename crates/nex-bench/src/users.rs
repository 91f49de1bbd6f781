//! `nex-bench users --store URL [--sizes 100,10000,100000]`: what a sign-in and
//! "sign out everywhere" cost for a user who already has N sessions, on one store.
//!
//! For each N: N sessions of a fresh user are made through the store (a write and
//! a bind each, 64 at a time, no cap); then 20 sign-ins with a cap of N (each ends
//! the least recently seen session, so the user stays at N), timed one by one; then
//! one `revoke_all`, timed. Prints a Markdown table; the numbers are wall-clock
//! times on this machine (compare stores and sizes within one run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nex_session::store::{Binding, Change, Changes, Keep, Presence, SessionCap, SessionStore};
use nex_session::token::now_ms;
use nex_session::SessionId;

/// Sign-ins timed per size.
const SIGN_INS: usize = 20;
/// Tasks making sessions at once.
const WORKERS: usize = 64;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut url = None;
    let mut sizes = vec![100, 10_000, 100_000];
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let value = rest.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--store" => url = Some(value.clone()),
            "--sizes" => {
                let parsed = value.split(',').map(str::parse).collect::<Result<Vec<usize>, _>>();
                sizes = parsed.map_err(|e| format!("--sizes: {e}"))?;
            }
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    let url = url.ok_or("--store URL is required")?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let options = nex_session::store::OpenOptions::new().create_missing(true);
        let store: Arc<dyn SessionStore> =
            nex_session::store::open_with(&url, options).await.map_err(|e| format!("{url}: {e}"))?;
        println!("| sessions of the user | sign-in with the cap, median (max) | revoke all |");
        println!("|---|---|---|");
        for n in sizes {
            let user = format!("bench-{n}-{}", &SessionId::generate().map_err(|e| e.to_string())?.as_str()[..8]);
            make(&store, &user, n).await?;
            let cap = SessionCap::new(u32::try_from(n).unwrap_or(u32::MAX));
            let mut times = Vec::with_capacity(SIGN_INS);
            for _ in 0..SIGN_INS {
                let started = Instant::now();
                sign_in(&*store, &user, cap).await?;
                times.push(started.elapsed());
            }
            times.sort();
            let users = store.users().ok_or("no user index")?;
            let started = Instant::now();
            let revoked = users.revoke_all(&user, Keep::None).await.map_err(|e| e.to_string())?;
            let revoke = started.elapsed();
            if revoked != n as u64 {
                return Err(format!("revoked {revoked} of {n}"));
            }
            let median = times.get(SIGN_INS / 2).copied().unwrap_or_default();
            let max = times.last().copied().unwrap_or_default();
            println!("| {n} | {} ({}) | {} |", ms(median), ms(max), ms(revoke));
        }
        Ok(())
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One sign-in as the layer makes it: the session written, then bound.
async fn sign_in(store: &dyn SessionStore, user: &str, cap: Option<SessionCap>) -> Result<(), String> {
    let key = SessionId::generate().map_err(|e| e.to_string())?.store_key();
    let expires = now_ms() + 3_600_000;
    let mut changes = Changes::new();
    changes.insert("cart".to_owned(), Change::Put(b"[]".to_vec()));
    store.apply(key, &changes, expires, Presence::New).await.map_err(|e| e.to_string())?;
    let binding = Binding::new(user, now_ms(), None).map_err(|e| e.to_string())?;
    let users = store.users().ok_or("no user index")?;
    users.bind(key, &binding, expires, cap).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// `n` sessions of `user`, no cap, 64 sign-ins at a time.
async fn make(store: &Arc<dyn SessionStore>, user: &str, n: usize) -> Result<(), String> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (store, user) = (Arc::clone(store), user.to_owned());
        let count = n / WORKERS + usize::from(worker < n % WORKERS);
        tasks.spawn(async move {
            for _ in 0..count {
                sign_in(&*store, &user, None).await?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}
