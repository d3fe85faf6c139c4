//! The [`PeerMachine`]: one per node, owning all of its connections, its chain view and its
//! address book.

mod app;
mod ban;
mod book;
mod conn;
mod conn_map;
mod dedup;
mod dial;
mod dispatch;
mod exchange;
mod fork;
mod gossip;
mod handshake;
#[cfg(feature = "sim")]
pub mod hot;
mod inbound;
mod io;
mod mempool;
mod produce;
mod query;
mod range_sync;
mod relay;
mod requests;
mod send_queue;
mod serve;
mod status;
mod sync;
mod timer;

pub use app::{ProtocolStats, TopicStats};
pub use io::{
    Action, CloseKind, Direction, DownReason, Input, Misbehaviour, NodeEvent, QueryError, Refused,
    TxError,
};
pub use status::{
    CloseReason, Counters, Label, PeerStatus, QueryOutcome, Status, Tally, RTT_BUCKETS_MS,
};

/// Most addresses sent or accepted in one `Peers` response.
pub(crate) const MAX_ADDRS_PER_RESPONSE: usize = 100;

use crate::chain::BlockHash;
use crate::config::{Config, ConfigError};
use crate::id::{ConnId, NodeId, QueryId};
use crate::protocol::{ProtocolId, Registry};
use crate::rng::Rng;
use crate::store::Store;
use crate::time::{Duration, Instant};
use crate::wire::{Goodbye, GoodbyeReason, Message, Payload, RequestBody};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use app::AppState;
use ban::Bans;
use conn::{Conn, ConnState};
use conn_map::ConnMap;
use core::net::{IpAddr, SocketAddr};
use dial::Target;
use send_queue::Flow;
use sync::ChainState;
use timer::{Timer, TimerTable};

/// The protocol state machine of one node.
///
/// # Contract
///
/// The machine never performs I/O and never reads a clock. The driver (a runtime adapter, the
/// simulator, a test) owns sockets and time and does exactly this:
///
/// 1. **Create** it with [`PeerMachine::new`], then drain [`poll_action`](Self::poll_action):
///    it dials its persistent peers at once.
/// 2. **Feed it** every transport event, tagged with the [`ConnId`] the machine assigned:
///    [`accept`](Self::accept) for a new inbound socket (drop the socket if refused), and
///    [`handle`] with [`Input::Connected`], [`Input::DialFailed`], [`Input::BytesIn`],
///    [`Input::Written`] and [`Input::Closed`]. Application calls ([`query`](Self::query),
///    [`dial`](Self::dial), [`submit_tx`](Self::submit_tx), [`shutdown`](Self::shutdown)) are
///    events too.
/// 3. **Wake it** with [`handle_timeout`](Self::handle_timeout) once `now` reaches
///    [`poll_timeout`](Self::poll_timeout). There is no "set timer" action: ask again after
///    every call.
/// 4. **Drain** [`poll_action`](Self::poll_action) after every call, and carry out each
///    [`Action`] in order: `Send` bytes on that connection and report [`Input::Written`] as they
///    leave; `Close` after flushing; `Dial` and report the outcome; honour `PauseRead` /
///    `ResumeRead`; deliver `Notify` to the application.
///
/// Every call takes `now`; it must never go backwards.
///
/// # Promises
///
/// - **Keyed by connection.** A reply (pong, response) leaves on the connection its request
///   arrived on. Nothing is ever looked up by IP.
/// - **One connection per peer**, by one rule (see `dedup.rs`): a simultaneous open keeps the
///   connection initiated by the smaller [`NodeId`] on both ends; any other duplicate probes
///   the existing connection and replaces it only if the probe shows it dead.
/// - **Every query ends exactly once**, with one [`NodeEvent::QueryDone`].
/// - **Remote input never panics and never surfaces as an error.** A misbehaving peer gets a
///   `Goodbye` with a reason, is closed and is banned.
/// - **Bounded**: frames, buffers, send queues, requests in flight, connections, address
///   book, mempool and reorg depth all have limits from [`Config`].
/// - **Deterministic**: the same config, seed and calls produce the same actions.
///
/// # Driving loop
///
/// ```
/// use timed_core::{Action, Config, Input, MemStore, Network, NodeId, PeerMachine, Instant, Duration};
/// use timed_core::testing::Switchboard;
///
/// // Two machines; node 2 knows node 1's address. `Switchboard` stands in for TCP here.
/// let addr1 = "127.0.0.1:7000".parse().unwrap();
/// let mut c1 = Config::new(Network::Devnet, NodeId([1; 32]), 1);
/// c1.listen_port = Some(7000);
/// let mut c2 = Config::new(Network::Devnet, NodeId([2; 32]), 2);
/// c2.persistent_peers.push(addr1);
/// let now = Instant::ZERO;
/// let mut net = Switchboard::new();
/// let n1 = net.add(PeerMachine::new(c1, MemStore::new(Network::Devnet), now).unwrap(), addr1);
/// let n2 = net.add(PeerMachine::new(c2, MemStore::new(Network::Devnet), now).unwrap(), "127.0.0.2:7000".parse().unwrap());
///
/// // The loop every driver runs: carry out actions, feed back events, wake at deadlines.
/// let mut now = now;
/// let until = now + Duration::from_secs(300);
/// loop {
///     for node in [n1, n2] {
///         while let Some(action) = net.machine(node).poll_action() {
///             match action {
///                 Action::Send { conn, data } => net.send(node, conn, data),
///                 Action::Close { conn } => net.close(node, conn),
///                 Action::Dial { conn, addr } => net.dial(node, conn, addr),
///                 Action::PauseRead { .. } | Action::ResumeRead { .. } => {}
///                 Action::Notify(event) => println!("node {node}: {event:?}"),
///             }
///         }
///     }
///     if net.deliver(now) { continue; } // moved bytes or transport events into machines
///     match net.next_deadline() {
///         Some(t) if t <= until => { now = t; net.wake(now); }
///         _ => break,
///     }
/// }
/// assert_eq!(net.machine(n1).status().peers.len(), 1);
/// assert_eq!(net.machine(n2).status().peers[0].node_id, NodeId([1; 32]));
/// ```
///
/// [`handle`]: Self::handle
#[derive(Debug)]
// Laid out by hand, what every frame touches first: the simulator runs dozens of machines in
// turn, so each call starts with a cold cache and pays per cache line it touches.
#[repr(C)]
pub struct PeerMachine<S: Store> {
    // ---- hot: read or written on every frame, `Written` and ping tick ----
    /// Boxed: a `Conn` is large, and closing one shifts every later entry down (see
    /// `ConnMap`); moving pointers instead of whole connections keeps that cheap.
    conns: ConnMap<Box<Conn>>,
    /// The `now` of the call being handled, for the few helpers that need time but are
    /// reached from deep inside other helpers (send-queue overflow).
    now: Instant,
    actions: VecDeque<Action>,
    rng: Rng,
    timers: TimerTable,
    /// Copies of the `Config` values the per-frame paths read (the config never changes
    /// after `new`), kept here so those paths do not touch the large `Config`.
    hot: HotConfig,
    stopped: bool,
    counters: Counters,

    // ---- the rest ----
    cfg: Config,
    store: S,
    boot: u64,
    genesis: BlockHash,
    next_conn: u64,
    next_query: u64,
    /// Established peers and the one connection each.
    peers: BTreeMap<NodeId, ConnId>,
    /// Peers whose connection was closed as a duplicate while another, not yet identified,
    /// connection may be theirs. See `dedup.rs`.
    limbo: BTreeMap<NodeId, dedup::Limbo>,
    /// Nodes that have been peers before, to count reconnects (bounded).
    seen_peers: BTreeSet<NodeId>,
    inbound_per_ip: BTreeMap<IpAddr, usize>,
    targets: BTreeMap<SocketAddr, Target>,
    /// Addresses that turned out to be ourselves: never dialed again.
    never_dial: BTreeSet<SocketAddr>,
    bans: Bans,
    /// The protocols and topics this node runs: the core's and the application's.
    registry: Registry,
    /// Requests handed to the application, topics, and their statistics.
    app: AppState,
    chain: ChainState,
    /// Scratch buffer frames are encoded into before being copied out at their exact size
    /// (no regrowth while serializing).
    enc: Vec<u8>,
    /// Buffers of sent frames the driver gave back ([`PeerMachine::recycle`]); new frames are
    /// written into them, so a driver that recycles sends without allocating.
    spare: Vec<Vec<u8>>,
}

/// Most buffers kept for reuse, and the largest capacity worth keeping: enough for the
/// frames of a busy interval (pings, pongs, small requests), without holding block-sized
/// buffers for frames of a few bytes.
const SPARE_MAX: usize = 64;
const SPARE_CAPACITY_MAX: usize = 4096;

/// The `Config` values read on the per-frame paths.
#[derive(Debug, Clone, Copy)]
struct HotConfig {
    transport_window: usize,
    max_send_queue: usize,
    ping_interval: Duration,
    ping_timeout: Duration,
    /// Origin of this node's ping grid (see [`PeerMachine::next_ping_at`]): the instant the
    /// machine was created.
    ping_origin: Instant,
}

impl HotConfig {
    fn new(cfg: &Config, now: Instant) -> Self {
        HotConfig {
            ping_origin: now,
            transport_window: cfg.transport_window,
            max_send_queue: cfg.max_send_queue,
            ping_interval: cfg.ping_interval,
            ping_timeout: cfg.ping_timeout,
        }
    }
}

/// Bound on `seen_peers`; past it, reconnect counting forgets the oldest-keyed entries.
const SEEN_PEERS_MAX: usize = 4096;

impl<S: Store> PeerMachine<S> {
    /// Creates the machine and queues dials to the persistent peers.
    pub fn new(config: Config, store: S, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(config.seed);
        let boot = rng.next_u64();
        let genesis = config.network.genesis_hash();
        let registry = Registry::new(&config);
        let app = AppState::new(&registry);
        let mut m = PeerMachine {
            registry,
            app,
            hot: HotConfig::new(&config, now),
            bans: Bans::default(),
            chain: ChainState::new(&config),
            cfg: config,
            store,
            rng,
            boot,
            genesis,
            next_conn: 1,
            next_query: 1,
            conns: ConnMap::new(),
            peers: BTreeMap::new(),
            limbo: BTreeMap::new(),
            seen_peers: BTreeSet::new(),
            inbound_per_ip: BTreeMap::new(),
            targets: BTreeMap::new(),
            never_dial: BTreeSet::new(),
            timers: TimerTable::default(),
            actions: VecDeque::new(),
            counters: Counters::default(),
            stopped: false,
            now,
            enc: Vec::new(),
            spare: Vec::new(),
        };
        for addr in m.cfg.persistent_peers.clone() {
            m.add_target(now, addr, true);
        }
        m.chain_start(now);
        Ok(m)
    }

    // ---- transport → machine -------------------------------------------------------------

    /// A new inbound connection from `remote`. On `Err`, drop the socket.
    pub fn accept(&mut self, now: Instant, remote: SocketAddr) -> Result<ConnId, Refused> {
        self.now = now;
        if self.stopped {
            return Err(Refused::ShuttingDown);
        }
        if self.bans.ip_banned(now, remote.ip()) {
            return Err(Refused::Banned);
        }
        if self.conns.len() >= self.cfg.max_connections {
            return Err(Refused::TooManyConnections);
        }
        let per_ip = self.inbound_per_ip.get(&remote.ip()).copied().unwrap_or(0);
        if per_ip >= self.cfg.max_inbound_per_ip {
            return Err(Refused::TooManyFromIp);
        }
        *self.inbound_per_ip.entry(remote.ip()).or_insert(0) += 1;
        let id = self.new_conn(now, Direction::Inbound, remote, ConnState::Handshaking);
        self.counters.conns_inbound += 1;
        self.send_hello(id);
        Ok(id)
    }

    /// A transport event for a connection. Events for connections the machine already closed
    /// are ignored: they race with `Action::Close` in every real transport.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        self.now = now;
        match input {
            Input::Connected { conn } => self.on_connected(now, conn),
            Input::DialFailed { conn } => {
                if matches!(
                    self.conns.get(&conn).map(|c| c.state),
                    Some(ConnState::Dialing)
                ) {
                    self.counters.dial_failures += 1;
                    self.drop_conn(now, conn, DownReason::Closed(CloseKind::Reset));
                }
            }
            Input::BytesIn { conn, data } => self.on_bytes(now, conn, data),
            Input::Written { conn, bytes } => self.flush_written(conn, bytes),
            Input::Closed { conn, kind } => {
                if self.conns.contains_key(&conn) {
                    self.drop_conn(now, conn, DownReason::Closed(kind));
                }
            }
        }
    }

    /// Runs every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(timer) = self.timers.pop_due(now) {
            self.on_timer(now, timer);
        }
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Gives back the buffer of an [`Action::Send`] once its bytes are written (or copied
    /// elsewhere): the machine writes later frames into it instead of allocating a new one.
    ///
    /// Optional. A driver that drops the buffers loses only the reuse; one that recycles
    /// them sends pings, pongs and other small frames without touching the allocator. The
    /// machine keeps a bounded number of small buffers and drops the rest (and every
    /// [`Payload::Shared`] one: other connections may still hold it).
    pub fn recycle(&mut self, buf: impl Into<Payload>) {
        if let Payload::Owned(buf) = buf.into() {
            if self.spare.len() < SPARE_MAX && buf.capacity() <= SPARE_CAPACITY_MAX {
                self.spare.push(buf);
            }
        }
    }

    /// An empty buffer for a frame: a recycled one if there is any.
    fn frame_buf(&mut self) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut v) => {
                v.clear();
                v
            }
            None => Vec::with_capacity(64),
        }
    }

    // ---- application → machine -----------------------------------------------------------

    /// Sends `req` to the connected node `peer`. The returned id ends exactly once, with a
    /// [`NodeEvent::QueryDone`] — immediately (unknown peer, over the in-flight cap, shutting
    /// down) or later (response, timeout, peer lost, refused).
    ///
    /// Unlike a `Result`, this keeps one path for every outcome, so a driver awaiting
    /// `QueryDone` can never miss one.
    pub fn query(&mut self, now: Instant, peer: NodeId, req: RequestBody) -> QueryId {
        self.now = now;
        self.start_query(now, peer, req)
    }

    /// Sends `payload` to the connected node `peer` on `protocol` (the core's or one
    /// declared in `Config::protocols`). The returned id ends exactly once, with a
    /// [`NodeEvent::RequestDone`] carrying the response bytes or why there are none —
    /// immediately when the peer is unknown, does not run the protocol, would refuse the
    /// size, or is at its in-flight limit; later on a response, refusal, timeout or loss of
    /// the connection.
    pub fn request(
        &mut self,
        now: Instant,
        peer: NodeId,
        protocol: ProtocolId,
        payload: Vec<u8>,
    ) -> QueryId {
        self.now = now;
        self.start_request(now, peer, protocol, payload)
    }

    /// Dials `addr` once (not persistent: no redial after a loss). Ignored for addresses that
    /// turned out to be ourselves, and for addresses already being dialed or connected.
    pub fn dial(&mut self, now: Instant, addr: SocketAddr) {
        self.now = now;
        if !self.stopped {
            self.add_target(now, addr, false);
        }
    }

    /// Says `Goodbye{Shutdown}` to every peer, closes every connection and stops. After this
    /// the machine only drains its actions.
    pub fn shutdown(&mut self, now: Instant) {
        self.now = now;
        if self.stopped {
            return;
        }
        self.stop(now, "node shutting down");
    }

    /// A snapshot for APIs and tests.
    pub fn status(&self) -> Status {
        let (height, tip_hash) = self.chain.tip;
        let peers = self
            .peers
            .iter()
            .filter_map(|(id, conn)| {
                let c = self.conns.get(conn)?;
                let r = c.remote.as_ref()?;
                Some(PeerStatus {
                    node_id: *id,
                    conn: *conn,
                    direction: c.dir,
                    remote_addr: c.addr,
                    rtt: c.rtt,
                    connected_since: c.established_at,
                    pings_sent: c.pings_sent,
                    pings_received: c.pings_received,
                    pongs_received: c.pongs_received,
                    best_height: r.best_height,
                    user_agent: r.user_agent.clone(),
                    protocols: r.protocols.iter().map(|a| a.id).collect(),
                    topics: r.topics.iter().map(|a| a.id).collect(),
                })
            })
            .collect();
        let target = self.sync_target();
        Status {
            node_id: self.cfg.node_id,
            network: self.cfg.network,
            boot: self.boot,
            height,
            tip_hash,
            genesis_hash: self.genesis,
            peers,
            connections: self.conns.len(),
            syncing: target.is_some(),
            sync_target: target,
            mempool_len: self.chain.mempool_len(),
            mempool_bytes: self.chain.mempool_bytes(),
            addr_book_len: self.chain.addr_book_len(),
            stopped: self.stopped,
            counters: self.counters.clone(),
            protocols: self
                .app
                .protocol_stats()
                .iter()
                .map(|(id, s)| (*id, s.clone()))
                .collect(),
            topics: self
                .app
                .topic_stats()
                .map(|(id, s)| (id, s.clone()))
                .collect(),
        }
    }

    /// The counters alone, without building a whole [`Status`] (cheap enough to read after
    /// every event, as the simulator does).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Best height of our chain.
    pub fn height(&self) -> u64 {
        self.chain.tip.0
    }

    /// This node's identity (`Config::node_id`).
    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    /// The configuration the machine was created with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// This process's boot nonce, as sent in `Hello`.
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// The machine's store, read-only.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Consumes the machine, returning its store (the simulator's crash-and-restart).
    pub fn into_store(self) -> S {
        self.store
    }

    /// True after [`shutdown`](Self::shutdown) or a store failure.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The connection currently carrying `peer`, if established.
    pub fn peer_conn(&self, peer: NodeId) -> Option<ConnId> {
        self.peers.get(&peer).copied()
    }

    /// Bytes queued for `conn` in the machine and in the transport (for invariant checks).
    pub fn send_queue_len(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(&conn).map(|c| c.unsent_bytes())
    }

    /// Requests on application protocols handed to the application and not yet answered,
    /// over all connections (for invariant checks).
    pub fn inbound_waiting(&self) -> usize {
        self.conns.values().map(|c| c.in_reqs.len()).sum()
    }

    /// Gossip messages awaiting the application's verdict (for invariant checks).
    pub fn gossip_pending(&self) -> usize {
        self.app.pending_len()
    }

    /// Number of timers armed (for invariant checks and benchmarks).
    pub fn timers_armed(&self) -> usize {
        self.timers.len()
    }

    // ---- internals shared by the submodules ---------------------------------------------

    fn new_conn(
        &mut self,
        now: Instant,
        dir: Direction,
        addr: SocketAddr,
        state: ConnState,
    ) -> ConnId {
        let id = ConnId::new(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            id,
            Box::new(Conn::new(dir, addr, state, now, self.cfg.max_frame)),
        );
        self.timers
            .set(Timer::Handshake(id), now + self.cfg.handshake_timeout);
        id
    }

    fn on_connected(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state != ConnState::Dialing {
            return;
        }
        c.state = ConnState::Handshaking;
        c.last_recv = now;
        self.send_hello(conn);
    }

    fn on_timer(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::Handshake(conn) => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                match c.state {
                    ConnState::Dialing => {
                        self.counters.dial_failures += 1;
                        self.actions.push_back(Action::Close { conn });
                        self.drop_conn(now, conn, DownReason::Closed(CloseKind::Error));
                    }
                    ConnState::Handshaking => self.close_with_goodbye(
                        now,
                        conn,
                        GoodbyeReason::HandshakeTimeout,
                        "no Hello in time",
                    ),
                    ConnState::Candidate { .. } | ConnState::Established => {}
                }
            }
            Timer::Ping(conn) => self.ping_tick(now, conn),
            Timer::Idle(conn) => self.check_idle(now, conn),
            Timer::Probe(conn) => self.probe_expired(now, conn),
            Timer::Request(conn, id) => self.on_request_timeout(now, conn, id),
            Timer::Redial(addr) => self.redial(now, addr),
            Timer::Limbo(node) => self.limbo_expired(now, node),
            Timer::Sync => self.sync_tick(now),
            Timer::PeerExchange => self.peer_exchange_tick(now),
            Timer::Produce => self.produce_tick(now),
            Timer::TopUp => self.top_up_outbound(now),
            Timer::Answer(p) => self.on_answer_deadline(now, p),
            Timer::Validation(t) => self.on_validation_deadline(now, t),
        }
    }

    fn send_hello(&mut self, conn: ConnId) {
        let (best_height, best_hash) = self.chain.tip;
        let protocols = self.registry.protocol_ads().to_vec();
        let topics = self.registry.topic_ads().to_vec();
        let hello = crate::wire::Hello {
            magic: crate::wire::MAGIC,
            version: crate::wire::PROTOCOL_VERSION,
            min_version: crate::wire::MIN_PROTOCOL_VERSION,
            network: self.cfg.network.id(),
            genesis: self.genesis,
            node_id: self.cfg.node_id,
            boot: self.boot,
            listen_port: self.cfg.listen_port,
            best_height,
            best_hash,
            user_agent: self.cfg.user_agent.clone(),
            protocols,
            topics,
        };
        self.send_msg(conn, &Message::Hello(hello));
    }

    /// The ping grid reached `conn`: ping it, unless the peer is keeping it alive for both.
    ///
    /// **The dialer keeps a connection alive; the acceptor answers.** An inbound connection
    /// whose dialer pinged us within the last interval and a half is skipped: the dialer's
    /// pings already prove to us that it is alive and its writes arrive, and our pongs prove
    /// the same to it, so a ping of ours would only double the keepalive traffic (and, in a
    /// simulation of 10 000 nodes, the events). Nothing is lost in detection: a dialer that
    /// goes quiet is pinged again at our next tick, and a silent peer is dropped at `last
    /// frame + ping_timeout` exactly as before. Every connection is still pinged once when
    /// it is established (`dedup`), so both ends have an RTT; only the dialer's stays fresh.
    /// The direction is the same at both ends, even after a simultaneous open (both keep the
    /// one connection), so exactly one side pings.
    fn ping_tick(&mut self, now: Instant, conn: ConnId) {
        let window =
            self.hot.ping_interval + Duration::from_micros(self.hot.ping_interval.as_micros() / 2);
        let peer_keeps_alive = self.conns.get(&conn).is_some_and(|c| {
            c.dir == Direction::Inbound
                && c.state == ConnState::Established
                && c.pinged_within(now, window)
        });
        if !peer_keeps_alive {
            return self.send_ping(now, conn);
        }
        let next = self.next_ping_at(now);
        self.timers.set(Timer::Ping(conn), next);
        self.arm_idle_check(conn);
    }

    fn send_ping(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state != ConnState::Established {
            return;
        }
        let nonce = loop {
            // `next_nonce`, inlined to keep the borrow of `c`: nonce 0 is never sent.
            let n = self.rng.next_u64();
            if n != 0 {
                break n;
            }
        };
        c.record_ping(nonce, now);
        self.counters.pings_sent += 1;
        self.send_msg(conn, &Message::Ping { nonce });
        let next = self.next_ping_at(now);
        self.timers.set(Timer::Ping(conn), next);
        self.arm_idle_check(conn);
    }

    /// The first instant after `now` on this node's ping grid, `origin + k × ping_interval`.
    ///
    /// Every connection of a node pings on the same grid, so the node wakes once per interval
    /// for all its pings (one `handle_timeout` fires every ping timer due at that instant)
    /// instead of once per connection: with per-connection phases a node with 100 peers
    /// woke 100 times per interval, and a 10 000-node simulation paid one event per
    /// connection per interval. A connection still never waits longer than `ping_interval`
    /// between two pings (its first one, at establishment, is followed by the next grid
    /// point, possibly sooner). Nodes start at different instants, so their grids differ.
    fn next_ping_at(&self, now: Instant) -> Instant {
        let every = self.hot.ping_interval.as_micros().max(1);
        let origin = self.hot.ping_origin;
        let since = now.saturating_since(origin).as_micros();
        origin + Duration::from_micros((since / every + 1) * every)
    }

    /// Arms the idle check of `conn` only if it comes due before the next ping; otherwise the
    /// ping tick looks again. A peer that keeps sending (every healthy one answers our pings
    /// and pings us) so never has an idle timer at all, yet a silent one is still dropped at
    /// exactly `last frame + ping_timeout`: each tick arms the check once the deadline falls
    /// within the next interval.
    fn arm_idle_check(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let deadline = c.last_recv + self.hot.ping_timeout;
        match self.timers.get(Timer::Ping(conn)) {
            Some(next_ping) if deadline > next_ping => self.timers.cancel(Timer::Idle(conn)),
            _ => self.timers.set(Timer::Idle(conn), deadline),
        }
    }

    fn next_nonce(&mut self) -> u64 {
        loop {
            let n = self.rng.next_u64();
            if n != 0 {
                return n;
            }
        }
    }

    /// Drops a peer from which nothing has arrived for the ping timeout. Frames of any kind
    /// count, so a peer busy sending us blocks is never dropped for a late pong.
    fn check_idle(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let deadline = c.last_recv + self.hot.ping_timeout;
        if now >= deadline {
            self.counters.ping_timeouts += 1;
            self.close_with_goodbye(
                now,
                conn,
                GoodbyeReason::PingTimeout,
                "no frame within the ping timeout",
            );
        } else {
            self.arm_idle_check(conn);
        }
    }

    /// Queues one message for `conn`. Control messages go ahead of queued bulk ones.
    fn send_msg(&mut self, conn: ConnId, msg: &Message) {
        if let Message::Ping { .. } | Message::Pong { .. } = msg {
            // The hot path: encoded straight into a buffer of its own (a few bytes), with no
            // detour through `enc`.
            let mut frame = self.frame_buf();
            msg.encode_frame(&mut frame);
            return self.send_control(conn, frame);
        }
        let kind = msg.kind();
        let is_response = matches!(msg, Message::Response { .. });
        let frame = self.encode(msg);
        if kind.is_control() {
            self.send_control(conn, frame);
        } else {
            self.send_frame(conn, frame.into(), is_response);
        }
    }

    /// `msg` as one frame, in a `Vec` of exactly its size.
    fn encode(&mut self, msg: &Message) -> Vec<u8> {
        self.enc.clear();
        msg.encode_frame(&mut self.enc);
        let frame = if self.enc.len() <= SPARE_CAPACITY_MAX {
            let mut v = self.frame_buf();
            v.extend_from_slice(&self.enc);
            v
        } else {
            self.enc.as_slice().to_vec()
        };
        if self.enc.capacity() > 64 * 1024 {
            // Do not keep a block-sized buffer around for every small frame after.
            self.enc = Vec::new();
        }
        frame
    }

    fn send_control(&mut self, conn: ConnId, frame: Vec<u8>) {
        let window = self.hot.transport_window;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.can_skip_queue(window) {
            // Queueing the frame and flushing would hand exactly this frame over at once.
            c.sent_directly(frame.len());
            self.counters.frames_out += 1;
            self.counters.bytes_out += frame.len() as u64;
            self.actions.push_back(Action::Send {
                conn,
                data: Payload::Owned(frame),
            });
            return self.check_send_queue(conn);
        }
        c.push_control(frame);
        self.flush(conn);
    }

    /// Queues an encoded bulk frame (gossip encodes once and shares the bytes everywhere).
    fn send_frame(&mut self, conn: ConnId, bytes: Payload, is_response: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.push_bulk(bytes, is_response);
        self.flush(conn);
    }

    /// Hands queued frames to the transport while its window has room; enforces the send
    /// queue bound and read backpressure.
    fn flush(&mut self, conn: ConnId) {
        self.flush_written(conn, 0);
    }

    /// [`flush`](Self::flush) after the transport reported `written` bytes gone, with one
    /// connection lookup for both.
    fn flush_written(&mut self, conn: ConnId, written: usize) {
        let window = self.hot.transport_window;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.written(written);
        if c.state == ConnState::Dialing || c.idle_within(self.hot.max_send_queue) {
            return;
        }
        while let Some(bytes) = c.next_for_transport(window) {
            self.counters.frames_out += 1;
            self.counters.bytes_out += bytes.len() as u64;
            self.actions.push_back(Action::Send { conn, data: bytes });
        }
        self.check_send_queue(conn);
    }

    /// Acts on the send queue's flow decision for `conn` after its queue or window changed.
    fn check_send_queue(&mut self, conn: ConnId) {
        let max_queue = self.hot.max_send_queue;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match c.flow(max_queue) {
            Flow::Steady => {}
            Flow::Pause => self.actions.push_back(Action::PauseRead { conn }),
            Flow::Resume => self.actions.push_back(Action::ResumeRead { conn }),
            Flow::Overflow => self.close_with_goodbye(
                self.now,
                conn,
                GoodbyeReason::SlowReader,
                "send queue overflow: the peer does not read",
            ),
        }
    }

    /// Tells the peer why, then closes. The goodbye bypasses the queues: frames still queued
    /// in the machine are dropped, it is not.
    fn close_with_goodbye(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: GoodbyeReason,
        detail: &str,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state != ConnState::Dialing {
            let frame = self.encode(&Message::Goodbye(Goodbye {
                reason,
                detail: String::from(detail),
            }));
            self.counters.frames_out += 1;
            self.counters.bytes_out += frame.len() as u64;
            self.actions.push_back(Action::Send {
                conn,
                data: frame.into(),
            });
        }
        self.actions.push_back(Action::Close { conn });
        self.drop_conn(now, conn, DownReason::GoodbyeSent(reason));
    }

    /// Forgets `conn`: ends its requests, releases its caps, updates peers and dial targets.
    fn drop_conn(&mut self, now: Instant, conn: ConnId, reason: DownReason) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return; // already being forgotten (re-entered through a request's end)
        }
        c.closing = true;
        let gone = dial::GoneConn {
            conn,
            dir: c.dir,
            addr: c.addr,
            node: c.node_id(),
            state: c.state,
            lived: now - c.established_at,
        };
        let (addr, state, node) = (gone.addr, gone.state, gone.node);
        self.counters.conns_closed.bump(reason.into());

        // A takeover may be waiting on this connection's fate: it just died, so the newcomer wins.
        let candidate = self.candidate_for(conn);
        match (state, node) {
            (ConnState::Established, Some(node)) if self.peers.get(&node) == Some(&conn) => {
                if let Some(new) = candidate {
                    self.take_over(now, node, conn, new);
                } else if !self.enter_limbo(now, node, conn, reason) {
                    // Unregister first: whoever hears of a failed request may ask again at
                    // once, and must not pick this peer (see `Conn::closing` too).
                    self.peers.remove(&node);
                    self.fail_requests(now, conn, QueryError::PeerGone);
                    self.actions.push_back(Action::Notify(NodeEvent::PeerDown {
                        peer: node,
                        conn,
                        reason,
                    }));
                    self.chain_peer_down(now, node);
                }
            }
            // A connection superseded by a `PeerMoved`: its end was already reported.
            (ConnState::Established, _) => self.fail_requests(now, conn, QueryError::PeerGone),
            _ => {
                self.fail_requests(now, conn, QueryError::PeerGone);
                self.actions
                    .push_back(Action::Notify(NodeEvent::ConnFailed { conn, addr, reason }));
                if let ConnState::Candidate { old } = state {
                    self.probe_no_longer_needed(old);
                }
            }
        }

        // Anything still in flight here slipped in while the connection closed: it ends too.
        self.fail_requests(now, conn, QueryError::PeerGone);
        self.timers.cancel_conn(conn);
        self.conns.remove(&conn);
        if gone.dir == Direction::Inbound {
            self.release_inbound_slot(addr.ip());
        }
        self.after_conn_closed(now, &gone);
    }

    /// An inbound connection from `ip` is gone: one less against `max_inbound_per_ip`.
    fn release_inbound_slot(&mut self, ip: core::net::IpAddr) {
        if let Some(n) = self.inbound_per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.inbound_per_ip.remove(&ip);
            }
        }
    }

    fn remember_peer(&mut self, node: NodeId) -> bool {
        if self.seen_peers.contains(&node) {
            return true;
        }
        if self.seen_peers.len() >= SEEN_PEERS_MAX {
            self.seen_peers.pop_first();
        }
        self.seen_peers.insert(node);
        false
    }

    /// Stops the machine: says goodbye on every connection, then no more dials or timers.
    /// `stopped` is set first so that closing connections schedules nothing new.
    fn stop(&mut self, now: Instant, why: &str) {
        self.stopped = true;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.close_with_goodbye(now, conn, GoodbyeReason::Shutdown, why);
        }
        self.timers = TimerTable::default();
        self.targets.clear();
    }

    /// A store failure: report it and stop, keeping whatever the store already committed.
    fn fatal(&mut self, now: Instant, op: crate::store::StoreOp, error: S::Error) {
        if self.stopped {
            return;
        }
        let error = crate::store::StoreFailure::new(op, error);
        self.actions
            .push_back(Action::Notify(NodeEvent::Fatal { error }));
        self.stop(now, "node stopped: storage failure");
    }
}
