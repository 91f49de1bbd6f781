//! The store conformance suite, on every store available without external services.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use nex_session::store::{conformance, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_suite() {
    conformance::run_all(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_memory_store_passes_the_conformance_suite() {
    conformance::run_all(Arc::new(MemoryStore::with_max_sessions(100_000))).await;
}
