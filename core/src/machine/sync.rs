//! The chain layer's state and its range sync: the tip, what peers told us of theirs, and
//! fetching blocks from any height. Its other parts each have their own file: fork
//! resolution (`fork`), blocks and transactions as gossip (`relay`, with the `mempool`),
//! block production (`produce`), answers to peers (`serve`) and peer exchange (`exchange`).
//!
//! There is no "syncing" flag. Whether we sync is derived from the best heights peers
//! reported and the range requests in flight, so there is nothing that can get stuck: if a
//! peer is ahead, the next tick asks for the next range; if it stalls, the request times out
//! and another peer gets the range. The tick runs only while there is sync work (a peer
//! ahead, ranges out, blocks waiting, a fork being resolved): a node in step with its peers
//! has no periodic chain work at all, which is what lets the simulator run 10 000 of them.

use super::app::Seen;
use super::book::AddrBook;
use super::fork::Fork;
use super::io::{Action, Direction, Misbehaviour, NodeEvent, QueryError};
use super::mempool::Mempool;
use super::query::{ChainReq, Origin};
use super::range_sync::RangeSync;
use super::timer::Timer;
use super::PeerMachine;
use super::MAX_ADDRS_PER_RESPONSE;
use crate::chain::{Block, BlockHash, ChainTip, Header, RuleContext, TxId};
use crate::id::{ConnId, NodeId};
use crate::protocol::builtin;
use crate::store::{Store, StoreOp};
use crate::time::{Duration, Instant};
use crate::wire::{RequestBody, ResponseBody};
use alloc::format;
use alloc::vec::Vec;

/// How often sync progress and stalls are checked while there is sync work.
const SYNC_TICK: Duration = Duration::from_secs(1);
/// A peer whose range request timed out is not asked again for this long.
const STALL_PENALTY: Duration = Duration::from_secs(60);
/// Remembered block and transaction hashes, for gossip dedup.
const SEEN_MAX: usize = 16_384;

#[derive(Debug)]
pub(crate) struct ChainState {
    pub(super) tip: (u64, BlockHash),
    pub(super) tip_header: Option<Header>,
    /// Range sync: peers' tips, stalls, ranges requested, blocks held.
    pub(super) ranges: RangeSync,
    pub(super) fork: Option<Fork>,
    pub(super) seen_blocks: Seen<BlockHash>,
    pub(super) seen_txs: Seen<TxId>,
    pub(super) mempool: Mempool,
    pub(super) book: AddrBook,
}

impl ChainState {
    pub fn new(cfg: &crate::config::Config) -> Self {
        ChainState {
            tip: Default::default(),
            tip_header: None,
            ranges: RangeSync::default(),
            fork: None,
            seen_blocks: Seen::new(SEEN_MAX),
            seen_txs: Seen::new(SEEN_MAX),
            mempool: Mempool::new(cfg.mempool_max, cfg.mempool_max_bytes),
            book: AddrBook::new(cfg.addr_book_max),
        }
    }
}

impl ChainState {
    pub fn mempool_len(&self) -> usize {
        self.mempool.len()
    }
    pub fn mempool_bytes(&self) -> usize {
        self.mempool.bytes()
    }
    pub fn addr_book_len(&self) -> usize {
        self.book.len()
    }
}

impl<S: Store> PeerMachine<S> {
    /// Loads the tip and the address book, and arms the chain timers.
    pub(crate) fn chain_start(&mut self, now: Instant) {
        if let Err((op, e)) = self.load_tip() {
            return self.fatal(now, op, e);
        }
        match self.store.addrs() {
            Ok(list) => self.chain.book.load(list),
            Err(e) => return self.fatal(now, StoreOp::ReadAddrs, e),
        }
        self.timers
            .set(Timer::PeerExchange, now + self.cfg.peer_exchange_interval);
        if let Some(every) = self.cfg.produce_blocks {
            self.timers.set(Timer::Produce, now + every);
        }
        // Dial the book right away: a restarted node should not wait a whole interval.
        self.top_up_outbound(now);
    }

    pub(super) fn load_tip(&mut self) -> Result<(), (StoreOp, S::Error)> {
        let (h, hash) = self.store.tip().map_err(|e| (StoreOp::ReadTip, e))?;
        let header = self
            .store
            .header_at(h)
            .map_err(|e| (StoreOp::ReadBlock { height: h }, e))?;
        self.chain.tip = (h, hash);
        self.chain.tip_header = header;
        Ok(())
    }

    /// Unix seconds now, if the driver told us how to compute it.
    pub(super) fn wall_secs(&self, now: Instant) -> Option<u64> {
        self.cfg
            .unix_time_at_zero
            .map(|z| z + now.as_micros() / 1_000_000)
    }

    pub(crate) fn sync_target(&self) -> Option<u64> {
        let best = self.chain.ranges.best_height()?;
        (best > self.chain.tip.0).then_some(best)
    }

    // ---- peers coming and going ------------------------------------------------------------

    pub(crate) fn chain_peer_up(&mut self, now: Instant, node: NodeId, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let listen = c.listen_addr();
        if let Some(r) = &c.remote {
            self.chain.ranges.set_best(node, r.best_height, r.best_hash);
        }
        let dialed = c.dir == Direction::Outbound;
        if let Some(addr) = listen {
            self.learn_addr(addr, Some(node), true);
        }
        // Ask a new peer for addresses only if we chose it (as Bitcoin Core sends `getaddr`
        // only to outbound peers): anyone can connect to us, and a book filled by whoever
        // dialed in is a book an attacker can fill. It also halves the address traffic of a
        // network coming up (one exchange per connection, not two). Inbound peers are still
        // polled by the periodic exchange, so a node nobody dials out from still learns.
        if dialed {
            self.ask_chain(now, conn, ChainReq::Peers, RequestBody::Peers);
        }
        self.drive_sync(now);
    }

    /// A best-effort chain-layer request: it fails at once only if the connection is going
    /// (`PeerGone`) or at its in-flight cap, and either way the next interval asks again.
    pub(super) fn ask_chain(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: ChainReq,
        body: RequestBody,
    ) {
        let _ = self.chain_request(now, conn, req, &body);
    }

    /// Sends a built-in request on behalf of the chain layer: the same path, limits and
    /// accounting as any application request.
    pub(super) fn chain_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: ChainReq,
        body: &RequestBody,
    ) -> Result<(), QueryError> {
        let (protocol, payload) = builtin::encode_request(body);
        self.send_request(now, conn, Origin::Chain(req), protocol, payload, None)
    }

    pub(crate) fn chain_peer_down(&mut self, now: Instant, node: NodeId) {
        self.chain.ranges.forget(node);
        if self.chain.fork.as_ref().is_some_and(|f| f.node == node) {
            self.chain.fork = None;
        }
        // Its ranges in flight ended with PeerGone through `chain_request_failed`.
        self.drive_sync(now);
        // Replace the lost peer from the book, but not by redialing it at once.
        let lost = self.chain.book.addrs_of(node);
        for a in lost {
            self.book_backoff(now, a);
        }
        if self.timers.get(Timer::TopUp).is_none() {
            self.timers
                .set(Timer::TopUp, now + self.cfg.backoff_initial);
        }
    }

    // ---- responses to our requests --------------------------------------------------------

    pub(crate) fn chain_response(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: ChainReq,
        asked: Option<RequestBody>,
        body: ResponseBody,
    ) {
        let Some(node) = self.conns.get(&conn).and_then(|c| c.node_id()) else {
            return;
        };
        match (req, body) {
            (ChainReq::Range { from }, ResponseBody::Blocks(blocks)) => {
                self.chain.ranges.range_done(from);
                if !self.check_range_shape(now, conn, from, &asked, &blocks) {
                    return;
                }
                if blocks.is_empty() {
                    // The peer no longer has what it claimed (it reorged, or it lied): believe
                    // its silence, not its claim.
                    self.chain.ranges.lower_best(node, from.saturating_sub(1));
                } else {
                    self.chain.ranges.buffer(node, blocks);
                    self.apply_pending(now);
                }
                self.drive_sync(now);
            }
            (ChainReq::Branch { from }, ResponseBody::Blocks(blocks)) => {
                if !self.check_range_shape(now, conn, from, &asked, &blocks) {
                    return;
                }
                self.on_branch(now, node, from, blocks);
            }
            (ChainReq::ForkProbe { height }, ResponseBody::HashAt(hash)) => {
                self.on_fork_probe(now, node, height, hash)
            }
            (ChainReq::Tip, ResponseBody::Tip { height, hash }) => {
                self.note_peer_best(node, height, hash);
                self.drive_sync(now);
            }
            (ChainReq::Peers, ResponseBody::Peers(list)) => {
                for a in list.into_iter().take(MAX_ADDRS_PER_RESPONSE) {
                    self.learn_addr(a.into(), None, false);
                }
                self.top_up_outbound(now);
            }
            _ => self.misbehave(
                now,
                conn,
                Misbehaviour::BadResponse,
                "response of the wrong kind for the request",
            ),
        }
    }

    /// A block range must start where asked, be consecutive, and not exceed the count.
    pub(super) fn check_range_shape(
        &mut self,
        now: Instant,
        conn: ConnId,
        from: u64,
        asked: &Option<RequestBody>,
        blocks: &[Block],
    ) -> bool {
        let asked = match asked {
            Some(RequestBody::Blocks { count, .. }) => u64::from(*count),
            _ => 0,
        };
        let ok = blocks.len() as u64 <= asked
            && blocks
                .iter()
                .enumerate()
                .all(|(i, b)| b.header.height == from + i as u64);
        if !ok {
            self.misbehave(
                now,
                conn,
                Misbehaviour::BadResponse,
                "block range out of order or larger than asked",
            );
        }
        ok
    }

    pub(crate) fn chain_request_failed(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: ChainReq,
        err: QueryError,
    ) {
        let node = self.conns.get(&conn).and_then(|c| c.node_id());
        match req {
            ChainReq::Range { from } => {
                self.chain.ranges.range_done(from);
                if let (Some(n), QueryError::Timeout) = (node, err) {
                    self.chain.ranges.stall(n, now + STALL_PENALTY);
                }
                if !self.stopped {
                    self.drive_sync(now);
                }
            }
            ChainReq::ForkProbe { .. } | ChainReq::Branch { .. } => {
                self.chain.fork = None;
                if let (Some(n), QueryError::Timeout) = (node, err) {
                    self.chain.ranges.stall(n, now + STALL_PENALTY);
                }
                if !self.stopped {
                    self.drive_sync(now);
                }
            }
            ChainReq::Tip | ChainReq::Peers => {}
        }
    }

    pub(super) fn note_peer_best(&mut self, node: NodeId, height: u64, hash: BlockHash) {
        self.chain.ranges.note_best(node, height, hash);
    }

    // ---- sync -----------------------------------------------------------------------------

    pub(crate) fn sync_tick(&mut self, now: Instant) {
        self.chain.ranges.prune_stalls(now);
        self.drive_sync(now);
    }

    /// Whether sync has anything left to do: a peer ahead of us, ranges requested or
    /// received ahead of the tip, or a fork being resolved.
    pub(super) fn sync_busy(&self) -> bool {
        self.sync_target().is_some() || self.chain.ranges.busy() || self.chain.fork.is_some()
    }

    /// Keeps the sync tick armed exactly while there is sync work. The tick is the safety
    /// net behind the event-driven calls to [`drive_sync`](Self::drive_sync): it retries
    /// peers whose stall penalty ran out. An armed tick keeps its deadline (re-arming on every
    /// call would postpone it forever while responses keep arriving).
    pub(super) fn arm_sync_tick(&mut self, now: Instant) {
        if !self.stopped && self.sync_busy() {
            if self.timers.get(Timer::Sync).is_none() {
                self.timers.set(Timer::Sync, now + SYNC_TICK);
            }
        } else {
            self.timers.cancel(Timer::Sync);
            self.chain.ranges.prune_stalls(now);
        }
    }

    /// Asks peers ahead of us for the next ranges, up to `sync_parallel` in flight, and
    /// keeps the sync tick armed while anything is left.
    pub(super) fn drive_sync(&mut self, now: Instant) {
        self.request_ranges(now);
        self.contest_equal_tip(now);
        self.arm_sync_tick(now);
    }

    /// Fork choice beyond height: a peer at our height on another tip that the rules
    /// prefer (a tie-break rule) is not "ahead", so range sync never asks it; search for the
    /// fork point with it instead. With the default rules a tie keeps ours and this does
    /// nothing.
    pub(super) fn contest_equal_tip(&mut self, now: Instant) {
        if self.stopped || self.chain.fork.is_some() || self.chain.ranges.busy() {
            return;
        }
        let ours = ChainTip {
            height: self.chain.tip.0,
            hash: self.chain.tip.1,
        };
        let rules = &self.cfg.rules;
        let peers = &self.peers;
        let contender = self.chain.ranges.contender(
            now,
            ours.height,
            ours.hash,
            |n| peers.contains_key(n),
            |height, hash| rules.prefer(&ours, &ChainTip { height, hash }),
        );
        if let Some(node) = contender {
            self.start_fork_search(now, node);
        }
    }

    pub(super) fn request_ranges(&mut self, now: Instant) {
        if self.stopped || self.chain.fork.is_some() {
            return;
        }
        let batch = self.cfg.sync_batch as u64;
        let mut next = self.chain.tip.0 + 1;
        while self.chain.ranges.ranges_in_flight() < self.cfg.sync_parallel {
            // The lowest height neither applied, held, nor requested.
            next = self.chain.ranges.next_gap(next);
            if next > self.chain.tip.0 + batch * self.cfg.sync_parallel as u64 {
                break; // far enough ahead: bounded pending
            }
            let Some((node, best)) = self.pick_sync_peer(now, next) else {
                break;
            };
            let count = (best - next + 1).min(batch);
            let Some(&conn) = self.peers.get(&node) else {
                break;
            };
            let body = RequestBody::Blocks {
                from: next,
                count: count as u32,
            };
            if self
                .chain_request(now, conn, ChainReq::Range { from: next }, &body)
                .is_err()
            {
                break;
            }
            self.chain.ranges.requested(next, count);
            next += count;
        }
    }

    /// A peer that has `height`, preferring peers not recently stalled, rotating among them.
    pub(super) fn pick_sync_peer(&mut self, now: Instant, height: u64) -> Option<(NodeId, u64)> {
        let peers = &self.peers;
        self.chain
            .ranges
            .pick_peer(now, height, |n| peers.contains_key(n))
    }

    /// Applies pending blocks that extend the tip, one store transaction per batch.
    pub(super) fn apply_pending(&mut self, now: Instant) {
        let Some(mut parent) = self.chain.tip_header.clone() else {
            return;
        };
        let mut batch: Vec<Block> = Vec::new();
        let wall = self.wall_secs(now);
        let rules = self.cfg.rules.clone();
        let ctx = RuleContext {
            limits: &self.cfg.limits,
            wall_secs: wall,
        };
        while let Some((node, block)) = self.chain.ranges.take_pending(parent.height + 1) {
            match rules.check_block(&block, &parent, &ctx) {
                Ok(()) => {
                    parent = block.header.clone();
                    batch.push(block);
                }
                Err(crate::chain::BlockError::Unlinked) if batch.is_empty() => {
                    // The peer's chain diverges from ours below this height: find where.
                    self.chain.ranges.clear_pending();
                    self.start_fork_search(now, node);
                    break;
                }
                Err(e) => {
                    self.chain.ranges.drop_from(node);
                    if let Some(&conn) = self.peers.get(&node) {
                        self.misbehave(
                            now,
                            conn,
                            Misbehaviour::InvalidBlock,
                            &format!("block {}: {}", block.header.height, e.as_str()),
                        );
                    }
                    break;
                }
            }
        }
        if !batch.is_empty() {
            self.commit(now, None, batch, None, true);
        }
    }

    /// Writes blocks to the store (atomically, with an optional rollback) and updates
    /// everything derived from the tip.
    /// `announce`: tell peers of the new tip once caught up (except `source`); the
    /// announcement path forwards the block itself instead.
    pub(super) fn commit(
        &mut self,
        now: Instant,
        rollback_to: Option<u64>,
        blocks: Vec<Block>,
        source: Option<NodeId>,
        announce: bool,
    ) {
        let old_tip = self.chain.tip.0;
        if let Err(e) = self.store.apply(rollback_to, &blocks) {
            return self.fatal(now, StoreOp::WriteBlocks, e);
        }
        let Some(last) = blocks.last() else { return };
        let from = blocks[0].header.height;
        let (to, tip) = (last.header.height, last.hash());
        for b in &blocks {
            self.chain.seen_blocks.insert(b.hash());
            for tx in &b.txs {
                let id = tx.id();
                self.chain.seen_txs.insert(id);
                self.chain.mempool.remove(&id);
            }
        }
        self.chain.tip = (to, tip);
        self.chain.tip_header = Some(last.header.clone());
        self.counters.blocks_applied += blocks.len() as u64;
        if let Some(fork) = rollback_to {
            self.counters.reorgs += 1;
            self.actions
                .push_back(Action::Notify(NodeEvent::Reorg { fork, old_tip, to }));
        }
        self.actions
            .push_back(Action::Notify(NodeEvent::BlocksApplied { from, to, tip }));
        // Once caught up, tell peers about the new tip (except whoever gave it to us), so a
        // node behind a healed partition learns of it without waiting for the next block.
        if announce && self.sync_target().is_none() {
            let block = last.clone();
            self.announce_block(&block, source);
        }
        self.arm_sync_tick(now);
    }
}
