//! # timed-runtime
//!
//! Drives a [`PeerMachine`] over real TCP on any async runtime that implements the small
//! [`Runtime`] trait: spawn a task, listen/accept/connect, a monotonic clock with one kind
//! of timer. `timed-tokio`, `timed-smol` and `timed-async-std` are that trait and nothing
//! else; the node, its handle, its task shape and its logging are written once, here.
//!
//! The driver is thin: it owns sockets, tasks and a clock, and carries out what the machine
//! says. It makes **no protocol decision**: who to dial, when to ping, which connection to
//! keep, when to give up — all of that is the core's.
//!
//! ## Shape
//!
//! - **One task owns the machine** (the *driver*). Everything that touches the machine is a
//!   message to that task: transport events from connection tasks, commands from
//!   [`NodeHandle`]s, the timer.
//! - **Per connection, a reader task and a writer task.** The reader reads into a buffer and
//!   sends `BytesIn` to the driver over a bounded channel (so a fast sender cannot grow our
//!   memory), and stops reading while the machine says `PauseRead`. The writer writes `Send`
//!   data in order and reports `Input::Written` as bytes reach the kernel; the machine keeps
//!   at most `Config::transport_window` bytes outstanding per connection, which bounds the
//!   writer's queue in bytes and lets control frames (pongs) overtake bulk frames still held
//!   in the machine. `Close` is "flush, send FIN, then linger reading until the peer closes"
//!   so a final `Goodbye` is not destroyed by a reset.
//! - **One timer**, re-armed from [`PeerMachine::poll_timeout`] whenever the deadline changes.
//! - **Connect timeout** on dials ([`RuntimeOptions::connect_timeout`]); the machine's own
//!   handshake timeout still applies on top.
//! - **Clock**: the runtime's ([`Runtime::now`]), mapped to core microseconds ([`Clock`]), so
//!   a runtime with virtual time (tokio's paused clock) runs the machine in virtual time.
//! - **Channels** are tokio's `sync` module, which is runtime-agnostic (no reactor, no
//!   executor): handles work from any executor, and a node of one runtime can be driven from
//!   a task of another.
//!
//! ## The whole loop, in one place
//!
//! ```text
//! loop {
//!     while let Some(action) = machine.poll_action() { carry it out }   // Send, Close, Dial, PauseRead, Notify…
//!     if machine.is_stopped() { break }
//!     arm the timer at machine.poll_timeout();
//!     select! {
//!         command from a handle   => machine.query / submit_tx / request / respond / publish …,
//!         bytes, written, closed  => machine.handle(now, Input::…),
//!         accepted socket         => machine.accept(now, remote),
//!         timer                   => machine.handle_timeout(now),
//!     }
//! }
//! flush every Goodbye (bounded by shutdown_timeout), hand back the store
//! ```
//!
//! ## A new runtime
//!
//! Implement [`Runtime`] (about a hundred lines: see `timed-smol`), then run the
//! conformance suite (`conformance` feature) and the interop scenarios against it.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod app;
mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod conn;
mod driver;
mod events;
mod handle;
mod log;
mod runtime;

pub use app::{GossipMessage, Incoming};
pub use clock::{unix_time_now, Clock};
pub use events::{Events, RecvError};
pub use handle::{Exit, Node, NodeHandle, NodeStopped};
pub use runtime::{timeout, Elapsed, Runtime, Stream};

use futures::FutureExt;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use timed_core::{Config, ConfigError, PeerMachine, Store};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument;

/// Knobs of the driver itself. Protocol settings live in [`Config`].
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

/// Starts a node on runtime `rt`: binds the listener (if any), creates the machine and
/// spawns its driver.
///
/// Fills in `config.listen_port` with the bound port when it is unset (or 0), and
/// `config.unix_time_at_zero` from the system clock when unset.
pub async fn spawn<R, S>(
    rt: R,
    config: Config,
    store: S,
    opts: RuntimeOptions,
) -> Result<Node<S>, StartError>
where
    R: Runtime,
    S: Store + Send + 'static,
{
    spawn_with_events(rt, config, store, opts)
        .await
        .map(|(node, _)| node)
}

/// [`spawn`], plus a subscription opened *before* the driver starts, so it sees every event
/// from the first one. (With [`NodeHandle::subscribe`] after `spawn`, events of the first
/// moments — a persistent peer's `PeerUp` — may already be gone on a runtime that starts the
/// driver on another thread at once.)
pub async fn spawn_with_events<R, S>(
    rt: R,
    mut config: Config,
    store: S,
    opts: RuntimeOptions,
) -> Result<(Node<S>, Events), StartError>
where
    R: Runtime,
    S: Store + Send + 'static,
{
    config.validate()?;
    let (listener, local_addr) = listen(&rt, &opts, &mut config)?;
    let clock = Clock::start(R::now);
    if config.unix_time_at_zero.is_none() {
        config.unix_time_at_zero = unix_time_now();
    }
    let node_id = config.node_id;
    let machine = PeerMachine::new(config, store, clock.now())?;
    let (cmd_tx, cmd_rx) = mpsc::channel(opts.command_capacity.max(1));
    let (events, first) = broadcast::channel(opts.event_capacity.max(1));
    let (done_tx, done_rx) = watch::channel(false);
    let handle = handle::NodeHandle {
        cmd: cmd_tx.clone(),
        events: events.downgrade(),
        done: done_rx,
        clock,
        node_id,
        local_addr,
    };
    let driver = driver::Driver::new(driver::Parts {
        rt: rt.clone(),
        machine,
        clock,
        opts,
        listener,
        events,
        cmd: cmd_tx.downgrade(),
    });
    drop(cmd_tx);
    let span = tracing::info_span!("node", id = %node_id.short());
    let (task, exit) = async move {
        let exit = driver.run(cmd_rx).await;
        let _ = done_tx.send(true);
        exit
    }
    .instrument(span)
    .remote_handle();
    rt.spawn(task);
    let node = Node {
        handle,
        task: Some(exit),
    };
    Ok((node, Events::new(first)))
}

/// Binds the listener if `opts` asks for one, and advertises its port in `config` unless a
/// port is set there already.
fn listen<R: Runtime>(
    rt: &R,
    opts: &RuntimeOptions,
    config: &mut Config,
) -> Result<(Option<R::Listener>, Option<SocketAddr>), StartError> {
    let listener = match opts.listen {
        Some(addr) => Some(
            rt.bind(addr)
                .map_err(|source| StartError::Bind { addr, source })?,
        ),
        None => None,
    };
    let local_addr = listener.as_ref().and_then(|l| rt.local_addr(l).ok());
    if matches!(config.listen_port, None | Some(0)) {
        config.listen_port = local_addr.map(|a| a.port());
    }
    Ok((listener, local_addr))
}
