//! Invariants and their bookkeeping.
//!
//! Checked by the engine after every event, incrementally (each check touches only what the
//! event touched, or a deadline due now):
//!
//! - **At most one connection per node pair once settled.** A connection *counts* for a pair
//!   while at least one of its ends is open and its node reports an established peer on it
//!   (`PeerUp`/`PeerMoved`, until `PeerDown` or close). A pair is *settled* once it has
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
