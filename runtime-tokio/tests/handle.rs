//! `NodeHandle` over real loopback TCP, in process: the shared conformance scenarios (which
//! the async-std adapter runs too), and, where time matters, tests with tokio's clock paused
//! once the connection is up, so timeouts are checked in virtual time: exactly, and without
//! waiting for them.

use std::net::SocketAddr;
use std::time::Duration;
use timed_core::wire::{Hello, Message, MAGIC, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use timed_core::{
    Config, DownReason, GoodbyeReason, MemStore, Network, NodeEvent, NodeId, QueryError,
    RequestBody,
};
use timed_tokio::{Events, Node, NodeHandle, RecvError, RuntimeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NET: Network = Network::Devnet;
/// Bound on every real-time wait in these tests.
const LIMIT: Duration = Duration::from_secs(20);

fn config(id: u8) -> Config {
    Config::new(NET, NodeId([id; 32]), id as u64)
}

fn loopback() -> RuntimeOptions {
    RuntimeOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..RuntimeOptions::default()
    }
}

async fn start(cfg: Config, store: MemStore) -> Node<MemStore> {
    timed_tokio::spawn(cfg, store, loopback())
        .await
        .expect("node starts")
}

/// Waits (bounded by [`LIMIT`]) for the first event matching `f`.
async fn next_event<T>(rx: &mut Events, f: impl FnMut(&NodeEvent) -> Option<T>) -> T {
    next_event_within(rx, LIMIT, f).await
}

/// Waits for the first event matching `f`, at most `limit` (virtual time when the clock is
/// paused: a missing event then fails at once instead of hanging).
async fn next_event_within<T>(
    rx: &mut Events,
    limit: Duration,
    mut f: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(v) = f(&e) {
                        return v;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("node stopped"),
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .expect("event in time")
}

async fn peer_up(rx: &mut Events, who: NodeId) {
    next_event(rx, |e| {
        matches!(e, NodeEvent::PeerUp { peer, .. } if *peer == who).then_some(())
    })
    .await
}

/// A peer that completes the handshake and then never sends another byte (it reads and
/// discards everything, so our writes never block).
async fn silent_peer() -> (SocketAddr, NodeId) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let id = NodeId([0xEE; 32]);
    let hello = Message::Hello(Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        min_version: MIN_PROTOCOL_VERSION,
        network: NET.id(),
        genesis: NET.genesis_hash(),
        node_id: id,
        boot: 7,
        listen_port: None,
        best_height: 0,
        best_hash: NET.genesis_hash(),
        user_agent: "silent".into(),
        protocols: timed_core::protocol::builtin::default_adverts().0,
        topics: timed_core::protocol::builtin::default_adverts().1,
    })
    .to_frame();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let hello = hello.clone();
            tokio::spawn(async move {
                if s.write_all(&hello).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, id)
}

/// Starts a node, connects it to a silent peer with the real clock, then pauses the clock.
async fn node_with_silent_peer(cfg: Config) -> (Node<MemStore>, NodeHandle, Events, NodeId) {
    let (addr, silent) = silent_peer().await;
    let node = start(cfg, MemStore::new(NET)).await;
    let h = node.handle();
    let mut rx = h.subscribe();
    h.dial(addr).await.unwrap();
    peer_up(&mut rx, silent).await;
    tokio::time::pause();
    (node, h, rx, silent)
}

#[tokio::test]
async fn a_query_to_a_silent_peer_times_out_at_exactly_the_query_timeout_in_virtual_time() {
    let mut cfg = config(1);
    cfg.query_timeout = timed_core::Duration::from_secs(10);
    let (_node, h, _rx, silent) = node_with_silent_peer(cfg).await;
    let t0 = tokio::time::Instant::now();
    let res = h.query(silent, RequestBody::Tip).await;
    let waited = t0.elapsed();
    assert_eq!(res, Err(QueryError::Timeout));
    assert!(waited >= Duration::from_secs(10), "{waited:?}");
    assert!(waited < Duration::from_millis(10_100), "{waited:?}");
    let st = h.status().await.unwrap();
    assert_eq!(
        st.counters
            .queries
            .get(timed_core::QueryOutcome::Failed(QueryError::Timeout)),
        1
    );
}

#[tokio::test]
async fn a_silent_peer_is_dropped_at_the_ping_timeout_in_virtual_time() {
    let mut cfg = config(1);
    cfg.ping_interval = timed_core::Duration::from_secs(30);
    cfg.ping_timeout = timed_core::Duration::from_secs(90);
    // Keep the silent peer's query traffic out of it: only pings are sent.
    let (_node, h, mut rx, silent) = node_with_silent_peer(cfg).await;
    let t0 = tokio::time::Instant::now();
    let reason = next_event_within(&mut rx, Duration::from_secs(600), |e| match e {
        NodeEvent::PeerDown { peer, reason, .. } if *peer == silent => Some(*reason),
        _ => None,
    })
    .await;
    let waited = t0.elapsed();
    assert_eq!(reason, DownReason::GoodbyeSent(GoodbyeReason::PingTimeout));
    // The last frame arrived just before the pause; the timeout runs from it (tokio timers
    // have millisecond resolution).
    assert!(waited <= Duration::from_millis(90_005), "{waited:?}");
    assert!(waited >= Duration::from_secs(89), "{waited:?}");
    let st = h.status().await.unwrap();
    assert!(st.peers.is_empty());
    assert_eq!(st.counters.ping_timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn the_clock_is_tokios_so_a_paused_runtime_runs_the_machine_in_virtual_time() {
    let a = start(config(1), MemStore::new(NET)).await;
    let h = a.handle();
    let t0 = h.now();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let dt = h.now().saturating_since(t0);
    assert_eq!(dt.as_secs(), 3600);
    assert!(h.status().await.is_ok());
}

// ---- the shared conformance scenarios (timed_runtime::conformance) --------------------------

/// Runs a scenario on a fresh two-worker tokio runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

mod conformance {
    use super::block_on;
    timed_runtime::conformance_tests!(block_on, timed_tokio::Tokio::current());
}

#[tokio::test]
async fn a_stopped_node_answers_every_call_with_an_error_instead_of_hanging() {
    let a = start(config(1), MemStore::new(NET)).await;
    let h = a.handle();
    tokio::time::timeout(LIMIT, h.shutdown())
        .await
        .expect("shutdown completes");
    let exit = a.join().await;
    assert!(exit.fatal.is_none());
    assert!(h.is_stopped());
    assert!(h.status().await.is_err());
    assert!(h.dial("127.0.0.1:1".parse().unwrap()).await.is_err());
    assert_eq!(
        h.query(NodeId([2; 32]), RequestBody::Tip).await,
        Err(QueryError::ShuttingDown)
    );
    assert_eq!(
        h.submit_tx(timed_core::Tx(vec![1])).await,
        Err(timed_core::TxError::ShuttingDown)
    );
    // Idempotent.
    tokio::time::timeout(LIMIT, h.shutdown())
        .await
        .expect("second shutdown returns");
}
