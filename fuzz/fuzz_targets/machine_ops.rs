//! Arbitrary operation sequences on a 3-node `Switchboard` (plus an address nobody listens
//! on): dials (self, each other, simultaneous, to nowhere), cuts and heals, crashes and
//! restarts with the store kept, clean shutdowns, raw bytes injected on any connection, time
//! jumps, queries and transactions — and the application protocols: every node but at most one
//! declares a request/response protocol and a validated gossip topic (small limits), and ops
//! send requests on it (or on a built-in or undeclared protocol), answer or refuse the
//! requests a node was handed (the rest are never answered, so the answer deadline refuses
//! them), publish, and give verdicts (accept, reject, ignore) on gossip.
//!
//! Must never panic. Throughout: every `QueryDone` / `RequestDone` answers an id the node's
//! current incarnation returned from `query` / `request` (on the same protocol), once; a
//! request on an undeclared protocol ends at once; an inbound request answered once cannot be
//! answered again, a message judged once cannot be judged again; `publish` fails exactly when
//! the topic is undeclared or the message too large; `inbound_waiting()` stays within the
//! protocol's inbound in-flight limit per connection and `gossip_pending()` within the topic's
//! `max_pending`.
//!
//! After healing everything and a quiet settling period: every query and request ended, each
//! pair of nodes agrees on whether they are peers, over one connection whose two conn ids are
//! the two ends of one link, a pair where either side has the other as a persistent peer is
//! connected, and every settled link carries traffic (the dialer's pings are answered over the
//! next two ping intervals, on the same connection).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use timed_core::protocol::{builtin, ProtocolId, ProtocolSpec, TopicId, TopicSpec};
use timed_core::testing::Switchboard;
use timed_core::wire::{RefuseReason, RequestBody};
use timed_core::{
    Action, Config, ConnId, Direction, Duration, GossipId, HandleError, InboundId, MemStore,
    Network, NodeEvent, NodeId, PeerMachine, PublishError, QueryError, QueryId, Tx, Verdict,
};

const N: usize = 3;

const APP: ProtocolId = ProtocolId(1000);
const APP_MAX_REQUEST: usize = 16;
const APP_MAX_RESPONSE: usize = 32;
const APP_MAX_INBOUND: usize = 2;
const TOPIC: TopicId = TopicId(1000);
const TOPIC_MAX: usize = 24;
const TOPIC_MAX_PENDING: usize = 3;
const NO_PROTOCOL: ProtocolId = ProtocolId(4242);
/// How long the application-protocol ops run the network after their call: long enough for
/// a frame to arrive (the switchboard's latency is 1 ms), so a request, answer or message is
/// already with its recipient when the next op looks.
const DELIVER: Duration = Duration::from_millis(3);
const NO_TOPIC: TopicId = TopicId(4242);

fn app_protocol() -> ProtocolSpec {
    ProtocolSpec::new(APP, "fuzz/echo/1")
        .with_max_request_bytes(APP_MAX_REQUEST as u32)
        .with_max_response_bytes(APP_MAX_RESPONSE as u32)
        .with_in_flight(3, APP_MAX_INBOUND as u16)
        .with_timeout(Duration::from_secs(4))
}

fn app_topic() -> TopicSpec {
    TopicSpec {
        seen_capacity: 16,
        max_pending: TOPIC_MAX_PENDING,
        validation_timeout: Duration::from_secs(2),
        ..TopicSpec::new(TOPIC, "fuzz/votes/1")
            .with_max_message_bytes(TOPIC_MAX as u32)
            .with_rate(10, 20)
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Dial(u8, u8),
    /// Both nodes of a pair dial each other at once (a simultaneous open).
    DialPair(u8, u8),
    Cut(u8, u8),
    Heal(u8, u8),
    Crash(u8),
    Restart(u8),
    Inject {
        node: u8,
        pick: u8,
        bytes: Vec<u8>,
    },
    Run(u32),
    Query {
        node: u8,
        target: u8,
        kind: u8,
    },
    Tx(u8, Vec<u8>),
    Shutdown(u8),
    /// `request` from `node` to `target` (any node, itself, or an unknown id) on the declared
    /// protocol, a built-in one, or one nobody declares; `len` (mod 40) bytes.
    Request {
        node: u8,
        target: u8,
        proto: u8,
        len: u8,
    },
    /// The node that was handed the `pick`-th latest inbound request (of any live node's
    /// current incarnation, answered or not) answers it: `len` (mod 40) bytes, sometimes over
    /// the response limit, or a refusal. Requests no op picks are never answered.
    Respond {
        pick: u8,
        len: u8,
        refuse: Option<u16>,
    },
    Publish {
        node: u8,
        topic: u8,
        len: u8,
        fill: u8,
    },
    /// The node that was handed the `pick`-th latest gossip message (as for `Respond`) judges
    /// it.
    Validate {
        pick: u8,
        verdict: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Script {
    seed: u64,
    /// Bit `j` of entry `i`: node `i` has node `j` as a persistent peer.
    persistent: [u8; N],
    loopback: bool,
    split: Option<u64>,
    /// `Some(k)`: node `k % N` declares no application protocol or topic.
    plain: Option<u8>,
    ops: Vec<Op>,
}

fn addr(loopback: bool, i: usize) -> SocketAddr {
    match (loopback, i) {
        (true, i) if i < N => SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
        (false, i) if i < N => SocketAddr::from(([10, 0, 0, 1 + i as u8], 7000)),
        _ => SocketAddr::from(([10, 0, 0, 99], 7000)), // nobody listens here
    }
}

/// Any refusal an application can construct, canonical or not (`Other(0)`, `App(65000)`).
fn refusal(code: u16) -> RefuseReason {
    match code % 8 {
        0 => RefuseReason::Unsupported,
        1 => RefuseReason::TooManyRequests,
        2 => RefuseReason::Unavailable,
        3 => RefuseReason::BadRequest,
        4 | 5 => RefuseReason::App((code / 8).wrapping_mul(9)),
        _ => RefuseReason::Other(code / 8),
    }
}

/// The `pick`-th element from the end (0 is the latest), wrapping.
fn latest<T>(v: &[T], pick: u8) -> Option<&T> {
    let n = v.len();
    (n > 0).then(|| &v[n - 1 - usize::from(pick) % n])
}

fn id(i: usize) -> NodeId {
    NodeId([0x10 + i as u8; 32])
}

/// What one incarnation of a node was told and handed.
#[derive(Default)]
struct Life {
    queries: BTreeSet<QueryId>,
    requests: BTreeMap<QueryId, ProtocolId>,
    done: BTreeSet<QueryId>,
    /// Where this incarnation's events begin in the switchboard's log, and how far they
    /// have been checked.
    events_from: usize,
    cursor: usize,
    log_from: usize,
    /// How many times each inbound request handed over is still owed an answer (handed
    /// minus answered), and the gossip messages judged.
    owed: BTreeMap<InboundId, usize>,
    judged: BTreeSet<GossipId>,
}

struct World {
    s: Script,
    net: Switchboard,
    stores: Vec<Option<MemStore>>,
    restarts: Vec<u64>,
    lives: Vec<Life>,
    /// Every inbound request and gossip message handed to any node, in order, with the node
    /// and its incarnation (`restarts`).
    handed: Vec<(usize, u64, InboundId)>,
    heard: Vec<(usize, u64, GossipId)>,
}

impl World {
    fn persists(&self, i: usize, j: usize) -> bool {
        i != j && self.s.persistent[i] & (1 << j) != 0
    }

    fn plain(&self, i: usize) -> bool {
        self.s.plain.is_some_and(|k| usize::from(k) % N == i)
    }

    fn config(&self, i: usize) -> Config {
        let mut c = Config::new(
            Network::Devnet,
            id(i),
            self.s.seed ^ (i as u64) << 40 ^ self.restarts[i],
        );
        c.listen_port = Some(addr(self.s.loopback, i).port());
        for j in 0..N {
            if self.persists(i, j) {
                c.persistent_peers.push(addr(self.s.loopback, j));
            }
        }
        c.ban_duration = Duration::from_secs(30);
        // Short backoff so the settling period (and each run) stays short.
        c.backoff_max = Duration::from_secs(20);
        if !self.plain(i) {
            c.protocols.push(app_protocol());
            c.topics.push(app_topic());
        }
        c
    }

    fn alive(&self, i: usize) -> bool {
        self.stores[i].is_none()
    }

    fn crash(&mut self, i: usize) {
        self.scan(i);
        if let Some(store) = self.net.crash(i) {
            self.stores[i] = Some(store);
            self.net.run_for(Duration::from_millis(5));
        }
    }

    fn restart(&mut self, i: usize) {
        if let Some(store) = self.stores[i].take() {
            self.restarts[i] += 1;
            let m = PeerMachine::new(self.config(i), store, self.net.now()).expect("config");
            self.net.restart(i, m);
            self.lives[i] = Life {
                events_from: self.net.events(i).len(),
                cursor: self.net.events(i).len(),
                log_from: self.net.action_log(i).len(),
                ..Life::default()
            };
            self.net.drain(i);
        }
    }

    /// Checks the events node `i` emitted since the last scan: each `QueryDone` and
    /// `RequestDone` answers an id its incarnation returned, once.
    fn scan(&mut self, i: usize) {
        let events = self.net.events(i);
        let life = &mut self.lives[i];
        for (_, e) in &events[life.cursor..] {
            match e {
                NodeEvent::QueryDone { id, .. } => {
                    assert!(
                        life.queries.contains(id),
                        "node {i}: QueryDone for {id} never returned"
                    );
                    assert!(life.done.insert(*id), "node {i}: {id} ended twice");
                }
                NodeEvent::RequestDone { id, protocol, .. } => {
                    let asked = life.requests.get(id).unwrap_or_else(|| {
                        panic!("node {i}: RequestDone for {id} never returned by request()")
                    });
                    assert_eq!(asked, protocol, "node {i}: {id} ended on another protocol");
                    assert!(life.done.insert(*id), "node {i}: {id} ended twice");
                }
                NodeEvent::InboundRequest {
                    id: rid,
                    protocol,
                    payload,
                    ..
                } => {
                    assert_eq!(*protocol, APP);
                    assert!(payload.len() <= APP_MAX_REQUEST);
                    *life.owed.entry(*rid).or_default() += 1;
                    self.handed.push((i, self.restarts[i], *rid));
                }
                NodeEvent::GossipReceived {
                    id: gid,
                    topic,
                    payload,
                    ..
                } => {
                    assert_eq!(*topic, TOPIC);
                    assert!(payload.len() <= TOPIC_MAX);
                    self.heard.push((i, self.restarts[i], *gid));
                }
                _ => {}
            }
        }
        life.cursor = events.len();
    }

    /// Every id the current incarnation of node `i` returned has ended.
    fn all_ended(&self, i: usize) {
        let life = &self.lives[i];
        for q in life.queries.iter().chain(life.requests.keys()) {
            assert!(life.done.contains(q), "node {i}: {q} never ended");
        }
    }

    /// The bounded tables stay within their bounds.
    fn check_bounds(&mut self, i: usize) {
        if !self.alive(i) {
            return;
        }
        let plain = self.plain(i);
        let m = self.net.machine(i);
        let conns = m.status().connections;
        let waiting = m.inbound_waiting();
        let pending = m.gossip_pending();
        assert!(
            waiting <= APP_MAX_INBOUND * conns,
            "node {i}: {waiting} inbound requests waiting on {conns} connections"
        );
        assert!(
            pending <= TOPIC_MAX_PENDING,
            "node {i}: {pending} gossip messages pending"
        );
        if plain {
            assert_eq!((waiting, pending), (0, 0), "node {i} declares nothing");
        }
    }

    fn conn_of(&mut self, i: usize, pick: u8) -> Option<ConnId> {
        let mut conns: Vec<ConnId> = self
            .net
            .machine(i)
            .status()
            .peers
            .iter()
            .map(|p| p.conn)
            .collect();
        for (_, a) in &self.net.action_log(i)[self.lives[i].log_from..] {
            if let Action::Send { conn, .. } | Action::Dial { conn, .. } = a {
                conns.push(*conn);
            }
        }
        conns.dedup();
        (!conns.is_empty()).then(|| conns[usize::from(pick) % conns.len()])
    }

    fn target(&self, target: u8) -> NodeId {
        let t = usize::from(target) % (N + 2);
        if t <= N {
            id(t) // id(N): a node that does not exist
        } else {
            NodeId([target; 32])
        }
    }

    fn apply(&mut self, op: Op) {
        let now = self.net.now();
        let lb = self.s.loopback;
        match op {
            Op::Dial(a, b) => {
                let a = usize::from(a) % N;
                if self.alive(a) {
                    self.net
                        .machine(a)
                        .dial(now, addr(lb, usize::from(b) % (N + 1)));
                    self.net.drain(a);
                }
            }
            Op::DialPair(a, b) => {
                let (a, b) = (usize::from(a) % N, usize::from(b) % N);
                for (x, y) in [(a, b), (b, a)] {
                    if self.alive(x) {
                        self.net.machine(x).dial(now, addr(lb, y));
                    }
                }
                for x in [a, b] {
                    self.net.drain(x);
                }
            }
            Op::Cut(a, b) => self.net.cut(usize::from(a) % N, usize::from(b) % N),
            Op::Heal(a, b) => self.net.heal(usize::from(a) % N, usize::from(b) % N),
            Op::Crash(a) => self.crash(usize::from(a) % N),
            Op::Restart(a) => self.restart(usize::from(a) % N),
            Op::Inject { node, pick, bytes } => {
                let node = usize::from(node) % N;
                if self.alive(node) {
                    if let Some(conn) = self.conn_of(node, pick) {
                        self.net.inject(node, conn, &bytes);
                        self.net.drain(node);
                    }
                }
            }
            Op::Run(ms) => self
                .net
                .run_for(Duration::from_millis(u64::from(ms % 200_000))),
            Op::Query { node, target, kind } => {
                let node = usize::from(node) % N;
                if self.alive(node) {
                    let peer = self.target(target);
                    let body = match kind % 4 {
                        0 => RequestBody::Tip,
                        1 => RequestBody::HashAt {
                            height: u64::from(kind),
                        },
                        2 => RequestBody::Blocks {
                            from: 0,
                            count: u32::from(kind),
                        },
                        _ => RequestBody::Peers,
                    };
                    let q = self.net.machine(node).query(now, peer, body);
                    let life = &mut self.lives[node];
                    assert!(
                        !life.requests.contains_key(&q) && life.queries.insert(q),
                        "node {node}: query() returned {q} twice"
                    );
                    self.net.drain(node);
                }
            }
            Op::Tx(node, tx) => {
                let node = usize::from(node) % N;
                if self.alive(node) {
                    let _ = self.net.machine(node).submit_tx(now, Tx(tx));
                    self.net.drain(node);
                }
            }
            Op::Shutdown(node) => {
                // A clean shutdown, then a restart from the same store a little later.
                let node = usize::from(node) % N;
                if self.alive(node) {
                    self.net.machine(node).shutdown(now);
                    self.net.drain(node);
                    self.net.run_for(Duration::from_millis(10));
                    self.crash(node);
                }
            }
            Op::Request {
                node,
                target,
                proto,
                len,
            } => {
                let node = usize::from(node) % N;
                if self.alive(node) {
                    let peer = self.target(target);
                    let (protocol, payload) = match proto % 4 {
                        0 | 1 => (APP, vec![proto; usize::from(len % 40)]),
                        2 => (builtin::TIP, Vec::new()),
                        _ => (NO_PROTOCOL, vec![proto; usize::from(len % 40)]),
                    };
                    let q = self.net.machine(node).request(now, peer, protocol, payload);
                    let life = &mut self.lives[node];
                    assert!(
                        !life.queries.contains(&q) && life.requests.insert(q, protocol).is_none(),
                        "node {node}: request() returned {q} twice"
                    );
                    self.net.drain(node);
                    self.scan(node);
                    let undeclared =
                        protocol == NO_PROTOCOL || (protocol == APP && self.plain(node));
                    if undeclared {
                        assert!(
                            self.lives[node].done.contains(&q),
                            "node {node}: a request on an undeclared protocol is pending"
                        );
                        let from = self.lives[node].events_from;
                        let result =
                            self.net.events(node)[from..]
                                .iter()
                                .find_map(|(_, e)| match e {
                                    NodeEvent::RequestDone { id, result, .. } if *id == q => {
                                        Some(result.clone())
                                    }
                                    _ => None,
                                });
                        assert!(
                            matches!(
                                result,
                                Some(Err(QueryError::UnknownProtocol | QueryError::UnknownPeer))
                            ),
                            "node {node}: a request on an undeclared protocol ended with {result:?}"
                        );
                    }
                    self.net.run_for(DELIVER);
                }
            }
            Op::Respond { pick, len, refuse } => {
                let live: Vec<(usize, InboundId)> = self
                    .handed
                    .iter()
                    .filter(|(n, at, _)| self.alive(*n) && *at == self.restarts[*n])
                    .map(|(n, _, id)| (*n, *id))
                    .collect();
                let Some(&(node, rid)) = latest(&live, pick) else {
                    return;
                };
                let owed = self.lives[node].owed.get(&rid).copied().unwrap_or(0);
                let result = match refuse {
                    Some(code) => Err(refusal(code)),
                    None => Ok(vec![len; usize::from(len % 40)]),
                };
                let too_large = result.as_ref().is_ok_and(|b| b.len() > APP_MAX_RESPONSE);
                let got = self.net.machine(node).respond(now, rid, result);
                match got {
                    Err(HandleError::Unknown) => {}
                    Ok(()) | Err(HandleError::TooLarge) => {
                        assert!(owed > 0, "node {node}: {rid:?} answered twice");
                        assert_eq!(got.is_err(), too_large, "node {node}: respond -> {got:?}");
                        *self.lives[node].owed.entry(rid).or_default() -= 1;
                    }
                }
                self.net.drain(node);
                self.net.run_for(DELIVER);
            }
            Op::Publish {
                node,
                topic,
                len,
                fill,
            } => {
                let node = usize::from(node) % N;
                if !self.alive(node) {
                    return;
                }
                let topic = if topic % 4 == 3 { NO_TOPIC } else { TOPIC };
                let payload = vec![fill % 4; usize::from(len % 40)];
                let big = payload.len() > TOPIC_MAX;
                let undeclared = topic == NO_TOPIC || self.plain(node);
                let got = self.net.machine(node).publish(now, topic, payload);
                match got {
                    Err(PublishError::UnknownTopic) => assert!(undeclared),
                    Err(PublishError::TooLarge) => assert!(big && !undeclared),
                    Err(PublishError::ShuttingDown) => {
                        assert!(self.net.machine(node).is_stopped())
                    }
                    Ok(_) | Err(PublishError::Duplicate) => {
                        assert!(!big && !undeclared, "node {node}: publish -> {got:?}")
                    }
                }
                self.net.drain(node);
                self.net.run_for(DELIVER);
            }
            Op::Validate { pick, verdict } => {
                let live: Vec<(usize, GossipId)> = self
                    .heard
                    .iter()
                    .filter(|(n, at, _)| self.alive(*n) && *at == self.restarts[*n])
                    .map(|(n, _, id)| (*n, *id))
                    .collect();
                let Some(&(node, gid)) = latest(&live, pick) else {
                    return;
                };
                let judged = self.lives[node].judged.contains(&gid);
                let verdict =
                    [Verdict::Accept, Verdict::Reject, Verdict::Ignore][usize::from(verdict % 3)];
                let got = self.net.machine(node).validate(now, gid, verdict);
                if judged {
                    assert_eq!(
                        got,
                        Err(HandleError::Unknown),
                        "node {node}: {gid:?} judged twice"
                    );
                }
                if got.is_ok() {
                    self.lives[node].judged.insert(gid);
                }
                self.net.drain(node);
                self.net.run_for(DELIVER);
            }
        }
    }

    /// Node `i`'s view of node `j`, if they are peers.
    fn peer(&mut self, i: usize, j: usize) -> Vec<timed_core::PeerStatus> {
        self.net
            .machine(i)
            .status()
            .peers
            .into_iter()
            .filter(|p| p.node_id == id(j))
            .collect()
    }
}

fuzz_target!(|s: Script| {
    let split = s.split;
    let mut w = World {
        s,
        net: Switchboard::new(),
        stores: (0..N).map(|_| None).collect(),
        restarts: vec![0; N],
        lives: (0..N).map(|_| Life::default()).collect(),
        handed: Vec::new(),
        heard: Vec::new(),
    };
    if let Some(seed) = split {
        w.net.split_writes(seed);
    }
    for i in 0..N {
        let m = PeerMachine::new(w.config(i), MemStore::new(Network::Devnet), w.net.now())
            .expect("config");
        w.net.add(m, addr(w.s.loopback, i));
    }
    let ops = std::mem::take(&mut w.s.ops);
    for op in ops.into_iter().take(48) {
        w.apply(op);
        for i in 0..N {
            w.scan(i);
            w.check_bounds(i);
        }
    }
    // Settle: no faults, everyone up, long enough for bans, backoff, ping timeouts, answer
    // deadlines and request timeouts.
    for a in 0..N {
        for b in 0..N {
            w.net.heal(a, b);
        }
    }
    for i in 0..N {
        w.restart(i);
    }
    // ping_timeout 90 s + ban 30 s + backoff_max 20 s (+25 %) + handshake and probe.
    w.net.run_for(Duration::from_secs(200));
    for i in 0..N {
        w.scan(i);
        w.check_bounds(i);
        w.all_ended(i);
    }
    let mut links = Vec::new();
    for a in 0..N {
        for b in a + 1..N {
            let pa = w.peer(a, b);
            let pb = w.peer(b, a);
            assert!(pa.len() <= 1 && pb.len() <= 1);
            assert_eq!(
                pa.len(),
                pb.len(),
                "nodes {a} and {b} disagree on being peers: {pa:?} vs {pb:?}"
            );
            if let (Some(x), Some(y)) = (pa.first(), pb.first()) {
                assert_eq!(
                    w.net.remote_end(a, x.conn),
                    Some((b, y.conn)),
                    "nodes {a} and {b}: not the two ends of one link"
                );
                assert_ne!(x.direction, y.direction);
                let (dialer, other, st) = if x.direction == Direction::Outbound {
                    (a, b, x)
                } else {
                    (b, a, y)
                };
                links.push((dialer, other, st.conn, st.pongs_received));
            }
            if w.persists(a, b) || w.persists(b, a) {
                assert_eq!(
                    pa.len(),
                    1,
                    "nodes {a} and {b}: a persistent pair is not connected after settling"
                );
            }
        }
    }
    // A settled link carries traffic: the dialer pings every interval and hears pongs.
    w.net.run_for(Duration::from_secs(65));
    for (dialer, other, conn, pongs) in links {
        let now = w.peer(dialer, other);
        assert_eq!(
            now.first().map(|p| p.conn),
            Some(conn),
            "node {dialer}: the settled link to {other} went away: {now:?}"
        );
        assert!(
            now[0].pongs_received > pongs,
            "node {dialer}: no pong from {other} in two ping intervals on a settled link: {:?}",
            now[0]
        );
    }
});
