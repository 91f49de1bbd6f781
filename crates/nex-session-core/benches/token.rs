//! Sign and verify of a session-id token: the per-request cost of the cookie.
//!
//! Run: `cargo bench -p nex-session --bench token`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nex_session::token::{Keyring, SecretKeyBase};
use std::hint::black_box;

fn token(c: &mut Criterion) {
    let secret = SecretKeyBase::new("0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
    let ring = Keyring::new(secret, [], "nex.session");
    // A session id is 32 base64url characters (24 random bytes).
    let id = b"kl_MB987yMhqOw6Ve43B16YssSK0TlOp";
    let token = ring.sign(id);

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_session_id", |b| b.iter(|| ring.sign(black_box(id))));
    group.bench_function("verify_session_id", |b| {
        b.iter(|| ring.verify(black_box(&token), Some(604_800)).unwrap());
    });
    let forged = format!("{}{}", &token[..token.len() - 1], if token.ends_with('A') { 'B' } else { 'A' });
    group.bench_function("reject_forged", |b| {
        b.iter(|| ring.verify(black_box(&forged), Some(604_800)).is_err());
    });
    group.finish();
}

criterion_group!(benches, token);
criterion_main!(benches);
