//! The run summary. Field names are stable: scripts and CI read them.

use crate::engine::Sim;
use crate::invariants::{first_common_tip, tips_at, Violation};
use crate::metrics::median;
use crate::model::{NodeModel, TipChange};
use crate::time::{secs, Micros, HOUR, SEC};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub model: String,
    pub seed: u64,
    pub nodes: usize,
    pub virtual_secs: f64,
    pub wall_secs: f64,
    pub events: u64,
    pub events_per_sec: f64,
    /// Most connections a pair held for longer than the settle grace (1 = never duplicated).
    pub max_connections_per_pair: u32,
    /// Most connections a pair held at any instant (dedup in progress included).
    pub max_connections_per_pair_transient: u32,
    /// Most connections a pair holds at the end.
    pub final_connections_per_pair: u32,
    /// Pairs connected at both ends at the end / pairs that list each other.
    pub pairs_connected_final: usize,
    pub pairs_required: usize,
    /// Connections that came up (both ends) to replace a lost one of the same pair.
    pub reconnects_total: u64,
    pub reconnects_per_pair_hour: f64,
    /// Median time from a connection coming up to its replacement coming up.
    pub cycle_period_secs: Option<f64>,
    pub pings_sent: u64,
    pub pongs_received: u64,
    /// Answered / (answered + lost), lost = unanswered and older than 5 s when its connection
    /// ended or the run did.
    pub pong_success_rate: Option<f64>,
    pub pong_success_rate_outbound: Option<f64>,
    pub pong_success_rate_inbound: Option<f64>,
    pub pings_lost: u64,
    /// Pongs that answered no ping sent on their connection.
    pub stray_pongs: u64,
    pub rtt_ms_p50: Option<f64>,
    pub rtt_ms_p99: Option<f64>,
    pub ping_timeouts: u64,
    pub frames_dropped_by_filters: u64,
    pub faults_applied: u64,
    pub queries_started: u64,
    pub queries_ok: u64,
    pub queries_failed: u64,
    /// Ended queries (the core's or an application's) by result: `ok`, or why not.
    pub query_results: BTreeMap<&'static str, u64>,
    pub invariant_violations: u64,
    pub violations_by_kind: BTreeMap<&'static str, u64>,
    pub first_violations: Vec<Violation>,
    /// The command that replays this run (always set; the point of a seed).
    pub replay: String,
    pub stopped_early: bool,
    pub trace_hash: String,
    // Chain figures (chain scenarios; the ping workload leaves them at genesis).
    pub height_min: Option<u64>,
    pub height_max: Option<u64>,
    pub reorgs: Option<u64>,
    pub blocks_applied: Option<u64>,
    /// Chain scenarios: virtual seconds from the last fault healing (the start, when there are
    /// none) until every live node was on one tip.
    pub sync_secs: Option<f64>,
    /// Chain scenarios: (height of that common tip − the lowest node's height when the clock
    /// started) / `sync_secs`: how fast the slowest node's chain grew, in virtual blocks/s.
    pub sync_blocks_per_sec: Option<f64>,
}

/// The chain check and figures of a run (see [`crate::invariants`], "Same tip").
struct ChainOutcome {
    sync_secs: Option<f64>,
    blocks_per_sec: Option<f64>,
    violation: Option<Violation>,
}

fn short(hash: &[u8; 32]) -> String {
    hash[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn chain_outcome<M: NodeModel>(sim: &Sim<M>) -> Option<ChainOutcome> {
    let deadline = sim.scenario.checks.same_tip?;
    let nodes: Vec<(usize, &[TipChange])> = sim
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.alive)
        .filter_map(|(i, n)| Some((i, n.model.as_ref()?.tip_log())))
        .collect();
    if nodes.is_empty() || nodes.iter().any(|(_, l)| l.is_empty()) {
        return None; // a model without a chain
    }
    let logs: Vec<&[TipChange]> = nodes.iter().map(|(_, l)| *l).collect();
    let from = sim.scenario.plan.healed_at;
    let common = first_common_tip(&logs, from);
    let sync_secs = common.map(|(t, _)| round(secs(t - from), 6));
    let lowest = tips_at(&logs, from)
        .iter()
        .map(|t| t.map_or(0, |c| c.height))
        .min()
        .unwrap_or(0);
    let blocks_per_sec = match (common, sync_secs) {
        (Some((_, h)), Some(s)) if s > 0.0 => Some(round(h.saturating_sub(lowest) as f64 / s, 1)),
        _ => None,
    };
    let due: Micros = from.saturating_add(deadline);
    let late = common.is_none_or(|(t, _)| t > due);
    // Judged once the run got to the deadline (a run stopped earlier by another violation
    // was not); a run that went past it was stopped by nothing earlier than this violation.
    let violation = (late && due <= sim.now).then(|| {
        let tips = tips_at(&logs, due);
        let mut distinct: Vec<(u64, [u8; 32])> = tips
            .iter()
            .flatten()
            .map(|c| (c.height, c.hash))
            .collect();
        distinct.sort();
        distinct.dedup();
        let list: Vec<String> = nodes
            .iter()
            .zip(&tips)
            .map(|((i, _), t)| match t {
                Some(c) => format!("n{i} {}/{}", c.height, short(&c.hash)),
                None => format!("n{i} -"),
            })
            .collect();
        Violation {
            at: due,
            kind: "same_tip",
            detail: format!(
                "live nodes were never all on one tip within {}s after the last fault healed ({} tips at the deadline: {}){}",
                deadline / SEC,
                distinct.len(),
                list.join(", "),
                match common {
                    Some((t, h)) => format!("; they met at height {h} only at {:.3}s", secs(t)),
                    None => String::new(),
                }
            ),
        }
    });
    Some(ChainOutcome {
        sync_secs,
        blocks_per_sec,
        violation,
    })
}

fn round(v: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (v * k).round() / k
}

impl Summary {
    pub fn from_sim<M: NodeModel>(sim: &Sim<M>, replay: String, wall_secs: f64) -> Summary {
        let virtual_secs = secs(sim.now);
        let hours = sim.now as f64 / HOUR as f64;
        let pairs_connected_ever = sim.pairs.iter().filter(|p| p.connects > 0).count();
        let reconnects_total: u64 = sim.pairs.iter().map(|p| p.reconnects).sum();
        let settled = sim
            .pairs
            .iter()
            .map(|p| p.max_settled.max(p.max_live.min(1)))
            .max()
            .unwrap_or(0);
        let mut cycles = sim.cycle_intervals.clone();
        let mut ping_timeouts = 0;
        let (mut hmin, mut hmax, mut reorgs, mut blocks) = (None::<u64>, None::<u64>, 0, 0);
        for n in &sim.nodes {
            if let Some(m) = n.model.as_ref() {
                let c = m.counters();
                ping_timeouts += c.ping_timeouts;
                hmin = Some(hmin.map_or(c.height, |h| h.min(c.height)));
                hmax = Some(hmax.map_or(c.height, |h| h.max(c.height)));
                reorgs += c.reorgs;
                blocks += c.blocks_applied;
            }
        }
        // Nodes that crashed took their counters with them; the machine model keeps a tally
        // of those in the persisted part, the legacy model has none. (See model docs.)
        ping_timeouts += sim.retired_ping_timeouts;
        let out = &sim.pings_outbound;
        let inb = &sim.pings_inbound;
        let all = crate::metrics::PingStats {
            sent: out.sent + inb.sent,
            answered: out.answered + inb.answered,
            lost: out.lost + inb.lost,
            undecided: out.undecided + inb.undecided,
        };
        let pairs_required = sim.required_pairs.len();
        let pairs_connected_final = sim
            .required_pairs
            .iter()
            .filter(|&&(a, b)| sim.pair_lookup(a, b).is_some_and(|p| p.both > 0))
            .count();
        let model_reports_chain = M::NAME == "machine";
        let chain = chain_outcome(sim);
        let mut violations = sim.violations.clone();
        if let Some(v) = chain.as_ref().and_then(|c| c.violation.clone()) {
            violations.record_late(v);
        }
        Summary {
            scenario: sim.scenario.name.to_string(),
            model: M::NAME.to_string(),
            seed: sim.seed,
            nodes: sim.nodes.len(),
            virtual_secs,
            wall_secs: round(wall_secs, 4),
            events: sim.events,
            events_per_sec: if wall_secs > 0.0 {
                (sim.events as f64 / wall_secs).round()
            } else {
                0.0
            },
            max_connections_per_pair: settled,
            max_connections_per_pair_transient: sim
                .pairs
                .iter()
                .map(|p| p.max_live)
                .max()
                .unwrap_or(0),
            final_connections_per_pair: sim.live_per_pair().max().unwrap_or(0),
            pairs_connected_final,
            pairs_required,
            reconnects_total,
            reconnects_per_pair_hour: if pairs_connected_ever > 0 && hours > 0.0 {
                round(
                    reconnects_total as f64 / pairs_connected_ever as f64 / hours,
                    3,
                )
            } else {
                0.0
            },
            cycle_period_secs: median(&mut cycles).map(|m| round(secs(m), 3)),
            pings_sent: all.sent,
            pongs_received: all.answered,
            pong_success_rate: all.success_rate().map(|r| round(r, 4)),
            pong_success_rate_outbound: out.success_rate().map(|r| round(r, 4)),
            pong_success_rate_inbound: inb.success_rate().map(|r| round(r, 4)),
            pings_lost: all.lost,
            stray_pongs: sim.stray_pongs,
            rtt_ms_p50: sim.rtt.quantile(0.5).map(|v| round(v as f64 / 1000.0, 3)),
            rtt_ms_p99: sim.rtt.quantile(0.99).map(|v| round(v as f64 / 1000.0, 3)),
            ping_timeouts,
            frames_dropped_by_filters: sim.frames_dropped,
            faults_applied: sim.faults_applied,
            queries_started: sim.queries_started,
            queries_ok: sim.queries_ok,
            queries_failed: sim.queries_failed,
            query_results: sim.query_results.clone(),
            invariant_violations: violations.total,
            violations_by_kind: violations.by_kind,
            first_violations: violations.first,
            replay,
            stopped_early: sim.stopped_early,
            trace_hash: sim.trace_hash(),
            height_min: hmin.filter(|_| model_reports_chain),
            height_max: hmax.filter(|_| model_reports_chain),
            reorgs: model_reports_chain.then_some(reorgs),
            blocks_applied: model_reports_chain.then_some(blocks),
            sync_secs: chain.as_ref().and_then(|c| c.sync_secs),
            sync_blocks_per_sec: chain.as_ref().and_then(|c| c.blocks_per_sec),
        }
    }
}
