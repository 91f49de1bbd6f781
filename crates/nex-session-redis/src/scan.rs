//! `SCAN` over this store's keys: on the one node, or on every primary of a
//! cluster, each with its own cursor (used by the operators' listing and by the
//! sweep of users' indexes).
//!
//! A cluster spreads keys over its primaries by hash slot and `SCAN` walks one
//! node's keys, so the cluster is asked for its primaries (`CLUSTER SLOTS`), and
//! each is scanned through the cluster connection's documented per-node routing
//! ([`RoutingInfo`] by address). A scan is a walk, not a snapshot: a key created
//! or moved between nodes (resharding) meanwhile may be missed or seen twice.

use std::collections::BTreeSet;

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::Value;
use tokio::time::Instant;

use crate::connect::{Connection, Redis};
use nex_session_core::StoreError;

/// One node to scan: the single node, or a cluster primary as `CLUSTER SLOTS` names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Node {
    Single,
    Primary { host: String, port: u16 },
}

/// The nodes whose scans together cover every key: the single node, or each
/// primary of the cluster.
pub(super) async fn nodes(redis: &Redis, deadline: Instant) -> Result<Vec<Node>, StoreError> {
    let Connection::Cluster(cluster) = &redis.conn else { return Ok(vec![Node::Single]) };
    let mut cluster = cluster.clone();
    let ask = redis::cmd("CLUSTER").arg("SLOTS").clone();
    let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
    let slots = redis.read(deadline, cluster.route_command(ask, random)).await?;
    let nodes = parse_primaries(&slots).ok_or_else(|| {
        let what = "CLUSTER SLOTS answered something that is not a slot table with node addresses";
        StoreError::Corrupt(what.into())
    })?;
    if nodes.is_empty() {
        return Err(StoreError::Unavailable("the cluster named no primary (CLUSTER SLOTS)".into()));
    }
    Ok(nodes)
}

/// One `SCAN` step on `node` from `cursor` for keys matching `pattern`: the
/// next cursor (0: done) and the keys.
pub(super) async fn scan(
    redis: &Redis,
    node: &Node,
    cursor: u64,
    pattern: &str,
    count: u64,
    deadline: Instant,
) -> Result<(u64, Vec<String>), StoreError> {
    let scan = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count).clone();
    match (node, &redis.conn) {
        (Node::Primary { host, port }, Connection::Cluster(cluster)) => {
            let mut cluster = cluster.clone();
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
            let call = async move { Ok(redis::from_redis_value(cluster.route_command(scan, route).await?)?) };
            redis.read(deadline, call).await
        }
        (Node::Single, Connection::Single(_) | Connection::Sentinel(_)) => {
            let mut conn = redis.conn.clone();
            redis.read(deadline, scan.query_async(&mut conn)).await
        }
        _ => Err(StoreError::Unavailable("a scan of a node of another kind of connection".into())),
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
        nodes.insert(Node::Primary { host, port: u16::try_from(*port).ok()? });
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

    fn primary(host: &str, port: u16) -> Node {
        Node::Primary { host: host.to_owned(), port }
    }

    #[test]
    fn primaries_are_the_first_node_of_each_range_once_each() {
        let slots = Value::Array(vec![
            range(0, 5460, &[("10.0.0.1", 7000), ("10.0.0.4", 7003)]),
            range(5461, 10922, &[("10.0.0.2", 7001)]),
            range(10923, 16383, &[("10.0.0.1", 7000)]),
        ]);
        assert_eq!(parse_primaries(&slots).unwrap(), vec![primary("10.0.0.1", 7000), primary("10.0.0.2", 7001)]);
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
