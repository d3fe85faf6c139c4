//! The application's state and its answers, sans-IO: pure functions of the state and the
//! request bytes, so a tokio node, the simulator and a test all run the same code.

use crate::protocols::{
    GetPending, Masternode, Masternodes, PendingTransactions, UtxoState, UtxoStateHash, Vote, Votes,
};
use std::collections::BTreeMap;
use timed_core::protocol::{Protocol, Topic};
use timed_core::{ProtocolId, RefuseReason, Verdict};

/// Application refusal: the request asks for more than this node will give.
pub const REFUSE_TOO_MANY: RefuseReason = RefuseReason::App(1);

#[derive(Clone, Debug, Default)]
pub struct TimeCoinState {
    pub masternodes: Vec<Masternode>,
    /// Pending transactions by id.
    pub pending: BTreeMap<[u8; 32], Vec<u8>>,
    pub utxo: BTreeMap<u64, UtxoState>,
    /// Votes accepted, by (height, voter).
    pub votes: BTreeMap<(u64, [u8; 32]), [u8; 32]>,
}

impl TimeCoinState {
    /// The answer to a peer's request on one of our protocols. Bytes that do not decode are
    /// refused `BadRequest`; a protocol we do not serve `Unsupported`.
    pub fn answer(&self, protocol: ProtocolId, payload: &[u8]) -> Result<Vec<u8>, RefuseReason> {
        match protocol {
            p if p == Masternodes::SPEC.id => {
                let req =
                    Masternodes::decode_request(payload).map_err(|_| RefuseReason::BadRequest)?;
                let list: Vec<Masternode> = self
                    .masternodes
                    .iter()
                    .take(usize::from(req.max))
                    .cloned()
                    .collect();
                Ok(Masternodes::encode_response(&list))
            }
            p if p == PendingTransactions::SPEC.id => {
                let GetPending { have, max } = PendingTransactions::decode_request(payload)
                    .map_err(|_| RefuseReason::BadRequest)?;
                if max > 10_000 {
                    return Err(REFUSE_TOO_MANY);
                }
                let mut out = Vec::new();
                let mut bytes = 0usize;
                for (id, tx) in &self.pending {
                    if out.len() >= usize::from(max) {
                        break;
                    }
                    if have.contains(id) {
                        continue;
                    }
                    // Stay within the protocol's response limit.
                    if bytes + tx.len() + 8 > PendingTransactions::SPEC.max_response_bytes as usize
                    {
                        break;
                    }
                    bytes += tx.len() + 8;
                    out.push(tx.clone());
                }
                Ok(PendingTransactions::encode_response(&out))
            }
            p if p == UtxoStateHash::SPEC.id => {
                let height =
                    UtxoStateHash::decode_request(payload).map_err(|_| RefuseReason::BadRequest)?;
                Ok(UtxoStateHash::encode_response(
                    &self.utxo.get(&height).cloned(),
                ))
            }
            _ => Err(RefuseReason::Unsupported),
        }
    }

    /// The verdict on a vote: only masternodes vote, once per height. A vote from a
    /// stranger is rejected (its sender is banned); a second vote at a height is ignored.
    pub fn judge_vote(&mut self, payload: &[u8]) -> Verdict {
        let Ok(vote) = Votes::decode(payload) else {
            return Verdict::Reject;
        };
        self.judge(vote)
    }

    fn judge(&mut self, vote: Vote) -> Verdict {
        if !self.masternodes.iter().any(|m| m.id == vote.voter) {
            return Verdict::Reject;
        }
        if self.votes.contains_key(&(vote.height, vote.voter)) {
            return Verdict::Ignore;
        }
        self.votes.insert((vote.height, vote.voter), vote.block);
        Verdict::Accept
    }

    /// Adds pending transactions a peer sent us; returns how many were new.
    pub fn add_pending(&mut self, txs: Vec<Vec<u8>>) -> usize {
        let mut n = 0;
        for tx in txs {
            let id = tx_id(&tx);
            if self.pending.insert(id, tx).is_none() {
                n += 1;
            }
        }
        n
    }
}

/// A pending transaction's id: its first 32 bytes padded (the example's stand-in for a hash).
pub fn tx_id(tx: &[u8]) -> [u8; 32] {
    let mut id = [0u8; 32];
    for (i, b) in tx.iter().enumerate() {
        id[i % 32] ^= b.wrapping_add(i as u8);
    }
    id
}
