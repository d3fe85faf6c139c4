//! Invariants and their bookkeeping.
//!
//! Checked by the engine after every event, incrementally (each check touches only what the
//! event touched, or a deadline due now):
//!
//! - **At most one connection per node pair once settled.** A connection *counts* for a pair
//!   while both of its ends are open and both nodes report an established peer on it
//!   (`PeerUp`/`PeerMoved`, until `PeerDown` or close). A half-open connection — one end
//!   gone, the other not yet timed out — is one node's stale view, not a second connection:
//!   counting it flagged partitions in which each node held a *different* half-open link
//!   (sync-chaos seed 1951) although neither ever held two. A pair is *settled* once it has
//!   counted at most one connection for `Checks::settle_grace` (30 s by default, longer than
//!   the probe and handshake timeouts together); a pair above one for longer is a violation.
//! - **Every ping received on a live connection is answered on that same connection** within
//!   `Checks::pong_deadline`, unless the connection closed first or its writer is blocked by
//!   a full socket buffer. Observed on the wire, so it holds any model to the rule; a pong for
//!   that nonce on another connection is reported at once.
//! - **Every query ends exactly once**: a second `QueryDone` or none within the query timeout
//!   (plus slack) is a violation.
//! - **Bounded send queues**: the model's queued bytes stay within its own bound.
//! - **Liveness**: `Checks::liveness_deadline` after the last fault healed, every pair of
//!   nodes that list each other (both up, the dialed one reachable) is connected.
//! - **Same tip** (chain scenarios): within `Checks::same_tip` after the last fault healed,
//!   there is an instant at which every live node is on one tip (height and hash). Producers
//!   keep producing, so the tip may move on afterwards; what must happen is that everybody
//!   catches up once. Judged from the nodes' tip logs ([`first_common_tip`]) when the run
//!   reaches the deadline (see `report::json`).

use crate::model::TipChange;
use crate::time::Micros;
use serde::Serialize;
use std::collections::BTreeMap;

/// One broken rule.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub at: Micros,
    pub kind: &'static str,
    pub detail: String,
}

/// Violations of a run: counted by kind, the first few kept.
#[derive(Clone, Debug, Default)]
pub struct Violations {
    pub total: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub first: Vec<Violation>,
    /// The model is held to the rules (the legacy model is only measured against them).
    pub strict: bool,
}

const KEEP: usize = 20;

impl Violations {
    pub fn new(strict: bool) -> Self {
        Violations {
            strict,
            ..Default::default()
        }
    }

    pub fn record(&mut self, v: Violation) {
        self.total += 1;
        *self.by_kind.entry(v.kind).or_insert(0) += 1;
        if self.first.len() < KEEP {
            self.first.push(v);
        }
    }

    /// Records a violation found after the run (the same-tip check): it takes its place among
    /// the first ones by time, not last.
    pub fn record_late(&mut self, v: Violation) {
        self.total += 1;
        *self.by_kind.entry(v.kind).or_insert(0) += 1;
        self.first.push(v);
        self.first.sort_by_key(|v| v.at);
        self.first.truncate(KEEP);
    }
}

/// Connection accounting for one unordered node pair.
#[derive(Clone, Debug)]
pub struct Pair {
    pub a: u32,
    pub b: u32,
    /// Connections counted now (established at one end or more).
    pub live: u32,
    /// Connections established at both ends now.
    pub both: u32,
    /// Since when `live > 1`.
    pub over_since: Option<Micros>,
    pub stamp: u32,
    pub reported: bool,
    pub max_live: u32,
    /// Largest `live` that lasted beyond the settle grace.
    pub max_settled: u32,
    /// Connections that became established at both ends.
    pub connects: u64,
    /// Of those, the ones that replaced a lost connection of this pair.
    pub reconnects: u64,
    /// When the lost (not yet replaced) connections came up, and whether the pair's lower
    /// node dialed them; most recent last.
    pub closed_stack: Vec<(Micros, bool)>,
}

impl Pair {
    pub fn new(a: u32, b: u32) -> Self {
        Pair {
            a,
            b,
            live: 0,
            both: 0,
            over_since: None,
            stamp: 0,
            reported: false,
            max_live: 0,
            max_settled: 0,
            connects: 0,
            reconnects: 0,
            closed_stack: Vec::new(),
        }
    }
}

/// The first instant at or after `from` at which every log's current tip is the same (height
/// and hash), with that tip's height. A log's current tip at `t` is its last entry at or
/// before `t`; a log with none (or an empty list of logs) is never in agreement. Entries at the
/// same instant are all applied before comparing.
pub fn first_common_tip(logs: &[&[TipChange]], from: Micros) -> Option<(Micros, u64)> {
    if logs.is_empty() {
        return None;
    }
    // Each log's position: entries before `pos` have been applied.
    let mut pos: Vec<usize> = logs
        .iter()
        .map(|l| l.partition_point(|c| c.at <= from))
        .collect();
    let current = |pos: &[usize]| -> Option<(u64, [u8; 32])> {
        let mut tip = None;
        for (l, &p) in logs.iter().zip(pos) {
            let c = l.get(p.checked_sub(1)?)?;
            match tip {
                None => tip = Some((c.height, c.hash)),
                Some(t) if t == (c.height, c.hash) => {}
                Some(_) => return None,
            }
        }
        tip
    };
    if let Some((h, _)) = current(&pos) {
        return Some((from, h));
    }
    loop {
        let next = logs
            .iter()
            .zip(&pos)
            .filter_map(|(l, &p)| l.get(p).map(|c| c.at))
            .min()?;
        for (l, p) in logs.iter().zip(pos.iter_mut()) {
            while l.get(*p).is_some_and(|c| c.at == next) {
                *p += 1;
            }
        }
        if let Some((h, _)) = current(&pos) {
            return Some((next, h));
        }
    }
}

/// Each log's tip at `t` (its last entry at or before `t`), for reports.
pub fn tips_at(logs: &[&[TipChange]], t: Micros) -> Vec<Option<TipChange>> {
    logs.iter()
        .map(|l| {
            l.partition_point(|c| c.at <= t)
                .checked_sub(1)
                .map(|i| l[i])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tc(at: Micros, height: u64, h: u8) -> TipChange {
        TipChange {
            at,
            height,
            hash: [h; 32],
        }
    }

    #[test]
    fn the_common_tip_is_found_at_the_instant_the_last_node_gets_there() {
        let a = [tc(0, 10, 10)];
        let b = [tc(0, 0, 0), tc(5, 5, 5), tc(9, 10, 10)];
        let c = [tc(0, 0, 0), tc(7, 10, 10)];
        assert_eq!(first_common_tip(&[&a, &b, &c], 0), Some((9, 10)));
        // Already together at `from`.
        assert_eq!(first_common_tip(&[&a, &b, &c], 20), Some((20, 10)));
    }

    #[test]
    fn same_height_different_hash_is_not_one_tip_and_moving_on_together_is() {
        let a = [tc(0, 5, 1), tc(10, 6, 3)];
        let b = [tc(0, 5, 2), tc(10, 6, 3)];
        assert_eq!(first_common_tip(&[&a, &b], 0), Some((10, 6)));
        let c = [tc(0, 5, 2)];
        assert_eq!(first_common_tip(&[&a, &c], 0), None);
        assert_eq!(first_common_tip(&[], 0), None);
    }

    #[test]
    fn a_log_that_starts_later_is_unknown_until_then() {
        let a = [tc(0, 5, 5)];
        let b = [tc(4, 5, 5)];
        assert_eq!(first_common_tip(&[&a, &b], 0), Some((4, 5)));
        assert_eq!(tips_at(&[&a, &b], 2), vec![Some(a[0]), None]);
    }
}
