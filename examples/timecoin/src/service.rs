//! The glue for a running node, on any runtime: serve the protocols from the shared state,
//! judge votes, and run the fork consensus check.

use crate::fork_check::{tally, ForkVerdict};
use crate::protocols::{Masternodes, PendingTransactions, UtxoStateHash, Vote, Votes};
use crate::state::TimeCoinState;
use futures::channel::mpsc;
use futures::SinkExt;
use std::sync::{Arc, Mutex};
use timed_core::protocol::{Protocol, Topic};
use timed_core::{NodeId, RequestBody, ResponseBody, Verdict};
use timed_runtime::{NodeHandle, NodeStopped, Runtime};

/// Requests waiting per protocol before more are refused `TooManyRequests`.
pub const QUEUE: usize = 64;

/// Starts serving every TIME Coin protocol from `state` and judging votes, in tasks on `rt`
/// (the node's runtime, or any other). The tasks end when the node stops.
///
/// Returns the votes this node accepted, in order: the consensus engine's input. At most
/// [`QUEUE`] wait there; while it is full, new votes wait in the node's gossip queue and,
/// past that, are ignored (not forwarded), so a stalled consumer cannot grow memory.
pub async fn spawn<R: Runtime>(
    rt: &R,
    handle: NodeHandle,
    state: Arc<Mutex<TimeCoinState>>,
) -> Result<mpsc::Receiver<Vote>, NodeStopped> {
    for protocol in [
        Masternodes::SPEC.id,
        PendingTransactions::SPEC.id,
        UtxoStateHash::SPEC.id,
    ] {
        let mut rx = handle.serve(protocol, QUEUE).await?;
        let state = state.clone();
        rt.spawn(async move {
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
    let (mut accepted_tx, accepted) = mpsc::channel(QUEUE);
    let h = handle.clone();
    rt.spawn(async move {
        while let Some(msg) = votes.recv().await {
            let verdict = lock(&state).judge_vote(&msg.payload);
            let _ = h.validate(msg.id, verdict).await;
            if verdict == Verdict::Accept {
                if let Ok(vote) = msg.decode::<Votes>() {
                    // Nobody consuming is fine: the state still holds the vote.
                    let _ = accepted_tx.send(vote).await;
                }
            }
        }
    });
    Ok(accepted)
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
    // Every peer at once, over the connections already held; each ask ends exactly once
    // (an answer, or why not), so joining them all is bounded by the query timeout.
    let asks = status
        .peers
        .iter()
        .map(|p| p.node_id)
        .map(|peer| async move {
            let answer = match handle.query(peer, RequestBody::HashAt { height }).await {
                Ok(ResponseBody::HashAt(hash)) => Some(hash),
                _ => None,
            };
            (peer, answer)
        });
    let mut answers: Vec<(NodeId, Option<Option<timed_core::BlockHash>>)> =
        futures::future::join_all(asks).await;
    // Our own hash, asked of ourselves the same way the API would: the status tip when the
    // height is the tip; otherwise the majority decides and `we_agree` compares to it.
    let local = (status.height == height).then_some(status.tip_hash);
    answers.sort_by_key(|(n, _)| *n);
    tally(height, local, &answers)
}
