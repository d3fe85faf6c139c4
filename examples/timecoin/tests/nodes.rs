//! The TIME Coin protocols over three real nodes on loopback: masternode list,
//! pending-transaction exchange, UTXO state hash, votes, and the fork consensus check. The
//! same scenario runs on every runtime: tokio, smol and async-std.

use futures::channel::mpsc;
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use timecoin_embed::protocols::{
    declare, GetMasternodes, GetPending, Masternode, Masternodes, PendingTransactions, UtxoState,
    UtxoStateHash, Vote, Votes,
};
use timecoin_embed::service;
use timecoin_embed::state::{tx_id, TimeCoinState};
use timed_core::protocol::Protocol;
use timed_core::{Config, MemStore, Network, NodeId, QueryError, RefuseReason};
use timed_runtime::{timeout, Node, NodeHandle, Runtime, RuntimeOptions};

/// Bound on every real-time wait.
const LIMIT: Duration = Duration::from_secs(20);

fn mn(i: u8) -> Masternode {
    Masternode {
        id: [i; 32],
        collateral: 1000 * u64::from(i),
        address: format!("10.0.0.{i}:24000"),
    }
}

async fn start<R: Runtime>(
    rt: &R,
    id: u8,
    peers: &[std::net::SocketAddr],
    state: TimeCoinState,
) -> (
    Node<MemStore>,
    Arc<Mutex<TimeCoinState>>,
    mpsc::Receiver<Vote>,
) {
    let mut cfg = Config::new(Network::Devnet, NodeId([id; 32]), u64::from(id));
    cfg.persistent_peers = peers.to_vec();
    declare(&mut cfg);
    let opts = RuntimeOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..RuntimeOptions::default()
    };
    let node = timed_runtime::spawn(rt.clone(), cfg, MemStore::new(Network::Devnet), opts)
        .await
        .expect("node starts");
    let state = Arc::new(Mutex::new(state));
    let votes = service::spawn(rt, node.handle(), state.clone())
        .await
        .expect("services start");
    (node, state, votes)
}

/// Waits (bounded) until `h` has `n` peers: woken by its events, not by a timer.
async fn until_peers<R: Runtime>(rt: &R, h: &NodeHandle, n: usize) {
    let mut events = h.subscribe();
    timeout(rt, LIMIT, async {
        while h.status().await.unwrap().peers.len() < n {
            let _ = events.recv().await;
        }
    })
    .await
    .expect("peers up in time");
}

fn masternode_state() -> TimeCoinState {
    TimeCoinState {
        masternodes: vec![mn(1), mn(2), mn(3)],
        ..TimeCoinState::default()
    }
}

#[test]
fn the_time_coin_protocols_run_on_tokio() {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rt = timed_tokio::Tokio::on(tokio_rt.handle().clone());
    tokio_rt.block_on(the_time_coin_protocols_run_over_the_cores_connections(&rt));
}

#[test]
fn the_time_coin_protocols_run_on_smol() {
    smol::block_on(the_time_coin_protocols_run_over_the_cores_connections(
        &timed_smol::Smol::default(),
    ));
}

#[test]
fn the_time_coin_protocols_run_on_async_std() {
    async_std::task::block_on(the_time_coin_protocols_run_over_the_cores_connections(
        &timed_async_std::AsyncStd::default(),
    ));
}

async fn the_time_coin_protocols_run_over_the_cores_connections<R: Runtime>(rt: &R) {
    let mut sa = masternode_state();
    sa.pending.insert(tx_id(b"tx-a"), b"tx-a".to_vec());
    sa.pending
        .insert(tx_id(b"tx-shared"), b"tx-shared".to_vec());
    sa.utxo.insert(
        7,
        UtxoState {
            height: 7,
            hash: [9; 32],
            utxos: 42,
        },
    );
    let (a, _state_a, _votes_a) = start(rt, 1, &[], sa).await;
    let addr_a = a.handle().local_addr().unwrap();
    let (b, state_b, _votes_b) = start(rt, 2, &[addr_a], masternode_state()).await;
    let (c, state_c, mut votes_c) = start(rt, 3, &[addr_a], masternode_state()).await;
    let (ha, hb, hc) = (a.handle(), b.handle(), c.handle());
    until_peers(rt, &hb, 1).await;
    until_peers(rt, &hc, 1).await;
    let id_a = NodeId([1; 32]);

    // GetMasternodes: typed both ways, answered on the connection it came on.
    let list = hb
        .call::<Masternodes>(id_a, &GetMasternodes { max: 2 })
        .await
        .expect("answered");
    assert_eq!(list, vec![mn(1), mn(2)]);

    // GetPendingTransactions: b has one of a's, gets the other.
    state_b
        .lock()
        .unwrap()
        .pending
        .insert(tx_id(b"tx-shared"), b"tx-shared".to_vec());
    let have: Vec<[u8; 32]> = state_b.lock().unwrap().pending.keys().copied().collect();
    let txs = hb
        .call::<PendingTransactions>(id_a, &GetPending { have, max: 100 })
        .await
        .unwrap();
    assert_eq!(txs, vec![b"tx-a".to_vec()]);
    assert_eq!(state_b.lock().unwrap().add_pending(txs), 1);

    // An application refusal travels as itself.
    let refused = hb
        .call::<PendingTransactions>(
            id_a,
            &GetPending {
                have: vec![],
                max: 60_000,
            },
        )
        .await;
    assert_eq!(refused, Err(QueryError::Refused(RefuseReason::App(1))));

    // UTXOStateResponse: a hash at a height, or none.
    let st = hc.call::<UtxoStateHash>(id_a, &7).await.unwrap();
    assert_eq!(st.map(|s| s.hash), Some([9; 32]));
    assert_eq!(hc.call::<UtxoStateHash>(id_a, &8).await.unwrap(), None);

    // A peer without the protocol: `Unsupported` at once, nothing sent.
    let plain = timed_runtime::spawn(
        rt.clone(),
        {
            let mut c = Config::new(Network::Devnet, NodeId([4; 32]), 4);
            c.persistent_peers = vec![addr_a];
            c
        },
        MemStore::new(Network::Devnet),
        RuntimeOptions::default(),
    )
    .await
    .unwrap();
    // a lists b, c and the plain node (the dialer may see the link up first).
    until_peers(rt, &ha, 3).await;
    assert_eq!(
        ha.call::<Masternodes>(NodeId([4; 32]), &GetMasternodes { max: 1 })
            .await,
        Err(QueryError::Unsupported)
    );

    // Votes: published by b, validated where they land (a masternode's vote: accepted) and
    // forwarded on; c's service hands the accepted vote to its consensus input.
    let vote = Vote {
        height: 10,
        block: [5; 32],
        voter: [2; 32],
    };
    hb.publish_typed::<Votes>(&vote).await.expect("published");
    let got = timeout(rt, LIMIT, votes_c.next())
        .await
        .expect("the vote reached c in time");
    assert_eq!(got, Some(vote));
    assert!(state_c.lock().unwrap().votes.contains_key(&(10, [2; 32])));

    // The fork consensus check: every peer of a holds the same genesis.
    let verdict = service::fork_consensus_check(&ha, 0).await;
    assert_eq!(verdict.answered, 3);
    assert_eq!(verdict.majority.map(|(_, n)| n), Some(3));
    assert!(verdict.we_agree && !verdict.should_resync());

    let st = ha.status().await.unwrap();
    let mn_stats = &st.protocols[&Masternodes::SPEC.id];
    assert!(mn_stats.requests_in >= 1);
    assert!(st.counters.misbehaviour.is_empty());
    for n in [ha, hb, hc, plain.handle()] {
        n.shutdown().await;
    }
}
