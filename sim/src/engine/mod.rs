//! The discrete-event engine: nodes, connections, the event queue and the observers.
//!
//! One thread, virtual time, no ticks: the engine pops the earliest event, hands it to the
//! node or connection it concerns, carries out the actions the node asks for, and moves on.
//! Everything random comes from generators derived from the run's seed, every map whose order
//! can leak into the run is a `BTreeMap`, and every event is folded into a rolling sha256
//! (`trace_hash`): the same seed and build reproduce the same hash.

mod ends;
mod prefetch;
pub mod queue;
mod trace_hash;
mod warm;

use crate::faults::{DownHow, Fault, FaultPlan, KillHow, Side};
use crate::invariants::{Pair, Violation, Violations};
use crate::metrics::{Histogram, PingStats};
use crate::model::{CloseKind, ModelAction, ModelConn, ModelEvent, NodeModel, NodeSpec};
use crate::net::link::{Conn, End, EndState, FrameMeta, Item, Pipe};
use crate::net::wire::{FrameInfo, Kind};
use crate::net::NetState;
use crate::rng::Rng;
use crate::scenario::Scenario;
use crate::time::{Micros, SEC};
use ends::Ends;
use queue::{Ev, Queue};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use trace_hash::TraceHash;

/// Unix time the simulated world believes it is at virtual zero (before per-host skew).
pub const UNIX_EPOCH_AT_ZERO: u64 = 1_750_000_000;

/// A ping older than this when its connection ends (or the run does) counts as lost; younger
/// ones are not judged.
pub const PING_LOSS_AGE: Micros = 5 * SEC;

/// Per-node bookkeeping.
pub struct NodeSlot<M: NodeModel> {
    pub spec: NodeSpec,
    pub nat: bool,
    pub model: Option<M>,
    pub persist: Option<M::Persist>,
    /// Boot count; ends and pending callbacks of an older incarnation are stale.
    pub inc: u32,
    pub alive: bool,
    pub down_how: Option<DownHow>,
    timer_at: Option<Micros>,
    timer_gen: u32,
    /// Model connection → (engine connection, side).
    conns: Ends,
    /// Open application queries → start time.
    queries: BTreeMap<u64, Micros>,
    /// Nodes this one lists as peers.
    pub peer_nodes: Vec<u32>,
}

/// What the caller wants besides the run itself.
#[derive(Default)]
pub struct RunOptions {
    /// Stop at the first invariant violation (default for the machine model).
    pub stop_on_violation: bool,
    /// JSONL trace sink.
    pub trace: Option<Box<dyn Write>>,
}

/// The simulator, generic over the node model.
pub struct Sim<M: NodeModel> {
    pub scenario: Scenario,
    pub seed: u64,
    pub now: Micros,
    pub end: Micros,
    queue: Queue,
    pub nodes: Vec<NodeSlot<M>>,
    pub conns: Vec<Conn>,
    listeners: BTreeMap<SocketAddr, u32>,
    /// Node listening on each address of the topology (whether up or not).
    by_addr: BTreeMap<SocketAddr, u32>,
    net: NetState,
    boot_rng: Rng,
    work_rng: Rng,
    fault_rng: Rng,
    plan: FaultPlan,
    ephemeral: BTreeMap<IpAddr, u16>,
    pub pairs: Vec<Pair>,
    pair_index: BTreeMap<(u32, u32), u32>,
    /// Pairs that must be connected once healed.
    pub required_pairs: Vec<(u32, u32)>,
    stalled: Vec<(u32, u8)>,
    written: VecDeque<(u32, u32, ModelConn, usize)>,
    scratch: Vec<u8>,
    frame_tmp: Vec<(FrameInfo, bool)>,
    meta_tmp: Vec<FrameInfo>,
    ping_checks: VecDeque<(Micros, u32, u8, u64)>,
    query_checks: VecDeque<(Micros, u32, u32, u64)>,
    // ---- measurements
    pub pings_outbound: PingStats,
    pub pings_inbound: PingStats,
    pub rtt: Histogram,
    pub stray_pongs: u64,
    pub frames_dropped: u64,
    pub cycle_intervals: Vec<Micros>,
    pub queries_started: u64,
    pub queries_ok: u64,
    pub queries_failed: u64,
    /// Ids of requests that arrived on end `(conn, end)` and are not answered there yet
    /// (kept beside the connection table, which is laid out for the ping path).
    reqs_in: std::collections::BTreeMap<(u32, u8), Vec<u64>>,
    /// Ended queries by result (`ok`, or why not).
    pub query_results: std::collections::BTreeMap<&'static str, u64>,
    pub violations: Violations,
    pub events: u64,
    pub faults_applied: u64,
    /// Ping timeouts counted by node incarnations that have since crashed.
    pub retired_ping_timeouts: u64,
    pub stopped_early: bool,
    hasher: TraceHash,
    trace: Option<Box<dyn Write>>,
    stop_on_violation: bool,
    stop: bool,
}

fn side_of(d: usize) -> Side {
    if d == 0 {
        Side::Outbound
    } else {
        Side::Inbound
    }
}

impl<M: NodeModel> Sim<M> {
    pub fn new(scenario: Scenario, seed: u64, opts: RunOptions) -> Self {
        let n = scenario.nodes.len();
        let mut id_rng = Rng::derive(seed, "node-ids");
        let mut clock_rng = Rng::derive(seed, "clocks");
        // Who listens where, by address: dials and peer lists resolve in O(log n), not by a
        // scan over every node (10,000 nodes × 8 peers at setup, every refused SYN).
        let mut by_addr = BTreeMap::new();
        for (i, def) in scenario.nodes.iter().enumerate() {
            // The first node at an address wins, as the scan it replaces did.
            by_addr.entry(def.addr()).or_insert(i as u32);
        }
        let mut nodes = Vec::with_capacity(n);
        for (i, def) in scenario.nodes.iter().enumerate() {
            let mut node_id = [0u8; 32];
            id_rng.fill(&mut node_id);
            let spec = NodeSpec {
                index: i,
                node_id,
                ip: def.ip,
                listen_port: Some(def.port),
                persistent_peers: def.peers.clone(),
                clock_offset: clock_rng.below(1 << 40),
                unix_time_at_zero: UNIX_EPOCH_AT_ZERO.saturating_add_signed(def.clock_skew_secs),
                tuning: scenario.tuning.clone(),
            };
            let peer_nodes = def
                .peers
                .iter()
                .filter_map(|a| by_addr.get(a).copied())
                .collect();
            nodes.push(NodeSlot {
                spec,
                nat: def.nat,
                model: None,
                persist: None,
                inc: 0,
                alive: false,
                down_how: None,
                timer_at: None,
                timer_gen: 0,
                conns: Ends::default(),
                queries: BTreeMap::new(),
                peer_nodes,
            });
        }
        let mut required = std::collections::BTreeSet::new();
        for (a, node) in nodes.iter().enumerate() {
            for &b in &node.peer_nodes {
                // a dials b: possible unless b is behind NAT.
                if !scenario.nodes[b as usize].nat && a as u32 != b {
                    required.insert((a.min(b as usize) as u32, a.max(b as usize) as u32));
                }
            }
        }
        // Node starts are part of the plan: late joiners come up like restarted nodes.
        let mut plan = scenario.plan.clone();
        for (i, def) in scenario.nodes.iter().enumerate() {
            plan.faults
                .push((def.start_at.unwrap_or(0), Fault::Up { node: i }));
        }
        plan.faults.sort_by_key(|(t, _)| *t);
        let net = NetState::new(
            scenario.net.clone(),
            n,
            scenario.filters.clone(),
            Rng::derive(seed, "net"),
        );
        Sim {
            end: scenario.duration,
            seed,
            now: 0,
            queue: Queue::default(),
            nodes,
            conns: Vec::new(),
            listeners: BTreeMap::new(),
            by_addr,
            net,
            boot_rng: Rng::derive(seed, "boots"),
            work_rng: Rng::derive(seed, "workload"),
            fault_rng: Rng::derive(seed, "fault-picks"),
            plan,
            ephemeral: BTreeMap::new(),
            pairs: Vec::new(),
            pair_index: BTreeMap::new(),
            required_pairs: required.into_iter().collect(),
            stalled: Vec::new(),
            written: VecDeque::new(),
            scratch: Vec::new(),
            frame_tmp: Vec::new(),
            meta_tmp: Vec::new(),
            ping_checks: VecDeque::new(),
            query_checks: VecDeque::new(),
            pings_outbound: PingStats::default(),
            pings_inbound: PingStats::default(),
            rtt: Histogram::default(),
            stray_pongs: 0,
            frames_dropped: 0,
            cycle_intervals: Vec::new(),
            queries_started: 0,
            queries_ok: 0,
            queries_failed: 0,
            query_results: Default::default(),
            reqs_in: Default::default(),
            violations: Violations::new(M::strict()),
            events: 0,
            faults_applied: 0,
            retired_ping_timeouts: 0,
            stopped_early: false,
            hasher: TraceHash::default(),
            trace: opts.trace,
            stop_on_violation: opts.stop_on_violation,
            stop: false,
            scenario,
        }
    }

    /// Runs to the end of the scenario (or the first violation, if asked to stop there).
    pub fn run(&mut self) {
        for idx in 0..self.plan.faults.len() {
            let at = self.plan.faults[idx].0;
            self.queue.push(at, Ev::Fault { idx: idx as u32 });
        }
        if let Some(every) = self.scenario.query_every {
            for n in 0..self.nodes.len() {
                let first = every / 2 + self.work_rng.below(every);
                self.queue.push(first, Ev::Query { node: n as u32 });
            }
        }
        if let Some(deadline) = self.scenario.checks.liveness_deadline {
            let at = self.plan.healed_at + deadline;
            if at <= self.end {
                self.queue.push(at, Ev::Liveness);
            }
        }
        while !self.stop {
            match self.queue.peek_time() {
                Some(t) if t <= self.end => {}
                _ => break,
            }
            let Some((t, ev)) = self.queue.pop() else {
                break;
            };
            self.now = t;
            self.events += 1;
            self.warm();
            self.hash_event(ev);
            self.dispatch(ev);
            self.settle();
            self.check_deadlines();
        }
        if self.stop {
            self.stopped_early = true;
        } else {
            self.now = self.end;
        }
        self.finish();
    }

    /// The rolling hash over every event and action so far.
    pub fn trace_hash(&self) -> String {
        self.hasher.hex()
    }

    // ---- hashing and tracing -------------------------------------------------------------

    #[inline]
    fn h(&mut self, tag: u8, a: u64, b: u64) {
        self.hasher.record(tag, self.now, a, b);
    }

    fn hash_event(&mut self, ev: Ev) {
        match ev {
            Ev::Pipe { conn, dir } => self.h(1, conn as u64, dir as u64),
            Ev::Timer { node, gen } => self.h(2, node as u64, gen as u64),
            Ev::Syn { conn } => self.h(3, conn as u64, 0),
            Ev::Fault { idx } => self.h(4, idx as u64, 0),
            Ev::PairCheck { pair, stamp } => self.h(5, pair as u64, stamp as u64),
            Ev::Query { node } => self.h(6, node as u64, 0),
            Ev::Liveness => self.h(7, 0, 0),
        }
    }

    fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    fn trace(&mut self, v: serde_json::Value) {
        if let Some(w) = self.trace.as_mut() {
            let mut v = v;
            if let Some(o) = v.as_object_mut() {
                o.insert("t".into(), serde_json::json!(self.now as f64 / 1e6));
            }
            let _ = serde_json::to_writer(&mut *w, &v);
            let _ = w.write_all(b"\n");
        }
    }

    fn violation(&mut self, kind: &'static str, detail: String) {
        if self.tracing() {
            self.trace(serde_json::json!({"ev": "violation", "kind": kind, "detail": detail}));
        }
        self.violations.record(Violation {
            at: self.now,
            kind,
            detail,
        });
        if self.stop_on_violation {
            self.stop = true;
        }
    }

    // ---- dispatch -------------------------------------------------------------------------

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Pipe { conn, dir } => self.on_pipe(conn, dir as usize),
            Ev::Timer { node, gen } => self.on_timer(node, gen),
            Ev::Syn { conn } => self.on_syn(conn),
            Ev::Fault { idx } => self.on_fault(idx as usize),
            Ev::PairCheck { pair, stamp } => self.on_pair_check(pair, stamp),
            Ev::Query { node } => self.on_query(node),
            Ev::Liveness => self.check_liveness(),
        }
    }

    /// Reports bytes that left to their writers, until nothing more happens.
    fn settle(&mut self) {
        while let Some((n, inc, mconn, bytes)) = self.written.pop_front() {
            let now = self.now;
            let slot = &mut self.nodes[n as usize];
            if !slot.alive || slot.inc != inc {
                continue;
            }
            if let Some(m) = slot.model.as_mut() {
                m.written(now, mconn, bytes);
            }
            self.drain(n);
        }
    }

    fn check_deadlines(&mut self) {
        while let Some(&(t, c, e, nonce)) = self.ping_checks.front() {
            if t > self.now {
                break;
            }
            self.ping_checks.pop_front();
            let end = &mut self.conns[c as usize].ends[e as usize];
            if end.state != EndState::Open || !end.sendq.is_empty() {
                continue;
            }
            if end.pings_in.take_first(|&x| x == nonce).is_some() {
                let node = end.node;
                self.violation(
                    "ping_unanswered",
                    format!("n{node} received ping {nonce:#x} on connection {c} and did not answer it on that connection within {}s", self.scenario.checks.pong_deadline / SEC),
                );
            }
        }
        while let Some(&(t, n, inc, id)) = self.query_checks.front() {
            if t > self.now {
                break;
            }
            self.query_checks.pop_front();
            let slot = &self.nodes[n as usize];
            if slot.inc == inc && slot.alive && slot.queries.contains_key(&id) {
                self.nodes[n as usize].queries.remove(&id);
                self.violation(
                    "query_never_ended",
                    format!("n{n}'s query {id} got no QueryDone within the query timeout"),
                );
            }
        }
    }

    // ---- nodes ----------------------------------------------------------------------------

    /// Carries out everything node `n` asks for, then re-arms its timer.
    fn drain(&mut self, n: u32) {
        loop {
            let Some(m) = self.nodes[n as usize].model.as_mut() else {
                return;
            };
            let Some(action) = m.poll_action() else { break };
            self.act(n, action);
        }
        self.rearm(n);
    }

    fn rearm(&mut self, n: u32) {
        let slot = &mut self.nodes[n as usize];
        let Some(m) = slot.model.as_ref() else { return };
        if let Some(t) = m.poll_timeout() {
            let t = t.max(self.now);
            if slot.timer_at.is_none_or(|cur| t < cur) {
                slot.timer_gen += 1;
                slot.timer_at = Some(t);
                self.queue.push(
                    t,
                    Ev::Timer {
                        node: n,
                        gen: slot.timer_gen,
                    },
                );
            }
        }
    }

    fn on_timer(&mut self, n: u32, gen: u32) {
        let now = self.now;
        let slot = &mut self.nodes[n as usize];
        if slot.timer_gen != gen {
            return;
        }
        slot.timer_at = None;
        let Some(m) = slot.model.as_mut() else { return };
        if m.poll_timeout().is_some_and(|t| t <= now) {
            m.on_timeout(now);
        }
        self.drain(n);
    }

    fn end_of(&self, n: u32, mconn: ModelConn) -> Option<(u32, usize)> {
        self.nodes[n as usize]
            .conns
            .get(mconn)
            .map(|(c, d)| (c, d as usize))
    }

    fn act(&mut self, n: u32, action: ModelAction) {
        match action {
            ModelAction::Send { conn, data } => {
                self.h(10, n as u64, data.len() as u64);
                if let Some((c, d)) = self.end_of(n, conn) {
                    self.send(c, d, &data);
                    if let Some((q, max)) = self.nodes[n as usize]
                        .model
                        .as_ref()
                        .and_then(|m| m.send_queue(conn))
                    {
                        if q > max {
                            self.violation("send_queue_over_bound", format!("n{n} holds {q} bytes for connection {c}, above its bound {max}"));
                        }
                    }
                }
                // The bytes are in the pipe now: the buffer goes back for the next frame.
                if let Some(m) = self.nodes[n as usize].model.as_mut() {
                    m.recycle(data);
                }
            }
            ModelAction::Close { conn } => {
                self.h(11, n as u64, conn);
                if let Some((c, d)) = self.end_of(n, conn) {
                    self.close_end(c, d, "closed");
                }
            }
            ModelAction::Dial { conn, addr } => {
                self.h(12, n as u64, conn);
                self.dial(n, conn, addr);
            }
            ModelAction::PauseRead { conn } => {
                self.h(13, n as u64, conn);
                if let Some((c, d)) = self.end_of(n, conn) {
                    self.conns[c as usize].ends[d].paused = true;
                }
            }
            ModelAction::ResumeRead { conn } => {
                self.h(14, n as u64, conn);
                if let Some((c, d)) = self.end_of(n, conn) {
                    self.conns[c as usize].ends[d].paused = false;
                    let pipe = &mut self.conns[c as usize].pipes[1 - d];
                    if pipe.held {
                        pipe.held = false;
                        self.kick(c, 1 - d);
                    }
                }
            }
            ModelAction::Event(e) => self.model_event(n, e),
        }
    }

    fn model_event(&mut self, n: u32, e: ModelEvent) {
        match e {
            ModelEvent::PeerUp { conn } => {
                self.h(15, n as u64, conn);
                if let Some((c, d)) = self.end_of(n, conn) {
                    self.conns[c as usize].ends[d].established = true;
                    if self.tracing() {
                        self.trace(serde_json::json!({"ev": "peer_up", "node": n, "conn": c}));
                    }
                    self.refresh(c);
                }
            }
            ModelEvent::PeerMoved { from, to } => {
                self.h(16, n as u64, to);
                if let Some((c, d)) = self.end_of(n, from) {
                    self.conns[c as usize].ends[d].established = false;
                    self.conns[c as usize].superseded = true;
                    self.refresh(c);
                }
                if let Some((c, d)) = self.end_of(n, to) {
                    self.conns[c as usize].ends[d].established = true;
                    if self.tracing() {
                        self.trace(serde_json::json!({"ev": "peer_moved", "node": n, "conn": c}));
                    }
                    self.refresh(c);
                }
            }
            ModelEvent::PeerDown { conn, reason } => {
                self.h(17, n as u64, conn);
                if self.tracing() {
                    self.trace(serde_json::json!({"ev": "peer_down", "node": n, "reason": reason}));
                }
                if let Some((c, d)) = self.end_of(n, conn) {
                    self.conns[c as usize].ends[d].established = false;
                    self.conns[c as usize].close_reason = reason;
                    self.refresh(c);
                } else if let Some(c) = self.last_conn_of(n, conn) {
                    if self.conns[c as usize].close_reason.is_empty()
                        || self.conns[c as usize].close_reason == "closed"
                    {
                        self.conns[c as usize].close_reason = reason;
                    }
                }
            }
            ModelEvent::QueryDone { id, result } => {
                self.h(18, n as u64, id);
                if self.nodes[n as usize].queries.remove(&id).is_none() {
                    self.violation("query_ended_twice", format!("n{n} reported query {id} ended, but it was not open (ended twice, or never started)"));
                } else {
                    if result == "ok" {
                        self.queries_ok += 1;
                    } else {
                        self.queries_failed += 1;
                    }
                    *self.query_results.entry(result).or_insert(0) += 1;
                }
            }
            ModelEvent::Height { height, reorg } => {
                self.h(19, n as u64, height);
                if self.tracing() {
                    self.trace(serde_json::json!({"ev": "height", "node": n, "height": height, "reorg": reorg}));
                }
            }
            ModelEvent::Misbehaved(s) => {
                self.h(21, n as u64, 0);
                self.violation(
                    "unexpected_misbehaviour",
                    format!("n{n} reported misbehaviour in a network without bad actors: {s}"),
                );
            }
            ModelEvent::Fatal(s) => {
                self.h(22, n as u64, 0);
                self.violation("fatal", format!("n{n} stopped: {s}"));
            }
            ModelEvent::Note(s) => {
                if self.tracing() {
                    self.trace(serde_json::json!({"ev": "note", "node": n, "note": s}));
                }
            }
        }
    }

    /// The engine connection a model connection id belonged to, after it was closed.
    fn last_conn_of(&self, n: u32, mconn: ModelConn) -> Option<u32> {
        self.conns
            .iter()
            .enumerate()
            .rev()
            .take(64)
            .find(|(_, c)| {
                c.ends
                    .iter()
                    .any(|e| e.node == n && e.mconn == mconn && e.state != EndState::Pending)
            })
            .map(|(i, _)| i as u32)
    }

    // ---- connections ----------------------------------------------------------------------

    fn next_ephemeral(&mut self, ip: IpAddr) -> u16 {
        let p = self.ephemeral.entry(ip).or_insert(49152);
        let port = *p;
        *p = if *p == u16::MAX { 49152 } else { *p + 1 };
        port
    }

    fn pair_of(&mut self, a: u32, b: u32) -> Option<u32> {
        if a == b {
            return None;
        }
        let key = (a.min(b), a.max(b));
        if let Some(&p) = self.pair_index.get(&key) {
            return Some(p);
        }
        let p = self.pairs.len() as u32;
        self.pairs.push(Pair::new(key.0, key.1));
        self.pair_index.insert(key, p);
        Some(p)
    }

    pub fn pair_lookup(&self, a: u32, b: u32) -> Option<&Pair> {
        self.pair_index
            .get(&(a.min(b), a.max(b)))
            .map(|&p| &self.pairs[p as usize])
    }

    fn dial(&mut self, n: u32, mconn: ModelConn, addr: SocketAddr) {
        let ip = self.nodes[n as usize].spec.ip;
        let port = self.next_ephemeral(ip);
        let base = self.net.base_latency(ip == addr.ip());
        let inc = self.nodes[n as usize].inc;
        let c = self.conns.len() as u32;
        self.conns.push(Conn {
            ends: [
                End::new(n, inc, mconn, EndState::Open, SocketAddr::new(ip, port)),
                End::new(u32::MAX, 0, 0, EndState::Pending, addr),
            ],
            pipes: [Pipe::default(), Pipe::default()],
            pair: None,
            base_latency: base,
            blackhole: false,
            created: self.now,
            live: false,
            both_up: false,
            first_live_at: None,
            both_up_at: None,
            up_spans: Vec::new(),
            closed_at: None,
            close_reason: "",
            superseded: false,
        });
        self.nodes[n as usize].conns.insert(mconn, (c, 0));
        let lat = self.net.chunk_latency(base);
        self.queue.push(self.now + lat, Ev::Syn { conn: c });
        if self.tracing() {
            self.trace(
                serde_json::json!({"ev": "dial", "node": n, "conn": c, "addr": addr.to_string()}),
            );
        }
    }

    fn on_syn(&mut self, c: u32) {
        let conn = &self.conns[c as usize];
        if conn.ends[0].state != EndState::Open {
            return; // the dialer gave up already
        }
        let dialer = conn.ends[0].node;
        let addr = conn.ends[1].addr;
        let remote = conn.ends[0].addr;
        let target = self.listeners.get(&addr).copied();
        // Background connect failures are faults too: they stop when the plan has healed.
        let faulty = self.now < self.plan.healed_at;
        let hang = faulty && self.net.rng.chance(self.net.params.hang_prob);
        let refuse = faulty && self.net.rng.chance(self.net.params.refuse_prob);
        let outcome = match target {
            Some(t) if self.net.blocked(dialer, t) || hang => "hang",
            Some(_) if refuse => "refused",
            Some(_) => "accept",
            None => match self.by_addr.get(&addr).map(|&i| i as usize) {
                // A host that is powered off, behind NAT, or not there: the SYN is lost.
                Some(i)
                    if self.nodes[i].nat || self.nodes[i].down_how == Some(DownHow::PowerOff) =>
                {
                    "hang"
                }
                Some(i) if self.net.blocked(dialer, i as u32) => "hang",
                Some(_) => "refused",
                None => "hang",
            },
        };
        self.h(20, c as u64, outcome.len() as u64);
        if self.tracing() {
            self.trace(serde_json::json!({"ev": "syn", "conn": c, "outcome": outcome}));
        }
        match outcome {
            "hang" => {}
            "refused" => self.push_item(c, 1, |due| Item::Rst { due }),
            _ => {
                let t = target.unwrap_or(0);
                let now = self.now;
                let accepted = self.nodes[t as usize]
                    .model
                    .as_mut()
                    .and_then(|m| m.accept(now, remote));
                match accepted {
                    Some(mconn) => {
                        let inc = self.nodes[t as usize].inc;
                        let conn = &mut self.conns[c as usize];
                        conn.ends[1] = End::new(t, inc, mconn, EndState::Open, addr);
                        conn.ends[1].connected = true;
                        self.nodes[t as usize].conns.insert(mconn, (c, 1));
                        let pair = self.pair_of(dialer, t);
                        self.conns[c as usize].pair = pair;
                        self.push_item(c, 1, |due| Item::SynAck { due });
                        self.drain(t);
                    }
                    None => {
                        self.push_item(c, 1, |due| Item::SynAck { due });
                        self.push_item(c, 1, |due| Item::Rst { due });
                    }
                }
            }
        }
    }

    /// Queues a control item on pipe `d` of `c` after everything already queued.
    fn push_item(&mut self, c: u32, d: usize, make: impl FnOnce(Micros) -> Item) {
        let base = self.conns[c as usize].base_latency;
        let lat = self.net.chunk_latency(base);
        let pipe = &mut self.conns[c as usize].pipes[d];
        let due = pipe.last_due.max(self.now + lat);
        pipe.last_due = due;
        pipe.items.push_back(make(due));
        self.kick(c, d);
    }

    /// Makes sure the front item of pipe `d` has an event, unless it waits for something.
    fn kick(&mut self, c: u32, d: usize) {
        let now = self.now;
        let pipe = &mut self.conns[c as usize].pipes[d];
        if pipe.scheduled || pipe.stalled || pipe.held {
            return;
        }
        if let Some(item) = pipe.items.front() {
            pipe.scheduled = true;
            self.queue.push(
                item.due().max(now),
                Ev::Pipe {
                    conn: c,
                    dir: d as u8,
                },
            );
        }
    }

    /// A model wrote `data` on its end `d` of `c`.
    fn send(&mut self, c: u32, d: usize, data: &[u8]) {
        let cap = self.net.params.socket_buffer;
        let conn = &mut self.conns[c as usize];
        let end = &conn.ends[d];
        if end.state != EndState::Open {
            return;
        }
        let (node, inc, mconn) = (end.node, end.inc, end.mconn);
        if conn.blackhole {
            self.written.push_back((node, inc, mconn, data.len()));
            return;
        }
        if conn.ends[d].sendq.is_empty() && conn.pipes[d].in_flight() + data.len() <= cap {
            self.put_on_link(c, d, data);
        } else {
            conn.ends[d].sendq.extend(data);
            self.pump(c, d);
        }
    }

    /// Moves what fits of end `d`'s send queue onto the link; sends a pending FIN once empty.
    fn pump(&mut self, c: u32, d: usize) {
        let cap = self.net.params.socket_buffer;
        let conn = &mut self.conns[c as usize];
        let room = cap.saturating_sub(conn.pipes[d].in_flight());
        let take = room.min(conn.ends[d].sendq.len());
        if take > 0 {
            let mut buf = std::mem::take(&mut self.scratch);
            buf.clear();
            buf.extend(conn.ends[d].sendq.drain(..take));
            self.put_on_link(c, d, &buf);
            self.scratch = buf;
        }
        let end = &mut self.conns[c as usize].ends[d];
        if end.fin_pending && end.sendq.is_empty() {
            end.fin_pending = false;
            self.push_item(c, d, |due| Item::Fin { due });
        }
    }

    /// Bytes leave end `d`: frames are cut, filtered and observed, the rest is chunked onto
    /// the link, and the writer is told they left.
    fn put_on_link(&mut self, c: u32, d: usize, bytes: &[u8]) {
        let now = self.now;
        let side = side_of(d);
        let mut seen = std::mem::take(&mut self.frame_tmp);
        seen.clear();
        let mut dropped = 0u64;
        let (node, inc, mconn, before) = {
            let Sim { conns, net, .. } = self;
            let conn = &mut conns[c as usize];
            let [e0, e1] = &mut conn.ends;
            let end = if d == 0 { e0 } else { e1 };
            let pipe = &mut conn.pipes[d];
            let before = pipe.pushed;
            let from = end.node as usize;
            end.reasm.feed(bytes, |frame, info| {
                let drop = net.drops(info.kind, side, from);
                if info.nonce.is_some() {
                    seen.push((info, drop));
                }
                if drop {
                    dropped += 1;
                    return;
                }
                pipe.buf.push(frame);
                pipe.pushed += frame.len() as u64;
                // Only pings, pongs, requests and responses are watched on arrival; other
                // frames need no record.
                if info.nonce.is_some() {
                    pipe.frames.push_back(FrameMeta {
                        end_offset: pipe.pushed,
                        info,
                    });
                }
            });
            (end.node, end.inc, end.mconn, before)
        };
        self.frames_dropped += dropped;
        self.written.push_back((node, inc, mconn, bytes.len()));
        for &(info, _dropped) in seen.iter() {
            self.observe_sent(c, d, info, now);
        }
        self.frame_tmp = seen;
        let fresh = self.conns[c as usize].pipes[d].pushed - before;
        if fresh > 0 {
            self.chunk(c, d, fresh);
        }
    }

    /// Splits `len` fresh bytes of pipe `d` into delivery chunks at random boundaries.
    fn chunk(&mut self, c: u32, d: usize, len: u64) {
        let base = self.conns[c as usize].base_latency;
        let split = len > 1 && self.net.rng.chance(self.net.params.split_prob);
        let k = if split {
            self.net
                .rng
                .range(2, self.net.params.max_chunks.max(2) as u64)
                .min(len)
        } else {
            1
        };
        let mut remaining = len;
        for i in 0..k {
            let left = k - i - 1;
            let piece = if left == 0 {
                remaining
            } else {
                self.net.rng.range(1, remaining - left)
            };
            remaining -= piece;
            let lat = self.net.chunk_latency(base);
            let pipe = &mut self.conns[c as usize].pipes[d];
            let due = pipe.last_due.max(self.now + lat);
            pipe.last_due = due;
            pipe.items.push_back(Item::Data {
                len: piece as u32,
                due,
            });
        }
        self.kick(c, d);
    }

    fn observe_sent(&mut self, c: u32, d: usize, info: FrameInfo, now: Micros) {
        let Some(nonce) = info.nonce else { return };
        match info.kind {
            Kind::Response => {
                // Request ids count per connection, so a reply sent on the wrong connection
                // shows as a reply to nothing received on this one.
                let open = self.reqs_in.get_mut(&(c, d as u8));
                let answered = open.and_then(|ids| {
                    let i = ids.iter().position(|&x| x == nonce)?;
                    Some(ids.swap_remove(i))
                });
                if answered.is_none() {
                    let n = self.conns[c as usize].ends[d].node;
                    self.violation(
                        "response_on_wrong_connection",
                        format!("n{n} sent a response with id {nonce} on connection {c}, where no request with that id arrived"),
                    );
                }
            }
            Kind::Ping => {
                self.conns[c as usize].ends[d].pings_out.push((nonce, now));
                if d == 0 {
                    self.pings_outbound.sent += 1;
                } else {
                    self.pings_inbound.sent += 1;
                }
            }
            Kind::Pong => {
                let end = &mut self.conns[c as usize].ends[d];
                if end.pings_in.take_first(|&x| x == nonce).is_some() {
                    return;
                }
                // Not a ping received here: was it received on another connection of this node?
                let n = end.node;
                let others: Vec<(u32, usize)> = self.nodes[n as usize]
                    .conns
                    .values()
                    .map(|(c2, d2)| (c2, d2 as usize))
                    .collect();
                for (c2, d2) in others {
                    if c2 == c {
                        continue;
                    }
                    let e2 = &mut self.conns[c2 as usize].ends[d2];
                    if e2.pings_in.take_first(|&x| x == nonce).is_some() {
                        self.violation(
                            "pong_on_wrong_connection",
                            format!("n{n} answered ping {nonce:#x} received on connection {c2} with a pong on connection {c}"),
                        );
                        return;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_pipe(&mut self, c: u32, d: usize) {
        let r = 1 - d;
        let now = self.now;
        {
            let conn = &mut self.conns[c as usize];
            conn.pipes[d].scheduled = false;
            if conn.blackhole {
                conn.pipes[d].clear();
                return;
            }
        }
        let Some(item) = self.conns[c as usize].pipes[d].items.front().copied() else {
            return;
        };
        if item.due() > now {
            self.kick(c, d);
            return;
        }
        let (from, to) = (
            self.conns[c as usize].ends[d].node,
            self.conns[c as usize].ends[r].node,
        );
        if to != u32::MAX && from != u32::MAX && self.net.blocked(from, to) {
            self.conns[c as usize].pipes[d].stalled = true;
            self.stalled.push((c, d as u8));
            return;
        }
        match item {
            Item::SynAck { .. } => {
                self.conns[c as usize].pipes[d].items.pop_front();
                let end = &mut self.conns[c as usize].ends[r];
                if end.state == EndState::Open && !end.connected {
                    end.connected = true;
                    let (n, mconn) = (end.node, end.mconn);
                    if self.tracing() {
                        self.trace(serde_json::json!({"ev": "connected", "node": n, "conn": c}));
                    }
                    if let Some(m) = self.nodes[n as usize].model.as_mut() {
                        m.connected(now, mconn);
                    }
                    self.drain(n);
                } else if self.conns[c as usize].ends[d].state == EndState::Open {
                    // The dialer is gone: its kernel resets the connection.
                    self.push_item(c, r, |due| Item::Rst { due });
                }
            }
            Item::Data { len, .. } => {
                if self.conns[c as usize].ends[r].state == EndState::Open
                    && self.conns[c as usize].ends[r].paused
                {
                    self.conns[c as usize].pipes[d].held = true;
                    return;
                }
                let len = len as usize;
                let mut metas = std::mem::take(&mut self.meta_tmp);
                metas.clear();
                {
                    let pipe = &mut self.conns[c as usize].pipes[d];
                    pipe.items.pop_front();
                    pipe.delivered += len as u64;
                    while let Some(f) = pipe.frames.front() {
                        if f.end_offset > pipe.delivered {
                            break;
                        }
                        metas.push(f.info);
                        pipe.frames.pop_front();
                    }
                }
                let end = &self.conns[c as usize].ends[r];
                let (n, inc, mconn, state) = (end.node, end.inc, end.mconn, end.state);
                let live_receiver = state == EndState::Open
                    && self.nodes[n as usize].alive
                    && self.nodes[n as usize].inc == inc;
                if live_receiver {
                    for info in metas.iter() {
                        self.observe_received(c, r, *info, now);
                    }
                    self.meta_tmp = metas;
                    // The model reads the chunk where it lies in the pipe: no copy.
                    let Sim { conns, nodes, .. } = self;
                    let buf = &mut conns[c as usize].pipes[d].buf;
                    if let Some(m) = nodes[n as usize].model.as_mut() {
                        m.bytes_in(now, mconn, buf.front(len));
                    }
                    buf.consume(len);
                    self.drain(n);
                } else {
                    self.conns[c as usize].pipes[d].buf.consume(len);
                    self.meta_tmp = metas;
                    let restarted = n != u32::MAX
                        && state == EndState::Closed
                        && self.nodes[n as usize].inc != inc
                        && self.nodes[n as usize].alive;
                    if restarted && self.conns[c as usize].ends[d].state == EndState::Open {
                        // The host rebooted and no longer knows this connection: RST.
                        self.conns[c as usize].pipes[d].clear();
                        self.push_item(c, r, |due| Item::Rst { due });
                        return;
                    }
                }
                // Room freed in the socket buffer: let the writer continue.
                if !self.conns[c as usize].ends[d].sendq.is_empty()
                    || self.conns[c as usize].ends[d].fin_pending
                {
                    self.pump(c, d);
                }
            }
            Item::Fin { .. } | Item::Rst { .. } => {
                let reset = matches!(item, Item::Rst { .. });
                self.conns[c as usize].pipes[d].items.pop_front();
                if reset {
                    self.conns[c as usize].pipes[d].clear();
                }
                let end = &self.conns[c as usize].ends[r];
                if end.state == EndState::Open {
                    let (n, mconn, connected) = (end.node, end.mconn, end.connected);
                    let reason = if reset { "reset" } else { "fin" };
                    self.end_gone(c, r, reason);
                    if let Some(m) = self.nodes[n as usize].model.as_mut() {
                        if !connected {
                            m.dial_failed(now, mconn);
                        } else {
                            m.closed(
                                now,
                                mconn,
                                if reset {
                                    CloseKind::Reset
                                } else {
                                    CloseKind::Fin
                                },
                            );
                        }
                    }
                    self.drain(n);
                }
            }
        }
        self.kick(c, d);
    }

    fn observe_received(&mut self, c: u32, r: usize, info: FrameInfo, now: Micros) {
        let Some(nonce) = info.nonce else { return };
        match info.kind {
            Kind::Request => self.reqs_in.entry((c, r as u8)).or_default().push(nonce),
            Kind::Ping => {
                self.conns[c as usize].ends[r].pings_in.push(nonce);
                self.ping_checks.push_back((
                    now + self.scenario.checks.pong_deadline,
                    c,
                    r as u8,
                    nonce,
                ));
            }
            Kind::Pong => {
                let end = &mut self.conns[c as usize].ends[r];
                if let Some((_, sent)) = end.pings_out.take_first(|&(x, _)| x == nonce) {
                    self.rtt.record(now - sent);
                    if r == 0 {
                        self.pings_outbound.answered += 1;
                    } else {
                        self.pings_inbound.answered += 1;
                    }
                } else {
                    self.stray_pongs += 1;
                }
            }
            _ => {}
        }
    }

    /// End `d` of `c` is no longer held by its model (it closed it, or was told it closed).
    fn end_gone(&mut self, c: u32, d: usize, reason: &'static str) {
        let now = self.now;
        let conn = &mut self.conns[c as usize];
        let end = &mut conn.ends[d];
        if end.state != EndState::Open {
            return;
        }
        end.state = EndState::Closed;
        end.pings_in.clear();
        self.reqs_in.remove(&(c, d as u8));
        let stats = if d == 0 {
            &mut self.pings_outbound
        } else {
            &mut self.pings_inbound
        };
        stats.judge_unanswered(now, PING_LOSS_AGE, end.pings_out.iter().map(|&(_, t)| t));
        end.pings_out.clear();
        let (n, mconn) = (end.node, end.mconn);
        if self.nodes[n as usize].conns.get(mconn) == Some((c, d as u8)) {
            self.nodes[n as usize].conns.remove(mconn);
        }
        if conn.close_reason.is_empty() {
            conn.close_reason = reason;
        }
        if conn.fully_closed() && conn.closed_at.is_none() {
            conn.closed_at = Some(now);
        }
        if self.tracing() {
            self.trace(
                serde_json::json!({"ev": "end_closed", "node": n, "conn": c, "reason": reason}),
            );
        }
        self.refresh(c);
    }

    /// The model closed its end: flush, then FIN.
    fn close_end(&mut self, c: u32, d: usize, reason: &'static str) {
        if self.conns[c as usize].ends[d].state != EndState::Open {
            return;
        }
        self.end_gone(c, d, reason);
        let end = &mut self.conns[c as usize].ends[d];
        if end.sendq.is_empty() {
            self.push_item(c, d, |due| Item::Fin { due });
        } else {
            end.fin_pending = true;
        }
    }

    /// Re-derives whether `c` is established at one or both ends and updates its pair.
    fn refresh(&mut self, c: u32) {
        let now = self.now;
        let grace = self.scenario.checks.settle_grace;
        let conn = &mut self.conns[c as usize];
        let Some(p) = conn.pair else { return };
        let e0 = conn.ends[0].is_open() && conn.ends[0].established;
        let e1 = conn.ends[1].is_open() && conn.ends[1].established;
        // See invariants.rs: only a connection established at both ends counts for the pair.
        let (live, both) = (e0 && e1, e0 && e1);
        let pair = &mut self.pairs[p as usize];
        if live != conn.live {
            conn.live = live;
            if live {
                pair.live += 1;
                conn.first_live_at.get_or_insert(now);
            } else {
                pair.live -= 1;
            }
            pair.max_live = pair.max_live.max(pair.live);
            if pair.live > 1 && pair.over_since.is_none() {
                pair.over_since = Some(now);
                pair.stamp += 1;
                self.queue.push(
                    now + grace,
                    Ev::PairCheck {
                        pair: p,
                        stamp: pair.stamp,
                    },
                );
            } else if pair.live <= 1 && pair.over_since.is_some() {
                pair.over_since = None;
                pair.stamp += 1;
            }
        }
        if both != conn.both_up {
            conn.both_up = both;
            if both {
                conn.both_up_at = Some(now);
                pair.both += 1;
                pair.connects += 1;
                // The replaced connection: the latest lost one dialed by the same node, else
                // the latest lost one of the pair.
                let by_low = conn.ends[0].node < conn.ends[1].node;
                let pick = pair
                    .closed_stack
                    .iter()
                    .rposition(|&(_, low)| low == by_low)
                    .or(pair.closed_stack.len().checked_sub(1));
                if let Some(i) = pick {
                    let (prev, _) = pair.closed_stack.remove(i);
                    pair.reconnects += 1;
                    self.cycle_intervals.push(now - prev);
                }
            } else {
                let since = conn.both_up_at.unwrap_or(now);
                conn.up_spans.push((since, now));
                pair.both -= 1;
                // A connection given up for another one of the same pair (duplicate
                // resolution) was not lost: its successor is not a reconnect.
                if !conn.superseded {
                    pair.closed_stack
                        .push((since, conn.ends[0].node < conn.ends[1].node));
                }
            }
            if self.trace.is_some() {
                let v = serde_json::json!({"ev": if both { "pair_up" } else { "pair_down" }, "conn": c, "a": pair.a, "b": pair.b});
                self.trace(v);
            }
        }
    }

    fn on_pair_check(&mut self, p: u32, stamp: u32) {
        let grace = self.scenario.checks.settle_grace;
        let pair = &mut self.pairs[p as usize];
        if pair.stamp != stamp || pair.live <= 1 {
            return;
        }
        pair.max_settled = pair.max_settled.max(pair.live);
        let first = !pair.reported;
        pair.reported = true;
        let (a, b, live) = (pair.a, pair.b, pair.live);
        self.queue
            .push(self.now + grace, Ev::PairCheck { pair: p, stamp });
        if first {
            self.violation(
                "duplicate_connections",
                format!(
                    "n{a} and n{b} have held {live} established connections for more than {}s",
                    grace / SEC
                ),
            );
        }
    }

    // ---- application workload -------------------------------------------------------------

    fn on_query(&mut self, n: u32) {
        let Some(every) = self.scenario.query_every else {
            return;
        };
        let next = self.now + every / 2 + self.work_rng.below(every);
        self.queue.push(next, Ev::Query { node: n });
        let slot = &self.nodes[n as usize];
        if !slot.alive || slot.peer_nodes.is_empty() {
            return;
        }
        let pick = self.work_rng.below(slot.peer_nodes.len() as u64) as usize;
        let peer = self.nodes[slot.peer_nodes[pick] as usize].spec.node_id;
        let now = self.now;
        let Some(id) = self.nodes[n as usize]
            .model
            .as_mut()
            .and_then(|m| m.query(now, peer))
        else {
            return;
        };
        self.queries_started += 1;
        let inc = self.nodes[n as usize].inc;
        if self.nodes[n as usize].queries.insert(id, now).is_some() {
            self.violation(
                "query_id_reused",
                format!("n{n} returned query id {id} twice"),
            );
        }
        let deadline = now + self.scenario.tuning.query_timeout + 5 * SEC;
        self.query_checks.push_back((deadline, n, inc, id));
        self.drain(n);
    }

    // ---- faults ----------------------------------------------------------------------------

    fn on_fault(&mut self, idx: usize) {
        let fault = self.plan.faults[idx].1.clone();
        // Nodes starting at zero are the scenario, not a fault.
        if self.now > 0 || !matches!(fault, Fault::Up { .. }) {
            self.faults_applied += 1;
        }
        if self.tracing() {
            self.trace(serde_json::json!({"ev": "fault", "fault": fault}));
        }
        match fault {
            Fault::Partition { groups } => self.net.partition(&groups),
            Fault::Heal => {
                self.net.heal();
                self.unstall();
            }
            Fault::Clog { from, to } => self.net.clog(from as u32, to as u32),
            Fault::Unclog { from, to } => {
                self.net.unclog(from as u32, to as u32);
                self.unstall();
            }
            Fault::FilterOn { id, filter } => self.net.filter_on(id, filter),
            Fault::FilterOff { id } => self.net.filter_off(id),
            Fault::KillConn { how } => self.kill_conn(how),
            Fault::Down { node, how } => self.node_down(node as u32, how),
            Fault::Up { node } => self.node_up(node as u32),
        }
    }

    fn unstall(&mut self) {
        let stalled = std::mem::take(&mut self.stalled);
        for (c, d) in stalled {
            let d = d as usize;
            let base = self.conns[c as usize].base_latency;
            let lat = self.net.chunk_latency(base);
            let pipe = &mut self.conns[c as usize].pipes[d];
            pipe.stalled = false;
            // Retransmission after the heal: the held bytes arrive one latency later.
            let due = self.now + lat;
            pipe.last_due = pipe.last_due.max(due);
            if !pipe.scheduled && !pipe.held && !pipe.items.is_empty() {
                pipe.scheduled = true;
                self.queue.push(
                    due,
                    Ev::Pipe {
                        conn: c,
                        dir: d as u8,
                    },
                );
            }
        }
    }

    fn kill_conn(&mut self, how: KillHow) {
        let open: Vec<u32> = (0..self.conns.len() as u32)
            .filter(|&c| {
                let conn = &self.conns[c as usize];
                !conn.blackhole && conn.ends.iter().all(|e| e.is_open() && e.connected)
            })
            .collect();
        let Some(i) = self.fault_rng.pick(open.len()) else {
            return;
        };
        let c = open[i];
        match how {
            KillHow::Fin => {
                self.push_item(c, 0, |due| Item::Fin { due });
                self.push_item(c, 1, |due| Item::Fin { due });
            }
            KillHow::Rst => {
                for d in 0..2 {
                    self.conns[c as usize].pipes[d].clear();
                    self.push_item(c, d, |due| Item::Rst { due });
                }
            }
            KillHow::Silent => {
                let conn = &mut self.conns[c as usize];
                conn.blackhole = true;
                conn.pipes[0].clear();
                conn.pipes[1].clear();
            }
        }
    }

    fn node_down(&mut self, n: u32, how: DownHow) {
        if !self.nodes[n as usize].alive {
            return;
        }
        let now = self.now;
        if how == DownHow::Shutdown {
            if let Some(m) = self.nodes[n as usize].model.as_mut() {
                m.shutdown(now);
            }
            self.drain(n);
            self.settle();
        }
        let ends: Vec<(u32, u8)> = self.nodes[n as usize].conns.values().collect();
        for (c, d) in ends {
            let d = d as usize;
            let unread = !self.conns[c as usize].pipes[1 - d].items.is_empty();
            self.end_gone(c, d, "node_down");
            self.conns[c as usize].ends[d].sendq.clear();
            self.conns[c as usize].ends[d].fin_pending = false;
            match how {
                DownHow::PowerOff => {}
                DownHow::Kill | DownHow::Shutdown => {
                    if unread {
                        self.conns[c as usize].pipes[d].clear();
                        self.push_item(c, d, |due| Item::Rst { due });
                    } else {
                        self.push_item(c, d, |due| Item::Fin { due });
                    }
                }
            }
        }
        let slot = &mut self.nodes[n as usize];
        slot.alive = false;
        slot.down_how = Some(how);
        slot.timer_gen += 1;
        slot.timer_at = None;
        slot.queries.clear();
        slot.conns.clear();
        if let Some(m) = slot.model.take() {
            self.retired_ping_timeouts += m.counters().ping_timeouts;
            slot.persist = m.crash();
        }
        if let Some(port) = slot.spec.listen_port {
            self.listeners.remove(&SocketAddr::new(slot.spec.ip, port));
        }
    }

    fn node_up(&mut self, n: u32) {
        if self.nodes[n as usize].alive {
            return;
        }
        let boot_seed = self.boot_rng.next_u64();
        let now = self.now;
        let slot = &mut self.nodes[n as usize];
        slot.inc += 1;
        let persist = slot.persist.take();
        match M::boot(&slot.spec, boot_seed, now, persist) {
            Ok(m) => {
                slot.model = Some(m);
                slot.alive = true;
                slot.down_how = None;
                if let (Some(port), false) = (slot.spec.listen_port, slot.nat) {
                    self.listeners
                        .insert(SocketAddr::new(slot.spec.ip, port), n);
                }
                self.drain(n);
            }
            Err(e) => self.violation("boot_failed", format!("n{n} could not start: {e}")),
        }
    }

    // ---- liveness and the end ----------------------------------------------------------------

    fn check_liveness(&mut self) {
        let mut missing = Vec::new();
        for &(a, b) in &self.required_pairs {
            if !self.nodes[a as usize].alive || !self.nodes[b as usize].alive {
                continue;
            }
            let up = self.pair_lookup(a, b).is_some_and(|p| p.both > 0);
            if !up {
                missing.push(format!("n{a}-n{b}"));
            }
        }
        if !missing.is_empty() {
            let n = missing.len();
            missing.truncate(8);
            self.violation(
                "liveness",
                format!(
                    "{n} pair(s) not connected {}s after the last fault healed: {}",
                    self.scenario.checks.liveness_deadline.unwrap_or(0) / SEC,
                    missing.join(", ")
                ),
            );
        }
    }

    fn finish(&mut self) {
        let now = self.now;
        for conn in self.conns.iter_mut() {
            if conn.both_up {
                conn.up_spans.push((conn.both_up_at.unwrap_or(now), now));
            }
            for (d, end) in conn.ends.iter_mut().enumerate() {
                let stats = if d == 0 {
                    &mut self.pings_outbound
                } else {
                    &mut self.pings_inbound
                };
                stats.judge_unanswered(now, PING_LOSS_AGE, end.pings_out.iter().map(|&(_, t)| t));
                end.pings_out.clear();
            }
        }
        self.h(99, self.events, 0);
    }

    /// Live connections (established at one end or more) per pair, now.
    pub fn live_per_pair(&self) -> impl Iterator<Item = u32> + '_ {
        self.pairs.iter().map(|p| p.live)
    }

    pub fn model(&self, n: usize) -> Option<&M> {
        self.nodes[n].model.as_ref()
    }
}
