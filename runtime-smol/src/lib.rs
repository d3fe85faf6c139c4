//! # timed-smol
//!
//! Drives a [`PeerMachine`](timed_core::PeerMachine) over smol: sockets and timers from
//! `async-io` (the reactor smol and async-std both run on), tasks on a smol executor. This
//! crate is that side of [`timed_runtime::Runtime`] and nothing else; the node, its handle
//! and its driver are `timed-runtime`'s, re-exported here.
//!
//! [`AsyncIo`] is generic over where tasks run ([`Spawn`]), so any executor that can run
//! `async-io` futures drives a node with the same sockets and timers: [`Smol`] (smol's
//! global executor, or one of your own with [`Smol::on`]), and `timed-async-std`'s.
//!
//! ```no_run
//! use timed_core::{Config, MemStore, Network, NodeId};
//! smol::block_on(async {
//!     let config = Config::new(Network::Devnet, NodeId([1; 32]), 1);
//!     let opts = timed_smol::RuntimeOptions {
//!         listen: Some("127.0.0.1:0".parse().expect("literal")),
//!         ..Default::default()
//!     };
//!     let node = timed_smol::spawn(config, MemStore::new(Network::Devnet), opts)
//!         .await
//!         .expect("node starts");
//!     node.handle().shutdown().await;
//! });
//! ```

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub use timed_runtime::{
    unix_time_now, Clock, Events, Exit, GossipMessage, Incoming, Node, NodeHandle, NodeStopped,
    RecvError, RuntimeOptions, StartError,
};

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use futures_lite::AsyncWrite;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use timed_core::{Config, Store};
use timed_runtime::{Runtime, Stream};

/// Where an [`AsyncIo`] runtime runs its tasks.
pub trait Spawn: Clone + Send + Sync + 'static {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static;
}

/// A runtime of `async-io` sockets and timers whose tasks run on `S`.
#[derive(Clone, Debug, Default)]
pub struct AsyncIo<S> {
    spawner: S,
}

impl<S: Spawn> AsyncIo<S> {
    pub fn with_spawner(spawner: S) -> Self {
        AsyncIo { spawner }
    }
}

/// smol's executors: the global one ([`smol::spawn`]) unless one is given.
#[derive(Clone, Default)]
pub struct SmolSpawn {
    executor: Option<Arc<smol::Executor<'static>>>,
}

impl std::fmt::Debug for SmolSpawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = if self.executor.is_some() {
            "own executor"
        } else {
            "global executor"
        };
        f.debug_tuple("SmolSpawn").field(&on).finish()
    }
}

impl Spawn for SmolSpawn {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.executor {
            Some(ex) => ex.spawn(task).detach(),
            None => smol::spawn(task).detach(),
        }
    }
}

/// smol, as [`timed_runtime`] drives it.
pub type Smol = AsyncIo<SmolSpawn>;

impl Smol {
    /// Tasks on `executor` (which the caller runs), instead of smol's global executor.
    pub fn on(executor: Arc<smol::Executor<'static>>) -> Self {
        AsyncIo::with_spawner(SmolSpawn {
            executor: Some(executor),
        })
    }
}

impl<S: Spawn> Runtime for AsyncIo<S> {
    type Listener = TcpListener;
    type Reader = TcpStream;
    type Writer = Writer;
    type Sleep = Timer;

    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawner.spawn(task);
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        // `std`'s bind sets `SO_REUSEADDR` on Unix.
        TcpListener::try_from(std::net::TcpListener::bind(addr)?)
    }

    fn local_addr(&self, listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept<'a>(
        &self,
        listener: &'a TcpListener,
    ) -> impl Future<Output = io::Result<(Stream<Self>, SocketAddr)>> + Send + use<'a, S> {
        async move {
            let (stream, remote) = listener.accept().await?;
            Ok((split(stream), remote))
        }
    }

    fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Stream<Self>>> + Send + use<S> {
        async move { TcpStream::connect(addr).await.map(split) }
    }

    // The one place this crate reads the monotonic clock; the workspace lint keeps clock
    // reads out of the core.
    #[allow(clippy::disallowed_methods)]
    fn now() -> std::time::Instant {
        std::time::Instant::now()
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Timer {
        Timer::at(deadline)
    }
}

fn split<S: Spawn>(stream: TcpStream) -> Stream<AsyncIo<S>> {
    let _ = stream.set_nodelay(true);
    Stream {
        reader: stream.clone(),
        writer: Writer(stream),
    }
}

/// The writing half. An `async-io` socket's `close` only flushes; this one also sends FIN
/// (`shutdown(Write)`), as [`Runtime::Writer`] requires, while the reading half stays open.
#[derive(Debug)]
pub struct Writer(TcpStream);

impl AsyncWrite for Writer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_flush(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(self.0.shutdown(Shutdown::Write)),
            other => other,
        }
    }
}

/// Starts a node on smol's global executor (see [`timed_runtime::spawn`]).
pub async fn spawn<S>(config: Config, store: S, opts: RuntimeOptions) -> Result<Node<S>, StartError>
where
    S: Store + Send + 'static,
{
    timed_runtime::spawn(Smol::default(), config, store, opts).await
}
