//! A read-only snapshot of the machine, for APIs, dashboards and tests.

use crate::chain::{BlockHash, Network};
use crate::id::{ConnId, NodeId};
use crate::machine::io::Direction;
use crate::machine::{ProtocolStats, TopicStats};
use crate::protocol::{ProtocolId, TopicId};
use crate::time::{Duration, Instant};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

/// Upper bounds (milliseconds) of the RTT histogram buckets; a last, unbounded bucket follows.
pub const RTT_BUCKETS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub node_id: NodeId,
    pub network: Network,
    pub boot: u64,
    pub height: u64,
    pub tip_hash: BlockHash,
    pub genesis_hash: BlockHash,
    /// Established peers, ordered by node id.
    pub peers: Vec<PeerStatus>,
    /// Connections in any state (dialing, handshaking, established).
    pub connections: usize,
    /// True while some peer is known to be ahead of us.
    pub syncing: bool,
    /// The best height a peer has told us about, when above ours.
    pub sync_target: Option<u64>,
    pub mempool_len: usize,
    pub addr_book_len: usize,
    /// Set once the machine has stopped (after shutdown or a store failure).
    pub stopped: bool,
    pub counters: Counters,
    /// Every protocol this node runs (the core's and the application's), by id.
    pub protocols: BTreeMap<ProtocolId, ProtocolStats>,
    /// Every topic this node takes part in, by id.
    pub topics: BTreeMap<TopicId, TopicStats>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    pub node_id: NodeId,
    pub conn: ConnId,
    pub direction: Direction,
    pub remote_addr: SocketAddr,
    /// RTT of the most recent answered ping.
    pub rtt: Option<Duration>,
    pub connected_since: Instant,
    pub pings_sent: u64,
    pub pongs_received: u64,
    /// Pings the peer sent us. The dialer keeps a connection alive, so on an inbound
    /// connection this, not `pings_sent`, is what keeps counting.
    pub pings_received: u64,
    pub best_height: u64,
    pub user_agent: String,
    /// The protocols and topics the peer advertised in its `Hello`.
    pub protocols: Vec<ProtocolId>,
    pub topics: Vec<TopicId>,
}

/// Monotonic counters since the machine started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub conns_inbound: u64,
    pub conns_outbound: u64,
    /// Connections closed, by reason (`DownReason` flattened to a stable label).
    pub conns_closed: BTreeMap<&'static str, u64>,
    pub dials: u64,
    pub dial_failures: u64,
    /// Peers that came up again after having been lost.
    pub reconnects: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frames of a kind this version does not know, skipped.
    pub unknown_kinds: u64,
    pub protocol_errors: u64,
    pub pings_sent: u64,
    pub pongs_received: u64,
    pub ping_timeouts: u64,
    /// Histogram of RTT samples; see [`RTT_BUCKETS_MS`].
    pub rtt_buckets: [u64; RTT_BUCKETS_MS.len() + 1],
    pub rtt_sum_us: u64,
    /// Application queries by outcome (`ok`, or a `QueryError` label).
    pub queries: BTreeMap<&'static str, u64>,
    pub misbehaviour: BTreeMap<&'static str, u64>,
    pub blocks_applied: u64,
    pub reorgs: u64,
    pub txs_accepted: u64,
    pub duplicates_resolved: u64,
    /// Goodbyes peers sent us, by reason (`conns_closed` counts every close, either side).
    pub goodbyes_received: BTreeMap<&'static str, u64>,
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

    pub(crate) fn bump(map: &mut BTreeMap<&'static str, u64>, key: &'static str) {
        *map.entry(key).or_insert(0) += 1;
    }
}
