//! Fork resolution: a binary search for the last block in common with a peer whose tip
//! the chain rules prefer, then fetching its branch and switching to it atomically.

use super::io::Misbehaviour;
use super::query::ChainReq;
use super::PeerMachine;
use crate::chain::{Block, BlockHash, ChainTip, RuleContext};
use crate::id::NodeId;
use crate::store::{Store, StoreOp};
use crate::time::Instant;
use crate::wire::RequestBody;
use alloc::format;
use alloc::vec::Vec;

/// Binary search for the last common block with one peer, then fetching its branch.
#[derive(Debug)]
pub(super) struct Fork {
    pub(super) node: NodeId,
    /// Highest height known common.
    pub(super) lo: u64,
    /// Lowest height known different.
    pub(super) hi: u64,
    /// Branch blocks fetched so far, from `lo + 1`.
    pub(super) branch: Vec<Block>,
    pub(super) fetching: bool,
}

impl<S: Store> PeerMachine<S> {
    pub(super) fn start_fork_search(&mut self, now: Instant, node: NodeId) {
        let tip = self.chain.tip.0;
        let tip_view = ChainTip {
            height: tip,
            hash: self.chain.tip.1,
        };
        // Never below what the rules call final, nor deeper than `max_reorg_depth`.
        let lo = tip
            .saturating_sub(self.cfg.max_reorg_depth)
            .max(self.cfg.rules.final_height(&tip_view).min(tip));
        // Range sync waits while a fork search runs; the ranges it had out no longer count as
        // in flight (an answer that still comes is held like any other).
        self.chain.ranges.forget_ranges();
        self.chain.fork = Some(Fork {
            node,
            lo,
            hi: tip + 1,
            branch: Vec::new(),
            fetching: false,
        });
        // First make sure the floor itself is common; otherwise the fork is too deep.
        self.fork_probe(now, lo);
    }

    pub(super) fn fork_probe(&mut self, now: Instant, height: u64) {
        self.fork_request(
            now,
            ChainReq::ForkProbe { height },
            RequestBody::HashAt { height },
        );
    }

    /// Sends a request of the fork search to the forking peer; abandons the search if that
    /// peer is gone or saturated (sync then resumes and may find the fork again).
    pub(super) fn fork_request(&mut self, now: Instant, req: ChainReq, body: RequestBody) {
        let Some(node) = self.chain.fork.as_ref().map(|f| f.node) else {
            return;
        };
        let sent = match self.peers.get(&node) {
            Some(&conn) => self.chain_request(now, conn, req, &body).is_ok(),
            None => false,
        };
        if !sent {
            self.chain.fork = None;
        }
    }

    pub(super) fn on_fork_probe(
        &mut self,
        now: Instant,
        node: NodeId,
        height: u64,
        theirs: Option<BlockHash>,
    ) {
        let ours = match self.store.hash_at(height) {
            Ok(h) => h,
            Err(e) => return self.fatal(now, StoreOp::ReadBlock { height }, e),
        };
        let Some(fork) = self
            .chain
            .fork
            .as_mut()
            .filter(|f| f.node == node && !f.fetching)
        else {
            return;
        };
        let common = theirs.is_some() && theirs == ours;
        if height == fork.lo && !common {
            // Not even the floor is shared: deeper than we reorg. Ignore this peer's chain.
            self.chain.fork = None;
            self.chain.ranges.forget(node);
            return;
        }
        if common {
            fork.lo = height;
        } else {
            fork.hi = height;
        }
        if fork.hi - fork.lo > 1 {
            let mid = fork.lo + (fork.hi - fork.lo) / 2;
            return self.fork_probe(now, mid);
        }
        fork.fetching = true;
        let from = fork.lo + 1;
        self.fetch_branch(now, from);
    }

    pub(super) fn fetch_branch(&mut self, now: Instant, from: u64) {
        let count = self.cfg.sync_batch;
        self.fork_request(
            now,
            ChainReq::Branch { from },
            RequestBody::Blocks { from, count },
        );
    }

    /// Accumulates the peer's branch; switches once it is higher than our chain.
    pub(super) fn on_branch(&mut self, now: Instant, node: NodeId, from: u64, blocks: Vec<Block>) {
        let Some(fork) = self
            .chain
            .fork
            .as_mut()
            .filter(|f| f.node == node && f.fetching)
        else {
            return;
        };
        if from != fork.lo + 1 + fork.branch.len() as u64 {
            return;
        }
        let got = blocks.len();
        fork.branch.extend(blocks);
        let branch_tip = fork.lo + fork.branch.len() as u64;
        let ours = ChainTip {
            height: self.chain.tip.0,
            hash: self.chain.tip.1,
        };
        let theirs = ChainTip {
            height: branch_tip,
            hash: fork.branch.last().map_or(BlockHash::default(), Block::hash),
        };
        if !self.cfg.rules.prefer(&ours, &theirs) {
            if got == 0
                || fork.branch.len() as u64 > self.cfg.max_reorg_depth + self.cfg.sync_batch as u64
            {
                // The branch ended without beating our chain: keep ours (ties keep ours).
                self.chain.fork = None;
                self.chain.ranges.forget(node);
                return self.drive_sync(now);
            }
            let next = branch_tip + 1;
            return self.fetch_branch(now, next);
        }
        let Some(fork) = self.chain.fork.take() else {
            return;
        };
        self.switch_to_branch(now, node, fork);
    }

    /// The peer's branch wins: checked block by block on top of the common block (a bad one
    /// bans the peer and changes nothing), then committed in one store write.
    fn switch_to_branch(&mut self, now: Instant, node: NodeId, fork: Fork) {
        let base = match self.store.header_at(fork.lo) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                let height = fork.lo;
                return self.fatal(now, StoreOp::ReadBlock { height }, e);
            }
        };
        let wall = self.wall_secs(now);
        let rules = self.cfg.rules.clone();
        let ctx = RuleContext {
            limits: &self.cfg.limits,
            wall_secs: wall,
        };
        let mut parent = base;
        for b in &fork.branch {
            if let Err(e) = rules.check_block(b, &parent, &ctx) {
                if let Some(&conn) = self.peers.get(&node) {
                    self.misbehave(
                        now,
                        conn,
                        Misbehaviour::InvalidBlock,
                        &format!("branch block {}: {}", b.header.height, e.as_str()),
                    );
                }
                return;
            }
            parent = b.header.clone();
        }
        // The abandoned blocks' transactions are not returned to the mempool: which of them
        // are still valid is a question for the application's rules, not the core's.
        self.chain.ranges.reset_ranges();
        self.commit(now, Some(fork.lo), fork.branch, Some(node), true);
        self.drive_sync(now);
    }
}
