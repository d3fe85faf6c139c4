//! Per-connection state: framing, the two-priority send queue, liveness bookkeeping and the
//! requests in flight on it.

use crate::chain::BlockHash;
use crate::id::{ConnId, NodeId};
use crate::machine::io::Direction;
use crate::machine::requests::OutRequests;
use crate::protocol::{ProtocolAd, ProtocolId, TopicAd, TopicId};
use crate::time::{Duration, Instant};
use crate::wire::FrameDecoder;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

/// Pings remembered per connection for RTT; an older outstanding ping's pong is ignored.
pub(crate) const PING_SLOTS: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ConnState {
    /// `Action::Dial` emitted; waiting for `Connected`.
    Dialing,
    /// Transport up, our `Hello` sent; waiting for theirs.
    Handshaking,
    /// Handshake done, but this node already has a connection: waiting for the probe of
    /// `old` to decide which one stays.
    Candidate { old: ConnId },
    /// The peer's one connection.
    Established,
}

/// What the peer told us in its `Hello`.
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    pub node_id: NodeId,
    pub boot: u64,
    pub listen_port: Option<u16>,
    pub best_height: u64,
    pub best_hash: BlockHash,
    pub user_agent: String,
    /// What the peer advertised, sorted by id (at most `MAX_ADVERTISED` each).
    pub protocols: Vec<ProtocolAd>,
    pub topics: Vec<TopicAd>,
}

impl Remote {
    /// The peer's advertisement of `id`, if it runs that protocol.
    pub fn protocol(&self, id: ProtocolId) -> Option<&ProtocolAd> {
        let i = self.protocols.binary_search_by_key(&id, |a| a.id).ok()?;
        self.protocols.get(i)
    }

    /// The peer's advertisement of `id`, if it takes part in that topic.
    pub fn topic(&self, id: TopicId) -> Option<&TopicAd> {
        let i = self.topics.binary_search_by_key(&id, |a| a.id).ok()?;
        self.topics.get(i)
    }
}

/// A peer's request the application has not answered yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InReq {
    pub protocol: ProtocolId,
    /// When the machine refuses it `Unanswered`. Kept here, not only in the protocol's
    /// answer queue: a peer may reuse a request id once its answer went out, and the queue
    /// entry of the earlier request must not refuse the later one.
    pub deadline: Instant,
}

/// A token bucket: one peer's allowance of messages on one topic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub topic: TopicId,
    /// Tokens, in millionths of a message.
    pub micro_tokens: u64,
    pub last: Instant,
}

/// Laid out by hand (`repr(C)`), hottest fields first and the whole thing cache-line
/// aligned: a node holds dozens of these, each touched once per frame after the others have
/// pushed it out of cache, so what costs is the number of cache lines a frame touches, not
/// instructions. Every field a ping, a pong or a `Written` reads or writes sits in the first
/// five lines; the handshake, request and address fields come after.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct Conn {
    // Line 0: every frame in or out, and every `Written`.
    pub state: ConnState,
    /// Bytes handed to the transport and not yet reported written.
    pub in_transport: usize,
    /// Bytes in `control` + `bulk`.
    pub queued: usize,
    pub last_recv: Instant,
    /// Responses still in `bulk`: the peer's requests we have not answered on the wire yet.
    pub responses_queued: usize,
    pub read_paused: bool,
    /// Set when the machine starts forgetting this connection: no new request may start on
    /// it, so nothing can be left in flight on a connection that no longer exists.
    pub closing: bool,
    /// Here, in the padding of line 0, because counting outbound connections reads it for
    /// every connection.
    pub dir: Direction,
    /// Whether the peer has pinged us on this connection, and when it last did: an inbound
    /// connection whose dialer keeps pinging needs no pings of ours (see
    /// `PeerMachine::ping_tick`). `pings_received > 0` says the same, but lives on a line a
    /// skipped tick never touches; this flag sits here, beside the time it qualifies.
    pub peer_pings: bool,
    pub ping_slot: u8,
    pub last_ping_in: Instant,

    // Line 1: the send side. `control` always drains before `bulk`.
    pub control: VecDeque<Vec<u8>>,
    pub bulk: VecDeque<Frame>,

    // Line 2: pings sent, for RTT.
    pub pings: [(u64, Instant); PING_SLOTS],

    // Lines 3-4: the receive side and liveness.
    pub decoder: Option<FrameDecoder>,
    pub pings_sent: u64,
    pub pongs_received: u64,
    /// The peer's pings: on an inbound connection, the liveness its dialer keeps up.
    pub pings_received: u64,
    pub rtt: Option<Duration>,
    /// A probe ping (nonce) sent because `ConnId`, a newer connection, claims this node.
    pub probe: Option<(u64, ConnId)>,

    // Cold: who the peer is, and requests.
    pub addr: SocketAddr,
    pub remote: Option<Remote>,
    pub established_at: Instant,
    /// Our requests in flight on this connection.
    pub out_reqs: OutRequests,
    /// The peer's requests on application protocols, waiting for the application's answer.
    pub in_reqs: BTreeMap<u64, InReq>,
    /// Gossip allowances, one per topic the peer has sent on.
    pub buckets: Vec<Bucket>,
}

#[derive(Debug)]
pub(crate) struct Frame {
    pub bytes: crate::wire::Payload,
    pub is_response: bool,
}

// The hot fields above must stay within their lines (see `Conn`). The offsets are those of
// 64-bit targets; elsewhere the layout is still valid, just not tuned.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(core::mem::offset_of!(Conn, last_ping_in) + 8 <= 64);
    assert!(core::mem::offset_of!(Conn, control) == 64);
    assert!(core::mem::offset_of!(Conn, pings) == 128);
    assert!(core::mem::offset_of!(Conn, probe) + 24 <= 320);
};

impl Conn {
    pub fn new(
        dir: Direction,
        addr: SocketAddr,
        state: ConnState,
        now: Instant,
        max_frame: u32,
    ) -> Self {
        Conn {
            dir,
            addr,
            state,
            decoder: Some(FrameDecoder::new(max_frame)),
            remote: None,
            control: VecDeque::new(),
            bulk: VecDeque::new(),
            queued: 0,
            in_transport: 0,
            responses_queued: 0,
            read_paused: false,
            closing: false,
            established_at: now,
            last_recv: now,
            // Nonce 0 is never sent (see `next_nonce`), so empty slots never match a pong.
            pings: [(0, Instant::ZERO); PING_SLOTS],
            ping_slot: 0,
            peer_pings: false,
            last_ping_in: Instant::ZERO,
            pings_sent: 0,
            pongs_received: 0,
            pings_received: 0,
            rtt: None,
            probe: None,
            out_reqs: OutRequests::default(),
            in_reqs: BTreeMap::new(),
            buckets: Vec::new(),
        }
    }

    pub fn node_id(&self) -> Option<NodeId> {
        self.remote.as_ref().map(|r| r.node_id)
    }

    /// The address the peer accepts connections on: the IP we see it at, the port it advertises.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        match self.dir {
            Direction::Outbound => Some(self.addr),
            Direction::Inbound => {
                let port = self.remote.as_ref()?.listen_port?;
                Some(SocketAddr::new(self.addr.ip(), port))
            }
        }
    }

    pub fn record_ping(&mut self, nonce: u64, now: Instant) {
        let slot = usize::from(self.ping_slot) % PING_SLOTS;
        self.pings[slot] = (nonce, now);
        self.ping_slot = ((slot + 1) % PING_SLOTS) as u8;
        self.pings_sent += 1;
    }

    /// The send time of the ping with this nonce, consuming it.
    pub fn take_ping(&mut self, nonce: u64) -> Option<Instant> {
        let slot = self
            .pings
            .iter_mut()
            .find(|(n, _)| *n == nonce && nonce != 0)?;
        let sent = slot.1;
        *slot = (0, Instant::ZERO);
        Some(sent)
    }

    /// The peer pinged us: it is alive, and it is keeping this connection alive.
    pub fn ping_received(&mut self, now: Instant) {
        self.peer_pings = true;
        self.last_ping_in = now;
        self.pings_received += 1;
    }

    /// Whether the peer pinged us within `window` before `now`.
    pub fn pinged_within(&self, now: Instant, window: Duration) -> bool {
        self.peer_pings && now.saturating_since(self.last_ping_in) < window
    }

    /// Takes one message from the peer's allowance on `topic`; false when it is spent.
    pub fn take_token(&mut self, topic: TopicId, per_sec: u32, burst: u32, now: Instant) -> bool {
        const ONE: u64 = 1_000_000;
        let cap = u64::from(burst) * ONE;
        let i = match self.buckets.iter().position(|b| b.topic == topic) {
            Some(i) => i,
            None => {
                self.buckets.push(Bucket {
                    topic,
                    micro_tokens: cap,
                    last: now,
                });
                self.buckets.len() - 1
            }
        };
        let b = &mut self.buckets[i];
        let elapsed = now.saturating_since(b.last).as_micros();
        b.last = now;
        b.micro_tokens = b
            .micro_tokens
            .saturating_add(elapsed.saturating_mul(u64::from(per_sec)))
            .min(cap);
        if b.micro_tokens < ONE {
            return false;
        }
        b.micro_tokens -= ONE;
        true
    }
}
