//! # timed-tokio
//!
//! Drives a [`PeerMachine`] over tokio TCP. The adapter is thin: it owns sockets, tasks and a
//! clock, and carries out what the machine says. It makes **no protocol decision**: who to
//! dial, when to ping, which connection to keep, when to give up — all of that is the core's.
//!
//! ## Shape (DESIGN §6)
//!
//! - **One task owns the machine** (the *driver*). Everything that touches the machine is a
//!   message to that task: transport events from connection tasks, commands from
//!   [`NodeHandle`]s, the timer.
//! - **Per connection, a reader task and a writer task.** The reader reads into a buffer and
//!   sends `BytesIn` to the driver over a bounded channel (so a fast sender cannot grow our
//!   memory), and stops reading while the machine says `PauseRead`. The writer writes
//!   `Send` data in order and reports `Input::Written` as bytes reach the kernel; the machine
//!   keeps at most `Config::transport_window` bytes outstanding per connection, which bounds
//!   the writer's queue in bytes and lets control frames (pongs) overtake bulk frames still
//!   held in the machine. `Close` is "flush, send FIN, then linger reading until the peer
//!   closes" so a final `Goodbye` is not destroyed by a reset.
//! - **One timer**, re-armed from [`PeerMachine::poll_timeout`] after every step.
//! - **Connect timeout** on dials ([`RuntimeOptions::connect_timeout`]); the machine's own
//!   handshake timeout still applies on top.
//! - **Clock**: `tokio::time::Instant`, mapped to core microseconds ([`Clock`]), so tests with
//!   `start_paused = true` run in virtual time.
//!
//! ## Porting
//!
//! Nothing here depends on tokio beyond: TCP listener/stream with split halves, a bounded
//! mpsc, a oneshot, a watch (pause flag), a broadcast (events), `sleep_until` and `spawn`.
//! The async-std adapter mirrors this file one to one; [`conformance`] holds the behaviour
//! both must show, written against the small [`conformance::Harness`] trait.

mod app;
mod clock;
pub mod conformance;
mod conn;
mod driver;

pub use app::{GossipMessage, Incoming};
pub use clock::{unix_time_now, Clock};

use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use timed_core::{
    Config, ConfigError, GossipId, InboundId, MessageId, NodeEvent, NodeId, PeerMachine,
    ProtocolId, PublishError, QueryError, RefuseReason, RequestBody, ResponseBody, Status, Store,
    TopicId, Tx, TxError, TxId, Verdict,
};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Knobs of the adapter itself. Protocol settings live in [`Config`].
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Where to accept connections. `None`: outbound only. Port 0 picks a free port; the
    /// bound address is [`NodeHandle::local_addr`] and is advertised in `Hello` unless
    /// `Config::listen_port` is set to something else.
    pub listen: Option<SocketAddr>,
    /// A TCP connect that takes longer than this is reported as `DialFailed`. Default 10 s.
    pub connect_timeout: Duration,
    /// Bytes read per `read` call. Default 64 KiB.
    pub read_buffer: usize,
    /// Capacity (messages) of the channel from connection tasks to the driver. Default 256.
    pub inbox_capacity: usize,
    /// Capacity of the channel from handles to the driver. Default 1024.
    pub command_capacity: usize,
    /// Events kept for slow [`NodeHandle::subscribe`] receivers before they lag. Default 4096.
    pub event_capacity: usize,
    /// After a close has flushed and sent FIN, keep reading (and discarding) for at most this
    /// long until the peer closes too. Default 2 s.
    pub linger: Duration,
    /// On shutdown, how long to wait for every connection to flush its `Goodbye`. Default 5 s.
    pub shutdown_timeout: Duration,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            listen: None,
            connect_timeout: Duration::from_secs(10),
            read_buffer: 64 * 1024,
            inbox_capacity: 256,
            command_capacity: 1024,
            event_capacity: 4096,
            linger: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The node has stopped; the call could not be carried out.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("the node has stopped")]
pub struct NodeStopped;

/// How the driver ended.
#[derive(Debug)]
pub struct Exit<S> {
    /// The store, handed back so the caller can close it (drop) or reuse it (tests).
    pub store: S,
    /// Set when the machine stopped because of a store failure.
    pub fatal: Option<String>,
}

pub(crate) enum Command {
    Query {
        peer: NodeId,
        req: RequestBody,
        reply: oneshot::Sender<Result<ResponseBody, QueryError>>,
    },
    SubmitTx {
        tx: Tx,
        reply: oneshot::Sender<Result<TxId, TxError>>,
    },
    Dial {
        addr: SocketAddr,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Shutdown,
    Request {
        peer: NodeId,
        protocol: ProtocolId,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, QueryError>>,
    },
    Serve {
        protocol: ProtocolId,
        tx: mpsc::Sender<Incoming>,
    },
    Respond {
        id: InboundId,
        result: Result<Vec<u8>, RefuseReason>,
    },
    Publish {
        topic: TopicId,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<MessageId, PublishError>>,
    },
    Listen {
        topic: TopicId,
        tx: mpsc::Sender<GossipMessage>,
    },
    Validate {
        id: GossipId,
        verdict: Verdict,
    },
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    cmd: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    done: watch::Receiver<bool>,
    clock: Clock,
    node_id: NodeId,
    local_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Query { peer, req, .. } => write!(f, "Query({peer:?}, {req:?})"),
            Command::SubmitTx { tx, .. } => write!(f, "SubmitTx({} bytes)", tx.0.len()),
            Command::Dial { addr } => write!(f, "Dial({addr})"),
            Command::Status { .. } => f.write_str("Status"),
            Command::Shutdown => f.write_str("Shutdown"),
            Command::Request {
                peer,
                protocol,
                payload,
                ..
            } => {
                write!(f, "Request({peer:?}, {protocol}, {} bytes)", payload.len())
            }
            Command::Serve { protocol, .. } => write!(f, "Serve({protocol})"),
            Command::Respond { id, .. } => write!(f, "Respond({id:?})"),
            Command::Publish { topic, payload, .. } => {
                write!(f, "Publish({topic}, {} bytes)", payload.len())
            }
            Command::Listen { topic, .. } => write!(f, "Listen({topic})"),
            Command::Validate { id, verdict } => write!(f, "Validate({id:?}, {verdict:?})"),
        }
    }
}

impl NodeHandle {
    /// Sends `req` to the connected node `peer` and waits for the outcome. Every query ends,
    /// exactly once: a response, or a [`QueryError`] (timeout, peer gone, refused, unknown
    /// peer, over the in-flight cap, shutting down).
    pub async fn query(&self, peer: NodeId, req: RequestBody) -> Result<ResponseBody, QueryError> {
        let (reply, rx) = oneshot::channel();
        if self
            .cmd
            .send(Command::Query { peer, req, reply })
            .await
            .is_err()
        {
            return Err(QueryError::ShuttingDown);
        }
        rx.await.unwrap_or(Err(QueryError::ShuttingDown))
    }

    /// Submits a transaction to the mempool (and so to every peer).
    pub async fn submit_tx(&self, tx: Tx) -> Result<TxId, TxError> {
        let (reply, rx) = oneshot::channel();
        if self
            .cmd
            .send(Command::SubmitTx { tx, reply })
            .await
            .is_err()
        {
            return Err(TxError::ShuttingDown);
        }
        rx.await.unwrap_or(Err(TxError::ShuttingDown))
    }

    /// Asks the machine to dial `addr` once (not persistent).
    pub async fn dial(&self, addr: SocketAddr) -> Result<(), NodeStopped> {
        self.cmd
            .send(Command::Dial { addr })
            .await
            .map_err(|_| NodeStopped)
    }

    /// A snapshot of the machine.
    pub async fn status(&self) -> Result<Status, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Status { reply })
            .await
            .map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }

    /// Every [`NodeEvent`] from now on. A receiver that falls more than
    /// `RuntimeOptions::event_capacity` events behind gets `Lagged` and skips ahead.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Graceful shutdown: `Goodbye{Shutdown}` to every peer, every send queue flushed (up to
    /// `RuntimeOptions::shutdown_timeout`), then the machine and its store are dropped or
    /// handed to [`Node::join`]. Returns once the node has stopped; idempotent.
    pub async fn shutdown(&self) {
        let _ = self.cmd.send(Command::Shutdown).await;
        self.stopped().await;
    }

    /// Waits until the node has stopped (after a shutdown, or a fatal store error).
    pub async fn stopped(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// True once the driver has finished.
    pub fn is_stopped(&self) -> bool {
        *self.done.borrow()
    }

    /// The machine's current time (microseconds since the node started).
    pub fn now(&self) -> timed_core::Instant {
        self.clock.now()
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the listener is bound to, if any.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

/// A running node: its handle and its driver task.
#[derive(Debug)]
pub struct Node<S> {
    handle: NodeHandle,
    task: JoinHandle<Exit<S>>,
}

impl<S> Node<S> {
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Waits for the driver to end (after [`NodeHandle::shutdown`] or a fatal store error)
    /// and returns its store. Panics only if the driver task panicked.
    pub async fn join(self) -> Exit<S> {
        match self.task.await {
            Ok(exit) => exit,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Starts a node: binds the listener (if any), creates the machine and spawns its driver.
///
/// Fills in `config.listen_port` with the bound port when it is unset (or 0), and
/// `config.unix_time_at_zero` from the system clock when unset.
pub async fn spawn<S>(
    mut config: Config,
    store: S,
    opts: RuntimeOptions,
) -> Result<Node<S>, StartError>
where
    S: Store + Send + 'static,
{
    config.validate()?;
    let listener = match opts.listen {
        Some(addr) => Some(bind(addr).map_err(|source| StartError::Bind { addr, source })?),
        None => None,
    };
    let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    if matches!(config.listen_port, None | Some(0)) {
        config.listen_port = local_addr.map(|a| a.port());
    }
    let clock = Clock::start();
    if config.unix_time_at_zero.is_none() {
        config.unix_time_at_zero = unix_time_now();
    }
    let node_id = config.node_id;
    let machine = PeerMachine::new(config, store, clock.now())?;
    let (cmd_tx, cmd_rx) = mpsc::channel(opts.command_capacity.max(1));
    let (events, _) = broadcast::channel(opts.event_capacity.max(1));
    let (done_tx, done_rx) = watch::channel(false);
    let driver = driver::Driver::new(
        machine,
        clock,
        opts,
        listener,
        events.clone(),
        cmd_tx.downgrade(),
    );
    let span = tracing::info_span!("node", id = %node_id.short());
    let task = tokio::spawn(
        async move {
            let exit = driver.run(cmd_rx).await;
            let _ = done_tx.send(true);
            exit
        }
        .instrument(span),
    );
    let handle = NodeHandle {
        cmd: cmd_tx,
        events,
        done: done_rx,
        clock,
        node_id,
        local_addr,
    };
    Ok(Node { handle, task })
}

/// Binds with `SO_REUSEADDR`, so a restarted node gets its port back at once even while the
/// previous process's connections sit in `TIME_WAIT`.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
