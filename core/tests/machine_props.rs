//! Property tests for the `PeerMachine` connection layer, driven over the in-memory
//! `Switchboard`: random operation sequences on 2–4 machines (dials including simultaneous and
//! self dials, cuts and heals, crashes and restarts with the store kept, byte corruption on
//! live connections, time jumps, application queries to known and unknown node ids) never
//! panic, and keep the machine's invariants once the network has settled:
//!
//! - every pair of live nodes agrees on whether they are peers; a pair that is connected has
//!   exactly one connection, seen from opposite directions on the two ends, and it carries
//!   queries both ways;
//! - pairs with a persistent (`--peer`) link are connected;
//! - a settled network stays put: no connection is closed "to clean up";
//! - every `QueryId` returned by `query()` ends with exactly one `NodeEvent::QueryDone`, and
//!   every one returned by `request()` (any protocol id, known or not) with exactly one
//!   `NodeEvent::RequestDone`.
//!
//! Case counts are bounded so the file runs in well under 30 s in the test profile; set
//! `MACHINE_PROPS_CASES` for a longer soak.

use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use timed_core::protocol::builtin;
use timed_core::testing::{NodeIx, Switchboard};
use timed_core::wire::{
    Goodbye, GoodbyeReason, Hello, Message, RefuseReason, RequestBody, ResponseBody, MAGIC,
    PROTOCOL_VERSION,
};
use timed_core::{
    Action, Config, ConnId, Direction, Duration, MemStore, Network, NodeEvent, NodeId, PeerMachine,
    ProtocolId, QueryError, QueryId, TopicId, Tx,
};

const MAX_NODES: usize = 4;
/// Short enough that a misbehaviour ban expires inside the settling period.
const BAN: Duration = Duration::from_secs(60);

fn cases() -> u32 {
    std::env::var("MACHINE_PROPS_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

// ---- the network under test -----------------------------------------------------------------

#[derive(Clone, Debug)]
struct Spec {
    n: usize,
    /// Node ids; distinct by construction (the first byte is the index).
    ids: Vec<NodeId>,
    /// Nodes on 127.0.0.1 (loopback: never IP-banned) or on their own 10.0.0.x address.
    loopback: Vec<bool>,
    /// `persistent[i]` holds the nodes `i` keeps a `--peer` link to.
    persistent: Vec<BTreeSet<usize>>,
    seed: u64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (2usize..=MAX_NODES)
        .prop_flat_map(|n| {
            (
                Just(n),
                vec(any::<[u8; 32]>(), n),
                vec(any::<bool>(), n),
                vec(vec(0..n, 0..n), n),
                any::<u64>(),
            )
        })
        .prop_map(|(n, raw_ids, loopback, persistent, seed)| {
            let ids = raw_ids
                .into_iter()
                .enumerate()
                .map(|(i, mut b)| {
                    // Random order between nodes, but never equal.
                    b[1] = i as u8;
                    NodeId(b)
                })
                .collect();
            let persistent = persistent
                .into_iter()
                .enumerate()
                .map(|(i, ps)| ps.into_iter().filter(|&p| p != i).collect())
                .collect();
            Spec {
                n,
                ids,
                loopback,
                persistent,
                seed,
            }
        })
}

impl Spec {
    fn addr(&self, i: usize) -> SocketAddr {
        if self.loopback[i] {
            SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
        } else {
            SocketAddr::from(([10, 0, 0, 1 + i as u8], 7000))
        }
    }

    fn config(&self, i: usize, incarnation: u64) -> Config {
        let seed = self.seed ^ ((i as u64) << 48) ^ incarnation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut c = Config::new(Network::Devnet, self.ids[i], seed);
        c.listen_port = Some(self.addr(i).port());
        c.persistent_peers = self.persistent[i].iter().map(|&p| self.addr(p)).collect();
        c.ban_duration = BAN;
        c
    }

    /// Pairs that must end up connected: one of them dials the other forever.
    fn must_connect(&self, a: usize, b: usize) -> bool {
        self.persistent[a].contains(&b) || self.persistent[b].contains(&a)
    }
}

/// What a corruption injects on a connection.
#[derive(Clone, Debug)]
enum Garbage {
    /// A frame with an arbitrary payload (the stream stays frame-aligned).
    Payload(Vec<u8>),
    /// Arbitrary bytes that leave the receiver's frame decoder out of step with the stream.
    Desync(Vec<u8>),
    /// A well-formed frame of a message that is out of place or hostile.
    Frame(Message),
    /// A length prefix far above `max_frame`.
    HugePrefix(u32),
}

impl Garbage {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Garbage::Payload(p) => {
                let mut out = Vec::new();
                timed_core::wire::encode_frame(p, &mut out);
                out
            }
            Garbage::Desync(b) => b.clone(),
            Garbage::Frame(m) => m.to_frame(),
            Garbage::HugePrefix(n) => n.to_le_bytes().to_vec(),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// `from` dials `to` once; `from == to` is a self-dial.
    Dial {
        from: usize,
        to: usize,
    },
    /// Both dial each other at the same instant (simultaneous open).
    DialBoth {
        a: usize,
        b: usize,
    },
    Cut {
        a: usize,
        b: usize,
    },
    Heal {
        a: usize,
        b: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    /// Injects garbage on one of `node`'s connections (`pick` chooses among live peers first,
    /// then any ConnId from its action log).
    Corrupt {
        node: usize,
        pick: usize,
        garbage: Garbage,
    },
    /// Advances virtual time.
    Run {
        ms: u64,
    },
    /// An application query to node `target` (an index, or an unknown id when out of range).
    Query {
        node: usize,
        target: usize,
        unknown: [u8; 32],
        body: RequestBody,
    },
    /// An application request on any protocol id (the built-ins, or one nobody declared).
    Request {
        node: usize,
        target: usize,
        unknown: [u8; 32],
        protocol: ProtocolId,
        payload: Vec<u8>,
    },
    SubmitTx {
        node: usize,
        tx: Vec<u8>,
    },
}

fn request_body() -> impl Strategy<Value = RequestBody> {
    prop_oneof![
        Just(RequestBody::Tip),
        any::<u64>().prop_map(|height| RequestBody::HashAt { height }),
        (prop_oneof![0u64..4, any::<u64>()], any::<u32>())
            .prop_map(|(from, count)| RequestBody::Blocks { from, count }),
        Just(RequestBody::Peers),
    ]
}

/// Protocol ids: the built-ins, a few around them, and any other.
fn protocol_id() -> impl Strategy<Value = ProtocolId> {
    prop_oneof![0u32..8, 1000u32..1004, any::<u32>()].prop_map(ProtocolId)
}

/// Topic ids: the built-ins, a few around them, and any other.
fn topic_id() -> impl Strategy<Value = TopicId> {
    prop_oneof![0u32..8, 1000u32..1004, any::<u32>()].prop_map(TopicId)
}

fn hostile_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
        (any::<u16>(), ".{0,20}").prop_map(|(c, detail)| Message::Goodbye(Goodbye {
            reason: GoodbyeReason::from_code(c),
            detail
        })),
        (0u64..8, request_body()).prop_map(|(id, body)| Message::builtin_request(id, &body)),
        // Any protocol, known or not, with any payload (undecodable, over the limit).
        (0u64..8, protocol_id(), vec(any::<u8>(), 0..100)).prop_map(|(id, protocol, payload)| {
            Message::Request {
                id,
                protocol,
                payload,
            }
        }),
        (0u64..8).prop_map(|id| Message::builtin_response(id, &ResponseBody::HashAt(None))),
        (0u64..8, vec(any::<u8>(), 0..40))
            .prop_map(|(id, p)| Message::Response { id, result: Ok(p) }),
        (0u64..8, any::<u16>()).prop_map(|(id, c)| Message::Response {
            id,
            result: Err(RefuseReason::from_code(c))
        }),
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(id, boot)| Message::Hello(Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            min_version: PROTOCOL_VERSION,
            network: Network::Devnet.id(),
            genesis: Network::Devnet.genesis_hash(),
            node_id: NodeId(id),
            boot,
            listen_port: None,
            best_height: 0,
            best_hash: Network::Devnet.genesis_hash(),
            user_agent: String::from("fuzz"),
            protocols: timed_core::protocol::builtin::default_adverts().0,
            topics: timed_core::protocol::builtin::default_adverts().1,
        })),
        vec(any::<u8>(), 0..40).prop_map(|t| Message::Gossip {
            topic: builtin::TX_TOPIC,
            payload: postcard::to_allocvec(&Tx(t)).unwrap(),
        }),
        // Any topic, known or not, with any payload (an undecodable block, say).
        (topic_id(), vec(any::<u8>(), 0..100))
            .prop_map(|(topic, payload)| Message::Gossip { topic, payload }),
    ]
}

fn garbage(desync: bool) -> impl Strategy<Value = Garbage> {
    let desync_weight = if desync { 2 } else { 0 };
    prop_oneof![
        2 => vec(any::<u8>(), 0..48).prop_map(Garbage::Payload),
        desync_weight => vec(any::<u8>(), 1..48).prop_map(Garbage::Desync),
        2 => hostile_message().prop_map(Garbage::Frame),
        1 => ((9u32 << 20)..=u32::MAX).prop_map(Garbage::HugePrefix),
    ]
}

/// Operations; `desync` allows corruption that leaves a decoder out of step with the stream.
fn op(desync: bool) -> impl Strategy<Value = Op> {
    let ix = || 0..MAX_NODES;
    prop_oneof![
        3 => (ix(), ix()).prop_map(|(from, to)| Op::Dial { from, to }),
        2 => (ix(), ix()).prop_map(|(a, b)| Op::DialBoth { a, b }),
        2 => (ix(), ix()).prop_map(|(a, b)| Op::Cut { a, b }),
        2 => (ix(), ix()).prop_map(|(a, b)| Op::Heal { a, b }),
        1 => ix().prop_map(|node| Op::Crash { node }),
        2 => ix().prop_map(|node| Op::Restart { node }),
        3 => (ix(), any::<usize>(), garbage(desync)).prop_map(|(node, pick, garbage)| Op::Corrupt { node, pick, garbage }),
        4 => prop_oneof![0u64..50, 0u64..3_000, 0u64..400_000].prop_map(|ms| Op::Run { ms }),
        4 => (ix(), 0..MAX_NODES + 1, any::<[u8; 32]>(), request_body())
            .prop_map(|(node, target, unknown, body)| Op::Query { node, target, unknown, body }),
        2 => (ix(), 0..MAX_NODES + 1, any::<[u8; 32]>(), protocol_id(), vec(any::<u8>(), 0..100))
            .prop_map(|(node, target, unknown, protocol, payload)| Op::Request {
                node, target, unknown, protocol, payload,
            }),
        1 => (ix(), vec(any::<u8>(), 0..64)).prop_map(|(node, tx)| Op::SubmitTx { node, tx }),
    ]
}

/// One machine's life between a start and a crash.
#[derive(Debug, Default)]
struct Incarnation {
    /// Index into `events(node)` / `action_log(node)` where this incarnation began.
    events_from: usize,
    log_from: usize,
    /// Where it ended (crash), or `None` while alive.
    events_to: Option<usize>,
    /// Ids returned by `query()` and `request()` (one counter: they never collide).
    queries: Vec<QueryId>,
    /// Those of `queries` that `request()` returned: they end with `RequestDone`, the others
    /// with `QueryDone`.
    requests: BTreeSet<QueryId>,
}

struct World {
    spec: Spec,
    net: Switchboard,
    stores: Vec<Option<MemStore>>,
    lives: Vec<Vec<Incarnation>>,
}

impl World {
    fn new(spec: Spec) -> Self {
        let mut net = Switchboard::new();
        let mut lives = Vec::new();
        for i in 0..spec.n {
            let m = PeerMachine::new(spec.config(i, 0), MemStore::new(Network::Devnet), net.now())
                .unwrap();
            net.add(m, spec.addr(i));
            lives.push(vec![Incarnation::default()]);
        }
        let stores = (0..spec.n).map(|_| None).collect();
        World {
            spec,
            net,
            stores,
            lives,
        }
    }

    fn alive(&self, i: usize) -> bool {
        self.stores[i].is_none()
    }

    /// Every node's events and status, for failure messages (`MACHINE_PROPS_DUMP=1`).
    fn dump(&mut self) -> String {
        if std::env::var_os("MACHINE_PROPS_DUMP").is_none() {
            return String::from("(set MACHINE_PROPS_DUMP=1 for every node's events)");
        }
        let mut out = String::new();
        for i in 0..self.spec.n {
            out += &format!(
                "== node {i} {:?} at {}\n",
                self.spec.ids[i],
                self.spec.addr(i)
            );
            for (t, e) in self.net.events(i) {
                out += &format!("  {t:?} {e:?}\n");
            }
            if self.alive(i) {
                out += &format!("  status: {:#?}\n", self.net.machine(i).status().peers);
            }
        }
        out
    }

    fn apply(&mut self, op: &Op) {
        let n = self.spec.n;
        let now = self.net.now();
        match *op {
            Op::Dial { from, to } => {
                let (from, to) = (from % n, to % n);
                if self.alive(from) {
                    let addr = self.spec.addr(to);
                    self.net.machine(from).dial(now, addr);
                    self.net.drain(from);
                }
            }
            Op::DialBoth { a, b } => {
                let (a, b) = (a % n, b % n);
                for (x, y) in [(a, b), (b, a)] {
                    if self.alive(x) {
                        let addr = self.spec.addr(y);
                        self.net.machine(x).dial(now, addr);
                    }
                }
                for x in [a, b] {
                    self.net.drain(x);
                }
            }
            Op::Cut { a, b } => self.net.cut(a % n, b % n),
            Op::Heal { a, b } => self.net.heal(a % n, b % n),
            Op::Crash { node } => self.crash(node % n),
            Op::Restart { node } => self.restart(node % n),
            Op::Corrupt {
                node,
                pick,
                ref garbage,
            } => {
                let node = node % n;
                if let Some(conn) = self.pick_conn(node, pick) {
                    self.net.inject(node, conn, &garbage.bytes());
                    self.net.drain(node);
                }
            }
            Op::Run { ms } => self.net.run_for(Duration::from_millis(ms)),
            Op::Query {
                node,
                target,
                unknown,
                ref body,
            } => {
                let node = node % n;
                if self.alive(node) {
                    let peer = if target < n {
                        self.spec.ids[target]
                    } else {
                        NodeId(unknown)
                    };
                    let id = self.net.machine(node).query(now, peer, body.clone());
                    self.lives[node].last_mut().unwrap().queries.push(id);
                    self.net.drain(node);
                }
            }
            Op::Request {
                node,
                target,
                unknown,
                protocol,
                ref payload,
            } => {
                let node = node % n;
                if self.alive(node) {
                    let peer = if target < n {
                        self.spec.ids[target]
                    } else {
                        NodeId(unknown)
                    };
                    let id = self
                        .net
                        .machine(node)
                        .request(now, peer, protocol, payload.clone());
                    let life = self.lives[node].last_mut().unwrap();
                    life.queries.push(id);
                    life.requests.insert(id);
                    self.net.drain(node);
                }
            }
            Op::SubmitTx { node, ref tx } => {
                let node = node % n;
                if self.alive(node) {
                    let _ = self.net.machine(node).submit_tx(now, Tx(tx.clone()));
                    self.net.drain(node);
                }
            }
        }
    }

    /// A connection of `node`'s current incarnation: a live peer's when `pick` lands there,
    /// else any ConnId from its action log (possibly closed, dialing or handshaking).
    fn pick_conn(&mut self, node: NodeIx, pick: usize) -> Option<ConnId> {
        if !self.alive(node) {
            return None;
        }
        let peers: Vec<ConnId> = self
            .net
            .machine(node)
            .status()
            .peers
            .iter()
            .map(|p| p.conn)
            .collect();
        let from = self.lives[node].last().unwrap().log_from;
        let mut logged: BTreeSet<ConnId> = BTreeSet::new();
        for (_, a) in &self.net.action_log(node)[from..] {
            if let Action::Send { conn, .. } | Action::Dial { conn, .. } | Action::Close { conn } =
                a
            {
                logged.insert(*conn);
            }
        }
        let logged: Vec<ConnId> = logged.into_iter().collect();
        if !peers.is_empty() && !pick.is_multiple_of(4) {
            Some(peers[pick / 4 % peers.len()])
        } else if !logged.is_empty() {
            Some(logged[pick % logged.len()])
        } else {
            None
        }
    }

    fn crash(&mut self, node: usize) {
        if let Some(store) = self.net.crash(node) {
            self.stores[node] = Some(store);
            self.lives[node].last_mut().unwrap().events_to = Some(self.net.events(node).len());
            // Let bytes already in flight to the dead node fall on the floor before anything
            // can restart in its place (the switchboard would hand them to the new machine).
            self.net.run_for(Duration::from_millis(5));
        }
    }

    fn restart(&mut self, node: usize) {
        let Some(store) = self.stores[node].take() else {
            return;
        };
        let incarnation = self.lives[node].len() as u64;
        let m =
            PeerMachine::new(self.spec.config(node, incarnation), store, self.net.now()).unwrap();
        self.net.restart(node, m);
        self.lives[node].push(Incarnation {
            events_from: self.net.events(node).len(),
            log_from: self.net.action_log(node).len(),
            events_to: None,
            queries: Vec::new(),
            requests: BTreeSet::new(),
        });
        self.net.drain(node);
    }

    fn heal_all(&mut self) {
        for a in 0..self.spec.n {
            for b in 0..self.spec.n {
                self.net.heal(a, b);
            }
        }
    }

    fn misbehaved_since(&self, marks: &[usize]) -> bool {
        (0..self.spec.n).any(|i| {
            self.net.events(i)[marks[i]..]
                .iter()
                .any(|(_, e)| matches!(e, NodeEvent::Misbehaved { .. }))
        })
    }

    fn event_marks(&self) -> Vec<usize> {
        (0..self.spec.n).map(|i| self.net.events(i).len()).collect()
    }

    /// Heals everything, restarts the dead and runs until a whole settling period passed
    /// without a misbehaviour ban being handed out (a corrupted decoder can surface garbage
    /// long after the injection).
    fn settle(&mut self) {
        self.heal_all();
        for i in 0..self.spec.n {
            self.restart(i);
        }
        let cfg = self.spec.config(0, 0);
        // Half-open connections die within ping_timeout; bans last BAN; the longest backoff
        // is backoff_max + 25 % jitter; then a handshake, a probe and limbo.
        let period = cfg.ping_timeout
            + BAN
            + Duration(cfg.backoff_max.0 / 4 * 5)
            + cfg.handshake_timeout
            + cfg.probe_timeout
            + cfg.handshake_timeout
            + Duration::from_secs(30);
        for _ in 0..6 {
            let marks = self.event_marks();
            self.net.run_for(period);
            if !self.misbehaved_since(&marks) {
                // One more full backoff period so that a ban ending at the very end of the
                // previous one is followed by a redial.
                self.net
                    .run_for(Duration(cfg.backoff_max.0 / 4 * 5) + Duration::from_secs(30));
                return;
            }
        }
        panic!("misbehaviour bans kept being handed out on a network with no faults");
    }
}

// ---- invariants -----------------------------------------------------------------------------

/// Connected pairs `(a, b)`, `a < b`, with the conn id each end uses.
type Links = BTreeMap<(usize, usize), (ConnId, ConnId)>;

/// Every QueryId an incarnation returned has exactly one QueryDone or RequestDone in that
/// incarnation's events (a crashed incarnation may have lost some), and none is for an id it
/// never returned.
fn check_queries(w: &World) -> Result<(), TestCaseError> {
    for node in 0..w.spec.n {
        let events = w.net.events(node);
        for (k, life) in w.lives[node].iter().enumerate() {
            let to = life.events_to.unwrap_or(events.len());
            let mut done: BTreeMap<QueryId, usize> = BTreeMap::new();
            for (_, e) in &events[life.events_from..to] {
                let (id, request) = match e {
                    NodeEvent::QueryDone { id, .. } => (id, false),
                    NodeEvent::RequestDone { id, .. } => (id, true),
                    _ => continue,
                };
                prop_assert_eq!(
                    life.requests.contains(id),
                    request,
                    "node {} life {}: {:?} ended with the other kind of event: {:?}",
                    node,
                    k,
                    id,
                    e
                );
                *done.entry(*id).or_default() += 1;
            }
            let issued: BTreeSet<QueryId> = life.queries.iter().copied().collect();
            prop_assert_eq!(
                issued.len(),
                life.queries.len(),
                "node {} life {}: query()/request() returned an id twice",
                node,
                k
            );
            for (id, count) in &done {
                prop_assert!(
                    issued.contains(id),
                    "node {} life {}: an end for {:?} that query()/request() never returned",
                    node,
                    k,
                    id
                );
                prop_assert_eq!(
                    *count,
                    1,
                    "node {} life {}: {:?} ended {} times",
                    node,
                    k,
                    id,
                    count
                );
            }
            if life.events_to.is_none() {
                for id in &issued {
                    prop_assert!(
                        done.contains_key(id),
                        "node {} life {}: {:?} never ended",
                        node,
                        k,
                        id
                    );
                }
            }
        }
    }
    Ok(())
}

/// Each live node lists each other node at most once; both ends agree whether they are
/// peers and see the connection from opposite directions; persistent pairs are connected.
/// Returns the connected pairs with their conn ids.
fn check_topology(w: &mut World) -> Result<Links, TestCaseError> {
    let n = w.spec.n;
    let statuses: Vec<_> = (0..n).map(|i| w.net.machine(i).status()).collect();
    let index_of = |id: NodeId| w.spec.ids.iter().position(|x| *x == id);
    let mut links = BTreeMap::new();
    for (i, s) in statuses.iter().enumerate() {
        prop_assert!(!s.stopped, "node {} stopped", i);
        let ids: BTreeSet<NodeId> = s.peers.iter().map(|p| p.node_id).collect();
        prop_assert_eq!(
            ids.len(),
            s.peers.len(),
            "node {} lists a peer twice: {:?}",
            i,
            s.peers
        );
        for p in &s.peers {
            prop_assert!(
                index_of(p.node_id).is_some(),
                "node {} has a peer with a made-up id {:?}",
                i,
                p.node_id
            );
            prop_assert_ne!(p.node_id, w.spec.ids[i], "node {} is its own peer", i);
        }
        prop_assert_eq!(
            s.connections,
            s.peers.len(),
            "node {}: connections that are not peers after settling",
            i
        );
    }
    for a in 0..n {
        for b in a + 1..n {
            let pa: Vec<_> = statuses[a]
                .peers
                .iter()
                .filter(|p| p.node_id == w.spec.ids[b])
                .collect();
            let pb: Vec<_> = statuses[b]
                .peers
                .iter()
                .filter(|p| p.node_id == w.spec.ids[a])
                .collect();
            prop_assert_eq!(
                pa.len(),
                pb.len(),
                "nodes {} and {} disagree on being peers: {:?} vs {:?}",
                a,
                b,
                pa,
                pb
            );
            if w.spec.must_connect(a, b) {
                prop_assert_eq!(pa.len(), 1, "persistent pair {}-{} is not connected", a, b);
            }
            if let (Some(x), Some(y)) = (pa.first(), pb.first()) {
                prop_assert_ne!(
                    x.direction,
                    y.direction,
                    "{}-{}: both ends see the same direction",
                    a,
                    b
                );
                prop_assert_eq!(
                    w.net.remote_end(a, x.conn),
                    Some((b, y.conn)),
                    "{}-{}: the peers' conn ids {:?}/{:?} are not the two ends of one link",
                    a,
                    b,
                    x.conn,
                    y.conn
                );
                if x.direction == Direction::Outbound {
                    prop_assert_eq!(x.remote_addr, w.spec.addr(b));
                } else {
                    prop_assert_eq!(y.remote_addr, w.spec.addr(a));
                }
                links.insert((a, b), (x.conn, y.conn));
            }
        }
    }
    Ok(links)
}

/// A `Tip` query each way on every link succeeds: the two conn ids are the two ends of one
/// working connection, not a half-open leftover.
fn check_links_carry_queries(w: &mut World, links: &Links) -> Result<(), TestCaseError> {
    let marks = w.event_marks();
    let now = w.net.now();
    let mut asked = Vec::new();
    for &(a, b) in links.keys() {
        for (x, y) in [(a, b), (b, a)] {
            let id = w.net.machine(x).query(now, w.spec.ids[y], RequestBody::Tip);
            w.lives[x].last_mut().unwrap().queries.push(id);
            w.net.drain(x);
            asked.push((x, y, id));
        }
    }
    w.net.run_for(Duration::from_secs(2));
    for (x, y, id) in asked {
        let result = w.net.events(x)[marks[x]..]
            .iter()
            .find_map(|(_, e)| match e {
                NodeEvent::QueryDone { id: got, result } if *got == id => Some(result.clone()),
                _ => None,
            });
        match result {
            Some(Ok(ResponseBody::Tip { .. })) => {}
            other => prop_assert!(
                false,
                "Tip query {} -> {} on a settled link ended with {:?}\n{}",
                x,
                y,
                other,
                w.dump()
            ),
        }
    }
    Ok(())
}

fn run_case(spec: Spec, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut w = World::new(spec);
    w.net.run_for(Duration::from_millis(20));
    for op in &ops {
        w.apply(op);
    }
    w.settle();
    check_queries(&w)?;
    let links = check_topology(&mut w)?;
    check_links_carry_queries(&mut w, &links)?;

    // Quiet for a while longer: nothing changes, nobody goes down, pings keep being answered.
    let marks = w.event_marks();
    // Pongs per dialed link: the dialer keeps each link alive, so every link has one end
    // that must keep seeing pongs.
    let pongs_on = |w: &mut World, i: usize| -> Vec<(timed_core::ConnId, u64)> {
        w.net
            .machine(i)
            .status()
            .peers
            .iter()
            .filter(|p| p.direction == timed_core::Direction::Outbound)
            .map(|p| (p.conn, p.pongs_received))
            .collect()
    };
    let pongs: Vec<Vec<(timed_core::ConnId, u64)>> =
        (0..w.spec.n).map(|i| pongs_on(&mut w, i)).collect();
    w.net.run_for(Duration::from_secs(600));
    let again = check_topology(&mut w)?;
    prop_assert_eq!(&again, &links, "a settled network changed its connections");
    for i in 0..w.spec.n {
        for (_, e) in &w.net.events(i)[marks[i]..] {
            let flap = matches!(
                e,
                NodeEvent::PeerDown { .. }
                    | NodeEvent::PeerUp { .. }
                    | NodeEvent::PeerMoved { .. }
                    | NodeEvent::Misbehaved { .. }
            );
            prop_assert!(!flap, "node {} on a settled network: {:?}", i, e);
        }
        for (conn, now_pongs) in pongs_on(&mut w, i) {
            let before = pongs[i]
                .iter()
                .find(|(c, _)| *c == conn)
                .map_or(0, |(_, p)| *p);
            prop_assert!(
                now_pongs > before,
                "node {}: no pong on its outbound {:?} in 10 quiet minutes",
                i,
                conn
            );
        }
    }
    check_queries(&w)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_never_panic_and_settle_to_one_agreed_connection_per_pair(
        spec in spec(),
        ops in vec(op(false), 1..40),
    ) {
        run_case(spec, ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// The same, with corruption that desynchronises a frame decoder (stray bytes mid-stream).
    /// Such a connection never yields another frame, so it must be dropped at the ping timeout.
    #[test]
    fn random_operations_with_stream_desync_settle_to_working_connections(
        spec in spec(),
        ops in vec(op(true), 1..40),
    ) {
        run_case(spec, ops)?;
    }
}

// Faults only at the very start, then a long quiet run: the simplest shape of the property.
proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn dial_storms_settle_to_one_agreed_connection_per_pair(
        spec in spec(),
        dials in vec((0..MAX_NODES, 0..MAX_NODES, any::<bool>(), 0u64..30), 1..16),
    ) {
        let ops: Vec<Op> = dials
            .into_iter()
            .flat_map(|(a, b, both, ms)| {
                let d = if both { Op::DialBoth { a, b } } else { Op::Dial { from: a, to: b } };
                [d, Op::Run { ms }]
            })
            .collect();
        run_case(spec, ops)?;
    }
}

/// Queries to known and unknown nodes, with no faults: each ends exactly once, and the ones
/// to connected peers are answered.
#[test]
fn every_query_ends_exactly_once_on_a_healthy_pair() {
    let spec = Spec {
        n: 2,
        ids: vec![NodeId([1; 32]), NodeId([2; 32])],
        loopback: vec![true, true],
        persistent: vec![BTreeSet::from([1]), BTreeSet::new()],
        seed: 7,
    };
    let mut w = World::new(spec);
    w.net.run_for(Duration::from_secs(1));
    let now = w.net.now();
    let known = w
        .net
        .machine(0)
        .query(now, NodeId([2; 32]), RequestBody::Tip);
    let unknown = w
        .net
        .machine(0)
        .query(now, NodeId([9; 32]), RequestBody::Tip);
    w.lives[0]
        .last_mut()
        .unwrap()
        .queries
        .extend([known, unknown]);
    w.net.run_for(Duration::from_secs(1));
    check_queries(&w).unwrap();
    let result = |id| {
        w.net.events(0).iter().find_map(|(_, e)| match e {
            NodeEvent::QueryDone { id: got, result } if *got == id => Some(result.clone()),
            _ => None,
        })
    };
    assert!(matches!(result(known), Some(Ok(ResponseBody::Tip { .. }))));
    assert_eq!(result(unknown), Some(Err(QueryError::UnknownPeer)));
}
