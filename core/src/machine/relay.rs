//! Blocks and transactions as gossip: announcements in, validated and relayed; the
//! mempool's way in.

use super::io::{Action, Misbehaviour, NodeEvent, TxError};
use super::mempool::Refusal;
use super::PeerMachine;
use crate::chain::{Block, Header, RuleContext, Tx, TxId};
use crate::id::{ConnId, NodeId};
use crate::protocol::{builtin, TopicId, Verdict};
use crate::store::Store;
use crate::time::Instant;
use alloc::format;

impl<S: Store> PeerMachine<S> {
    /// A new message on one of the core's topics: the chain layer's verdict.
    pub(crate) fn chain_gossip(
        &mut self,
        now: Instant,
        conn: ConnId,
        topic: TopicId,
        payload: &[u8],
    ) -> Verdict {
        match topic {
            builtin::BLOCK_TOPIC => match postcard::from_bytes::<Block>(payload) {
                Ok(block) => self.on_block_announce(now, conn, block),
                Err(_) => Verdict::Reject,
            },
            builtin::TX_TOPIC => match postcard::from_bytes::<Tx>(payload) {
                Ok(tx) => self.on_tx_broadcast(tx, conn),
                Err(_) => Verdict::Reject,
            },
            _ => Verdict::Ignore,
        }
    }

    /// A block announcement we already had still says the sender has a chain that high.
    pub(crate) fn note_announced_height(&mut self, from: NodeId, payload: &[u8]) {
        if let Ok((header, _)) = postcard::take_from_bytes::<Header>(payload) {
            let hash = header.hash();
            self.note_peer_best(from, header.height, hash);
        }
    }

    /// Sends `block` on the block topic to every peer but `except`.
    pub(super) fn announce_block(&mut self, block: &Block, except: Option<NodeId>) {
        let payload = crate::protocol::encode(block);
        let _ = self.publish_from(builtin::BLOCK_TOPIC, &payload, except);
    }

    pub(super) fn on_block_announce(
        &mut self,
        now: Instant,
        conn: ConnId,
        block: Block,
    ) -> Verdict {
        let Some(node) = self.conns.get(&conn).and_then(|c| c.node_id()) else {
            return Verdict::Ignore;
        };
        let hash = block.hash();
        self.note_peer_best(node, block.header.height, hash);
        if !self.chain.seen_blocks.insert(hash) {
            return Verdict::Ignore;
        }
        let Some(tip) = self.chain.tip_header.clone() else {
            return Verdict::Ignore;
        };
        if block.header.height == tip.height + 1 && block.header.prev == self.chain.tip.1 {
            let ctx = RuleContext {
                limits: &self.cfg.limits,
                wall_secs: self.wall_secs(now),
            };
            if let Err(e) = self.cfg.rules.check_block(&block, &tip, &ctx) {
                self.misbehave(
                    now,
                    conn,
                    Misbehaviour::InvalidBlock,
                    &format!("announced block {}: {}", block.header.height, e.as_str()),
                );
                return Verdict::Ignore;
            }
            // Applied and forwarded to everyone but the source, caught up or not.
            self.commit(now, None, alloc::vec![block], Some(node), false);
            Verdict::Accept
        } else {
            self.drive_sync(now);
            Verdict::Ignore
        }
    }

    pub(super) fn on_tx_broadcast(&mut self, tx: Tx, conn: ConnId) -> Verdict {
        let Some(node) = self.conns.get(&conn).and_then(|c| c.node_id()) else {
            return Verdict::Ignore;
        };
        if tx.0.len() > self.cfg.limits.max_tx_bytes {
            return Verdict::Reject;
        }
        match self.accept_tx(tx, Some(node)) {
            Ok(_) => Verdict::Accept,
            Err(_) => Verdict::Ignore,
        }
    }

    /// Submits a local transaction: into the mempool and out to every peer.
    pub fn submit_tx(&mut self, now: Instant, tx: Tx) -> Result<TxId, TxError> {
        self.now = now;
        if self.stopped {
            return Err(TxError::ShuttingDown);
        }
        if tx.0.len() > self.cfg.limits.max_tx_bytes {
            return Err(TxError::TooLarge);
        }
        let payload = crate::protocol::encode(&tx);
        let id = self.accept_tx(tx, None)?;
        let _ = self.publish_from(builtin::TX_TOPIC, &payload, None);
        Ok(id)
    }

    /// Into the mempool; the caller relays it (a forward, or a publish).
    pub(super) fn accept_tx(&mut self, tx: Tx, _source: Option<NodeId>) -> Result<TxId, TxError> {
        let id = tx.id();
        if self.chain.seen_txs.contains(&id) {
            return Err(TxError::Duplicate);
        }
        match self.chain.mempool.insert(id, tx) {
            Ok(()) => {}
            Err(Refusal::Duplicate) => return Err(TxError::Duplicate),
            Err(Refusal::Full) => return Err(TxError::MempoolFull),
        }
        self.chain.seen_txs.insert(id);
        self.counters.txs_accepted += 1;
        self.actions
            .push_back(Action::Notify(NodeEvent::TxAccepted { id }));
        Ok(id)
    }
}
