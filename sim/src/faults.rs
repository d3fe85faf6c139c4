//! Faults: what can go wrong on the network and in the nodes, and the plans that schedule
//! them. A plan is data (a sorted list of timed [`Fault`]s) generated from the seed before the
//! run starts, so a failing seed can be replayed and a plan can be printed.

use crate::net::wire::Kind;
use crate::rng::Rng;
use crate::time::{Micros, MIN, SEC};
use serde::Serialize;

/// Which side of a connection sent a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The side that dialed (the frame leaves on an outbound connection).
    Outbound,
    /// The side that accepted (the frame leaves on an inbound connection).
    Inbound,
}

/// Drops whole frames matching kind, direction and sender. Applied when the sender puts the
/// frame on the link; the rest of the stream is unchanged (it is re-framed, not corrupted).
#[derive(Clone, Debug, Serialize)]
pub struct Filter {
    /// Bit set of [`Kind::bit`].
    pub kinds: u16,
    /// Only frames sent on connections of this direction (as the sender sees it).
    pub side: Option<Side>,
    /// Only frames sent by this node.
    pub from: Option<usize>,
    /// Probability of dropping a matching frame.
    pub prob: f64,
}

impl Filter {
    pub fn kinds(kinds: &[Kind]) -> u16 {
        kinds.iter().fold(0, |m, k| m | k.bit())
    }

    pub fn matches(&self, kind: Kind, side: Side, from: usize) -> bool {
        self.kinds & kind.bit() != 0
            && self.side.is_none_or(|s| s == side)
            && self.from.is_none_or(|f| f == from)
    }

    pub fn describe(&self) -> String {
        let kinds: Vec<&str> = Kind::ALL
            .iter()
            .filter(|k| self.kinds & k.bit() != 0)
            .map(|k| k.as_str())
            .collect();
        let side = match self.side {
            Some(Side::Outbound) => " on outbound connections",
            Some(Side::Inbound) => " on inbound connections",
            None => "",
        };
        let from = self.from.map(|n| format!(" from n{n}")).unwrap_or_default();
        format!(
            "drop {:.0}% of {}{side}{from}",
            self.prob * 100.0,
            kinds.join("+")
        )
    }
}

/// How a connection is killed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KillHow {
    /// Both ends see an orderly close.
    Fin,
    /// Both ends see a reset.
    Rst,
    /// Neither end is told; everything sent is lost (half-open until a timeout notices).
    Silent,
}

/// How a node goes down.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownHow {
    /// `kill -9`: the process dies, the kernel closes its sockets (FIN, or RST with unread data).
    Kill,
    /// Power loss: the host vanishes without a word; its peers' connections go half-open.
    PowerOff,
    /// Graceful shutdown: goodbyes, then exit.
    Shutdown,
}

/// One fault, at one instant.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Nodes in different groups cannot reach each other (in either direction) until `Heal`.
    Partition {
        groups: Vec<u16>,
    },
    Heal,
    /// Nothing from `from` reaches `to` (one way) until `Unclog`.
    Clog {
        from: usize,
        to: usize,
    },
    Unclog {
        from: usize,
        to: usize,
    },
    FilterOn {
        id: usize,
        filter: Filter,
    },
    FilterOff {
        id: usize,
    },
    /// Kills one random live connection.
    KillConn {
        how: KillHow,
    },
    /// Takes a node down; its store survives.
    Down {
        node: usize,
        how: DownHow,
    },
    /// Starts a node that was down (or never started), with its store.
    Up {
        node: usize,
    },
}

impl Fault {
    pub fn label(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::Heal => "heal",
            Fault::Clog { .. } => "clog",
            Fault::Unclog { .. } => "unclog",
            Fault::FilterOn { .. } => "filter_on",
            Fault::FilterOff { .. } => "filter_off",
            Fault::KillConn { .. } => "kill_conn",
            Fault::Down { .. } => "down",
            Fault::Up { .. } => "up",
        }
    }
}

/// A timed list of faults.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultPlan {
    pub faults: Vec<(Micros, Fault)>,
    /// The instant after which no fault is active (everything healed, every node back).
    pub healed_at: Micros,
}

impl FaultPlan {
    pub fn push(&mut self, at: Micros, f: Fault) {
        self.faults.push((at, f));
    }

    /// Sorts by time (stable: same-time faults keep their insertion order).
    pub fn finish(mut self) -> Self {
        self.faults.sort_by_key(|(t, _)| *t);
        self.healed_at = self
            .healed_at
            .max(self.faults.last().map(|(t, _)| *t).unwrap_or(0));
        self
    }
}

/// What random faults a plan may contain.
#[derive(Clone, Debug)]
pub struct ChaosMix {
    pub partitions: bool,
    pub clogs: bool,
    pub kills: bool,
    pub crashes: bool,
    pub filters: bool,
    /// Nodes leave (shutdown or crash) and come back.
    pub churn: bool,
    /// Mean time between faults.
    pub mean_gap: Micros,
}

/// Generates random faults for `nodes` nodes between `start` and `stop`; every fault is healed
/// by `stop`.
pub fn random_plan(
    rng: &mut Rng,
    nodes: usize,
    start: Micros,
    stop: Micros,
    mix: &ChaosMix,
) -> FaultPlan {
    let mut plan = FaultPlan::default();
    let mut kinds: Vec<u8> = Vec::new();
    if mix.partitions {
        kinds.push(0);
    }
    if mix.clogs {
        kinds.push(1);
    }
    if mix.kills {
        kinds.push(2);
    }
    if mix.crashes {
        kinds.push(3);
    }
    if mix.filters {
        kinds.push(4);
    }
    if mix.churn {
        kinds.push(5);
    }
    if kinds.is_empty() || nodes < 2 || stop <= start {
        plan.healed_at = start;
        return plan;
    }
    // Node downtime must not overlap for one node: track when each is back.
    let mut node_back = vec![0 as Micros; nodes];
    let mut filter_id = 0;
    let mut t = start;
    loop {
        t += rng.range(mix.mean_gap / 2, mix.mean_gap * 3 / 2);
        if t >= stop {
            break;
        }
        let room = stop - t;
        let dur = rng.range(10 * SEC, (5 * MIN).min(room)).min(room);
        let end = t + dur;
        match kinds[rng.below(kinds.len() as u64) as usize] {
            0 => {
                let groups: Vec<u16> = (0..nodes).map(|_| rng.below(2) as u16).collect();
                plan.push(t, Fault::Partition { groups });
                plan.push(end, Fault::Heal);
            }
            1 => {
                let from = rng.below(nodes as u64) as usize;
                let mut to = rng.below(nodes as u64 - 1) as usize;
                if to >= from {
                    to += 1;
                }
                plan.push(t, Fault::Clog { from, to });
                plan.push(end, Fault::Unclog { from, to });
            }
            2 => {
                let how = [KillHow::Fin, KillHow::Rst, KillHow::Silent][rng.below(3) as usize];
                plan.push(t, Fault::KillConn { how });
            }
            3 | 5 => {
                let node = rng.below(nodes as u64) as usize;
                if node_back[node] > t {
                    continue;
                }
                let how = if mix.churn && rng.chance(0.4) {
                    DownHow::Shutdown
                } else if rng.chance(0.5) {
                    DownHow::Kill
                } else {
                    DownHow::PowerOff
                };
                plan.push(t, Fault::Down { node, how });
                plan.push(end, Fault::Up { node });
                node_back[node] = end + SEC;
            }
            _ => {
                // Never Hello: a peer whose Hello vanished while its later frames arrive is
                // indistinguishable from a protocol violator, and is (rightly) banned.
                let kinds_pool = [
                    Filter::kinds(&[Kind::Pong]),
                    Filter::kinds(&[Kind::Ping]),
                    Filter::kinds(&[Kind::Ping, Kind::Pong]),
                    Filter::kinds(&[Kind::Request, Kind::Response]),
                ];
                let kinds = kinds_pool[rng.below(kinds_pool.len() as u64) as usize];
                let side = [None, Some(Side::Outbound), Some(Side::Inbound)][rng.below(3) as usize];
                let from = rng.chance(0.5).then(|| rng.below(nodes as u64) as usize);
                let prob = [0.3, 0.7, 1.0][rng.below(3) as usize];
                let id = filter_id;
                filter_id += 1;
                plan.push(
                    t,
                    Fault::FilterOn {
                        id,
                        filter: Filter {
                            kinds,
                            side,
                            from,
                            prob,
                        },
                    },
                );
                plan.push(end, Fault::FilterOff { id });
            }
        }
    }
    plan.healed_at = stop;
    plan.finish()
}
