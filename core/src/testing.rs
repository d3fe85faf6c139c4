//! An in-memory network for the core's own tests and examples: N machines, explicit virtual
//! time, and a switchboard that moves bytes between them, so protocol tests read like stories.
//!
//! It models TCP just enough for the connection layer: connects, ordered bytes with a fixed
//! one-way latency, FIN, silent cuts (half-open connections) and message filters. The
//! simulator (`timed-sim`) is the rich, fault-injecting version of this.

use crate::id::ConnId;
use crate::machine::{Action, CloseKind, Input, NodeEvent, PeerMachine};
use crate::store::MemStore;
use crate::time::{Duration, Instant};
use crate::wire::{Decoded, FrameDecoder, Message};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

/// Index of a node on the switchboard.
pub type NodeIx = usize;

/// Decides whether a frame from `from` to `to` is dropped: `(from, to, message)`.
pub type Filter = Box<dyn FnMut(NodeIx, NodeIx, &Message) -> bool>;

struct Node {
    machine: Option<PeerMachine<MemStore>>,
    addr: SocketAddr,
    events: Vec<(Instant, NodeEvent)>,
    /// Every action the machine emitted, with its time.
    log: Vec<(Instant, Action)>,
}

/// One direction of an in-memory connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct End {
    node: NodeIx,
    conn: ConnId,
}

enum Delivery {
    Connect { from: End, addr: SocketAddr },
    Bytes { to: End, data: Vec<u8> },
    Fin { to: End },
}

/// The in-memory network. See the [`PeerMachine`] docs for the loop that drives it.
pub struct Switchboard {
    nodes: Vec<Node>,
    peer_of: BTreeMap<End, End>,
    queue: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    now: Instant,
    latency: Duration,
    /// Node pairs whose links silently drop everything (both directions).
    cut: BTreeSet<(NodeIx, NodeIx)>,
    filter: Option<Filter>,
    /// Frame decoders per sending end, used only when a filter is set.
    decoders: BTreeMap<End, FrameDecoder>,
    next_port: u16,
    trace: Option<Vec<Traced>>,
    trace_decoders: BTreeMap<End, FrameDecoder>,
    /// When set, every send is delivered in pieces of random sizes (exercises framing).
    split: Option<crate::rng::Rng>,
}

/// A frame delivered to a machine, as recorded by [`Switchboard::enable_trace`].
#[derive(Clone, Debug)]
pub struct Traced {
    /// Virtual time of the delivery.
    pub at: Instant,
    /// The sending node and its connection id.
    pub from: (NodeIx, ConnId),
    /// The receiving node and its connection id.
    pub to: (NodeIx, ConnId),
    /// The frame, decoded (frames that do not decode are not recorded).
    pub message: Message,
}

impl fmt::Debug for Switchboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switchboard")
            .field("nodes", &self.nodes.len())
            .field("now", &self.now)
            .finish()
    }
}

impl Default for Switchboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Switchboard {
    /// An empty network with a 1 ms one-way latency.
    pub fn new() -> Self {
        Switchboard {
            nodes: Vec::new(),
            peer_of: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            now: Instant::ZERO,
            latency: Duration::from_millis(1),
            cut: BTreeSet::new(),
            filter: None,
            decoders: BTreeMap::new(),
            next_port: 40_000,
            trace: None,
            trace_decoders: BTreeMap::new(),
            split: None,
        }
    }

    /// Delivers every send split at random boundaries chosen from `seed`.
    pub fn split_writes(&mut self, seed: u64) {
        self.split = Some(crate::rng::Rng::new(seed));
    }

    /// Sets the one-way latency of every link, for bytes sent from now on.
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// Adds a machine listening on `addr`.
    pub fn add(&mut self, machine: PeerMachine<MemStore>, addr: SocketAddr) -> NodeIx {
        self.nodes.push(Node {
            machine: Some(machine),
            addr,
            events: Vec::new(),
            log: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// The machine of `node`.
    ///
    /// # Panics
    /// If the node is crashed ([`crash`](Self::crash)) — a test bug.
    pub fn machine(&mut self, node: NodeIx) -> &mut PeerMachine<MemStore> {
        self.nodes[node].machine.as_mut().expect("node is crashed")
    }

    /// The network's virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Events `node` emitted so far, with their times.
    pub fn events(&self, node: NodeIx) -> &[(Instant, NodeEvent)] {
        &self.nodes[node].events
    }

    /// Every action `node` emitted so far, with its time.
    pub fn action_log(&self, node: NodeIx) -> &[(Instant, Action)] {
        &self.nodes[node].log
    }

    // ---- the transport operations a driver performs ----------------------------------------

    /// Carries out `Action::Send`: the bytes arrive at the other end after the latency
    /// (unless the link is cut or filtered), and `node` is told at once they were written.
    pub fn send(&mut self, node: NodeIx, conn: ConnId, data: impl Into<crate::wire::Payload>) {
        let data = data.into().into_vec();
        let from = End { node, conn };
        let len = data.len();
        if let Some(&to) = self.peer_of.get(&from) {
            let data = self.filtered(from, to, data);
            if !self.is_cut(node, to.node) && !data.is_empty() {
                let at = self.now + self.latency;
                match self.split.as_mut() {
                    None => self.push(at, Delivery::Bytes { to, data }),
                    Some(rng) => {
                        let mut pieces = Vec::new();
                        let mut rest = &data[..];
                        while !rest.is_empty() {
                            let n = rng.range_inclusive(1, rest.len().min(4096) as u64) as usize;
                            pieces.push(rest[..n].to_vec());
                            rest = &rest[n..];
                        }
                        for piece in pieces {
                            self.push(at, Delivery::Bytes { to, data: piece });
                        }
                    }
                }
            }
        }
        // The bytes left this end: report them written.
        if let Some(m) = self.nodes[node].machine.as_mut() {
            m.handle(self.now, Input::Written { conn, bytes: len });
        }
    }

    /// Carries out `Action::Close`: the other end sees a FIN after the latency.
    pub fn close(&mut self, node: NodeIx, conn: ConnId) {
        let from = End { node, conn };
        if let Some(to) = self.peer_of.remove(&from) {
            self.peer_of.remove(&to);
            if !self.is_cut(node, to.node) {
                self.push(self.now + self.latency, Delivery::Fin { to });
            }
        }
    }

    /// Carries out `Action::Dial`: after the latency the machine at `addr` accepts it, or
    /// `node` is told the dial failed.
    pub fn dial(&mut self, node: NodeIx, conn: ConnId, addr: SocketAddr) {
        self.push(
            self.now + self.latency,
            Delivery::Connect {
                from: End { node, conn },
                addr,
            },
        );
    }

    /// Carries out everything `node` asked for, recording its events.
    pub fn drain(&mut self, node: NodeIx) {
        loop {
            let Some(action) = self.nodes[node]
                .machine
                .as_mut()
                .and_then(|m| m.poll_action())
            else {
                return;
            };
            self.nodes[node].log.push((self.now, action.clone()));
            match action {
                Action::Send { conn, data } => self.send(node, conn, data),
                Action::Close { conn } => self.close(node, conn),
                Action::Dial { conn, addr } => self.dial(node, conn, addr),
                Action::PauseRead { .. } | Action::ResumeRead { .. } => {}
                Action::Notify(e) => self.nodes[node].events.push((self.now, e)),
            }
        }
    }

    /// Delivers everything due at or before `now`. True if anything was delivered.
    pub fn deliver(&mut self, now: Instant) -> bool {
        self.now = self.now.max(now);
        let mut any = false;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let d = entry.remove();
            any = true;
            match d {
                Delivery::Connect { from, addr } => self.connect(from, addr),
                Delivery::Bytes { to, data } => {
                    self.record(to, &data);
                    if let Some(m) = self.nodes[to.node].machine.as_mut() {
                        m.handle(
                            self.now,
                            Input::BytesIn {
                                conn: to.conn,
                                data: &data,
                            },
                        );
                    }
                }
                Delivery::Fin { to } => {
                    self.peer_of.remove(&to);
                    if let Some(m) = self.nodes[to.node].machine.as_mut() {
                        m.handle(
                            self.now,
                            Input::Closed {
                                conn: to.conn,
                                kind: CloseKind::Fin,
                            },
                        );
                    }
                }
            }
        }
        any
    }

    fn connect(&mut self, from: End, addr: SocketAddr) {
        let target = self
            .nodes
            .iter()
            .position(|n| n.addr == addr && n.machine.is_some());
        let src_ip = self.nodes[from.node].addr.ip();
        let src = SocketAddr::new(src_ip, self.next_port);
        self.next_port = self.next_port.wrapping_add(1).max(40_000);
        let accepted = match target {
            Some(t) if !self.is_cut(from.node, t) => {
                let now = self.now;
                self.nodes[t]
                    .machine
                    .as_mut()
                    .and_then(|m| m.accept(now, src).ok())
                    .map(|c| End { node: t, conn: c })
            }
            _ => None,
        };
        let now = self.now;
        let Some(m) = self.nodes[from.node].machine.as_mut() else {
            return;
        };
        match accepted {
            Some(to) => {
                self.peer_of.insert(from, to);
                self.peer_of.insert(to, from);
                m.handle(now, Input::Connected { conn: from.conn });
            }
            None => m.handle(now, Input::DialFailed { conn: from.conn }),
        }
    }

    /// The earliest instant anything is due: a delivery or a machine timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let d = self.queue.keys().next().map(|k| k.0);
        let t = self
            .nodes
            .iter()
            .filter_map(|n| n.machine.as_ref()?.poll_timeout())
            .min();
        match (d, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs machine timers due at `now`.
    pub fn wake(&mut self, now: Instant) {
        self.now = self.now.max(now);
        for n in &mut self.nodes {
            if let Some(m) = n.machine.as_mut() {
                if m.poll_timeout().is_some_and(|t| t <= now) {
                    m.handle_timeout(now);
                }
            }
        }
    }

    /// Drives every machine until virtual time `until` (or until nothing is left to do).
    pub fn run_until(&mut self, until: Instant) {
        loop {
            for i in 0..self.nodes.len() {
                self.drain(i);
            }
            if self.deliver(self.now) {
                continue;
            }
            match self.next_deadline() {
                Some(t) if t <= until => {
                    let t = t.max(self.now);
                    self.deliver(t);
                    self.wake(t);
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    // ---- faults -----------------------------------------------------------------------------

    /// Silently drops all traffic between `a` and `b` from now on: their connections become
    /// half-open, as after a pulled cable.
    pub fn cut(&mut self, a: NodeIx, b: NodeIx) {
        self.cut.insert((a.min(b), a.max(b)));
    }

    /// Undoes a [`cut`](Self::cut): traffic between `a` and `b` flows again.
    pub fn heal(&mut self, a: NodeIx, b: NodeIx) {
        self.cut.remove(&(a.min(b), a.max(b)));
    }

    fn is_cut(&self, a: NodeIx, b: NodeIx) -> bool {
        self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Drops frames for which `filter(from, to, message)` returns true.
    pub fn set_filter(&mut self, filter: Filter) {
        self.filter = Some(filter);
    }

    /// `kill -9` without a FIN: the node's connections become half-open on the other side.
    /// Returns its store, to restart it with.
    pub fn crash(&mut self, node: NodeIx) -> Option<MemStore> {
        let m = self.nodes[node].machine.take()?;
        self.peer_of.retain(|a, b| a.node != node && b.node != node);
        // Bytes in flight to the dead process die with it; they must not reach whatever
        // restarts in its place (whose connection ids start again at 1).
        self.queue.retain(|_, d| match d {
            Delivery::Bytes { to, .. } | Delivery::Fin { to } => to.node != node,
            Delivery::Connect { from, .. } => from.node != node,
        });
        Some(m.into_store())
    }

    /// Puts a new machine in a crashed node's place (same address).
    pub fn restart(&mut self, node: NodeIx, machine: PeerMachine<MemStore>) {
        self.nodes[node].machine = Some(machine);
    }

    /// Injects raw bytes as if the peer of `(node, conn)` sent them.
    pub fn inject(&mut self, node: NodeIx, conn: ConnId, data: &[u8]) {
        let now = self.now;
        if let Some(m) = self.nodes[node].machine.as_mut() {
            m.handle(now, Input::BytesIn { conn, data });
        }
    }

    /// Records every frame delivered from now on; see [`trace`](Self::trace).
    pub fn enable_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// Frames delivered since [`enable_trace`](Self::enable_trace).
    pub fn trace(&self) -> &[Traced] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// The other end of `(node, conn)`, while the link exists.
    pub fn remote_end(&self, node: NodeIx, conn: ConnId) -> Option<(NodeIx, ConnId)> {
        self.peer_of
            .get(&End { node, conn })
            .map(|e| (e.node, e.conn))
    }

    fn record(&mut self, to: End, data: &[u8]) {
        let Some(trace) = self.trace.as_mut() else {
            return;
        };
        let from = self.peer_of.get(&to).copied();
        let dec = self
            .trace_decoders
            .entry(to)
            .or_insert_with(|| FrameDecoder::new(u32::MAX));
        dec.push(data);
        while let Ok(Some(payload)) = dec.next_frame() {
            if let (Ok(Decoded::Known(message)), Some(from)) = (Message::decode(payload), from) {
                trace.push(Traced {
                    at: self.now,
                    from: (from.node, from.conn),
                    to: (to.node, to.conn),
                    message,
                });
            }
        }
    }

    fn push(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    /// Applies the filter frame by frame, re-framing what is kept.
    fn filtered(&mut self, from: End, to: End, data: Vec<u8>) -> Vec<u8> {
        let Some(filter) = self.filter.as_mut() else {
            return data;
        };
        let dec = self
            .decoders
            .entry(from)
            .or_insert_with(|| FrameDecoder::new(u32::MAX));
        dec.push(&data);
        let mut out = Vec::new();
        while let Ok(Some(payload)) = dec.next_frame() {
            let drop = matches!(Message::decode(payload), Ok(Decoded::Known(ref m)) if filter(from.node, to.node, m));
            if !drop {
                crate::wire::encode_frame(payload, &mut out);
            }
        }
        out
    }
}
