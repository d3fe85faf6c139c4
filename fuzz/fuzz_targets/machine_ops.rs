//! Arbitrary operation sequences on a 2-node `Switchboard` (plus an address nobody listens
//! on): dials (self, each other, simultaneous, to nowhere), cuts and heals, crashes and
//! restarts with the store kept, raw bytes injected on any connection, time jumps, queries
//! and transactions. Must never panic. After healing everything and a quiet settling period:
//! every query ended exactly once, and the two nodes agree on whether they are peers, over
//! one connection whose two conn ids are the two ends of one link.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use timed_core::testing::Switchboard;
use timed_core::wire::RequestBody;
use timed_core::{
    Action, Config, ConnId, Duration, MemStore, Network, NodeEvent, NodeId, PeerMachine, QueryId,
    Tx,
};

const N: usize = 2;

#[derive(Debug, Arbitrary)]
enum Op {
    Dial(u8, u8),
    DialBoth,
    Cut,
    Heal,
    Crash(u8),
    Restart(u8),
    Inject { node: u8, pick: u8, bytes: Vec<u8> },
    Run(u32),
    Query { node: u8, target: u8, kind: u8 },
    Tx(u8, Vec<u8>),
    Shutdown(u8),
}

#[derive(Debug, Arbitrary)]
struct Script {
    seed: u64,
    persistent: [bool; 2],
    loopback: bool,
    split: Option<u64>,
    ops: Vec<Op>,
}

fn addr(loopback: bool, i: usize) -> SocketAddr {
    match (loopback, i) {
        (true, i) if i < N => SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
        (false, i) if i < N => SocketAddr::from(([10, 0, 0, 1 + i as u8], 7000)),
        _ => SocketAddr::from(([10, 0, 0, 99], 7000)), // nobody listens here
    }
}

fn id(i: usize) -> NodeId {
    NodeId([0x10 + i as u8; 32])
}

struct World {
    s: Script,
    net: Switchboard,
    stores: Vec<Option<MemStore>>,
    restarts: Vec<u64>,
    /// Per node: queries returned by the current incarnation, and where its events begin.
    queries: Vec<Vec<QueryId>>,
    events_from: Vec<usize>,
    log_from: Vec<usize>,
}

impl World {
    fn config(&self, i: usize) -> Config {
        let mut c = Config::new(
            Network::Devnet,
            id(i),
            self.s.seed ^ (i as u64) << 40 ^ self.restarts[i],
        );
        c.listen_port = Some(addr(self.s.loopback, i).port());
        if self.s.persistent[i] {
            c.persistent_peers.push(addr(self.s.loopback, 1 - i));
        }
        c.ban_duration = Duration::from_secs(30);
        // Short backoff so the settling period (and each run) stays short.
        c.backoff_max = Duration::from_secs(20);
        c
    }

    fn alive(&self, i: usize) -> bool {
        self.stores[i].is_none()
    }

    fn crash(&mut self, i: usize) {
        if let Some(store) = self.net.crash(i) {
            self.stores[i] = Some(store);
            self.check_queries(i, false);
            self.net.run_for(Duration::from_millis(5));
        }
    }

    fn restart(&mut self, i: usize) {
        if let Some(store) = self.stores[i].take() {
            self.restarts[i] += 1;
            let m = PeerMachine::new(self.config(i), store, self.net.now()).expect("config");
            self.net.restart(i, m);
            self.queries[i].clear();
            self.events_from[i] = self.net.events(i).len();
            self.log_from[i] = self.net.action_log(i).len();
            self.net.drain(i);
        }
    }

    /// Each QueryDone answers a returned id, once; when `all`, every returned id has ended.
    fn check_queries(&self, i: usize, all: bool) {
        let mut done: BTreeMap<QueryId, usize> = BTreeMap::new();
        for (_, e) in &self.net.events(i)[self.events_from[i]..] {
            if let NodeEvent::QueryDone { id, .. } = e {
                *done.entry(*id).or_default() += 1;
            }
        }
        for (q, n) in &done {
            assert!(
                self.queries[i].contains(q),
                "node {i}: QueryDone for {q} never returned"
            );
            assert_eq!(*n, 1, "node {i}: {q} ended {n} times");
        }
        if all {
            for q in &self.queries[i] {
                assert!(done.contains_key(q), "node {i}: {q} never ended");
            }
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
        for (_, a) in &self.net.action_log(i)[self.log_from[i]..] {
            if let Action::Send { conn, .. } | Action::Dial { conn, .. } = a {
                conns.push(*conn);
            }
        }
        conns.dedup();
        (!conns.is_empty()).then(|| conns[usize::from(pick) % conns.len()])
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
            Op::DialBoth => {
                for a in 0..N {
                    if self.alive(a) {
                        self.net.machine(a).dial(now, addr(lb, 1 - a));
                    }
                }
                for a in 0..N {
                    self.net.drain(a);
                }
            }
            Op::Cut => self.net.cut(0, 1),
            Op::Heal => self.net.heal(0, 1),
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
                    let peer = if usize::from(target) < N + 1 {
                        id(usize::from(target))
                    } else {
                        NodeId([target; 32])
                    };
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
                    self.queries[node].push(q);
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
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let split = s.split;
    let mut w = World {
        s,
        net: Switchboard::new(),
        stores: vec![None, None],
        restarts: vec![0, 0],
        queries: vec![Vec::new(), Vec::new()],
        events_from: vec![0, 0],
        log_from: vec![0, 0],
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
    }
    // Settle: no faults, everyone up, long enough for bans, backoff and ping timeouts.
    w.net.heal(0, 1);
    for i in 0..N {
        w.restart(i);
    }
    // ping_timeout 90 s + ban 30 s + backoff_max 20 s (+25 %) + handshake and probe.
    w.net.run_for(Duration::from_secs(200));
    for i in 0..N {
        w.check_queries(i, true);
    }
    let p0: Vec<_> = w
        .net
        .machine(0)
        .status()
        .peers
        .into_iter()
        .filter(|p| p.node_id == id(1))
        .collect();
    let p1: Vec<_> = w
        .net
        .machine(1)
        .status()
        .peers
        .into_iter()
        .filter(|p| p.node_id == id(0))
        .collect();
    assert!(p0.len() <= 1 && p1.len() <= 1);
    assert_eq!(
        p0.len(),
        p1.len(),
        "the nodes disagree on being peers: {p0:?} vs {p1:?}"
    );
    if let (Some(a), Some(b)) = (p0.first(), p1.first()) {
        assert_eq!(
            w.net.remote_end(0, a.conn),
            Some((1, b.conn)),
            "not the two ends of one link"
        );
        assert_ne!(a.direction, b.direction);
    }
    if w.s.persistent.iter().any(|p| *p) {
        assert_eq!(
            p0.len(),
            1,
            "a persistent pair is not connected after settling"
        );
    }
});
