//! Bans for misbehaving peers: by node id always, by IP only for non-loopback remotes (on
//! loopback every local node shares 127.0.0.1, so an IP ban would punish the innocent).

use crate::id::NodeId;
use crate::time::Instant;
use alloc::collections::BTreeMap;
use core::net::IpAddr;

/// Bans remembered at most, per kind; the one expiring soonest is forgotten first.
const MAX_BANS: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Bans {
    nodes: BTreeMap<NodeId, Instant>,
    ips: BTreeMap<IpAddr, Instant>,
}

impl Bans {
    pub fn ban(&mut self, node: Option<NodeId>, ip: IpAddr, until: Instant) {
        if let Some(n) = node {
            insert_bounded(&mut self.nodes, n, until);
        }
        if !ip.is_loopback() {
            insert_bounded(&mut self.ips, ip, until);
        }
    }

    pub fn node_banned(&self, now: Instant, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|&until| now < until)
    }

    pub fn ip_banned(&self, now: Instant, ip: IpAddr) -> bool {
        self.ips.get(&ip).is_some_and(|&until| now < until)
    }
}

fn insert_bounded<K: Ord + Copy>(map: &mut BTreeMap<K, Instant>, key: K, until: Instant) {
    if map.len() >= MAX_BANS && !map.contains_key(&key) {
        if let Some(k) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
            map.remove(&k);
        }
    }
    map.insert(key, until);
}
