//! # timed-async-std
//!
//! Drives a [`PeerMachine`] over async-std TCP. The adapter is thin: it owns sockets, tasks
//! and a clock, and carries out what the machine says. It makes **no protocol decision**: who
//! to dial, when to ping, which connection to keep, when to give up — all of that is the
//! core's. It mirrors `timed-tokio` one to one (same options, same handle, same task shape),
//! and a node of either kind talks to the other over real TCP.
//!
//! ## async-std is discontinued
//!
//! async-std is no longer maintained upstream (**RUSTSEC-2025-0052**); its authors point to
//! [smol](https://docs.rs/smol). This crate is kept for users who are still on async-std, and
//! is written so that moving to smol / async-io is a small change:
//!
//! - all I/O goes through the `futures` traits ([`AsyncRead`](futures::io::AsyncRead) /
//!   [`AsyncWrite`](futures::io::AsyncWrite)); the socket type is named in `conn.rs`'s two
//!   spawn functions and in the driver's accept only;
//! - channels are `futures::channel::{mpsc, oneshot}`, multiplexing is `futures::select!`,
//!   writer tasks are collected in a `FuturesUnordered`;
//! - the timer is already [`async_io::Timer`] (what async-std runs on, and what smol uses);
//! - from async-std itself only `net::{TcpListener, TcpStream}`, `task::spawn` / `JoinHandle`
//!   and `future::timeout` are used. With smol: `smol::net`, `smol::spawn` (whose `Task`
//!   cancels on drop: call `detach()` where this crate drops a handle) and
//!   `futures_lite::FutureExt::or` with a `Timer` for the timeout.
//!
//! ## Shape (DESIGN §6)
//!
//! - **One task owns the machine** (the *driver*). Everything that touches the machine is a
//!   message to that task: transport events from connection tasks, commands from
//!   [`NodeHandle`]s, the timer.
//! - **Per connection, a reader task and a writer task.** The reader reads into a buffer and
//!   sends `BytesIn` to the driver over a bounded channel, and stops reading while the machine
//!   says `PauseRead`. The writer writes `Send` data in order and reports `Input::Written` as
//!   bytes reach the kernel; the machine keeps at most `Config::transport_window` bytes
//!   outstanding per connection, which bounds the writer's queue in bytes. `Close` is "flush,
//!   send FIN, then linger reading until the peer closes" so a final `Goodbye` is not
//!   destroyed by a reset.
//! - **One timer** ([`async_io::Timer`]), re-armed from [`PeerMachine::poll_timeout`] whenever
//!   the deadline changes.
//! - **Connect timeout** on dials ([`RuntimeOptions::connect_timeout`]); the machine's own
//!   handshake timeout still applies on top.
//! - **Clock**: [`std::time::Instant`] captured once at start, mapped to core microseconds
//!   ([`Clock`]). async-std has no virtual time, so (unlike timed-tokio's paused-time tests)
//!   tests here run in real time.
//!
//! ## Differences from timed-tokio
//!
//! - [`NodeHandle::subscribe`] returns [`Events`] (the `futures` crate has no broadcast
//!   channel): same `recv().await` shape and [`RecvError::Lagged`] / [`RecvError::Closed`]
//!   meaning as tokio's broadcast receiver, except that a lagging subscriber misses the
//!   *newest* events rather than the oldest, and is told where the gap is. Subscriptions end
//!   ([`RecvError::Closed`]) when the node stops.
//! - The listener is bound with `std::net::TcpListener::bind`, which sets `SO_REUSEADDR` on
//!   Unix (timed-tokio sets it explicitly).

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod clock;
mod conn;
mod driver;
mod events;

pub use clock::{unix_time_now, Clock};
pub use events::{Events, RecvError};

use async_std::net::TcpListener;
use async_std::task::{self, JoinHandle};
use events::Fanout;
use futures::channel::{mpsc, oneshot};
use futures::future::{FutureExt, Shared};
use futures::SinkExt;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use timed_core::{
    Config, ConfigError, NodeId, PeerMachine, QueryError, RequestBody, ResponseBody, Status, Store,
    Tx, TxError, TxId,
};
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
    /// Events kept for a slow [`NodeHandle::subscribe`] receiver before it lags. Default 4096.
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
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Query { peer, req, .. } => write!(f, "Query({peer:?}, {req:?})"),
            Command::SubmitTx { tx, .. } => write!(f, "SubmitTx({} bytes)", tx.0.len()),
            Command::Dial { addr } => write!(f, "Dial({addr})"),
            Command::Status { .. } => f.write_str("Status"),
            Command::Shutdown => f.write_str("Shutdown"),
        }
    }
}

/// Resolves (to `Err(Canceled)`, the sender is never used) when the driver task ends.
type Done = Shared<oneshot::Receiver<()>>;

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    cmd: mpsc::Sender<Command>,
    events: Fanout,
    done: Done,
    clock: Clock,
    node_id: NodeId,
    local_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.local_addr)
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// Queues a command for the driver. Each call sends through its own clone of the sender
    /// (`futures` senders need `&mut`); the channel's bound is `command_capacity` plus one
    /// slot per caller currently waiting here.
    async fn send(&self, cmd: Command) -> Result<(), NodeStopped> {
        self.cmd.clone().send(cmd).await.map_err(|_| NodeStopped)
    }

    /// Sends `req` to the connected node `peer` and waits for the outcome. Every query ends,
    /// exactly once: a response, or a [`QueryError`] (timeout, peer gone, refused, unknown
    /// peer, over the in-flight cap, shutting down).
    pub async fn query(&self, peer: NodeId, req: RequestBody) -> Result<ResponseBody, QueryError> {
        let (reply, rx) = oneshot::channel();
        if self
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
        if self.send(Command::SubmitTx { tx, reply }).await.is_err() {
            return Err(TxError::ShuttingDown);
        }
        rx.await.unwrap_or(Err(TxError::ShuttingDown))
    }

    /// Asks the machine to dial `addr` once (not persistent).
    pub async fn dial(&self, addr: SocketAddr) -> Result<(), NodeStopped> {
        self.send(Command::Dial { addr }).await
    }

    /// A snapshot of the machine.
    pub async fn status(&self) -> Result<Status, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Status { reply }).await?;
        rx.await.map_err(|_| NodeStopped)
    }

    /// Every [`NodeEvent`](timed_core::NodeEvent) from now on. A receiver that falls more than
    /// `RuntimeOptions::event_capacity` events behind gets [`RecvError::Lagged`] where the gap
    /// is. After the node stops, [`RecvError::Closed`].
    pub fn subscribe(&self) -> Events {
        self.events.subscribe()
    }

    /// Graceful shutdown: `Goodbye{Shutdown}` to every peer, every send queue flushed (up to
    /// `RuntimeOptions::shutdown_timeout`), then the machine and its store are dropped or
    /// handed to [`Node::join`]. Returns once the node has stopped; idempotent.
    pub async fn shutdown(&self) {
        let _ = self.send(Command::Shutdown).await;
        self.stopped().await;
    }

    /// Waits until the node has stopped (after a shutdown, or a fatal store error).
    pub async fn stopped(&self) {
        let _ = self.done.clone().await;
    }

    /// True once the driver has finished.
    pub fn is_stopped(&self) -> bool {
        self.done.peek().is_some()
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
    /// and returns its store.
    pub async fn join(self) -> Exit<S> {
        self.task.await
    }
}

/// Starts a node: binds the listener (if any), creates the machine and spawns its driver.
///
/// Fills in `config.listen_port` with the bound port when it is unset (or 0), and
/// `config.unix_time_at_zero` from the system clock when unset.
pub async fn spawn<S>(config: Config, store: S, opts: RuntimeOptions) -> Result<Node<S>, StartError>
where
    S: Store + Send + 'static,
{
    spawn_with_events(config, store, opts)
        .await
        .map(|(node, _)| node)
}

/// [`spawn`], plus a subscription opened *before* the driver starts, so it sees every event
/// from the first one. (With [`NodeHandle::subscribe`] after `spawn`, events of the first
/// moments — a persistent peer's `PeerUp` — may already be gone: async-std runs the driver on
/// another thread at once.)
pub async fn spawn_with_events<S>(
    mut config: Config,
    store: S,
    opts: RuntimeOptions,
) -> Result<(Node<S>, Events), StartError>
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
    let events = Fanout::new(opts.event_capacity);
    let first = events.subscribe();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let driver = driver::Driver::new(machine, clock, opts, listener, events.clone());
    let span = tracing::info_span!("node", id = %node_id.short());
    let task = task::spawn(
        async move {
            let exit = driver.run(cmd_rx).await;
            drop(done_tx);
            exit
        }
        .instrument(span),
    );
    let handle = NodeHandle {
        cmd: cmd_tx,
        events,
        done: done_rx.shared(),
        clock,
        node_id,
        local_addr,
    };
    Ok((Node { handle, task }, first))
}

/// Binds the listener. `std`'s bind sets `SO_REUSEADDR` on Unix, so a restarted node gets its
/// port back at once even while the previous process's connections sit in `TIME_WAIT`.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    Ok(TcpListener::from(listener))
}
