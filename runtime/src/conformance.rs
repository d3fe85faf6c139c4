//! The behaviour every runtime must show, written once, over real loopback TCP.
//!
//! Each scenario is an `async fn` generic over the runtime(s) it starts nodes on, and panics
//! with a description when the driver misbehaves on them. Scenarios with two runtimes
//! (`a`, `b`) start nodes of both, so the same functions check that runtimes interoperate:
//!
//! ```text
//! #[tokio::test]
//! async fn conformance() {
//!     timed_runtime::conformance::all(&timed_tokio::Tokio::current()).await;
//! }
//! // and, on any executor:
//! timed_runtime::conformance::across(&tokio_rt, &smol_rt).await;
//! ```
//!
//! Every wait is for an event, bounded by [`LIMIT`] as a safety net; nothing sleeps to let
//! something happen. Time-sensitive checks that need a virtual clock (timeouts measured
//! exactly) are runtime-specific and live with the runtime that has one (tokio).

use crate::{spawn_with_events, timeout, Events, Node, NodeHandle, RecvError, Runtime};
use crate::{Incoming, RuntimeOptions};
use std::net::SocketAddr;
use std::time::Duration;
use timed_core::protocol::{ProtocolSpec, TopicSpec};
use timed_core::{
    Config, ConnId, DownReason, GoodbyeReason, MemStore, Network, NodeEvent, NodeId, ProtocolId,
    QueryError, RefuseReason, RequestBody, ResponseBody, Status, TopicId, Tx, Verdict,
};

/// The network every scenario runs on.
pub const NET: Network = Network::Devnet;
/// Real-time bound on any single wait in a scenario.
pub const LIMIT: Duration = Duration::from_secs(20);
/// Bound on the events a scenario skips while looking for one.
const MAX_EVENTS: usize = 100_000;

/// A node under test: its runtime, driver, handle, and a subscription opened before start.
#[derive(Debug)]
pub struct TestNode<R: Runtime> {
    rt: R,
    pub node: Node<MemStore>,
    pub handle: NodeHandle,
    pub events: Events,
}

/// A config for test node `id` (node id `[id; 32]`, seed `id`), pinging every 100 ms and
/// redialling from 100 ms, so liveness and backoff show up quickly.
pub fn config(id: u8) -> Config {
    let mut c = Config::new(NET, NodeId([id; 32]), u64::from(id));
    c.ping_interval = timed_core::Duration::from_millis(100);
    c.ping_timeout = timed_core::Duration::from_secs(10);
    c.backoff_initial = timed_core::Duration::from_millis(100);
    c.backoff_max = timed_core::Duration::from_secs(2);
    c
}

/// Options for a test node: listening on `127.0.0.1:0`, short linger and shutdown.
pub fn options() -> RuntimeOptions {
    RuntimeOptions {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        connect_timeout: Duration::from_secs(2),
        linger: Duration::from_millis(500),
        shutdown_timeout: Duration::from_secs(2),
        ..RuntimeOptions::default()
    }
}

/// Starts a node on `rt`, listening on loopback.
pub async fn start<R: Runtime>(rt: &R, config: Config, store: MemStore) -> TestNode<R> {
    let (node, events) = spawn_with_events(rt.clone(), config, store, options())
        .await
        .expect("node starts");
    let handle = node.handle();
    TestNode {
        rt: rt.clone(),
        node,
        handle,
        events,
    }
}

impl<R: Runtime> TestNode<R> {
    pub fn id(&self) -> NodeId {
        self.handle.node_id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr().expect("listening")
    }

    pub async fn status(&self) -> Status {
        self.within("status", self.handle.status())
            .await
            .expect("node running")
    }

    /// Runs `fut`, bounded by [`LIMIT`] on this node's runtime clock.
    pub async fn within<T>(&self, what: &str, fut: impl std::future::Future<Output = T>) -> T {
        match timeout(&self.rt, LIMIT, fut).await {
            Ok(v) => v,
            Err(_) => panic!("timed out after {LIMIT:?} waiting for {what}"),
        }
    }

    /// Waits for the first event matching `f`; panics naming `what` if none comes in time,
    /// the subscription lags, or the node stops.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&NodeEvent) -> Option<T>,
    ) -> T {
        let events = &mut self.events;
        let wait = async {
            for _ in 0..MAX_EVENTS {
                match events.recv().await {
                    Ok(e) => {
                        if let Some(v) = f(&e) {
                            return v;
                        }
                    }
                    Err(RecvError::Lagged(n)) => panic!("test subscriber lagged by {n} events"),
                    Err(RecvError::Closed) => panic!("node stopped while waiting for {what}"),
                }
            }
            panic!("{MAX_EVENTS} events without: {what}");
        };
        match timeout(&self.rt, LIMIT, wait).await {
            Ok(v) => v,
            Err(_) => panic!("no event within {LIMIT:?} while waiting for: {what}"),
        }
    }

    /// Waits until this node reports `peer` up; returns the connection.
    pub async fn peer_up(&mut self, peer: NodeId) -> ConnId {
        self.wait_for("peer up", |e| match e {
            NodeEvent::PeerUp { peer: p, conn, .. } if *p == peer => Some(*conn),
            _ => None,
        })
        .await
    }

    /// Polls `status` until `pred` holds. Only for counters no event reports (pings and
    /// pongs): the pause between polls is not a synchronisation, the deadline is a safety net.
    pub async fn status_until(&self, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        let poll = async {
            loop {
                let st = self.handle.status().await.expect("node running");
                if pred(&st) {
                    return st;
                }
                let next = crate::runtime::far_saturating_add(R::now(), Duration::from_millis(20));
                self.rt.sleep_until(next).await;
            }
        };
        self.within(what, poll).await
    }

    /// Graceful shutdown; returns the store's height once the driver has ended.
    pub async fn shutdown(self) -> u64 {
        let rt = self.rt.clone();
        let stop = async {
            self.handle.shutdown().await;
            self.node.join().await
        };
        let exit = match timeout(&rt, LIMIT, stop).await {
            Ok(exit) => exit,
            Err(_) => panic!("shutdown did not finish within {LIMIT:?}"),
        };
        assert!(exit.fatal.is_none(), "{:?}", exit.fatal);
        exit.store.height()
    }
}

/// Connects `b` to `a` (b dials) and waits until both see each other.
pub async fn connect<A: Runtime, B: Runtime>(a: &mut TestNode<A>, b: &mut TestNode<B>) {
    let _ = b.handle.dial(a.addr()).await;
    let (ida, idb) = (a.id(), b.id());
    b.peer_up(ida).await;
    a.peer_up(idb).await;
}

/// Two nodes connect over loopback, each lists the other exactly once, and queries are
/// answered on the connection they were asked on.
pub async fn two_nodes_connect_and_answer_queries<A: Runtime, B: Runtime>(ra: &A, rb: &B) {
    let mut store = MemStore::new(NET);
    store.extend_empty(5);
    let mut a = start(ra, config(1), store).await;
    let mut b = start(rb, config(2), MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;

    let tip = b
        .within("query", b.handle.query(a.id(), RequestBody::Tip))
        .await;
    assert!(
        matches!(tip, Ok(ResponseBody::Tip { height: 5, .. })),
        "{tip:?}"
    );
    // b may already have synced from a: any tip will do, as long as it is an answer.
    let tip = a
        .within("query", a.handle.query(b.id(), RequestBody::Tip))
        .await;
    assert!(matches!(tip, Ok(ResponseBody::Tip { .. })), "{tip:?}");
    let (sa, sb) = (a.status().await, b.status().await);
    let ids = |s: &Status| s.peers.iter().map(|p| p.node_id).collect::<Vec<_>>();
    assert_eq!(ids(&sa), vec![b.id()]);
    assert_eq!(ids(&sb), vec![a.id()]);
    let unknown = b.handle.query(NodeId([9; 32]), RequestBody::Tip).await;
    assert_eq!(unknown, Err(QueryError::UnknownPeer));
    a.shutdown().await;
    b.shutdown().await;
}

/// A second connection between the same two nodes (B dials A while A, which has B as a
/// persistent peer, is already connected) is settled by the core's one rule over real
/// sockets: never a `PeerDown`, each node still lists the other once, on connections that
/// pair up (opposite directions).
pub async fn a_duplicate_connection_is_settled_without_a_peer_down<A: Runtime, B: Runtime>(
    ra: &A,
    rb: &B,
) {
    let mut a = start(ra, config(1), MemStore::new(NET)).await;
    let mut cb = config(2);
    cb.persistent_peers.push(a.addr());
    let mut b = start(rb, cb, MemStore::new(NET)).await;
    let conn_a = a.peer_up(b.id()).await;
    let conn_b = b.peer_up(a.id()).await;

    let _ = a.handle.dial(b.addr()).await;
    let settled = |kept: ConnId| {
        move |e: &NodeEvent| match e {
            NodeEvent::ConnFailed { .. } => Some(kept),
            NodeEvent::PeerMoved { to, .. } => Some(*to),
            NodeEvent::PeerDown { .. } => panic!("a duplicate took a peer down: {e:?}"),
            _ => None,
        }
    };
    let now_a = a.wait_for("duplicate settled on A", settled(conn_a)).await;
    let now_b = b.wait_for("duplicate settled on B", settled(conn_b)).await;
    let (sa, sb) = (a.status().await, b.status().await);
    assert_eq!(sa.peers.len(), 1, "{:?}", sa.peers);
    assert_eq!(sb.peers.len(), 1, "{:?}", sb.peers);
    assert_eq!((sa.peers[0].node_id, sa.peers[0].conn), (b.id(), now_a));
    assert_eq!((sb.peers[0].node_id, sb.peers[0].conn), (a.id(), now_b));
    assert_ne!(sa.peers[0].direction, sb.peers[0].direction);
    b.shutdown().await;
    a.shutdown().await;
}

/// Pings go out every 100 ms and are answered on both sides: the dialer counts pongs, the
/// acceptor counts pings, and both have measured a round-trip time.
pub async fn pings_are_answered_both_ways<A: Runtime, B: Runtime>(ra: &A, rb: &B) {
    let mut a = start(ra, config(1), MemStore::new(NET)).await;
    let mut b = start(rb, config(2), MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;
    let pongs = |s: &Status| s.peers.first().is_some_and(|p| p.pongs_received >= 3);
    let pings = |s: &Status| s.peers.first().is_some_and(|p| p.pings_received >= 3);
    let sb = b.status_until("pongs on the dialer", pongs).await;
    let sa = a
        .status_until("pings answered by the acceptor", pings)
        .await;
    assert!(sb.peers[0].rtt.is_some() && sa.peers[0].rtt.is_some());
    assert!(sa.peers[0].pongs_received >= 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// With a 64-byte transport window the machine hands over about one frame at a time and only
/// continues when the driver reports `Input::Written`. A driver that does not report it
/// stalls right after `Hello`; one that does syncs 300 blocks.
pub async fn a_tiny_transport_window_still_moves_everything<A: Runtime, B: Runtime>(
    ra: &A,
    rb: &B,
) {
    let mut big = MemStore::new(NET);
    big.extend_empty(300);
    let mut ca = config(1);
    ca.transport_window = 64;
    let mut cb = config(2);
    cb.transport_window = 64;
    let mut a = start(ra, ca, big).await;
    let mut b = start(rb, cb, MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;
    let req = RequestBody::Blocks {
        from: 1,
        count: 200,
    };
    match b.within("blocks", b.handle.query(a.id(), req)).await {
        Ok(ResponseBody::Blocks(v)) => {
            assert!(!v.is_empty());
            assert_eq!(v[0].header.height, 1);
        }
        other => panic!("{other:?}"),
    }
    b.wait_for("sync to height 300", |e| {
        matches!(e, NodeEvent::BlocksApplied { to: 300, .. }).then_some(())
    })
    .await;
    assert_eq!(b.status().await.height, 300);
    a.shutdown().await;
    b.shutdown().await;
}

/// Blocks produced on A before B exists are synced by B from height 0, and blocks produced
/// afterwards keep arriving; both end on the same chain (same hash, not just same height).
pub async fn produced_blocks_sync_to_a_new_node<A: Runtime, B: Runtime>(ra: &A, rb: &B) {
    let mut ca = config(1);
    ca.produce_blocks = Some(timed_core::Duration::from_millis(50));
    let mut a = start(ra, ca, MemStore::new(NET)).await;
    a.wait_for("A at height 3", |e| match e {
        NodeEvent::BlocksApplied { to, .. } if *to >= 3 => Some(()),
        _ => None,
    })
    .await;
    let mut cb = config(2);
    cb.persistent_peers.push(a.addr());
    let mut b = start(rb, cb, MemStore::new(NET)).await;
    b.peer_up(a.id()).await;
    let target = a.status().await.height + 2;
    b.wait_for("B synced past A's height at connect", |e| match e {
        NodeEvent::BlocksApplied { to, .. } if *to >= target => Some(()),
        _ => None,
    })
    .await;
    let sb = b.status().await;
    let req = RequestBody::HashAt { height: sb.height };
    let resp = b.within("hash at", b.handle.query(a.id(), req)).await;
    assert_eq!(resp, Ok(ResponseBody::HashAt(Some(sb.tip_hash))));
    b.shutdown().await;
    a.shutdown().await;
}

/// A transaction submitted on either node reaches the other.
pub async fn transactions_gossip_both_ways<A: Runtime, B: Runtime>(ra: &A, rb: &B) {
    let mut a = start(ra, config(1), MemStore::new(NET)).await;
    let mut b = start(rb, config(2), MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;
    let tx_a = a
        .handle
        .submit_tx(Tx(b"from a".to_vec()))
        .await
        .expect("accepted");
    b.wait_for("a's tx on b", |e| {
        matches!(e, NodeEvent::TxAccepted { id } if *id == tx_a).then_some(())
    })
    .await;
    let tx_b = b
        .handle
        .submit_tx(Tx(b"from b".to_vec()))
        .await
        .expect("accepted");
    a.wait_for("b's tx on a", |e| {
        matches!(e, NodeEvent::TxAccepted { id } if *id == tx_b).then_some(())
    })
    .await;
    assert_eq!(a.status().await.mempool_len, 2);
    assert_eq!(b.status().await.mempool_len, 2);
    a.shutdown().await;
    b.shutdown().await;
}

/// `shutdown` says `Goodbye{Shutdown}` to every peer (they see it as such, not as a reset),
/// flushes, and hands back the store intact.
pub async fn shutdown_says_goodbye_to_every_peer<A: Runtime, B: Runtime>(ra: &A, rb: &B) {
    let mut store = MemStore::new(NET);
    store.extend_empty(3);
    let mut a = start(ra, config(1), store).await;
    let mut b = start(rb, config(2), MemStore::new(NET)).await;
    let mut c = start(rb, config(3), MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;
    connect(&mut a, &mut c).await;
    let ida = a.id();
    assert_eq!(a.shutdown().await, 3, "the store is handed back intact");
    for n in [&mut b, &mut c] {
        let reason = n
            .wait_for("the shutdown goodbye", |e| match e {
                NodeEvent::PeerDown { peer, reason, .. } if *peer == ida => Some(*reason),
                _ => None,
            })
            .await;
        assert_eq!(reason, DownReason::GoodbyeReceived(GoodbyeReason::Shutdown));
    }
    b.shutdown().await;
    c.shutdown().await;
}

/// A stopped node answers every call with an error instead of hanging, its subscriptions
/// end, and a second shutdown returns at once.
pub async fn a_stopped_node_refuses_calls_and_ends_its_events<R: Runtime>(rt: &R) {
    let mut a = start(rt, config(1), MemStore::new(NET)).await;
    let h = a.handle.clone();
    a.within("shutdown", h.shutdown()).await;
    assert!(h.is_stopped());
    let events = &mut a.events;
    let ended = async {
        loop {
            match events.recv().await {
                Err(RecvError::Closed) => return true,
                Err(RecvError::Lagged(_)) => return false,
                Ok(_) => {}
            }
        }
    };
    let own = timeout(rt, LIMIT, ended)
        .await
        .expect("the events end in time");
    assert!(own, "subscription lagged instead of ending");
    assert!(matches!(h.subscribe().recv().await, Err(RecvError::Closed)));
    assert!(h.status().await.is_err());
    assert!(h.dial(SocketAddr::from(([127, 0, 0, 1], 1))).await.is_err());
    let peer = NodeId([2; 32]);
    assert_eq!(
        h.query(peer, RequestBody::Tip).await,
        Err(QueryError::ShuttingDown)
    );
    assert_eq!(
        h.request(peer, ProtocolId(1000), vec![]).await,
        Err(QueryError::ShuttingDown)
    );
    assert_eq!(
        h.submit_tx(Tx(vec![1])).await,
        Err(timed_core::TxError::ShuttingDown)
    );
    a.within("second shutdown", h.shutdown()).await;
    let exit = timeout(rt, LIMIT, a.node.join())
        .await
        .expect("joined in time");
    assert!(exit.fatal.is_none());
}

/// A dial to a closed port ends as a failed connection, counted, without a peer; as a
/// persistent peer it is redialled with growing delays (100 ms doubling, ≤ 25 % jitter).
pub async fn a_closed_port_is_reported_and_redialled_with_backoff<R: Runtime>(rt: &R) {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }; // dropped: nothing listens there now
    let mut ca = config(1);
    ca.persistent_peers.push(closed);
    let mut a = start(rt, ca, MemStore::new(NET)).await;
    let mut failures = Vec::new();
    while failures.len() < 4 {
        a.wait_for("a failed dial", |e| match e {
            NodeEvent::ConnFailed { addr, reason, .. } if *addr == closed => {
                assert!(matches!(reason, DownReason::Closed(_)), "{reason:?}");
                Some(())
            }
            NodeEvent::PeerUp { .. } => panic!("connected to a closed port"),
            _ => None,
        })
        .await;
        failures.push(a.handle.now());
    }
    let gaps: Vec<u64> = failures
        .windows(2)
        .map(|w| w[1].saturating_since(w[0]).as_millis())
        .collect();
    for (k, g) in gaps.iter().enumerate() {
        assert!(*g >= 100 << k, "retry {k} too soon: {gaps:?}");
    }
    for pair in gaps.windows(2) {
        assert!(pair[1] > pair[0], "backoff does not grow: {gaps:?}");
    }
    let st = a.status().await;
    assert!(st.counters.dial_failures >= 4, "{:?}", st.counters);
    assert!(st.peers.is_empty());
    a.shutdown().await;
}

/// The application protocol and topic the scenarios declare.
const ECHO: ProtocolId = ProtocolId(1000);
const NOT_SERVED: ProtocolId = ProtocolId(1001);
const NEWS: TopicId = TopicId(1000);

fn with_app(mut c: Config) -> Config {
    c.protocols.push(ProtocolSpec::new(ECHO, "echo"));
    c.protocols
        .push(ProtocolSpec::new(NOT_SERVED, "not-served"));
    c.topics.push(TopicSpec::new(NEWS, "news"));
    c
}

/// An application request is routed to its server and answered on the connection it came
/// in on; a protocol nobody serves is refused `Unavailable` at once; a refusal keeps the
/// application's own code.
pub async fn application_requests_are_served_and_refused<A: Runtime, B: Runtime>(ra: &A, rb: &B) {
    let mut a = start(ra, with_app(config(1)), MemStore::new(NET)).await;
    let mut b = start(rb, with_app(config(2)), MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;
    let mut served = a.handle.serve(ECHO, 8).await.expect("running");
    let server = async {
        for _ in 0..2 {
            let req: Incoming = served.recv().await.expect("a request");
            if req.payload == b"refuse me" {
                let _ = req.refuse(RefuseReason::App(7)).await;
            } else {
                let mut echo = req.payload.clone();
                echo.reverse();
                let _ = req.respond(echo).await;
            }
        }
    };
    let client = async {
        let hb = &b.handle;
        let echoed = hb.request(a.id(), ECHO, b"ping".to_vec()).await;
        let refused = hb.request(a.id(), ECHO, b"refuse me".to_vec()).await;
        let unserved = hb.request(a.id(), NOT_SERVED, b"anyone?".to_vec()).await;
        (echoed, refused, unserved)
    };
    let ((), (echoed, refused, unserved)) = b
        .within("requests", futures::future::join(server, client))
        .await;
    assert_eq!(echoed, Ok(b"gnip".to_vec()));
    assert_eq!(refused, Err(QueryError::Refused(RefuseReason::App(7))));
    assert_eq!(
        unserved,
        Err(QueryError::Refused(RefuseReason::Unavailable))
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A message published on a validated topic reaches a listening peer and is forwarded to
/// the next only once that peer accepts it; one it rejects is not forwarded, and its sender
/// is banned.
pub async fn gossip_is_forwarded_only_after_validation<A: Runtime, B: Runtime>(ra: &A, rb: &B) {
    // A and C must not meet (peer exchange would tell them of each other): only B links them.
    let alone = |mut c: Config| {
        c.target_outbound = 0;
        c
    };
    let mut a = start(ra, alone(with_app(config(1))), MemStore::new(NET)).await;
    let mut b = start(rb, with_app(config(2)), MemStore::new(NET)).await;
    let mut c = start(ra, alone(with_app(config(3))), MemStore::new(NET)).await;
    connect(&mut a, &mut b).await;
    connect(&mut b, &mut c).await;
    let mut on_b = b.handle.gossip(NEWS, 8).await.expect("running");
    let mut on_c = c.handle.gossip(NEWS, 8).await.expect("running");
    for (payload, verdict) in [
        (b"good news", Verdict::Accept),
        (b"fake news", Verdict::Reject),
    ] {
        a.handle
            .publish(NEWS, payload.to_vec())
            .await
            .expect("published");
        let msg = b.within("news on b", on_b.recv()).await.expect("a message");
        assert_eq!(msg.payload, payload.to_vec());
        assert_eq!(msg.from, a.id());
        b.handle.validate(msg.id, verdict).await.expect("running");
    }
    let forwarded = c.within("news on c", on_c.recv()).await.expect("a message");
    assert_eq!(forwarded.payload, b"good news".to_vec());
    assert_eq!(forwarded.from, b.id());
    let ida = a.id();
    b.wait_for("the rejected sender banned", |e| match e {
        NodeEvent::Misbehaved { peer, .. } if *peer == Some(ida) => Some(()),
        _ => None,
    })
    .await;
    // B's own next message is the next one C gets: the rejected one was never forwarded,
    // not merely late.
    b.handle
        .publish(NEWS, b"from b".to_vec())
        .await
        .expect("published");
    let next = c
        .within("b's news on c", on_c.recv())
        .await
        .expect("a message");
    assert_eq!(next.payload, b"from b".to_vec());
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

/// Every scenario that takes two runtimes, with `a` and `b` in both roles.
pub async fn across<A: Runtime, B: Runtime>(a: &A, b: &B) {
    two_runtime_scenarios(a, b).await;
    two_runtime_scenarios(b, a).await;
}

async fn two_runtime_scenarios<A: Runtime, B: Runtime>(a: &A, b: &B) {
    two_nodes_connect_and_answer_queries(a, b).await;
    a_duplicate_connection_is_settled_without_a_peer_down(a, b).await;
    pings_are_answered_both_ways(a, b).await;
    a_tiny_transport_window_still_moves_everything(a, b).await;
    produced_blocks_sync_to_a_new_node(a, b).await;
    transactions_gossip_both_ways(a, b).await;
    shutdown_says_goodbye_to_every_peer(a, b).await;
    application_requests_are_served_and_refused(a, b).await;
    gossip_is_forwarded_only_after_validation(a, b).await;
}

/// Every scenario, on one runtime.
pub async fn all<R: Runtime>(rt: &R) {
    two_runtime_scenarios(rt, rt).await;
    a_stopped_node_refuses_calls_and_ends_its_events(rt).await;
    a_closed_port_is_reported_and_redialled_with_backoff(rt).await;
}

/// Generates one `#[test]` per scenario for a runtime: `$block_on` runs a future to
/// completion (the runtime's own executor), `$rt` is evaluated inside it to the runtime.
///
/// ```text
/// timed_runtime::conformance_tests!(smol::block_on, timed_smol::Smol::default());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($block_on:path, $rt:expr) => {
        $crate::conformance_tests!(@pairs $block_on, $rt;
            two_nodes_connect_and_answer_queries,
            a_duplicate_connection_is_settled_without_a_peer_down,
            pings_are_answered_both_ways,
            a_tiny_transport_window_still_moves_everything,
            produced_blocks_sync_to_a_new_node,
            transactions_gossip_both_ways,
            shutdown_says_goodbye_to_every_peer,
            application_requests_are_served_and_refused,
            gossip_is_forwarded_only_after_validation,
        );
        $crate::conformance_tests!(@single $block_on, $rt;
            a_stopped_node_refuses_calls_and_ends_its_events,
            a_closed_port_is_reported_and_redialled_with_backoff,
        );
    };
    (@pairs $block_on:path, $rt:expr; $($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            $block_on(async {
                let rt = $rt;
                $crate::conformance::$name(&rt, &rt).await
            })
        }
    )*};
    (@single $block_on:path, $rt:expr; $($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            $block_on(async {
                let rt = $rt;
                $crate::conformance::$name(&rt).await
            })
        }
    )*};
}
