//! Chain scenarios: sync from nothing, a fork across a partition, and sync under chaos.
//!
//! Each sets a [`ChainSpec`] (which prefix of the prebuilt chain every node starts with, who
//! produces) and the [`Checks::same_tip`] deadline: after the last fault healed (the start,
//! when there are none), every live node must be on one tip within it. The CLI defaults are
//! the figures; the `*_with` builders take smaller ones for tests.

use super::faulty::{chaos, fast_tuning, faulty, liveness_deadline, mesh_nodes};
use super::{ChainSpec, NetParams, Options, Scenario};
use crate::faults::{Fault, FaultPlan};
use crate::rng::Rng;
use crate::time::{Micros, MIN, SEC};

/// `sync-from-zero`: the producer's height.
pub const SYNC_HEIGHT: u64 = 10_000;
/// `fork`: the common base every node starts with.
pub const FORK_BASE: u64 = 100;
/// `fork`: the two producers' intervals (the first half's is faster, so its chain is higher).
pub const FORK_FAST: Micros = 10 * SEC;
pub const FORK_SLOW: Micros = 25 * SEC;
/// `sync-chaos`: the producer's height at the start, and its interval.
pub const CHAOS_HEIGHT: u64 = 2_000;
pub const CHAOS_PRODUCE_EVERY: Micros = 20 * SEC;

/// Time to converge after the heal: reconnecting (the liveness deadline: worst backoff, a
/// handshake, a probe) plus two minutes for a stalled range to be retried elsewhere (the core
/// rests a stalled peer for 60 s), the fork search and the fetch.
fn same_tip_deadline() -> Micros {
    liveness_deadline(&fast_tuning()) + 2 * MIN
}

/// `sync-from-zero` with the defaults of `timed-sim list`.
pub(super) fn sync_from_zero(opts: &Options, seed: u64) -> Scenario {
    sync_from_zero_with(
        opts.nodes.unwrap_or(6).max(2),
        SYNC_HEIGHT,
        opts.duration.unwrap_or(5 * MIN),
        seed,
    )
}

/// Node 0 holds `height` blocks and does not produce (its tip is the target); the other
/// `nodes - 1` start from genesis. Full mesh, ordinary latencies and chunking, no faults.
pub fn sync_from_zero_with(nodes: usize, height: u64, duration: Micros, seed: u64) -> Scenario {
    let defs = mesh_nodes(nodes, &mut Rng::derive(seed, "topology"));
    let mut s = faulty(defs, duration, FaultPlan::default(), NetParams::default());
    s.checks.same_tip = Some(2 * MIN);
    let mut start_heights = vec![0; nodes];
    start_heights[0] = height;
    s.set_chain(ChainSpec {
        start_heights,
        tx_every: 100,
        producers: Vec::new(),
    });
    s
}

/// `fork` with the defaults of `timed-sim list`.
pub(super) fn fork(opts: &Options, seed: u64) -> Scenario {
    fork_with(
        opts.nodes.unwrap_or(6).max(2),
        opts.duration.unwrap_or(20 * MIN),
        seed,
    )
}

/// Every node starts at [`FORK_BASE`]; node 0 produces every [`FORK_FAST`], node `n/2` every
/// [`FORK_SLOW`]. From `duration/10` to `duration·3/5` the halves `0..n/2` and `n/2..` cannot
/// reach each other, so each extends its own branch; the fast half's ends higher (about 2.5×
/// as many blocks). After the heal every node must switch to (or keep) the fast half's chain —
/// heights never tie at the heal, so the outcome is well-defined. Both keep producing on the
/// winning chain afterwards; a rare race between them is a short fork, settled by the next
/// block.
pub fn fork_with(nodes: usize, duration: Micros, seed: u64) -> Scenario {
    let defs = mesh_nodes(nodes, &mut Rng::derive(seed, "topology"));
    let half = nodes / 2;
    let (split, heal) = (duration / 10, duration * 3 / 5);
    let mut plan = FaultPlan::default();
    plan.push(
        split,
        Fault::Partition {
            groups: (0..nodes).map(|i| u16::from(i >= half)).collect(),
        },
    );
    plan.push(heal, Fault::Heal);
    let mut s = faulty(defs, duration, plan.finish(), NetParams::default());
    s.checks.same_tip = Some(same_tip_deadline());
    s.set_chain(ChainSpec {
        start_heights: vec![FORK_BASE; nodes],
        tx_every: 10,
        producers: vec![(0, FORK_FAST), (half, FORK_SLOW)],
    });
    s
}

/// `sync-chaos` with the defaults of `timed-sim list`.
pub(super) fn sync_chaos(opts: &Options, seed: u64) -> Scenario {
    sync_chaos_with(opts, CHAOS_HEIGHT, seed)
}

/// The `chaos` scenario of the same seed (same nodes, network and fault plan), plus a chain:
/// node 0 starts at `height` and produces every [`CHAOS_PRODUCE_EVERY`]; every other node
/// starts from genesis or from a random prefix, and about half of them join late, while the
/// faults are on. The faults stop at half the run at the latest; then one tip within the
/// deadline.
pub fn sync_chaos_with(opts: &Options, height: u64, seed: u64) -> Scenario {
    let mut s = chaos(opts, seed);
    let n = s.nodes.len();
    let mut rng = Rng::derive(seed, "chain");
    let healed = s.plan.healed_at;
    let mut start_heights = vec![0; n];
    start_heights[0] = height;
    for (node, start) in s.nodes.iter_mut().zip(start_heights.iter_mut()).skip(1) {
        if rng.chance(0.5) {
            *start = rng.below(height);
        }
        // Late joiners come up while the faults are on (their peers have been dialing them
        // and backing off meanwhile), so that they sync under faults.
        if rng.chance(0.5) && healed > 2 * MIN {
            node.start_at = Some(rng.range(MIN, healed - MIN));
        }
    }
    s.checks.same_tip = Some(same_tip_deadline());
    s.set_chain(ChainSpec {
        start_heights,
        tx_every: 50,
        producers: vec![(0, CHAOS_PRODUCE_EVERY)],
    });
    s
}
