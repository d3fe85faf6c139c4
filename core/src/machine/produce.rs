//! Block production (devnet): a block from the oldest mempool transactions, on a timer.

use super::timer::Timer;
use super::PeerMachine;
use crate::chain::Block;
use crate::store::Store;
use crate::time::Instant;

impl<S: Store> PeerMachine<S> {
    pub(crate) fn produce_tick(&mut self, now: Instant) {
        if let Some(every) = self.cfg.produce_blocks {
            self.timers.set(Timer::Produce, now + every);
        }
        let Some(parent) = self.chain.tip_header.clone() else {
            return;
        };
        let limits = &self.cfg.limits;
        let txs = self.chain.mempool.oldest(|count, bytes, tx| {
            count < limits.max_block_txs && bytes + tx.0.len() + 200 <= limits.max_block_bytes / 2
        });
        let time = self
            .wall_secs(now)
            .unwrap_or(parent.time + 1)
            .max(parent.time);
        let block = Block::build(&parent, time, txs);
        self.commit(now, None, alloc::vec![block.clone()], None, true);
        if self.sync_target().is_some() {
            self.announce_block(&block, None);
        }
    }
}
