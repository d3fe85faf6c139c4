//! Scenarios with random faults from the seed, then a healed phase with liveness checks.

use super::{distinct_ip, mesh_peers, Checks, NetParams, NodeDef, Options, Scenario, Tuning};
use crate::faults::{random_plan, ChaosMix, FaultPlan};
use crate::rng::Rng;
use crate::time::{Micros, HOUR, MIN, MS, SEC};

pub(super) fn mesh_nodes(n: usize, rng: &mut Rng) -> Vec<NodeDef> {
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
    mesh_peers(&mut nodes, rng, 100, 8);
    nodes
}

/// Reconnect faster than the production default so the healed phase fits in a short run; the
/// liveness deadline follows from it (worst backoff with jitter, a handshake, margin).
pub(super) fn fast_tuning() -> Tuning {
    Tuning {
        backoff_max: 60 * SEC,
        ..Tuning::default()
    }
}

pub(super) fn liveness_deadline(t: &Tuning) -> Micros {
    t.backoff_max * 5 / 4 + t.handshake_timeout * 2 + t.probe_timeout + 30 * SEC
}

pub(super) fn faulty(
    nodes: Vec<NodeDef>,
    duration: Micros,
    plan: FaultPlan,
    net: NetParams,
) -> Scenario {
    let tuning = fast_tuning();
    let checks = Checks {
        liveness_deadline: Some(liveness_deadline(&tuning)),
        ..Checks::default()
    };
    Scenario {
        name: "",
        duration,
        nodes,
        net,
        tuning,
        filters: Vec::new(),
        plan,
        query_every: Some(MIN),
        chain: None,
        checks,
    }
}

/// Faults run from 1 minute to `frac` of the run (at most `duration - deadline - 1m`), so the
/// healed phase always has time for the liveness check.
pub(super) fn fault_window(duration: Micros, frac: f64) -> (Micros, Micros) {
    let deadline = liveness_deadline(&fast_tuning());
    let stop = ((duration as f64 * frac) as Micros).min(duration.saturating_sub(deadline + MIN));
    (MIN.min(stop), stop)
}

pub(super) fn partition_heal(opts: &Options, seed: u64) -> Scenario {
    let n = opts.nodes.unwrap_or(8).max(2);
    let duration = opts.duration.unwrap_or(HOUR);
    let nodes = mesh_nodes(n, &mut Rng::derive(seed, "topology"));
    let (start, stop) = fault_window(duration, 0.5);
    let mix = ChaosMix {
        partitions: true,
        clogs: true,
        kills: false,
        crashes: false,
        filters: false,
        churn: false,
        mean_gap: 4 * MIN,
    };
    let plan = random_plan(&mut Rng::derive(seed, "faults"), n, start, stop, &mix);
    faulty(nodes, duration, plan, NetParams::default())
}

pub(super) fn churn(opts: &Options, seed: u64) -> Scenario {
    let n = opts.nodes.unwrap_or(10).max(2);
    let duration = opts.duration.unwrap_or(HOUR);
    let mut rng = Rng::derive(seed, "topology");
    let mut nodes = mesh_nodes(n, &mut rng);
    // A fifth of the nodes join late.
    for node in nodes.iter_mut().skip(1).step_by(5) {
        node.start_at = Some(rng.range(30 * SEC, 10 * MIN));
    }
    let (start, stop) = fault_window(duration, 0.6);
    let mix = ChaosMix {
        partitions: false,
        clogs: false,
        kills: false,
        crashes: true,
        filters: false,
        churn: true,
        mean_gap: MIN,
    };
    let plan = random_plan(
        &mut Rng::derive(seed, "faults"),
        n,
        start.max(10 * MIN),
        stop,
        &mix,
    );
    faulty(nodes, duration, plan, NetParams::default())
}

/// `chaos` with an application on every node (`model::app::DemoApp`): its registry
/// requests every 10 s per node (some answered, some refused, some never answered) and its
/// votes, under the same faults.
pub(super) fn app_chaos(opts: &Options, seed: u64) -> Scenario {
    let mut s = chaos(opts, seed);
    s.tuning.app = Some(std::sync::Arc::new(crate::model::app::DemoApp));
    s.query_every = Some(10 * crate::time::SEC);
    s
}

pub(super) fn chaos(opts: &Options, seed: u64) -> Scenario {
    let n = opts.nodes.unwrap_or(6).max(3);
    let duration = opts.duration.unwrap_or(30 * MIN);
    let mut rng = Rng::derive(seed, "topology");
    let mut nodes = mesh_nodes(n, &mut rng);
    // One node behind NAT; clocks off by up to ±1 h.
    let nat = rng.below(n as u64) as usize;
    nodes[nat].nat = true;
    for node in nodes.iter_mut() {
        node.clock_skew_secs = rng.range(0, 7200) as i64 - 3600;
    }
    let net = NetParams {
        latency_lo: MS,
        latency_hi: 200 * MS,
        jitter: 20 * MS,
        split_prob: 0.5,
        max_chunks: 6,
        refuse_prob: 0.02,
        hang_prob: 0.02,
        ..NetParams::default()
    };
    let (start, stop) = fault_window(duration, 0.5);
    let mix = ChaosMix {
        partitions: true,
        clogs: true,
        kills: true,
        crashes: true,
        filters: true,
        churn: false,
        mean_gap: MIN,
    };
    let plan = random_plan(&mut Rng::derive(seed, "faults"), n, start, stop, &mix);
    faulty(nodes, duration, plan, net)
}
