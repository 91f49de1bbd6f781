//! The purge's sweep of users' indexes. Redis expires sessions but not the
//! members that name them, and the lazy cleanup (`users.rs`) only runs when a
//! user comes back; so each purge drops the dead members of a bounded slice of
//! indexes, `SCAN` step by step on every node (`scan.rs`), resuming where the
//! last purge stopped. An index whose members are all gone is gone too.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use crate::connect::Redis;
use crate::index_members::{members, probe, prune};
use crate::scan::{nodes, scan, Node};
use nex_session_core::StoreError;

/// `SCAN` steps per node of one purge's sweep of users' indexes, and keys asked per step.
const SWEEP_STEPS: usize = 16;
const SWEEP_COUNT: u64 = 500;

/// Where the purge's sweep of users' indexes stands on each node (a cursor of 0:
/// the next sweep starts over).
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    cursors: Mutex<HashMap<Node, u64>>,
}

impl Sweep {
    fn cursor(&self, node: &Node) -> u64 {
        self.lock().get(node).copied().unwrap_or(0)
    }

    fn stopped_at(&self, node: &Node, cursor: u64) {
        self.lock().insert(node.clone(), cursor);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Node, u64>> {
        // A cursor is a plain number, replaced whole: a panic cannot leave it half-written.
        self.cursors.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The purge's share of the index upkeep: up to [`SWEEP_STEPS`] `SCAN` steps
/// per node over users' indexes, from where the last sweep stopped, dropping
/// dead members (users who never come back would keep them for good).
/// Returns how many members it dropped.
pub(crate) async fn sweep_indexes(redis: &Redis, sweep: &Sweep) -> Result<u64, StoreError> {
    let pattern = redis.index_pattern();
    let mut dropped = 0u64;
    for node in nodes(redis, redis.deadline()).await? {
        let mut cursor = sweep.cursor(&node);
        for _ in 0..SWEEP_STEPS {
            // Each command has its own deadline: a sweep is background work.
            let (next, indexes) = scan(redis, &node, cursor, &pattern, SWEEP_COUNT, redis.deadline()).await?;
            for index in &indexes {
                dropped += prune_index(redis, index, redis.deadline()).await?;
            }
            cursor = next;
            sweep.stopped_at(&node, cursor);
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(dropped)
}

/// Drops the dead members of the index `index`, whoever's it is; how many.
async fn prune_index(redis: &Redis, index: &str, deadline: Instant) -> Result<u64, StoreError> {
    let members = members(redis, index, deadline).await?;
    let probes = probe(redis, &members, deadline).await;
    let mut dead = Vec::new();
    for (member, probe) in members.iter().zip(probes) {
        if probe?.is_none_or(|p| p.pttl == -2) {
            dead.push(member.as_str());
        }
    }
    if dead.is_empty() {
        return Ok(0);
    }
    prune(redis, index, &dead, deadline).await
}
