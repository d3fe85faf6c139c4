//! The behaviour every runtime adapter must show, written once against two small traits so
//! the async-std adapter runs the very same scenarios, and so a tokio node and an async-std
//! node can be checked to interoperate (each scenario takes two harnesses, which may be of
//! different runtimes).
//!
//! An adapter provides a [`Harness`] (start a node on loopback with a config and a
//! [`MemStore`]) and a [`TestNode`] (what a `NodeHandle` offers, plus "next event within a
//! time limit"). [`TokioHarness`] is the tokio one. Each scenario is an `async fn` that
//! panics with a description when the adapter misbehaves; run it inside the adapter's own
//! executor:
//!
//! ```text
//! #[tokio::test]
//! async fn two_nodes_talk() {
//!     timed_tokio::conformance::two_nodes_connect_and_answer_queries(&TokioHarness, &TokioHarness).await;
//! }
//! ```
//!
//! Time-sensitive checks that need a virtual clock (query and ping timeouts measured
//! exactly) are adapter-specific: tokio has a paused clock, async-std does not. They live in
//! `tests/handle.rs`.

use crate::{Node, NodeHandle, RuntimeOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use timed_core::{
    Config, DownReason, GoodbyeReason, MemStore, Network, NodeEvent, NodeId, QueryError,
    RequestBody, ResponseBody, Status,
};

/// The network every scenario runs on.
pub const NET: Network = Network::Devnet;
/// Real-time bound on any single wait in a scenario.
pub const LIMIT: Duration = Duration::from_secs(20);
/// Bound on the events a scenario skips while looking for one.
const MAX_EVENTS: usize = 100_000;

/// A running node, as a scenario sees it.
pub trait TestNode {
    fn node_id(&self) -> NodeId;
    /// Where it listens (loopback).
    fn local_addr(&self) -> SocketAddr;
    fn dial(&self, addr: SocketAddr) -> impl Future<Output = ()>;
    fn query(
        &self,
        peer: NodeId,
        req: RequestBody,
    ) -> impl Future<Output = Result<ResponseBody, QueryError>>;
    /// `None` once the node has stopped.
    fn status(&self) -> impl Future<Output = Option<Status>>;
    /// Graceful shutdown; returns once the node has stopped. Returns the store's height.
    fn shutdown(self) -> impl Future<Output = u64>;
    /// The next event since the node started (events are buffered from `start`), or `None`
    /// if none comes within `limit`.
    fn next_event(&mut self, limit: Duration) -> impl Future<Output = Option<NodeEvent>>;
}

/// Starts nodes of one runtime.
pub trait Harness {
    type Node: TestNode;
    /// Starts a node listening on `127.0.0.1:0`.
    fn start(&self, config: Config, store: MemStore) -> impl Future<Output = Self::Node>;
}

/// A config for test node `id` (node id `[id; 32]`, seed `id`).
pub fn config(id: u8) -> Config {
    Config::new(NET, NodeId([id; 32]), id as u64)
}

/// Waits for the first event matching `f`; panics naming `what` if none comes in time.
pub async fn wait_for<N: TestNode, T>(
    node: &mut N,
    what: &str,
    mut f: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    for _ in 0..MAX_EVENTS {
        match node.next_event(LIMIT).await {
            Some(e) => {
                if let Some(v) = f(&e) {
                    return v;
                }
            }
            None => panic!("no event within {LIMIT:?} while waiting for: {what}"),
        }
    }
    panic!("{MAX_EVENTS} events without: {what}");
}

/// Waits until `node` reports `peer` up.
pub async fn peer_up<N: TestNode>(node: &mut N, peer: NodeId) {
    wait_for(node, "peer up", |e| {
        matches!(e, NodeEvent::PeerUp { peer: p, .. } if *p == peer).then_some(())
    })
    .await
}

/// Connects `b` to `a` (b dials) and waits until both see each other.
pub async fn connect<A: TestNode, B: TestNode>(a: &mut A, b: &mut B) {
    b.dial(a.local_addr()).await;
    let (ida, idb) = (a.node_id(), b.node_id());
    peer_up(b, ida).await;
    peer_up(a, idb).await;
}

/// Two nodes (possibly of different runtimes) connect over loopback, each lists the other
/// exactly once, and queries are answered on the connection they were asked on.
pub async fn two_nodes_connect_and_answer_queries<HA: Harness, HB: Harness>(ha: &HA, hb: &HB) {
    let mut store = MemStore::new(NET);
    store.extend_empty(5);
    let mut a = ha.start(config(1), store).await;
    let mut b = hb.start(config(2), MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;

    let tip = b.query(a.node_id(), RequestBody::Tip).await;
    assert!(
        matches!(tip, Ok(ResponseBody::Tip { height: 5, .. })),
        "{tip:?}"
    );
    // b may already have synced from a: any tip will do, as long as it is an answer.
    let tip = a.query(b.node_id(), RequestBody::Tip).await;
    assert!(matches!(tip, Ok(ResponseBody::Tip { .. })), "{tip:?}");
    let sa = a.status().await.expect("a runs");
    let sb = b.status().await.expect("b runs");
    assert_eq!(
        sa.peers.iter().map(|p| p.node_id).collect::<Vec<_>>(),
        vec![b.node_id()]
    );
    assert_eq!(
        sb.peers.iter().map(|p| p.node_id).collect::<Vec<_>>(),
        vec![a.node_id()]
    );
    assert_eq!(
        b.query(NodeId([9; 32]), RequestBody::Tip).await,
        Err(QueryError::UnknownPeer)
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// With a 64-byte transport window the machine hands over about one frame at a time and only
/// continues when the adapter reports `Input::Written`. An adapter that does not report it
/// stalls right after `Hello`; one that does syncs 300 blocks.
pub async fn a_tiny_transport_window_still_moves_everything<HA: Harness, HB: Harness>(
    ha: &HA,
    hb: &HB,
) {
    let mut big = MemStore::new(NET);
    big.extend_empty(300);
    let mut ca = config(1);
    ca.transport_window = 64;
    let mut cb = config(2);
    cb.transport_window = 64;
    let mut a = ha.start(ca, big).await;
    let mut b = hb.start(cb, MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;
    match b
        .query(
            a.node_id(),
            RequestBody::Blocks {
                from: 1,
                count: 200,
            },
        )
        .await
    {
        Ok(ResponseBody::Blocks(v)) => {
            assert!(!v.is_empty());
            assert_eq!(v[0].header.height, 1);
        }
        other => panic!("{other:?}"),
    }
    wait_for(&mut b, "sync to height 300", |e| {
        matches!(e, NodeEvent::BlocksApplied { to: 300, .. }).then_some(())
    })
    .await;
    assert_eq!(b.status().await.map(|s| s.height), Some(300));
    a.shutdown().await;
    b.shutdown().await;
}

/// `shutdown` says `Goodbye{Shutdown}` to every peer (they see it as such, not as a reset),
/// flushes, and then the node answers every call with an error instead of hanging.
pub async fn shutdown_says_goodbye_to_every_peer<HA: Harness, HB: Harness>(ha: &HA, hb: &HB) {
    let mut store = MemStore::new(NET);
    store.extend_empty(3);
    let mut a = ha.start(config(1), store).await;
    let mut b = hb.start(config(2), MemStore::new(NET)).await;
    let mut c = hb.start(config(3), MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;
    connect(&mut a, &mut c).await;
    let ida = a.node_id();
    assert_eq!(a.shutdown().await, 3, "the store is handed back intact");
    for n in [&mut b, &mut c] {
        let reason = wait_for(n, "the shutdown goodbye", |e| match e {
            NodeEvent::PeerDown { peer, reason, .. } if *peer == ida => Some(*reason),
            _ => None,
        })
        .await;
        assert_eq!(reason, DownReason::GoodbyeReceived(GoodbyeReason::Shutdown));
    }
    b.shutdown().await;
    c.shutdown().await;
}

/// A dial to a closed port ends as a failed connection, counted, without a peer.
pub async fn a_dial_to_a_closed_port_is_reported<H: Harness>(h: &H) {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut a = h.start(config(1), MemStore::new(NET)).await;
    a.dial(addr).await;
    wait_for(&mut a, "the failed dial", |e| {
        matches!(e, NodeEvent::ConnFailed { addr: x, .. } if *x == addr).then_some(())
    })
    .await;
    let st = a.status().await.expect("runs");
    assert_eq!(st.counters.dial_failures, 1);
    assert!(st.peers.is_empty());
    a.shutdown().await;
}

/// Runs every scenario with the same harness on both sides.
pub async fn all<H: Harness>(h: &H) {
    two_nodes_connect_and_answer_queries(h, h).await;
    a_tiny_transport_window_still_moves_everything(h, h).await;
    shutdown_says_goodbye_to_every_peer(h, h).await;
    a_dial_to_a_closed_port_is_reported(h).await;
}

/// The tokio adapter's harness.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioHarness;

/// A tokio node under test: its handle, its driver, and an event receiver opened at start.
#[derive(Debug)]
pub struct TokioTestNode {
    pub node: Node<MemStore>,
    pub handle: NodeHandle,
    events: tokio::sync::broadcast::Receiver<NodeEvent>,
}

impl Harness for TokioHarness {
    type Node = TokioTestNode;
    async fn start(&self, config: Config, store: MemStore) -> TokioTestNode {
        let opts = RuntimeOptions {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..RuntimeOptions::default()
        };
        let node = crate::spawn(config, store, opts)
            .await
            .expect("node starts");
        let handle = node.handle();
        let events = handle.subscribe();
        TokioTestNode {
            node,
            handle,
            events,
        }
    }
}

impl TestNode for TokioTestNode {
    fn node_id(&self) -> NodeId {
        self.handle.node_id()
    }
    fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr().expect("listening")
    }
    async fn dial(&self, addr: SocketAddr) {
        let _ = self.handle.dial(addr).await;
    }
    async fn query(&self, peer: NodeId, req: RequestBody) -> Result<ResponseBody, QueryError> {
        self.handle.query(peer, req).await
    }
    async fn status(&self) -> Option<Status> {
        self.handle.status().await.ok()
    }
    async fn shutdown(self) -> u64 {
        self.handle.shutdown().await;
        self.node.join().await.store.height()
    }
    async fn next_event(&mut self, limit: Duration) -> Option<NodeEvent> {
        use tokio::sync::broadcast::error::RecvError;
        let recv = async {
            loop {
                match self.events.recv().await {
                    Ok(e) => return Some(e),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(limit, recv).await.ok().flatten()
    }
}
