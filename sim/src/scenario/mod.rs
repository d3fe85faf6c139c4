//! Scenarios: a topology, a network, a fault plan, a workload and the checks, all built from
//! `(name, options, seed)`.
//!
//! A [`Scenario`] is plain data. Adding one is adding a builder in a module here and a line in
//! [`CATALOG`]. Chain scenarios (`sync-from-zero`, `fork`, `sync-chaos`, in [`chain`]) set a
//! [`ChainSpec`] (initial heights, block production) with [`Scenario::set_chain`] and the
//! [`Checks::same_tip`] deadline.

pub mod chain;
mod faulty;
mod seed3;

use crate::faults::{FaultPlan, Filter};
use crate::time::{fmt_duration, Micros, HOUR, MS, SEC};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One catalogue entry.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub name: &'static str,
    pub about: &'static str,
    pub default_nodes: usize,
    pub default_duration: Micros,
    build: fn(&Options, u64) -> Scenario,
}

/// Every scenario `timed-sim list` shows.
pub const CATALOG: &[Entry] = &[
    Entry {
        name: "seed-3node",
        about: "the old test plan: 3 nodes on one host (127.0.0.1:7000/7001/7002), each listing the others, 1 virtual hour",
        default_nodes: 3,
        default_duration: HOUR,
        build: seed3::seed_3node,
    },
    Entry {
        name: "mesh",
        about: "N nodes on distinct IPs, fully connected (8 random outbound each above 100 nodes), the ping workload over a WAN (no random splits)",
        default_nodes: 50,
        default_duration: HOUR,
        build: seed3::mesh,
    },
    Entry {
        name: "pong-loss",
        about: "seed-3node with every liveness frame (ping, pong) sent on inbound connections dropped: must time out and cycle",
        default_nodes: 3,
        default_duration: HOUR,
        build: seed3::pong_loss,
    },
    Entry {
        name: "partition-heal",
        about: "8-node mesh split into random halves several times in the first 30 min, then healed: all pairs reconnect",
        default_nodes: 8,
        default_duration: HOUR,
        build: faulty::partition_heal,
    },
    Entry {
        name: "churn",
        about: "10-node mesh where nodes leave (shutdown, kill -9, power loss) and return with their store, late joiners too",
        default_nodes: 10,
        default_duration: HOUR,
        build: faulty::churn,
    },
    Entry {
        name: "chaos",
        about: "6 nodes, one behind NAT, skewed clocks, lossy connects; random partitions, clogs, kills, crashes, filters; then healed",
        default_nodes: 6,
        default_duration: 30 * crate::time::MIN,
        build: faulty::chaos,
    },
    Entry {
        name: "app-chaos",
        about: "chaos with an application on every node: its own request protocol (answered, refused, never answered) and a vote topic; every request ends once, every reply on its request's connection",
        default_nodes: 6,
        default_duration: 30 * crate::time::MIN,
        build: faulty::app_chaos,
    },
    Entry {
        name: "sync-from-zero",
        about: "a producer at height 10,000 and 5 fresh nodes (height 0), fully connected: all reach its tip; reports virtual blocks/s",
        default_nodes: 6,
        default_duration: 5 * crate::time::MIN,
        build: chain::sync_from_zero,
    },
    Entry {
        name: "fork",
        about: "6 nodes from a common base split in two halves for 10 min, each with a producer (10 s vs 25 s): after healing all are on the higher chain",
        default_nodes: 6,
        default_duration: 20 * crate::time::MIN,
        build: chain::fork,
    },
    Entry {
        name: "sync-chaos",
        about: "chaos (partitions, clogs, kills, crashes, filters, NAT, skew) while fresh and late nodes sync 2,000 blocks from a producer; then healed: one tip",
        default_nodes: 6,
        default_duration: 30 * crate::time::MIN,
        build: chain::sync_chaos,
    },
];

pub fn find(name: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// The user's overrides.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub nodes: Option<usize>,
    pub duration: Option<Micros>,
}

impl Entry {
    pub fn build(&self, opts: &Options, seed: u64) -> Scenario {
        let mut s = (self.build)(opts, seed);
        s.name = self.name;
        s
    }
}

/// Timers and limits given to every node of a run.
#[derive(Clone, Debug)]
pub struct Tuning {
    pub ping_interval: Micros,
    pub ping_timeout: Micros,
    pub handshake_timeout: Micros,
    pub probe_timeout: Micros,
    pub query_timeout: Micros,
    pub backoff_initial: Micros,
    pub backoff_max: Micros,
    pub backoff_reset_after: Micros,
    /// The legacy node's constants (from its notes): ping every 30 s, 3 missed pongs.
    pub legacy: LegacyTuning,
    /// The chain each node starts with and who produces blocks (chain scenarios). It rides in
    /// the tuning because that is what every node is handed at boot; set it with
    /// [`Scenario::set_chain`], which keeps [`Scenario::chain`] in step.
    pub chain: Option<std::sync::Arc<ChainSpec>>,
    /// The application every node runs beside the core's own protocols (its protocols,
    /// topics, answers and verdicts), if any.
    #[cfg(feature = "machine")]
    pub app: Option<std::sync::Arc<dyn crate::model::app::SimApp>>,
}

#[derive(Clone, Debug)]
pub struct LegacyTuning {
    pub ping_interval: Micros,
    pub max_missed_pongs: u32,
    /// The client loop's sleep before reconnecting after a connection ended.
    pub reconnect_delay: Micros,
    pub connect_timeout: Micros,
    /// The key the server's message loop uses to find the writer for a reply.
    pub reply_key: ReplyKey,
}

/// How the legacy server looks up the writer for a reply (see `legacy` docs, rule 5).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplyKey {
    /// `IP:ephemeral_port`, against writers registered by bare IP: never found.
    PeerSocketAddr,
    /// The bare IP: the last-registered writer for that IP.
    BareIp,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            ping_interval: 30 * SEC,
            ping_timeout: 90 * SEC,
            handshake_timeout: 10 * SEC,
            probe_timeout: 5 * SEC,
            query_timeout: 10 * SEC,
            backoff_initial: SEC,
            backoff_max: 300 * SEC,
            backoff_reset_after: 60 * SEC,
            legacy: LegacyTuning {
                ping_interval: 30 * SEC,
                max_missed_pongs: 3,
                reconnect_delay: 5 * SEC,
                connect_timeout: 10 * SEC,
                reply_key: ReplyKey::PeerSocketAddr,
            },
            chain: None,
            #[cfg(feature = "machine")]
            app: None,
        }
    }
}

/// The network between the nodes.
#[derive(Clone, Debug)]
pub struct NetParams {
    /// Each connection's one-way base latency is drawn from `lo..=hi` when it opens (a fixed
    /// latency is `lo == hi`); between two nodes on one host, `same_host` is used instead.
    pub latency_lo: Micros,
    pub latency_hi: Micros,
    pub same_host: Micros,
    /// Every delivered chunk adds `0..=jitter` (order is kept).
    pub jitter: Micros,
    /// Probability that a write is delivered in several chunks split at random boundaries.
    pub split_prob: f64,
    pub max_chunks: u32,
    /// Probability that a connect is refused (RST) or hangs (SYN lost) for no other reason,
    /// until the fault plan has healed.
    pub refuse_prob: f64,
    pub hang_prob: f64,
    /// Bytes one direction of a connection holds in flight (socket buffers); a writer beyond
    /// it waits, which is how a slow reader pushes back.
    pub socket_buffer: usize,
}

impl Default for NetParams {
    fn default() -> Self {
        NetParams {
            latency_lo: 5 * MS,
            latency_hi: 60 * MS,
            same_host: 60,
            jitter: 2 * MS,
            split_prob: 0.3,
            max_chunks: 4,
            refuse_prob: 0.0,
            hang_prob: 0.0,
            socket_buffer: 1 << 20,
        }
    }
}

/// One node in the topology.
#[derive(Clone, Debug)]
pub struct NodeDef {
    pub ip: IpAddr,
    pub port: u16,
    /// Addresses it dials and stays connected to (`--peer`).
    pub peers: Vec<SocketAddr>,
    /// Behind NAT: cannot accept inbound connections.
    pub nat: bool,
    /// Seconds this host's wall clock is off.
    pub clock_skew_secs: i64,
    /// Starts later (a joiner), at this instant; `None` = at zero.
    pub start_at: Option<Micros>,
}

impl NodeDef {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// Chain setup of a chain scenario.
///
/// Every node starts with a prefix of one deterministic prebuilt chain (the same blocks on
/// every node and in every run: empty blocks one second apart, with a few small transactions
/// every `tx_every` blocks). Producers then extend their own tip on a timer
/// (`Config::produce_blocks`), for the whole run.
#[derive(Clone, Debug, Default)]
pub struct ChainSpec {
    /// Height of the prebuilt prefix each node holds when it first boots, by node index
    /// (missing entries: 0, genesis only). A restarted node keeps its store instead.
    pub start_heights: Vec<u64>,
    /// Every `tx_every`-th prebuilt block carries a few small transactions (0: none do).
    pub tx_every: u64,
    /// `(node, interval)`: the node produces a block on its tip every `interval`.
    pub producers: Vec<(usize, Micros)>,
}

impl ChainSpec {
    pub fn start_height(&self, node: usize) -> u64 {
        self.start_heights.get(node).copied().unwrap_or(0)
    }

    pub fn produce_every(&self, node: usize) -> Option<Micros> {
        self.producers
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, every)| *every)
    }
}

/// What a run must show.
#[derive(Clone, Debug)]
pub struct Checks {
    /// A pair may hold more than one connection for this long (dedup, probe, handshake).
    pub settle_grace: Micros,
    /// A received ping must be answered on its connection within this.
    pub pong_deadline: Micros,
    /// Every pair of nodes that list each other (both up) is connected at `healed_at +
    /// liveness_deadline`, if set.
    pub liveness_deadline: Option<Micros>,
    /// Chain scenarios: every live node is on one tip (same height and hash) at some instant
    /// between `healed_at` and `healed_at + same_tip`, if set (see
    /// [`invariants::first_common_tip`](crate::invariants::first_common_tip)).
    pub same_tip: Option<Micros>,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            settle_grace: 30 * SEC,
            pong_deadline: 10 * SEC,
            liveness_deadline: None,
            same_tip: None,
        }
    }
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub duration: Micros,
    pub nodes: Vec<NodeDef>,
    pub net: NetParams,
    pub tuning: Tuning,
    /// Filters active for the whole run.
    pub filters: Vec<Filter>,
    pub plan: FaultPlan,
    /// Each node queries a random peer's tip this often (exercises "every query ends once").
    pub query_every: Option<Micros>,
    pub chain: Option<ChainSpec>,
    pub checks: Checks,
}

impl Scenario {
    /// Makes this a chain scenario: every node boots with its prefix of the prebuilt chain and
    /// the producers produce.
    pub fn set_chain(&mut self, chain: ChainSpec) {
        self.tuning.chain = Some(std::sync::Arc::new(chain.clone()));
        self.chain = Some(chain);
    }

    /// Index of the node listening on `addr`.
    pub fn node_at(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr() == addr)
    }
}

/// `10.{i/250}.{i%250}.{1..}`-style distinct addresses.
pub fn distinct_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        (i / 62500) as u8,
        ((i / 250) % 250) as u8,
        (i % 250 + 1) as u8,
    ))
}

/// Full mesh (every node lists every other) up to `full_up_to` nodes; above, `outbound`
/// random distinct peers each.
pub fn mesh_peers(
    nodes: &mut [NodeDef],
    rng: &mut crate::rng::Rng,
    full_up_to: usize,
    outbound: usize,
) {
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    let n = nodes.len();
    for (i, node) in nodes.iter_mut().enumerate() {
        node.peers.clear();
        if n <= full_up_to {
            node.peers.extend(
                addrs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, a)| *a),
            );
        } else {
            let mut picked = std::collections::BTreeSet::new();
            while picked.len() < outbound.min(n - 1) {
                let j = rng.below(n as u64) as usize;
                if j != i {
                    picked.insert(j);
                }
            }
            node.peers.extend(picked.into_iter().map(|j| addrs[j]));
        }
    }
}

/// What identifies a run: enough to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSpec {
    pub scenario: String,
    pub model: String,
    pub seed: u64,
    pub nodes: Option<usize>,
    pub duration: Option<Micros>,
}

impl RunSpec {
    /// The exact command that replays this run.
    pub fn replay_command(&self) -> String {
        let mut s = format!(
            "timed-sim run --scenario {} --model {} --seed {}",
            self.scenario, self.model, self.seed
        );
        if let Some(n) = self.nodes {
            s.push_str(&format!(" --nodes {n}"));
        }
        if let Some(d) = self.duration {
            s.push_str(&format!(" --duration {}", fmt_duration(d)));
        }
        s
    }
}
