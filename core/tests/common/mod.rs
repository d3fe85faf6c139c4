//! Helpers shared by the core's story tests.
#![allow(dead_code)]

use core::net::SocketAddr;
use std::collections::BTreeMap;
use timed_core::protocol::builtin;
use timed_core::testing::{Filter, NodeIx, Switchboard};
use timed_core::wire::{
    Decoded, FrameDecoder, Hello, Message, PeerAddr, RequestBody, ResponseBody,
};
use timed_core::{
    Action, Block, Config, Duration, Input, Instant, MemStore, Network, NodeEvent, NodeId,
    PeerMachine, ProtocolId, Tx,
};

pub fn id(n: u8) -> NodeId {
    NodeId([n; 32])
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// A devnet config for node `n` listening on `listen`, dialing `peers`.
pub fn config(n: u8, listen: &str, peers: &[&str]) -> Config {
    let mut c = Config::new(Network::Devnet, id(n), n as u64 * 1000 + 7);
    c.listen_port = Some(addr(listen).port());
    c.persistent_peers = peers.iter().map(|p| addr(p)).collect();
    c
}

pub fn machine(c: Config, now: Instant) -> PeerMachine<MemStore> {
    PeerMachine::new(c, MemStore::new(Network::Devnet), now).expect("valid config")
}

/// Adds node `n` on `listen` with persistent `peers`.
pub fn add(net: &mut Switchboard, n: u8, listen: &str, peers: &[&str]) -> NodeIx {
    let now = net.now();
    net.add(machine(config(n, listen, peers), now), addr(listen))
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Node ids `node` lists as peers, in order.
pub fn peer_ids(net: &mut Switchboard, node: NodeIx) -> Vec<NodeId> {
    net.machine(node)
        .status()
        .peers
        .iter()
        .map(|p| p.node_id)
        .collect()
}

pub fn count_events(net: &Switchboard, node: NodeIx, pred: impl Fn(&NodeEvent) -> bool) -> usize {
    net.events(node).iter().filter(|(_, e)| pred(e)).count()
}

pub fn peer_downs(net: &Switchboard, node: NodeIx) -> usize {
    count_events(net, node, |e| matches!(e, NodeEvent::PeerDown { .. }))
}

/// Asserts `a` and `b` list each other exactly once, over the two ends of one link.
pub fn assert_single_link(net: &mut Switchboard, a: NodeIx, b: NodeIx) {
    let (ida, idb) = (net.machine(a).node_id(), net.machine(b).node_id());
    let ca = net
        .machine(a)
        .peer_conn(idb)
        .unwrap_or_else(|| panic!("node {a} is not connected to node {b}"));
    let cb = net
        .machine(b)
        .peer_conn(ida)
        .unwrap_or_else(|| panic!("node {b} is not connected to node {a}"));
    assert_eq!(
        net.remote_end(a, ca),
        Some((b, cb)),
        "nodes {a} and {b} disagree on their connection"
    );
    assert_eq!(peer_ids(net, a).iter().filter(|p| **p == idb).count(), 1);
    assert_eq!(peer_ids(net, b).iter().filter(|p| **p == ida).count(), 1);
}

/// A scripted remote peer talking to one machine directly, for misbehaving-peer stories.
pub struct Script {
    pub m: PeerMachine<MemStore>,
    pub conn: timed_core::ConnId,
    pub now: Instant,
    /// When false, `outputs` does not report sends as written: the peer stops reading.
    pub reading: bool,
}

impl Script {
    pub fn new(best_height: u64) -> Self {
        Self::with(
            config(1, "127.0.0.1:7000", &[]),
            MemStore::new(Network::Devnet),
            best_height,
        )
    }

    pub fn with(cfg: Config, store: MemStore, best_height: u64) -> Self {
        let now = Instant::ZERO;
        let mut m = PeerMachine::new(cfg, store, now).expect("config");
        let conn = m.accept(now, addr("127.0.0.1:5000")).expect("accepted");
        let g = Network::Devnet.genesis_hash();
        let hello = Hello {
            magic: timed_core::wire::MAGIC,
            version: timed_core::wire::PROTOCOL_VERSION,
            min_version: timed_core::wire::MIN_PROTOCOL_VERSION,
            network: Network::Devnet.id(),
            genesis: g,
            node_id: id(66),
            boot: 1,
            listen_port: None,
            best_height,
            best_hash: g,
            user_agent: "script".into(),
            protocols: timed_core::protocol::builtin::default_adverts().0,
            topics: timed_core::protocol::builtin::default_adverts().1,
        };
        let mut s = Script {
            m,
            conn,
            now,
            reading: true,
        };
        s.send(Message::Hello(hello));
        s
    }

    pub fn send(&mut self, msg: Message) {
        self.m.handle(
            self.now,
            Input::BytesIn {
                conn: self.conn,
                data: &msg.to_frame(),
            },
        );
    }

    /// Messages the machine sent us, and events, since the last call.
    pub fn outputs(&mut self) -> (Vec<Message>, Vec<NodeEvent>, bool) {
        let (mut msgs, mut events, mut closed) = (Vec::new(), Vec::new(), false);
        while let Some(a) = self.m.poll_action() {
            match a {
                Action::Send { conn, data } if conn == self.conn => {
                    if self.reading {
                        self.m.handle(
                            self.now,
                            Input::Written {
                                conn,
                                bytes: data.len(),
                            },
                        );
                    }
                    let mut d = FrameDecoder::new(u32::MAX);
                    d.push(&data);
                    while let Ok(Some(p)) = d.next_frame() {
                        if let Ok(Decoded::Known(m)) = Message::decode(p) {
                            msgs.push(m);
                        }
                    }
                }
                Action::Close { conn } if conn == self.conn => closed = true,
                Action::Notify(e) => events.push(e),
                _ => {}
            }
        }
        (msgs, events, closed)
    }

    /// Advances time in small steps, answering pings like a live peer; returns the rest.
    pub fn advance(&mut self, d: timed_core::Duration) -> Vec<Message> {
        let until = self.now + d;
        let mut rest = Vec::new();
        while self.now < until {
            self.now += secs(10);
            self.m.handle_timeout(self.now);
            let (msgs, _, _) = self.outputs();
            for m in msgs {
                match m {
                    Message::Ping { nonce } => self.send(Message::Pong { nonce }),
                    other => rest.push(other),
                }
            }
        }
        rest
    }

    /// The first block-range request the machine sent.
    pub fn range_request(msgs: &[Message]) -> Option<(u64, u64, u32)> {
        msgs.iter().find_map(as_blocks_request)
    }

    /// The id of the first address request the machine sent.
    pub fn peers_request(msgs: &[Message]) -> Option<u64> {
        msgs.iter().find_map(as_peers_request)
    }
}

/// `m` as a built-in blocks request: `(id, from, count)`.
pub fn as_blocks_request(m: &Message) -> Option<(u64, u64, u32)> {
    match m.as_builtin_request() {
        Some((id, RequestBody::Blocks { from, count })) => Some((id, from, count)),
        _ => None,
    }
}

/// `m` as a built-in address request: its id.
pub fn as_peers_request(m: &Message) -> Option<u64> {
    match m.as_builtin_request() {
        Some((id, RequestBody::Peers)) => Some(id),
        _ => None,
    }
}

// ---- built-in messages, as a peer would put them on the wire ---------------------------------

/// A request for blocks `from..from + count` on the built-in blocks protocol.
pub fn blocks_request(id: u64, from: u64, count: u32) -> Message {
    Message::builtin_request(id, &RequestBody::Blocks { from, count })
}

/// A request for the peer's tip on the built-in tip protocol.
pub fn tip_request(id: u64) -> Message {
    Message::builtin_request(id, &RequestBody::Tip)
}

/// The answer to a blocks request.
pub fn blocks_response(id: u64, blocks: Vec<Block>) -> Message {
    Message::builtin_response(id, &ResponseBody::Blocks(blocks))
}

/// The answer to an address request.
pub fn peers_response(id: u64, peers: Vec<PeerAddr>) -> Message {
    Message::builtin_response(id, &ResponseBody::Peers(peers))
}

/// `block` announced on the built-in block topic.
pub fn block_gossip(block: &Block) -> Message {
    Message::Gossip {
        topic: builtin::BLOCK_TOPIC,
        payload: postcard::to_allocvec(block).expect("a block serializes"),
    }
}

/// `tx` relayed on the built-in transaction topic.
pub fn tx_gossip(tx: &Tx) -> Message {
    Message::Gossip {
        topic: builtin::TX_TOPIC,
        payload: postcard::to_allocvec(tx).expect("a tx serializes"),
    }
}

/// Whether `m` is a request on `protocol`.
pub fn is_request_on(m: &Message, protocol: ProtocolId) -> bool {
    matches!(m, Message::Request { protocol: p, .. } if *p == protocol)
}

/// A switchboard filter that drops the responses to requests on `protocol` for which
/// `when(responder, requester)` is true, and lets everything else through.
///
/// A response does not name its protocol, only its request's id: the filter remembers the
/// protocol of each request it sees go from one node to another, by id, and matches the
/// response coming back. (Two connections between the same pair with the same id in flight
/// at once would confuse it; no test here holds two live connections per pair.)
pub fn drop_responses(
    protocol: ProtocolId,
    mut when: impl FnMut(NodeIx, NodeIx) -> bool + 'static,
) -> Filter {
    let mut asked: BTreeMap<(NodeIx, NodeIx, u64), ProtocolId> = BTreeMap::new();
    Box::new(move |from, to, m| match m {
        Message::Request { id, protocol, .. } => {
            asked.insert((from, to, *id), *protocol);
            false
        }
        Message::Response { id, .. } => {
            asked.remove(&(to, from, *id)) == Some(protocol) && when(from, to)
        }
        _ => false,
    })
}
