//! The runtime conformance scenarios, over real loopback TCP with async-std.
//!
//! `shared_conformance_suite` runs timed-tokio's shared scenarios (`timed_tokio::conformance`)
//! through [`AsyncStdHarness`]. The other tests add behaviours that module does not cover
//! (yet): a duplicate connection settled over real sockets, redial backoff for a persistent
//! peer, transaction gossip, produced blocks syncing. Each waits for events, with a deadline
//! as safety net only.

mod common;

use common::*;

/// timed-tokio's shared conformance scenarios, every one, on async-std nodes.
#[async_std::test]
async fn shared_conformance_suite() {
    init_tracing();
    timed_tokio::conformance::all(&AsyncStdHarness).await;
}
use timed_core::{
    ConnId, DownReason, GoodbyeReason, NodeEvent, QueryError, RequestBody, ResponseBody, Tx,
};

/// Two nodes connect (B has A as a persistent peer) and each lists the other exactly once,
/// by node id. Then A dials B too: a second connection between the same two nodes (same boot
/// nonces, opposite directions) is settled by the core's one rule, over real sockets, without
/// a PeerDown, and each node still lists the other once, on connections that pair up.
#[async_std::test]
async fn two_nodes_connect_and_list_each_other_once() {
    init_tracing();
    let (a, mut ea) = start(config(1)).await;
    let ha = a.handle();
    let mut cb = config(2);
    cb.persistent_peers.push(addr(&ha));
    let (b, mut eb) = start(cb).await;
    let hb = b.handle();

    let conn_a = wait_peer_up(&mut ea, id(2)).await;
    let conn_b = wait_peer_up(&mut eb, id(1)).await;
    let sa = ha.status().await.expect("running");
    let sb = hb.status().await.expect("running");
    assert_eq!(sa.peers.len(), 1, "{:?}", sa.peers);
    assert_eq!(sb.peers.len(), 1, "{:?}", sb.peers);
    assert_eq!((sa.peers[0].node_id, sa.peers[0].conn), (id(2), conn_a));
    assert_eq!((sb.peers[0].node_id, sb.peers[0].conn), (id(1), conn_b));

    // The duplicate: each side either refuses the newcomer (ConnFailed) or moves the peer to
    // it (PeerMoved). Never PeerDown.
    ha.dial(addr(&hb)).await.expect("running");
    let settled = |kept: ConnId| {
        move |e: &NodeEvent| match e {
            NodeEvent::ConnFailed { .. } => Some(kept),
            NodeEvent::PeerMoved { to, .. } => Some(*to),
            NodeEvent::PeerDown { .. } => panic!("a duplicate took a peer down: {e:?}"),
            _ => None,
        }
    };
    let now_a = wait_event("duplicate settled on A", &mut ea, settled(conn_a)).await;
    let now_b = wait_event("duplicate settled on B", &mut eb, settled(conn_b)).await;

    let sa = ha.status().await.expect("running");
    let sb = hb.status().await.expect("running");
    assert_eq!(sa.peers.len(), 1, "{:?}", sa.peers);
    assert_eq!(sb.peers.len(), 1, "{:?}", sb.peers);
    assert_eq!((sa.peers[0].node_id, sa.peers[0].conn), (id(2), now_a));
    assert_eq!((sb.peers[0].node_id, sb.peers[0].conn), (id(1), now_b));
    // Both ends kept the same TCP connection: opposite directions.
    assert_ne!(sa.peers[0].direction, sb.peers[0].direction);
    assert_eq!(sa.counters.conns_closed.get("shutdown"), None);

    hb.shutdown().await;
    ha.shutdown().await;
}

/// A query over the existing connection is answered with the peer's real data.
#[async_std::test]
async fn query_is_answered() {
    init_tracing();
    let (a, _) = start(config(1)).await;
    let ha = a.handle();
    let mut cb = config(2);
    cb.persistent_peers.push(addr(&ha));
    let (b, mut eb) = start(cb).await;
    let hb = b.handle();
    wait_peer_up(&mut eb, id(1)).await;

    let sa = ha.status().await.expect("running");
    let resp = within("query", hb.query(id(1), RequestBody::Tip)).await;
    assert_eq!(
        resp,
        Ok(ResponseBody::Tip {
            height: sa.height,
            hash: sa.tip_hash
        })
    );
    let resp = within("query", hb.query(id(1), RequestBody::HashAt { height: 0 })).await;
    assert_eq!(resp, Ok(ResponseBody::HashAt(Some(sa.genesis_hash))));
    // A node we are not connected to: the query still ends, at once.
    let resp = within("query", hb.query(id(9), RequestBody::Tip)).await;
    assert_eq!(resp, Err(QueryError::UnknownPeer));

    hb.shutdown().await;
    ha.shutdown().await;
}

/// Shutdown says Goodbye{Shutdown} to every peer (flushed before the socket closes), the peer
/// reports it as such, and the stopped node refuses further calls and hands back its store.
#[async_std::test]
async fn graceful_shutdown_sends_goodbye() {
    init_tracing();
    let (a, mut ea) = start(config(1)).await;
    let ha = a.handle();
    let mut cb = config(2);
    cb.persistent_peers.push(addr(&ha));
    let (b, mut eb) = start(cb).await;
    let hb = b.handle();
    let conn = wait_peer_up(&mut ea, id(2)).await;
    wait_peer_up(&mut eb, id(1)).await;

    within("shutdown", hb.shutdown()).await;
    let reason = wait_event("PeerDown on A", &mut ea, |e| match e {
        NodeEvent::PeerDown {
            peer,
            conn: c,
            reason,
        } if *peer == id(2) => {
            assert_eq!(*c, conn);
            Some(*reason)
        }
        _ => None,
    })
    .await;
    assert_eq!(reason, DownReason::GoodbyeReceived(GoodbyeReason::Shutdown));

    // The stopped node: its own view said goodbye too, events end, calls fail cleanly.
    let own = wait_event("PeerDown on B", &mut eb, |e| match e {
        NodeEvent::PeerDown { reason, .. } => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(own, DownReason::GoodbyeSent(GoodbyeReason::Shutdown));
    assert!(matches!(
        eb.recv().await,
        Err(timed_async_std::RecvError::Closed)
    ));
    assert!(hb.is_stopped());
    assert_eq!(
        hb.query(id(1), RequestBody::Tip).await,
        Err(QueryError::ShuttingDown)
    );
    assert!(hb.status().await.is_err());
    within("shutdown again", hb.shutdown()).await; // idempotent
    let exit = within("join", b.join()).await;
    assert!(exit.fatal.is_none());

    ha.shutdown().await;
}

/// A persistent peer on a closed port: every dial fails (DialFailed → ConnFailed), and the
/// machine redials with growing delays (backoff 100 ms doubling, +≤25 % jitter).
#[async_std::test]
async fn dial_to_closed_port_is_retried_with_backoff() {
    init_tracing();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }; // dropped: nothing listens there now
    let mut ca = config(1);
    ca.persistent_peers.push(closed);
    let (a, mut ea) = start(ca).await;
    let ha = a.handle();

    let mut failures = Vec::new();
    while failures.len() < 4 {
        wait_event("failed dial", &mut ea, |e| match e {
            NodeEvent::ConnFailed { addr, reason, .. } if *addr == closed => {
                assert!(matches!(reason, DownReason::Closed(_)), "{reason:?}");
                Some(())
            }
            NodeEvent::PeerUp { .. } => panic!("connected to a closed port"),
            _ => None,
        })
        .await;
        failures.push(ha.now());
    }
    let gaps: Vec<u64> = failures
        .windows(2)
        .map(|w| w[1].saturating_since(w[0]).as_millis())
        .collect();
    // Delays 100, 200, 400 ms (+≤25 % jitter each): every gap at least the base and longer
    // than the one before.
    for (k, g) in gaps.iter().enumerate() {
        assert!(*g >= 100 << k, "retry {k} too soon: {gaps:?}");
    }
    for pair in gaps.windows(2) {
        assert!(pair[1] > pair[0], "backoff does not grow: {gaps:?}");
    }
    let st = ha.status().await.expect("running");
    assert!(st.counters.dial_failures >= 4, "{:?}", st.counters);
    assert!(st.peers.is_empty());
    ha.shutdown().await;
}

/// A transaction submitted on either node reaches the other.
#[async_std::test]
async fn transactions_gossip_both_ways() {
    init_tracing();
    let (a, mut ea) = start(config(1)).await;
    let ha = a.handle();
    let mut cb = config(2);
    cb.persistent_peers.push(addr(&ha));
    let (b, mut eb) = start(cb).await;
    let hb = b.handle();
    wait_peer_up(&mut ea, id(2)).await;
    wait_peer_up(&mut eb, id(1)).await;

    for (from, to_events, payload) in [
        (&ha, &mut eb, b"from a".to_vec()),
        (&hb, &mut ea, b"from b".to_vec()),
    ] {
        let txid = within("submit", from.submit_tx(Tx(payload)))
            .await
            .expect("accepted locally");
        wait_event("TxAccepted on the other node", to_events, |e| match e {
            NodeEvent::TxAccepted { id } if *id == txid => Some(()),
            _ => None,
        })
        .await;
    }
    assert_eq!(ha.status().await.expect("running").mempool_len, 2);
    assert_eq!(hb.status().await.expect("running").mempool_len, 2);

    hb.shutdown().await;
    ha.shutdown().await;
}

/// Blocks produced on A before B exists are synced by B from height 0 (range requests), and
/// blocks produced afterwards keep arriving; both end on the same chain.
#[async_std::test]
async fn produced_blocks_sync_to_the_other_node() {
    init_tracing();
    let mut ca = config(1);
    ca.produce_blocks = Some(timed_core::Duration::from_millis(50));
    let (a, mut ea) = start(ca).await;
    let ha = a.handle();
    wait_event("A at height 3", &mut ea, |e| match e {
        NodeEvent::BlocksApplied { to, .. } if *to >= 3 => Some(()),
        _ => None,
    })
    .await;

    let mut cb = config(2);
    cb.persistent_peers.push(addr(&ha));
    let (b, mut eb) = start(cb).await;
    let hb = b.handle();
    wait_peer_up(&mut eb, id(1)).await;
    let target = ha.status().await.expect("running").height + 2;
    wait_event("B synced", &mut eb, |e| match e {
        NodeEvent::BlocksApplied { to, .. } if *to >= target => Some(()),
        _ => None,
    })
    .await;

    // Same blocks, not just the same height: compare B's hash with A's at that height.
    let sb = hb.status().await.expect("running");
    let resp = within(
        "HashAt",
        hb.query(id(1), RequestBody::HashAt { height: sb.height }),
    )
    .await;
    assert_eq!(resp, Ok(ResponseBody::HashAt(Some(sb.tip_hash))));

    hb.shutdown().await;
    ha.shutdown().await;
}
