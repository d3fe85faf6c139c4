//! Helpers shared by the integration tests: configs, starting nodes, waiting for events with
//! a deadline (a safety net only: every wait ends on the event it waits for).

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use timed_async_std::{Events, Node, NodeHandle, RecvError, RuntimeOptions};
use timed_core::{Config, MemStore, Network, NodeEvent, NodeId, Status};

/// Upper bound for any single wait. Generous: loopback events arrive in milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn id(n: u8) -> NodeId {
    NodeId([n; 32])
}

/// A devnet config for node `n`, pinging often so liveness shows up quickly.
pub fn config(n: u8) -> Config {
    let mut c = Config::new(Network::Devnet, id(n), u64::from(n));
    c.ping_interval = timed_core::Duration::from_millis(100);
    c.ping_timeout = timed_core::Duration::from_secs(10);
    c.backoff_initial = timed_core::Duration::from_millis(100);
    c.backoff_max = timed_core::Duration::from_secs(2);
    c
}

pub fn opts() -> RuntimeOptions {
    RuntimeOptions {
        listen: Some("127.0.0.1:0".parse().expect("literal address")),
        connect_timeout: Duration::from_secs(2),
        linger: Duration::from_millis(500),
        shutdown_timeout: Duration::from_secs(2),
        ..RuntimeOptions::default()
    }
}

/// Starts a node on loopback, with a subscription that sees every event from the start.
pub async fn start(cfg: Config) -> (Node<MemStore>, Events) {
    timed_async_std::spawn_with_events(cfg, MemStore::new(Network::Devnet), opts())
        .await
        .expect("node starts")
}

pub fn addr(h: &NodeHandle) -> SocketAddr {
    h.local_addr().expect("listening")
}

/// Runs `fut` with the test deadline; panics with `what` if it does not finish.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match async_std::future::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Waits for the first event matching `pred`, returning it.
pub async fn wait_event<T>(
    what: &str,
    events: &mut Events,
    mut pred: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(v) = pred(&e) {
                        return v;
                    }
                }
                Err(RecvError::Lagged(n)) => panic!("test subscriber lagged by {n} events"),
                Err(RecvError::Closed) => panic!("node stopped while waiting for {what}"),
            }
        }
    })
    .await
}

/// Waits until `peer` is up.
pub async fn wait_peer_up(events: &mut Events, peer: NodeId) -> timed_core::ConnId {
    wait_event("PeerUp", events, |e| match e {
        NodeEvent::PeerUp { peer: p, conn, .. } if *p == peer => Some(*conn),
        _ => None,
    })
    .await
}

/// Polls `status` until `pred` holds. Only for counters that no event reports (pings and
/// pongs); the poll interval is not a synchronisation, the deadline is a safety net.
pub async fn wait_status(what: &str, h: &NodeHandle, pred: impl Fn(&Status) -> bool) -> Status {
    within(what, async {
        loop {
            let st = h.status().await.expect("node running");
            if pred(&st) {
                return st;
            }
            async_io::Timer::after(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The async-std adapter's side of timed-tokio's shared conformance module.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdHarness;

/// An async-std node under test: its driver, handle and a subscription opened before start.
#[derive(Debug)]
pub struct AsyncStdTestNode {
    pub node: Node<MemStore>,
    pub handle: NodeHandle,
    events: Events,
}

impl timed_tokio::conformance::Harness for AsyncStdHarness {
    type Node = AsyncStdTestNode;
    async fn start(&self, config: Config, store: MemStore) -> AsyncStdTestNode {
        let opts = RuntimeOptions {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..RuntimeOptions::default()
        };
        let (node, events) = timed_async_std::spawn_with_events(config, store, opts)
            .await
            .expect("node starts");
        let handle = node.handle();
        AsyncStdTestNode {
            node,
            handle,
            events,
        }
    }
}

impl timed_tokio::conformance::TestNode for AsyncStdTestNode {
    fn node_id(&self) -> NodeId {
        self.handle.node_id()
    }
    fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr().expect("listening")
    }
    async fn dial(&self, addr: SocketAddr) {
        let _ = self.handle.dial(addr).await;
    }
    async fn query(
        &self,
        peer: NodeId,
        req: timed_core::RequestBody,
    ) -> Result<timed_core::ResponseBody, timed_core::QueryError> {
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
        let recv = async {
            loop {
                match self.events.recv().await {
                    Ok(e) => return Some(e),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        };
        // Runs under any executor (the interop tests drive it from tokio).
        async_std::future::timeout(limit, recv).await.ok().flatten()
    }
}
