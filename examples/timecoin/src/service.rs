//! The glue for a tokio node: serve the protocols from the shared state, judge votes, and
//! run the fork consensus check.

use crate::fork_check::{tally, ForkVerdict};
use crate::protocols::{Masternodes, PendingTransactions, UtxoStateHash, Votes};
use crate::state::TimeCoinState;
use std::sync::{Arc, Mutex};
use timed_core::protocol::{Protocol, Topic};
use timed_core::{NodeId, RequestBody, ResponseBody};
use timed_tokio::{NodeHandle, NodeStopped};
use tokio::task::JoinSet;

/// Requests waiting per protocol before more are refused `TooManyRequests`.
const QUEUE: usize = 64;

/// Starts serving every TIME Coin protocol from `state` and judging votes. The tasks end
/// when the node stops.
pub async fn spawn(
    handle: NodeHandle,
    state: Arc<Mutex<TimeCoinState>>,
) -> Result<(), NodeStopped> {
    for protocol in [
        Masternodes::SPEC.id,
        PendingTransactions::SPEC.id,
        UtxoStateHash::SPEC.id,
    ] {
        let mut rx = handle.serve(protocol, QUEUE).await?;
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                let answer = lock(&state).answer(req.protocol, &req.payload);
                let _ = match answer {
                    Ok(bytes) => req.respond(bytes).await,
                    Err(reason) => req.refuse(reason).await,
                };
            }
        });
    }
    let mut votes = handle.gossip(Votes::SPEC.id, QUEUE).await?;
    let h = handle.clone();
    tokio::spawn(async move {
        while let Some(msg) = votes.recv().await {
            let verdict = lock(&state).judge_vote(&msg.payload);
            let _ = h.validate(msg.id, verdict).await;
        }
    });
    Ok(())
}

fn lock(state: &Mutex<TimeCoinState>) -> std::sync::MutexGuard<'_, TimeCoinState> {
    // A panicked server task leaves the state as it was; keep serving it.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asks every connected peer for its block hash at `height` (the core's own hash-at
/// protocol, over the connections it already holds) and tallies the answers against ours.
pub async fn fork_consensus_check(handle: &NodeHandle, height: u64) -> ForkVerdict {
    let Ok(status) = handle.status().await else {
        return tally(height, None, &[]);
    };
    let mut asks = JoinSet::new();
    let mut local = None;
    for peer in status.peers.iter().map(|p| p.node_id) {
        let h = handle.clone();
        asks.spawn(async move {
            let r = h.query(peer, RequestBody::HashAt { height }).await;
            let answer = match r {
                Ok(ResponseBody::HashAt(hash)) => Some(hash),
                _ => None,
            };
            (peer, answer)
        });
    }
    // Our own hash, asked of ourselves the same way the API would: the status tip when the
    // height is the tip; otherwise the majority decides and `we_agree` compares to it.
    if status.height == height {
        local = Some(status.tip_hash);
    }
    let mut answers: Vec<(NodeId, Option<Option<timed_core::BlockHash>>)> = Vec::new();
    while let Some(Ok(a)) = asks.join_next().await {
        answers.push(a);
    }
    answers.sort_by_key(|(n, _)| *n);
    tally(height, local, &answers)
}
