//! # timed-tokio
//!
//! Drives a [`PeerMachine`](timed_core::PeerMachine) over tokio TCP: the production runtime.
//! This crate is the tokio side of [`timed_runtime::Runtime`] and nothing else; the node,
//! its handle and its driver are `timed-runtime`'s, re-exported here.
//!
//! The driver runs on the tokio runtime of the [`Tokio`] value it is given
//! ([`Tokio::current`] in a tokio context), whichever executor calls [`spawn`] or uses the
//! handle. Time is `tokio::time`'s, so tests with `start_paused = true` run the machine in
//! virtual time.
//!
//! ```no_run
//! # async fn run() -> Result<(), timed_tokio::StartError> {
//! use timed_core::{Config, MemStore, Network, NodeId};
//! let config = Config::new(Network::Devnet, NodeId([1; 32]), 1);
//! let opts = timed_tokio::RuntimeOptions {
//!     listen: Some("127.0.0.1:0".parse().expect("literal")),
//!     ..Default::default()
//! };
//! let node = timed_tokio::spawn(config, MemStore::new(Network::Devnet), opts).await?;
//! let status = node.handle().status().await;
//! node.handle().shutdown().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub use timed_runtime::{
    unix_time_now, Clock, Events, Exit, GossipMessage, Incoming, Node, NodeHandle, NodeStopped,
    RecvError, RuntimeOptions, StartError,
};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use timed_core::{Config, Store};
use timed_runtime::{Runtime, Stream};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

/// The tokio runtime, as [`timed_runtime`] drives it: tasks, sockets and timers all on the
/// tokio runtime behind `handle`.
#[derive(Clone, Debug)]
pub struct Tokio {
    handle: tokio::runtime::Handle,
}

impl Tokio {
    /// The runtime of the current tokio context. Panics outside one, as
    /// [`tokio::runtime::Handle::current`] does.
    pub fn current() -> Self {
        Tokio::on(tokio::runtime::Handle::current())
    }

    /// The tokio runtime behind `handle`: its nodes run there even when started from, or
    /// used from, another executor.
    pub fn on(handle: tokio::runtime::Handle) -> Self {
        Tokio { handle }
    }
}

impl Runtime for Tokio {
    type Listener = TcpListener;
    type Reader = Compat<tokio::net::tcp::OwnedReadHalf>;
    // `Compat`'s `poll_close` is tokio's `poll_shutdown`: flush, then FIN.
    type Writer = Compat<tokio::net::tcp::OwnedWriteHalf>;
    type Sleep = tokio::time::Sleep;

    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(task));
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        let _in_runtime = self.handle.enter();
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    }

    fn local_addr(&self, listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept<'a>(
        &self,
        listener: &'a TcpListener,
    ) -> impl Future<Output = io::Result<(Stream<Self>, SocketAddr)>> + Send + use<'a> {
        async move {
            let (stream, remote) = listener.accept().await?;
            Ok((split(stream), remote))
        }
    }

    fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Stream<Self>>> + Send + use<> {
        async move { TcpStream::connect(addr).await.map(split) }
    }

    fn now() -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> tokio::time::Sleep {
        let _in_runtime = self.handle.enter();
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline))
    }
}

fn split(stream: TcpStream) -> Stream<Tokio> {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    Stream {
        reader: reader.compat(),
        writer: writer.compat_write(),
    }
}

/// Starts a node on the current tokio runtime (see [`timed_runtime::spawn`]).
pub async fn spawn<S>(config: Config, store: S, opts: RuntimeOptions) -> Result<Node<S>, StartError>
where
    S: Store + Send + 'static,
{
    timed_runtime::spawn(Tokio::current(), config, store, opts).await
}
