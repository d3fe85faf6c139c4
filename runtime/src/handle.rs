//! What the application holds: a cheap handle to a running node, and the node itself.

use crate::app::{GossipMessage, Incoming};
use crate::events::Events;
use crate::Clock;
use futures::future::RemoteHandle;
use std::net::SocketAddr;
use thiserror::Error;
use timed_core::{
    GossipId, InboundId, MessageId, NodeEvent, NodeId, ProtocolId, PublishError, QueryError,
    RefuseReason, RequestBody, ResponseBody, Status, TopicId, Tx, TxError, TxId, Verdict,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// The node has stopped; the call could not be carried out.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("the node has stopped")]
pub struct NodeStopped;

/// How the driver ended.
#[derive(Debug)]
pub struct Exit<S> {
    /// The store, handed back so the caller can close it (drop) or reuse it (tests).
    pub store: S,
    /// Set when the machine stopped because of a store failure: the operation and the
    /// store's own error (`fatal.downcast_ref::<S::Error>()`).
    pub fatal: Option<timed_core::StoreFailure>,
}

/// A request from a handle to the driver, answered on its `reply` channel.
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
        done: oneshot::Sender<()>,
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
        done: oneshot::Sender<()>,
    },
    Validate {
        id: GossipId,
        verdict: Verdict,
    },
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
            } => write!(f, "Request({peer:?}, {protocol}, {} bytes)", payload.len()),
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

/// A cheap, cloneable handle to a running node. Every call is a message to the node's
/// driver task; the handle works from any executor (its channels need no runtime).
#[derive(Clone, Debug)]
pub struct NodeHandle {
    pub(crate) cmd: mpsc::Sender<Command>,
    /// Weak, so subscriptions end ([`RecvError::Closed`](crate::RecvError::Closed)) once the
    /// driver stops, even while handles live on.
    pub(crate) events: broadcast::WeakSender<NodeEvent>,
    pub(crate) done: watch::Receiver<bool>,
    pub(crate) clock: Clock,
    pub(crate) node_id: NodeId,
    pub(crate) local_addr: Option<SocketAddr>,
}

impl NodeHandle {
    /// Queues `cmd` for the driver (waiting while its `command_capacity` queue is full).
    pub(crate) async fn send(&self, cmd: Command) -> Result<(), NodeStopped> {
        self.cmd.send(cmd).await.map_err(|_| NodeStopped)
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

    /// Every [`NodeEvent`] from now on. A receiver that falls more than
    /// `RuntimeOptions::event_capacity` events behind gets
    /// [`RecvError::Lagged`](crate::RecvError::Lagged) and skips ahead; once the node has
    /// stopped, [`RecvError::Closed`](crate::RecvError::Closed).
    pub fn subscribe(&self) -> Events {
        match self.events.upgrade() {
            Some(tx) => Events::new(tx.subscribe()),
            None => Events::closed(),
        }
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
    pub(crate) handle: NodeHandle,
    /// `Some` until [`Node::join`] or drop. (A dropped `RemoteHandle` would cancel the
    /// driver; dropping a `Node` must leave it running.)
    pub(crate) task: Option<RemoteHandle<Exit<S>>>,
}

impl<S: 'static> Node<S> {
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Waits for the driver to end (after [`NodeHandle::shutdown`] or a fatal store error)
    /// and returns its store. Resumes the driver's panic, should it have panicked.
    pub async fn join(mut self) -> Exit<S> {
        let task = self
            .task
            .take()
            .expect("a Node's task is taken only by join or drop");
        task.await
    }
}

/// Dropping a `Node` without joining leaves the driver running; it stops on
/// [`NodeHandle::shutdown`], or by itself once every handle is gone.
impl<S> Drop for Node<S> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.forget();
        }
    }
}
