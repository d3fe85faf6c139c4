//! Scenarios without random faults: the old three-node test plan, the mesh workload, and the
//! pong-loss filter.

use super::{distinct_ip, mesh_peers, Checks, NetParams, NodeDef, Options, Scenario, Tuning};
use crate::faults::{FaultPlan, Filter, Side};
use crate::net::wire::Kind;
use crate::rng::Rng;
use crate::time::{HOUR, MIN, MS};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `n` nodes on one host, ports 7000.., each listing all the others (the legacy test plan).
fn one_host(n: usize) -> Vec<NodeDef> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let addrs: Vec<SocketAddr> = (0..n)
        .map(|i| SocketAddr::new(ip, 7000 + i as u16))
        .collect();
    (0..n)
        .map(|i| NodeDef {
            ip,
            port: 7000 + i as u16,
            peers: addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| *a)
                .collect(),
            nat: false,
            clock_skew_secs: 0,
            start_at: None,
        })
        .collect()
}

fn base(nodes: Vec<NodeDef>, duration: u64) -> Scenario {
    Scenario {
        name: "",
        duration,
        nodes,
        net: NetParams::default(),
        tuning: Tuning::default(),
        filters: Vec::new(),
        plan: FaultPlan::default(),
        query_every: Some(MIN),
        chain: None,
        checks: Checks::default(),
    }
}

pub(super) fn seed_3node(opts: &Options, _seed: u64) -> Scenario {
    let n = opts.nodes.unwrap_or(3).max(2);
    let mut s = base(one_host(n), opts.duration.unwrap_or(HOUR));
    // Loopback: tens of microseconds, still split at random boundaries.
    s.net.latency_lo = 30;
    s.net.latency_hi = 100;
    s.net.jitter = 50;
    s
}

pub(super) fn pong_loss(opts: &Options, seed: u64) -> Scenario {
    let mut s = seed_3node(opts, seed);
    // The machine treats any frame as liveness, so dropping pongs alone is (correctly) not a
    // dead peer while the other side's pings still arrive. Dropping every liveness frame the
    // accepting side sends makes the connection look dead one way: it must be noticed at the
    // ping timeout and replaced.
    s.filters.push(Filter {
        kinds: Filter::kinds(&[Kind::Ping, Kind::Pong]),
        side: Some(Side::Inbound),
        from: None,
        prob: 1.0,
    });
    s.query_every = None;
    s
}

pub(super) fn mesh(opts: &Options, seed: u64) -> Scenario {
    let n = opts.nodes.unwrap_or(50).max(2);
    let mut nodes: Vec<NodeDef> = (0..n)
        .map(|i| NodeDef {
            ip: distinct_ip(i),
            port: 7000,
            peers: Vec::new(),
            nat: false,
            clock_skew_secs: 0,
            start_at: None,
        })
        .collect();
    let mut rng = Rng::derive(seed, "topology");
    mesh_peers(&mut nodes, &mut rng, 100, 8);
    let mut s = base(nodes, opts.duration.unwrap_or(HOUR));
    s.net.latency_lo = 5 * MS;
    s.net.latency_hi = 80 * MS;
    // Distinct hosts over a WAN: a write of a few dozen bytes arrives in one segment. Random
    // sub-segment splits are a framing stress, applied where it is the point (seed-3node,
    // the fault scenarios); here they would only add events to the workload this scenario
    // measures (the speed workload).
    s.net.split_prob = 0.0;
    // Queries cost a lot at 10,000 nodes and add nothing to the ping workload there.
    s.query_every = (n <= 100).then_some(5 * MIN);
    s
}
