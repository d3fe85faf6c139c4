//! A timed-tokio node and a timed-async-std node talk over real loopback TCP: handshake,
//! pings answered on both sides, a query each way, a transaction gossiped each way.
//!
//! The tokio node runs on its own multi-threaded tokio runtime (its worker thread); the test
//! body runs on async-std. Awaiting the tokio node's handle from async-std is fine: tokio's
//! channels are runtime-agnostic futures; only `timed_tokio::spawn` needs the tokio context.

mod common;

use common::*;
use std::time::Duration;
use timed_core::{MemStore, Network, NodeEvent, RequestBody, ResponseBody, Tx};

/// Waits on the tokio node's broadcast receiver, with the same deadline.
async fn wait_tokio_event<T>(
    what: &str,
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    mut pred: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(v) = pred(&e) {
                        return v;
                    }
                }
                Err(e) => panic!("tokio node's events ended while waiting for {what}: {e}"),
            }
        }
    })
    .await
}

async fn tokio_status(h: &timed_tokio::NodeHandle) -> timed_core::Status {
    h.status().await.expect("tokio node running")
}

#[test]
fn tokio_and_async_std_nodes_interoperate() {
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");

    async_std::task::block_on(async {
        // T: the tokio node (id 1), listening. S: the async-std node (id 2), dialing T.
        let t_opts = timed_tokio::RuntimeOptions {
            listen: Some("127.0.0.1:0".parse().expect("literal")),
            linger: Duration::from_millis(500),
            shutdown_timeout: Duration::from_secs(2),
            ..timed_tokio::RuntimeOptions::default()
        };
        let t_node = rt
            .spawn(timed_tokio::spawn(
                config(1),
                MemStore::new(Network::Devnet),
                t_opts,
            ))
            .await
            .expect("tokio task")
            .expect("tokio node starts");
        let ht = t_node.handle();
        // Subscribed before anyone dials this node: no event can be missed.
        let mut et = ht.subscribe();

        let (s_node, mut es) = start(config(2)).await;
        let hs = s_node.handle();
        hs.dial(ht.local_addr().expect("listening"))
            .await
            .expect("running");

        // Handshake, both ways.
        wait_peer_up(&mut es, id(1)).await;
        wait_tokio_event("PeerUp on the tokio node", &mut et, |e| match e {
            NodeEvent::PeerUp { peer, .. } if *peer == id(2) => Some(()),
            _ => None,
        })
        .await;

        // The dialer (async-std) pings every 100 ms and the tokio node answers: pongs keep
        // arriving at the dialer, pings at the acceptor, whose own ping at connect was
        // answered too (its RTT).
        let st = wait_status("pongs on the async-std node", &hs, |s| {
            s.peers.first().is_some_and(|p| p.pongs_received >= 3)
        })
        .await;
        assert!(st.peers[0].rtt.is_some());
        within("pings answered by the tokio node", async {
            loop {
                let s = tokio_status(&ht).await;
                if s.peers.first().is_some_and(|p| p.pings_received >= 3) {
                    assert!(s.peers[0].rtt.is_some());
                    assert!(s.peers[0].pongs_received >= 1);
                    return;
                }
                async_io::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;

        // A query each way.
        let tip_t = tokio_status(&ht).await;
        assert_eq!(
            within("query S→T", hs.query(id(1), RequestBody::Tip)).await,
            Ok(ResponseBody::Tip {
                height: tip_t.height,
                hash: tip_t.tip_hash
            })
        );
        let tip_s = hs.status().await.expect("running");
        assert_eq!(
            within("query T→S", ht.query(id(2), RequestBody::Tip)).await,
            Ok(ResponseBody::Tip {
                height: tip_s.height,
                hash: tip_s.tip_hash
            })
        );

        // A transaction each way.
        let tx_s = hs
            .submit_tx(Tx(b"async-std to tokio".to_vec()))
            .await
            .expect("accepted");
        wait_tokio_event("tx on the tokio node", &mut et, |e| match e {
            NodeEvent::TxAccepted { id } if *id == tx_s => Some(()),
            _ => None,
        })
        .await;
        let tx_t = ht
            .submit_tx(Tx(b"tokio to async-std".to_vec()))
            .await
            .expect("accepted");
        wait_event("tx on the async-std node", &mut es, |e| match e {
            NodeEvent::TxAccepted { id } if *id == tx_t => Some(()),
            _ => None,
        })
        .await;

        // The tokio node shuts down gracefully; the async-std node hears its Goodbye.
        within("tokio shutdown", ht.shutdown()).await;
        let reason = wait_event("PeerDown on the async-std node", &mut es, |e| match e {
            NodeEvent::PeerDown { peer, reason, .. } if *peer == id(1) => Some(*reason),
            _ => None,
        })
        .await;
        assert_eq!(
            reason,
            timed_core::DownReason::GoodbyeReceived(timed_core::GoodbyeReason::Shutdown)
        );
        hs.shutdown().await;
    });
    rt.shutdown_timeout(Duration::from_secs(2));
}

/// timed-tokio's shared scenarios with one node of each runtime, both ways round. The
/// scenario runs on the tokio runtime (the tokio harness needs its context); the async-std
/// node needs none (async-std spawns on its own executor, async-io has its own reactor).
#[test]
fn shared_scenarios_across_runtimes() {
    use timed_tokio::conformance::{self as c, TokioHarness};
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        c::two_nodes_connect_and_answer_queries(&TokioHarness, &AsyncStdHarness).await;
        c::two_nodes_connect_and_answer_queries(&AsyncStdHarness, &TokioHarness).await;
        c::a_tiny_transport_window_still_moves_everything(&TokioHarness, &AsyncStdHarness).await;
        c::a_tiny_transport_window_still_moves_everything(&AsyncStdHarness, &TokioHarness).await;
        c::shutdown_says_goodbye_to_every_peer(&TokioHarness, &AsyncStdHarness).await;
        c::shutdown_says_goodbye_to_every_peer(&AsyncStdHarness, &TokioHarness).await;
    });
    rt.shutdown_timeout(Duration::from_secs(2));
}
