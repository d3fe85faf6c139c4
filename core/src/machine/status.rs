//! A read-only snapshot of the machine, for APIs, dashboards and tests.

use crate::chain::{BlockHash, Network};
use crate::id::{ConnId, NodeId};
use crate::machine::io::{CloseKind, Direction, DownReason, Misbehaviour, QueryError};
use crate::machine::{ProtocolStats, TopicStats};
use crate::protocol::{ProtocolId, TopicId};
use crate::time::{Duration, Instant};
use crate::wire::{GoodbyeReason, RefuseReason};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

/// Upper bounds (milliseconds) of the RTT histogram buckets; a last, unbounded bucket follows.
pub const RTT_BUCKETS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/// The whole machine at one instant ([`PeerMachine::status`](crate::PeerMachine::status)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node's identity.
    pub node_id: NodeId,
    /// The network this node is on.
    pub network: Network,
    /// This process's boot nonce, as sent in `Hello`.
    pub boot: u64,
    /// Height of our best block.
    pub height: u64,
    /// Hash of our best block.
    pub tip_hash: BlockHash,
    /// Hash of the network's genesis block.
    pub genesis_hash: BlockHash,
    /// Established peers, ordered by node id.
    pub peers: Vec<PeerStatus>,
    /// Connections in any state (dialing, handshaking, established).
    pub connections: usize,
    /// True while some peer is known to be ahead of us.
    pub syncing: bool,
    /// The best height a peer has told us about, when above ours.
    pub sync_target: Option<u64>,
    /// Transactions in the mempool.
    pub mempool_len: usize,
    /// Bytes of transaction data in the mempool (bounded by `Config::mempool_max_bytes`).
    pub mempool_bytes: usize,
    /// Addresses in the address book.
    pub addr_book_len: usize,
    /// Set once the machine has stopped (after shutdown or a store failure).
    pub stopped: bool,
    /// Every counter since the machine started.
    pub counters: Counters,
    /// Every protocol this node runs (the core's and the application's), by id.
    pub protocols: BTreeMap<ProtocolId, ProtocolStats>,
    /// Every topic this node takes part in, by id.
    pub topics: BTreeMap<TopicId, TopicStats>,
}

/// One established peer, in a [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's node id.
    pub node_id: NodeId,
    /// The connection the peer is on.
    pub conn: ConnId,
    /// Which side opened that connection.
    pub direction: Direction,
    /// The remote address of that connection.
    pub remote_addr: SocketAddr,
    /// RTT of the most recent answered ping.
    pub rtt: Option<Duration>,
    /// When the handshake on this connection completed.
    pub connected_since: Instant,
    /// Pings we sent on this connection.
    pub pings_sent: u64,
    /// Pongs that answered one of our recent pings on this connection.
    pub pongs_received: u64,
    /// Pings the peer sent us. The dialer keeps a connection alive, so on an inbound
    /// connection this, not `pings_sent`, is what keeps counting.
    pub pings_received: u64,
    /// The best height the peer's `Hello` announced (not updated afterwards).
    pub best_height: u64,
    /// The peer's user agent, cut to `MAX_USER_AGENT` bytes; `?` when it sent none.
    pub user_agent: String,
    /// The protocols the peer advertised in its `Hello`, sorted by id.
    pub protocols: Vec<ProtocolId>,
    /// The topics the peer advertised in its `Hello`, sorted by id.
    pub topics: Vec<TopicId>,
}

/// Monotonic counters since the machine started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Inbound connections accepted.
    pub conns_inbound: u64,
    /// Outbound connections started (counted at the dial, as `dials` is).
    pub conns_outbound: u64,
    /// Connections closed, by reason (either side's goodbye, or the transport's).
    pub conns_closed: Tally<CloseReason>,
    /// Dials started.
    pub dials: u64,
    /// Dials that failed or timed out before connecting.
    pub dial_failures: u64,
    /// Peers that came up again after having been lost.
    pub reconnects: u64,
    /// Frames received, of every kind.
    pub frames_in: u64,
    /// Frames handed to the transport in [`Action::Send`](crate::Action::Send)s.
    pub frames_out: u64,
    /// Bytes received from peers.
    pub bytes_in: u64,
    /// Bytes handed to the transport in [`Action::Send`](crate::Action::Send)s.
    pub bytes_out: u64,
    /// Frames of a kind this version does not know, skipped.
    pub unknown_kinds: u64,
    /// Peers disconnected for [`Misbehaviour::Protocol`].
    pub protocol_errors: u64,
    /// Pings sent, all peers together.
    pub pings_sent: u64,
    /// Pongs that answered one of our pings, all peers together.
    pub pongs_received: u64,
    /// Connections closed because nothing arrived for the ping timeout.
    pub ping_timeouts: u64,
    /// Histogram of RTT samples; see [`RTT_BUCKETS_MS`].
    pub rtt_buckets: [u64; RTT_BUCKETS_MS.len() + 1],
    /// Sum of every RTT sample, in microseconds; with `rtt_buckets`, gives the mean.
    pub rtt_sum_us: u64,
    /// Queries and requests by outcome (a refusal keeps its reason).
    pub queries: Tally<QueryOutcome>,
    /// Peers banned, by what they did.
    pub misbehaviour: Tally<Misbehaviour>,
    /// Blocks added to our chain (by sync, gossip, reorgs or local production).
    pub blocks_applied: u64,
    /// Times the chain switched branch.
    pub reorgs: u64,
    /// Transactions that entered the mempool (local and relayed).
    pub txs_accepted: u64,
    /// Second connections to an already connected node, resolved to one.
    pub duplicates_resolved: u64,
    /// Goodbyes peers sent us, by reason (`conns_closed` counts every close, either side).
    pub goodbyes_received: Tally<GoodbyeReason>,
}

impl Counters {
    pub(crate) fn record_rtt(&mut self, rtt: Duration) {
        let ms = rtt.as_micros().div_ceil(1000);
        let idx = RTT_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(RTT_BUCKETS_MS.len());
        self.rtt_buckets[idx] += 1;
        self.rtt_sum_us = self.rtt_sum_us.saturating_add(rtt.as_micros());
    }
}

/// A counter key: an enum with a stable snake_case label for metrics and JSON. Several keys
/// may share a label (every refusal is `refused`); [`Tally::by_label`] sums them.
pub trait Label: Copy + Ord {
    /// The key's label.
    fn label(self) -> &'static str;
}

/// Counts by key. Keys a peer can choose (goodbye and refusal codes) are folded so that the
/// tally stays within the named variants plus one `other` each, whatever peers send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally<K> {
    counts: BTreeMap<K, u64>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            counts: BTreeMap::new(),
        }
    }
}

impl<K: Label> Tally<K> {
    pub(crate) fn bump(&mut self, key: K) {
        *self.counts.entry(key).or_insert(0) += 1;
    }

    /// The count of `key` (0 if never seen).
    pub fn get(&self, key: K) -> u64 {
        self.counts.get(&key).copied().unwrap_or(0)
    }

    /// Every key seen, in key order, with its count.
    pub fn iter(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        self.counts.iter().map(|(k, v)| (*k, *v))
    }

    /// Counts summed by label, in label order: what metrics and JSON show.
    pub fn by_label(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for (k, v) in self.iter() {
            *out.entry(k.label()).or_insert(0) += v;
        }
        out
    }

    /// The sum of every count.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// True when nothing was counted yet.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Why a connection closed, for [`Counters::conns_closed`]: a goodbye (ours or the peer's:
/// the reason is what matters, [`DownReason`] says who), the transport, or a takeover.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CloseReason {
    /// A goodbye, sent or received; every `Other` code counts as `Other(0)`.
    Goodbye(GoodbyeReason),
    /// The transport closed the connection without a goodbye.
    Transport(CloseKind),
    /// A newer connection from the same node took over.
    Replaced,
}

impl From<DownReason> for CloseReason {
    fn from(r: DownReason) -> Self {
        match r {
            DownReason::GoodbyeSent(g) | DownReason::GoodbyeReceived(g) => {
                CloseReason::Goodbye(fold_goodbye(g))
            }
            DownReason::Closed(k) => CloseReason::Transport(k),
            DownReason::Replaced => CloseReason::Replaced,
        }
    }
}

impl Label for CloseReason {
    fn label(self) -> &'static str {
        match self {
            CloseReason::Goodbye(g) => g.as_str(),
            CloseReason::Transport(k) => k.as_str(),
            CloseReason::Replaced => "replaced",
        }
    }
}

/// How a query or request ended, for [`Counters::queries`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum QueryOutcome {
    /// A response arrived.
    Answered,
    /// It failed; refusals are folded so every `App` or `Other` code counts as code 0.
    Failed(QueryError),
}

impl QueryOutcome {
    pub(crate) fn of<T>(result: &Result<T, QueryError>) -> Self {
        match result {
            Ok(_) => QueryOutcome::Answered,
            Err(QueryError::Refused(r)) => {
                QueryOutcome::Failed(QueryError::Refused(fold_refusal(*r)))
            }
            Err(e) => QueryOutcome::Failed(*e),
        }
    }
}

impl Label for QueryOutcome {
    fn label(self) -> &'static str {
        match self {
            QueryOutcome::Answered => "ok",
            QueryOutcome::Failed(e) => e.as_str(),
        }
    }
}

impl Label for Misbehaviour {
    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Label for GoodbyeReason {
    fn label(self) -> &'static str {
        self.as_str()
    }
}

/// A peer-chosen goodbye code becomes one `Other` key.
pub(crate) fn fold_goodbye(g: GoodbyeReason) -> GoodbyeReason {
    match g {
        GoodbyeReason::Other(_) => GoodbyeReason::Other(0),
        g => g,
    }
}

/// A peer-chosen refusal code becomes one key per kind (`App`, `Other`).
fn fold_refusal(r: RefuseReason) -> RefuseReason {
    match r {
        RefuseReason::App(_) => RefuseReason::App(0),
        RefuseReason::Other(_) => RefuseReason::Other(0),
        r => r,
    }
}
