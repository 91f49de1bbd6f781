//! Listing sessions for operators ([`SessionAdmin`]): `SCAN` on the one node, or
//! on every primary of a cluster, each with its own cursor.
//!
//! A cluster spreads sessions over its primaries by hash slot and `SCAN` walks
//! one node's keys, so the listing asks the cluster for its primaries
//! (`CLUSTER SLOTS`) and scans each through the cluster connection's documented
//! per-node routing ([`RoutingInfo`] by address). It is a walk, not a snapshot:
//! a session created or moved between nodes (resharding) while it runs may be
//! missed; none is listed twice.

use std::collections::{BTreeSet, HashSet};

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::Value;

use super::connect::Connection;
use super::RedisStore;
use crate::error::StoreError;
use crate::store::{BoxFuture, SessionAdmin, Summary};
use crate::token::now_ms;

/// Keys asked of a node per `SCAN` step.
const SCAN_COUNT: u64 = 500;

/// A cluster primary, as `CLUSTER SLOTS` names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Node {
    host: String,
    port: u16,
}

impl SessionAdmin for RedisStore {
    fn purge_expired(&self, _now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        // Redis expires keys itself.
        Box::pin(std::future::ready(Ok(0)))
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Summary>, StoreError>> {
        Box::pin(async move {
            let nodes = match &self.redis.conn {
                Connection::Single(_) => vec![None],
                Connection::Cluster(cluster) => self.primaries(cluster).await?.into_iter().map(Some).collect(),
            };
            let mut out = Vec::new();
            let mut seen = HashSet::new();
            for node in &nodes {
                self.list_node(node.as_ref(), limit, &mut out, &mut seen).await?;
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }
}

impl RedisStore {
    /// Adds the live sessions on `node` (`None`: the single node) to `out`, up to
    /// `limit` in all, skipping those in `seen`.
    async fn list_node(
        &self,
        node: Option<&Node>,
        limit: usize,
        out: &mut Vec<Summary>,
        seen: &mut HashSet<crate::id::StoreKey>,
    ) -> Result<(), StoreError> {
        let mut conn = self.redis.conn.clone();
        let pattern = self.redis.pattern();
        let mut cursor = 0u64;
        loop {
            let scan = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(SCAN_COUNT).clone();
            // An operator's listing may take long: each command has its own deadline.
            let deadline = self.redis.deadline();
            let (next, keys): (u64, Vec<String>) = match (node, &self.redis.conn) {
                (Some(node), Connection::Cluster(cluster)) => {
                    let mut cluster = cluster.clone();
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: node.host.clone(),
                        port: node.port,
                    });
                    let call = async move { redis::from_owned_redis_value(cluster.route_command(&scan, route).await?) };
                    self.redis.read(deadline, call).await?
                }
                _ => self.redis.read(deadline, scan.query_async(&mut conn)).await?,
            };
            for key in keys {
                if out.len() >= limit {
                    return Ok(());
                }
                // Users' indexes share the prefix: not sessions.
                let Some(store_key) = self.redis.store_key(&key) else { continue };
                if !seen.insert(store_key) {
                    continue;
                }
                let lookup = redis::pipe().hlen(&key).pttl(&key).clone();
                let (len, pttl): (usize, i64) =
                    self.redis.read(self.redis.deadline(), lookup.query_async(&mut conn)).await?;
                if pttl == -2 {
                    continue;
                }
                let expires_at_ms = if pttl >= 0 { now_ms() + pttl } else { i64::MAX };
                out.push(Summary { key: store_key, fields: len.saturating_sub(1), expires_at_ms });
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The cluster's primaries: the first node of each slot range in `CLUSTER SLOTS`.
    async fn primaries(&self, cluster: &ClusterConnection) -> Result<Vec<Node>, StoreError> {
        let mut cluster = cluster.clone();
        let ask = redis::cmd("CLUSTER").arg("SLOTS").clone();
        let slots = self
            .redis
            .read(
                self.redis.deadline(),
                cluster.route_command(&ask, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random)),
            )
            .await?;
        let nodes = parse_primaries(&slots).ok_or_else(|| {
            let what = "CLUSTER SLOTS answered something that is not a slot table with node addresses";
            StoreError::Corrupt(what.into())
        })?;
        if nodes.is_empty() {
            return Err(StoreError::Unavailable("the cluster named no primary (CLUSTER SLOTS)".into()));
        }
        Ok(nodes)
    }
}

/// The primaries in a `CLUSTER SLOTS` answer: each range is `[start, end,
/// [host, port, id…], replicas…]`. `None` if the answer has another shape, or a
/// primary without a usable address (an empty or `?` host).
fn parse_primaries(slots: &Value) -> Option<Vec<Node>> {
    let Value::Array(ranges) = slots else { return None };
    let mut nodes = BTreeSet::new();
    for range in ranges {
        let Value::Array(range) = range else { return None };
        let Some(Value::Array(primary)) = range.get(2) else { return None };
        let host = match primary.first()? {
            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
            Value::SimpleString(text) => text.clone(),
            _ => return None,
        };
        let Some(Value::Int(port)) = primary.get(1) else { return None };
        if host.is_empty() || host == "?" {
            return None;
        }
        nodes.insert(Node { host, port: u16::try_from(*port).ok()? });
    }
    Some(nodes.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn range(start: i64, end: i64, nodes: &[(&str, i64)]) -> Value {
        let mut out = vec![Value::Int(start), Value::Int(end)];
        out.extend(nodes.iter().map(|(host, port)| Value::Array(vec![bulk(host), Value::Int(*port), bulk("id")])));
        Value::Array(out)
    }

    #[test]
    fn primaries_are_the_first_node_of_each_range_once_each() {
        let slots = Value::Array(vec![
            range(0, 5460, &[("10.0.0.1", 7000), ("10.0.0.4", 7003)]),
            range(5461, 10922, &[("10.0.0.2", 7001)]),
            range(10923, 16383, &[("10.0.0.1", 7000)]),
        ]);
        let nodes = parse_primaries(&slots).unwrap();
        let names: Vec<(&str, u16)> = nodes.iter().map(|n| (n.host.as_str(), n.port)).collect();
        assert_eq!(names, vec![("10.0.0.1", 7000), ("10.0.0.2", 7001)]);
    }

    #[test]
    fn a_slot_table_of_another_shape_is_refused() {
        assert_eq!(parse_primaries(&Value::Int(3)), None);
        assert_eq!(parse_primaries(&Value::Array(vec![range(0, 1, &[("?", 7000)])])), None);
        assert_eq!(parse_primaries(&Value::Array(vec![range(0, 1, &[("h", 70_000)])])), None);
        assert_eq!(parse_primaries(&Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(1)])])), None);
        assert_eq!(parse_primaries(&Value::Array(Vec::new())), Some(Vec::new()));
    }
}
