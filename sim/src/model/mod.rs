//! What the engine runs: a [`NodeModel`] per node.
//!
//! The engine owns sockets and virtual time; a model owns everything a node decides. Two
//! models exist: [`machine`](crate::model::machine) drives a `timed_core::PeerMachine`, and
//! [`legacy`](crate::legacy) models the old node. Both see the same network, the same faults
//! and are measured by the same observers (connection lifetimes, pings and pongs on the wire),
//! so their figures compare directly.

#[cfg(feature = "machine")]
pub mod app;
#[cfg(feature = "machine")]
pub mod machine;

use crate::time::Micros;
use std::net::SocketAddr;

/// A model's number for one of its connections (the machine's `ConnId`).
pub type ModelConn = u64;

/// How a transport connection ended, as reported to a model.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CloseKind {
    Fin,
    Reset,
}

/// Something a model asks the engine to do, or tells it.
#[derive(Debug)]
pub enum ModelAction {
    Send { conn: ModelConn, data: Vec<u8> },
    Close { conn: ModelConn },
    Dial { conn: ModelConn, addr: SocketAddr },
    PauseRead { conn: ModelConn },
    ResumeRead { conn: ModelConn },
    Event(ModelEvent),
}

/// Model events the engine's observers use.
#[derive(Debug)]
pub enum ModelEvent {
    /// `conn` now carries an established peer.
    PeerUp { conn: ModelConn },
    /// The peer moved from `from` to `to` without going down.
    PeerMoved { from: ModelConn, to: ModelConn },
    /// `conn` no longer carries a peer.
    PeerDown {
        conn: ModelConn,
        reason: &'static str,
    },
    /// An application query ended: `result` is `ok` when answered, else why not (a
    /// `QueryError` label).
    QueryDone { id: u64, result: &'static str },
    /// The node's chain moved (height after the change).
    Height { height: u64, reorg: bool },
    /// The node accused a peer of misbehaving. In the simulator nobody misbehaves (filters drop
    /// whole frames), so this is a finding.
    Misbehaved(String),
    /// The node stopped on a fatal error.
    Fatal(String),
    /// Something noteworthy for the trace only.
    Note(String),
}

/// Everything a node is told at boot.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub index: usize,
    pub node_id: [u8; 32],
    pub ip: std::net::IpAddr,
    pub listen_port: Option<u16>,
    pub persistent_peers: Vec<SocketAddr>,
    /// This node's monotonic-clock epoch relative to virtual time zero (each host's clock
    /// starts somewhere else; only differences matter to the machine).
    pub clock_offset: Micros,
    /// Unix seconds at virtual time zero as this host believes (base time + skew).
    pub unix_time_at_zero: u64,
    pub tuning: crate::scenario::Tuning,
}

/// The node's tip moved (blocks applied, possibly after a rollback), or what it was at boot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TipChange {
    pub at: Micros,
    pub height: u64,
    pub hash: [u8; 32],
}

/// Counters a model keeps that the wire cannot show.
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelCounters {
    /// Connections dropped because the peer went silent (ping timeout / missed pongs).
    pub ping_timeouts: u64,
    /// Peers that came up again after being lost, as the node itself counts them.
    pub reconnects: u64,
    pub duplicates_resolved: u64,
    pub protocol_errors: u64,
    pub height: u64,
    pub blocks_applied: u64,
    pub reorgs: u64,
}

/// How far into a model's pointers [`NodeModel::hot_lines`] may look (the engine asks
/// further for events that are nearer; see `Sim::warm`). The model's own hot fields need no
/// call: they are the first [`NodeModel::HOT_BYTES`] of it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hop {
    /// The storage of its tables (reads the model's hot fields).
    Tables,
    /// The state of the connection concerned (reads the tables).
    Conn,
}

/// One node's behaviour, driven by the engine.
///
/// The contract is the one of `timed_core::PeerMachine` (see its docs), in virtual time:
/// the engine calls one input method, then drains [`poll_action`](Self::poll_action), then
/// re-reads [`poll_timeout`](Self::poll_timeout).
pub trait NodeModel: Sized {
    /// What survives a crash (the machine's store).
    type Persist;
    /// `machine` or `legacy`.
    const NAME: &'static str;
    /// Bytes at the start of the model that every input touches (a prefetch hint, see
    /// `Sim::warm`); 0 names none.
    const HOT_BYTES: usize = 0;

    fn boot(
        spec: &NodeSpec,
        boot_seed: u64,
        now: Micros,
        persisted: Option<Self::Persist>,
    ) -> Result<Self, String>;
    /// `kill -9`: the process is gone, its store stays.
    fn crash(self) -> Option<Self::Persist>;

    fn accept(&mut self, now: Micros, remote: SocketAddr) -> Option<ModelConn>;
    fn connected(&mut self, now: Micros, conn: ModelConn);
    fn dial_failed(&mut self, now: Micros, conn: ModelConn);
    fn bytes_in(&mut self, now: Micros, conn: ModelConn, data: &[u8]);
    fn written(&mut self, now: Micros, conn: ModelConn, bytes: usize);
    fn closed(&mut self, now: Micros, conn: ModelConn, kind: CloseKind);
    fn on_timeout(&mut self, now: Micros);
    fn poll_timeout(&self) -> Option<Micros>;
    fn poll_action(&mut self) -> Option<ModelAction>;
    /// Graceful stop (says goodbye where the model can).
    fn shutdown(&mut self, now: Micros);

    /// Starts an application query to the node with id `peer` (a cheap one: its tip).
    /// `None` when the model has no queries.
    fn query(&mut self, _now: Micros, _peer: [u8; 32]) -> Option<u64> {
        None
    }
    /// Takes back the buffer of a `ModelAction::Send` once the engine has copied its bytes.
    fn recycle(&mut self, _buf: Vec<u8>) {}
    /// Bytes queued for `conn` (machine and transport), and the bound they must stay within.
    fn send_queue(&self, _conn: ModelConn) -> Option<(usize, usize)> {
        None
    }
    /// Memory an input for `conn` (or a timer, if `None`) will touch first, as `(address,
    /// bytes)` runs, following at most `hop` pointers: a prefetch hint (see
    /// `engine::prefetch`), never read by anyone. The default names nothing.
    fn hot_lines(
        &self,
        _conn: Option<ModelConn>,
        _hop: Hop,
        _out: &mut dyn FnMut(*const u8, usize),
    ) {
    }
    fn counters(&self) -> ModelCounters;
    /// Every tip this node has had, oldest first, across its restarts: the first entry is its
    /// tip when it first booted. Empty for a model without a chain. The chain checks and
    /// figures ([`invariants::first_common_tip`](crate::invariants::first_common_tip),
    /// `sync_secs`) are computed from it.
    fn tip_log(&self) -> &[TipChange] {
        &[]
    }
    /// Whether the engine should hold this model to the new design's invariants (the legacy
    /// model breaks them by design; its violations are counted, not fatal).
    fn strict() -> bool;
}
