//! A model of the old `timed` node's networking: its connection rules, each one a mechanism
//! of that node, written down here; nothing here aims at a figure. The figures (reconnects,
//! cycle period, pong success) come out of running these rules on the simulator's network.
//!
//! 1. **Peers keyed by socket address**: an outbound peer is `IP:listen_port`, an inbound
//!    one `IP:ephemeral_port`, so one node shows up twice.
//! 2. **Both sides dial** (one loop per configured peer) under the "lower IP initiates"
//!    rule compared **as strings** (`"10.0.0.10" < "10.0.0.9"`): a node skips a peer only if the peer's IP *string* is lower. Equal IPs
//!    (several nodes on one host) do not decide anything, so both sides dial.
//! 3. **The server's tie-break compares octets** (on accept): an inbound connection
//!    from an IP that is numerically higher than ours, while we already hold an established
//!    outbound connection to that IP, is refused ("already connected"). Equal IPs pass.
//! 4. **Writers registered by bare IP**: after its handshake, every connection, inbound or
//!    outbound, registers its writer as `peer_registry[ip]`, replacing the previous one.
//!    Nothing unregisters a writer when its connection ends; sending through a dead writer
//!    fails silently.
//! 5. **Replies go through that registry**. The handshake ACK is sent right after
//!    registering, by bare IP. Pongs and other replies are sent from the message loop with
//!    the peer's key in the peer list, `IP:ephemeral_port`, which matches no writer (they
//!    are registered by bare IP): the pong is never sent ([`ReplyKey::PeerSocketAddr`], the default). With
//!    [`ReplyKey::BareIp`] the lookup uses the bare IP, and the pong leaves on whichever
//!    connection to that IP registered last (on one host: often another node's socket).
//! 6. **Only outbound connections ping**: every 30 s, the first tick at once; each ping not answered by a matching pong on that
//!    connection is a missed pong; at a tick with 3 missed pongs the connection is closed
//!    ("Ping timeout") and the client loop reconnects after its retry sleep (5 s). Pongs
//!    that arrive on an inbound connection are logged and ignored; inbound connections never
//!    time out, they end when the other side closes.
//! 7. The client gives a connect (and its handshake) 10 s.
//!
//! The model speaks the simulator's framing (length-prefixed, varint kind; Hello/Ping/Pong
//! numbered as in the new protocol) instead of the old JSON lines, so the same filters and
//! wire observers apply. Encoding is not what failed; routing was.

use crate::model::{
    CloseKind, ModelAction, ModelConn, ModelCounters, ModelEvent, NodeModel, NodeSpec,
};
use crate::net::wire::{self, Kind, Reassembler};
use crate::rng::Rng;
use crate::scenario::{LegacyTuning, ReplyKey};
use crate::time::Micros;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Connecting,
    Handshaking,
    Up,
}

#[derive(Debug)]
struct LConn {
    outbound: bool,
    remote: SocketAddr,
    slot: Option<usize>,
    state: State,
    rx: Reassembler,
    /// Outbound only: next ping tick, pings not answered, nonces in flight.
    next_ping: Option<Micros>,
    missed: u32,
    outstanding: Vec<u64>,
    /// Connect + handshake deadline (outbound).
    deadline: Option<Micros>,
}

/// One configured peer and its client loop.
#[derive(Debug)]
struct Slot {
    addr: SocketAddr,
    /// The string rule says we initiate.
    dial: bool,
    conn: Option<ModelConn>,
    retry_at: Option<Micros>,
}

/// The legacy node.
#[derive(Debug)]
pub struct Legacy {
    ip: IpAddr,
    port: Option<u16>,
    t: LegacyTuning,
    conns: BTreeMap<ModelConn, LConn>,
    next_id: ModelConn,
    /// `peer_registry`: bare IP → the writer registered last.
    registry: BTreeMap<IpAddr, ModelConn>,
    /// The peer list, keyed by `IP:port` as the old node keyed it.
    peer_list: BTreeMap<SocketAddr, ModelConn>,
    slots: Vec<Slot>,
    actions: VecDeque<ModelAction>,
    rng: Rng,
    counters: ModelCounters,
    stopped: bool,
    /// Largest number of entries the peer list ever held for one IP.
    pub max_entries_per_ip: usize,
    /// Pongs that went nowhere (no writer for the IP, or a dead one).
    pub pongs_dropped: u64,
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

impl Legacy {
    fn send(&mut self, conn: ModelConn, kind: Kind, body: &[u8]) {
        let mut data = Vec::with_capacity(8 + body.len());
        wire::frame(kind, body, &mut data);
        self.actions.push_back(ModelAction::Send { conn, data });
    }

    fn dial(&mut self, now: Micros, slot: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let addr = self.slots[slot].addr;
        self.conns.insert(
            id,
            LConn {
                outbound: true,
                remote: addr,
                slot: Some(slot),
                state: State::Connecting,
                rx: Reassembler::default(),
                next_ping: None,
                missed: 0,
                outstanding: Vec::new(),
                deadline: Some(now + self.t.connect_timeout),
            },
        );
        self.slots[slot].conn = Some(id);
        self.slots[slot].retry_at = None;
        self.actions.push_back(ModelAction::Dial { conn: id, addr });
    }

    /// The connection is gone (we closed it or were told): the client loop sleeps, then redials.
    fn forget(&mut self, now: Micros, conn: ModelConn, reason: &'static str) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if c.state == State::Up {
            self.actions
                .push_back(ModelAction::Event(ModelEvent::PeerDown { conn, reason }));
            if self.peer_list.get(&c.remote) == Some(&conn) {
                self.peer_list.remove(&c.remote);
            }
        }
        if let Some(s) = c.slot {
            if self.slots[s].conn == Some(conn) {
                self.slots[s].conn = None;
                if !self.stopped {
                    self.slots[s].retry_at = Some(now + self.t.reconnect_delay);
                }
            }
        }
    }

    fn close(&mut self, now: Micros, conn: ModelConn, reason: &'static str) {
        self.actions.push_back(ModelAction::Close { conn });
        self.forget(now, conn, reason);
    }

    fn handshake_done(&mut self, now: Micros, conn: ModelConn) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.state = State::Up;
        c.deadline = None;
        let remote = c.remote;
        if c.outbound {
            c.next_ping = Some(now);
        }
        // Register the writer by bare IP, replacing whatever was there.
        self.registry.insert(remote.ip(), conn);
        self.peer_list.insert(remote, conn);
        let per_ip = self
            .peer_list
            .keys()
            .filter(|a| a.ip() == remote.ip())
            .count();
        self.max_entries_per_ip = self.max_entries_per_ip.max(per_ip);
        self.actions
            .push_back(ModelAction::Event(ModelEvent::PeerUp { conn }));
    }

    fn on_frame(&mut self, now: Micros, conn: ModelConn, frame: &[u8]) {
        let info = wire::classify(&frame[wire::HEADER_LEN..]);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (outbound, state, remote) = (c.outbound, c.state, c.remote);
        match info.kind {
            Kind::Hello => {
                if !outbound && state == State::Handshaking {
                    // The old server: register, then send the ACK through the registry.
                    self.handshake_done(now, conn);
                    self.reply_via_registry(remote.ip(), Kind::Hello, &[1]);
                } else if outbound && state == State::Handshaking {
                    self.handshake_done(now, conn);
                }
            }
            Kind::Ping if !outbound && state == State::Up => {
                let mut body = Vec::new();
                wire::write_varint(info.nonce.unwrap_or(0), &mut body);
                match self.t.reply_key {
                    // The old server answers through `send_to_peer(&ip_str, pong)` where `ip_str`
                    // is the peer's key in its own peer list, `IP:ephemeral_port`; writers are
                    // registered under the bare IP: the lookup never matches.
                    ReplyKey::PeerSocketAddr => self.pongs_dropped += 1,
                    // The registry alone: the pong leaves on the last-registered socket for IP.
                    ReplyKey::BareIp => self.reply_via_registry(remote.ip(), Kind::Pong, &body),
                }
            }
            Kind::Pong if outbound => {
                let c = self.conns.get_mut(&conn).expect("checked above");
                if let Some(n) = info.nonce {
                    if c.outstanding.contains(&n) {
                        c.outstanding.clear();
                        c.missed = 0;
                    }
                }
            }
            // Pongs on inbound connections: "unexpected", logged and ignored.
            _ => {}
        }
    }

    /// `peer_registry.send_to_peer(ip, msg)`.
    fn reply_via_registry(&mut self, ip: IpAddr, kind: Kind, body: &[u8]) {
        match self.registry.get(&ip).copied() {
            Some(w)
                if self
                    .conns
                    .get(&w)
                    .is_some_and(|c| c.state != State::Connecting) =>
            {
                self.send(w, kind, body)
            }
            _ => self.pongs_dropped += 1,
        }
    }

    fn tick(&mut self, now: Micros, conn: ModelConn) {
        let max_missed = self.t.max_missed_pongs;
        let interval = self.t.ping_interval;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.missed >= max_missed {
            self.counters.ping_timeouts += 1;
            self.close(now, conn, "ping_timeout");
            return;
        }
        let nonce = self.rng.next_u64() | 1;
        c.outstanding.push(nonce);
        if c.outstanding.len() > 8 {
            c.outstanding.remove(0);
        }
        c.missed += 1;
        c.next_ping = Some(now + interval);
        let mut body = Vec::new();
        wire::write_varint(nonce, &mut body);
        self.send(conn, Kind::Ping, &body);
    }
}

impl NodeModel for Legacy {
    type Persist = ();
    const NAME: &'static str = "legacy";

    fn boot(
        spec: &NodeSpec,
        boot_seed: u64,
        now: Micros,
        _persisted: Option<()>,
    ) -> Result<Self, String> {
        let my = spec.ip.to_string();
        let slots = spec
            .persistent_peers
            .iter()
            .map(|&addr| {
                let dial = addr.ip().to_string() >= my;
                Slot {
                    addr,
                    dial,
                    conn: None,
                    retry_at: dial.then_some(now),
                }
            })
            .collect();
        let mut m = Legacy {
            ip: spec.ip,
            port: spec.listen_port,
            t: spec.tuning.legacy.clone(),
            conns: BTreeMap::new(),
            next_id: 1,
            registry: BTreeMap::new(),
            peer_list: BTreeMap::new(),
            slots,
            actions: VecDeque::new(),
            rng: Rng::new(boot_seed),
            counters: ModelCounters::default(),
            stopped: false,
            max_entries_per_ip: 0,
            pongs_dropped: 0,
        };
        m.on_timeout(now);
        Ok(m)
    }

    fn crash(self) -> Option<()> {
        Some(())
    }

    fn accept(&mut self, _now: Micros, remote: SocketAddr) -> Option<ModelConn> {
        if self.stopped {
            return None;
        }
        // The old server's tie-break, by octets: we should be the initiator and already are.
        let we_initiate = octets(self.ip) < octets(remote.ip());
        let have_outbound = self
            .conns
            .values()
            .any(|c| c.outbound && c.state == State::Up && c.remote.ip() == remote.ip());
        if we_initiate && have_outbound {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(
            id,
            LConn {
                outbound: false,
                remote,
                slot: None,
                state: State::Handshaking,
                rx: Reassembler::default(),
                next_ping: None,
                missed: 0,
                outstanding: Vec::new(),
                deadline: None,
            },
        );
        Some(id)
    }

    fn connected(&mut self, now: Micros, conn: ModelConn) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state != State::Connecting {
            return;
        }
        c.state = State::Handshaking;
        c.deadline = Some(now + self.t.connect_timeout);
        let mut body = Vec::new();
        wire::write_varint(self.port.unwrap_or(0) as u64, &mut body);
        body.push(0);
        self.send(conn, Kind::Hello, &body);
    }

    fn dial_failed(&mut self, now: Micros, conn: ModelConn) {
        self.forget(now, conn, "dial_failed");
    }

    fn bytes_in(&mut self, now: Micros, conn: ModelConn, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut frames: Vec<Vec<u8>> = Vec::new();
        c.rx.feed(data, |f, _| frames.push(f.to_vec()));
        for f in frames {
            self.on_frame(now, conn, &f);
        }
    }

    fn written(&mut self, _now: Micros, _conn: ModelConn, _bytes: usize) {}

    fn closed(&mut self, now: Micros, conn: ModelConn, kind: CloseKind) {
        self.forget(
            now,
            conn,
            if kind == CloseKind::Fin {
                "closed"
            } else {
                "reset"
            },
        );
    }

    fn on_timeout(&mut self, now: Micros) {
        if self.stopped {
            return;
        }
        let due: Vec<ModelConn> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.close(now, id, "connect_timeout");
        }
        let ticks: Vec<ModelConn> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == State::Up && c.next_ping.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in ticks {
            self.tick(now, id);
        }
        for s in 0..self.slots.len() {
            if self.slots[s].dial
                && self.slots[s].conn.is_none()
                && self.slots[s].retry_at.is_some_and(|t| t <= now)
            {
                self.dial(now, s);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Micros> {
        if self.stopped {
            return None;
        }
        let conns = self.conns.values().flat_map(|c| {
            [
                c.deadline,
                if c.state == State::Up {
                    c.next_ping
                } else {
                    None
                },
            ]
        });
        let slots = self
            .slots
            .iter()
            .filter(|s| s.dial && s.conn.is_none())
            .map(|s| s.retry_at);
        conns.chain(slots).flatten().min()
    }

    fn poll_action(&mut self) -> Option<ModelAction> {
        self.actions.pop_front()
    }

    fn shutdown(&mut self, now: Micros) {
        self.stopped = true;
        let ids: Vec<ModelConn> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(now, id, "shutdown");
        }
    }

    fn counters(&self) -> ModelCounters {
        self.counters
    }

    fn strict() -> bool {
        false
    }
}
