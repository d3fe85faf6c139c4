//! Helpers shared by the core's story tests.
#![allow(dead_code)]

use core::net::SocketAddr;
use timed_core::testing::{NodeIx, Switchboard};
use timed_core::{Config, Duration, Instant, MemStore, Network, NodeEvent, NodeId, PeerMachine};

pub fn id(n: u8) -> NodeId {
    NodeId([n; 32])
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// A devnet config for node `n` listening on `listen`, dialing `peers`.
pub fn config(n: u8, listen: &str, peers: &[&str]) -> Config {
    let mut c = Config::new(Network::Devnet, id(n), n as u64 * 1000 + 7);
    c.listen_port = Some(addr(listen).port());
    c.persistent_peers = peers.iter().map(|p| addr(p)).collect();
    c
}

pub fn machine(c: Config, now: Instant) -> PeerMachine<MemStore> {
    PeerMachine::new(c, MemStore::new(Network::Devnet), now).expect("valid config")
}

/// Adds node `n` on `listen` with persistent `peers`.
pub fn add(net: &mut Switchboard, n: u8, listen: &str, peers: &[&str]) -> NodeIx {
    let now = net.now();
    net.add(machine(config(n, listen, peers), now), addr(listen))
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Node ids `node` lists as peers, in order.
pub fn peer_ids(net: &mut Switchboard, node: NodeIx) -> Vec<NodeId> {
    net.machine(node).status().peers.iter().map(|p| p.node_id).collect()
}

pub fn count_events(net: &Switchboard, node: NodeIx, pred: impl Fn(&NodeEvent) -> bool) -> usize {
    net.events(node).iter().filter(|(_, e)| pred(e)).count()
}

pub fn peer_downs(net: &Switchboard, node: NodeIx) -> usize {
    count_events(net, node, |e| matches!(e, NodeEvent::PeerDown { .. }))
}

/// Asserts `a` and `b` list each other exactly once, over the two ends of one link.
pub fn assert_single_link(net: &mut Switchboard, a: NodeIx, b: NodeIx) {
    let (ida, idb) = (net.machine(a).node_id(), net.machine(b).node_id());
    let ca = net.machine(a).peer_conn(idb).unwrap_or_else(|| panic!("node {a} is not connected to node {b}"));
    let cb = net.machine(b).peer_conn(ida).unwrap_or_else(|| panic!("node {b} is not connected to node {a}"));
    assert_eq!(net.remote_end(a, ca), Some((b, cb)), "nodes {a} and {b} disagree on their connection");
    assert_eq!(peer_ids(net, a).iter().filter(|p| **p == idb).count(), 1);
    assert_eq!(peer_ids(net, b).iter().filter(|p| **p == ida).count(), 1);
}
