//! The chain layer: sync from any height, fork resolution, gossip, mempool, block
//! production and peer exchange.
//!
//! There is no "syncing" flag. Whether we sync is derived from the best heights peers
//! reported and the range requests in flight, so there is nothing that can get stuck: if a
//! peer is ahead, the next tick asks for the next range; if it stalls, the request times out
//! and another peer gets the range. The tick runs only while there is sync work (a peer
//! ahead, ranges out, blocks waiting, a fork being resolved): a node in step with its peers
//! has no periodic chain work at all, which is what lets the simulator run 10 000 of them.

use super::app::Seen;
use super::io::{Action, Direction, Misbehaviour, NodeEvent, QueryError, TxError};
use super::mempool::{Mempool, Refusal};
use super::query::Origin;
use super::timer::Timer;
use super::PeerMachine;
use crate::chain::{Block, BlockHash, ChainTip, Header, RuleContext, Tx, TxId};
use crate::id::{ConnId, NodeId};
use crate::protocol::{builtin, TopicId, Verdict};
use crate::store::{AddrEntry, Store, StoreOp};
use crate::time::{Duration, Instant};
use crate::wire::{PeerAddr, RefuseReason, RequestBody, ResponseBody};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::vec::Vec;
use core::net::SocketAddr;

/// How often sync progress and stalls are checked while there is sync work.
const SYNC_TICK: Duration = Duration::from_secs(1);
/// A peer whose range request timed out is not asked again for this long.
const STALL_PENALTY: Duration = Duration::from_secs(60);
/// Blocks per response we serve, whatever the peer asks.
const MAX_BLOCKS_PER_RESPONSE: u32 = 1000;
/// Remembered block and transaction hashes, for gossip dedup.
const SEEN_MAX: usize = 16_384;
use super::MAX_ADDRS_PER_RESPONSE;
/// Dial failures after which an address leaves the book.
const MAX_ADDR_FAILURES: u32 = 8;

/// A request the chain layer is waiting on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ChainReq {
    /// A range for sync, starting at `from`.
    Range {
        from: u64,
    },
    /// The peer's hash at a height, during a fork search.
    ForkProbe {
        height: u64,
    },
    /// A branch range during a fork switch.
    Branch {
        from: u64,
    },
    Tip,
    Peers,
}

#[derive(Debug)]
struct InFlight {
    count: u64,
}

/// Binary search for the last common block with one peer, then fetching its branch.
#[derive(Debug)]
struct Fork {
    node: NodeId,
    /// Highest height known common.
    lo: u64,
    /// Lowest height known different.
    hi: u64,
    /// Branch blocks fetched so far, from `lo + 1`.
    branch: Vec<Block>,
    fetching: bool,
}

#[derive(Debug)]
pub(crate) struct ChainState {
    pub tip: (u64, BlockHash),
    tip_header: Option<Header>,
    /// Best height and hash each peer has shown us.
    peer_best: BTreeMap<NodeId, (u64, BlockHash)>,
    stalled_until: BTreeMap<NodeId, Instant>,
    in_flight: BTreeMap<u64, InFlight>,
    /// Blocks received ahead of our tip, waiting for the gap to fill. Bounded by what is
    /// requested: `sync_parallel × sync_batch`.
    pending: BTreeMap<u64, (NodeId, Block)>,
    fork: Option<Fork>,
    seen_blocks: Seen<BlockHash>,
    seen_txs: Seen<TxId>,
    mempool: Mempool,
    book: super::book::Book,
    /// Which node a listening address belongs to, when known: keeps peer exchange from
    /// dialing peers we already have.
    addr_node: BTreeMap<SocketAddr, NodeId>,
    /// Book addresses not to dial before the given instant: backoff after a failed attempt
    /// or a lost peer, so a peer that just said goodbye is not redialed at once.
    retry_at: BTreeMap<SocketAddr, Instant>,
    rr: u64,
}

impl ChainState {
    pub fn new(cfg: &crate::config::Config) -> Self {
        ChainState {
            tip: Default::default(),
            tip_header: None,
            peer_best: BTreeMap::new(),
            stalled_until: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            pending: BTreeMap::new(),
            fork: None,
            seen_blocks: Seen::new(SEEN_MAX),
            seen_txs: Seen::new(SEEN_MAX),
            mempool: Mempool::new(cfg.mempool_max, cfg.mempool_max_bytes),
            book: Default::default(),
            addr_node: BTreeMap::new(),
            retry_at: BTreeMap::new(),
            rr: 0,
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
            Ok(list) => {
                for e in list.into_iter().take(self.cfg.addr_book_max) {
                    self.chain.book.put(e);
                }
            }
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

    fn load_tip(&mut self) -> Result<(), (StoreOp, S::Error)> {
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
    fn wall_secs(&self, now: Instant) -> Option<u64> {
        self.cfg
            .unix_time_at_zero
            .map(|z| z + now.as_micros() / 1_000_000)
    }

    pub(crate) fn sync_target(&self) -> Option<u64> {
        let best = self.chain.peer_best.values().map(|(h, _)| *h).max()?;
        (best > self.chain.tip.0).then_some(best)
    }

    // ---- peers coming and going ------------------------------------------------------------

    pub(crate) fn chain_peer_up(&mut self, now: Instant, node: NodeId, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let listen = c.listen_addr();
        if let Some(r) = &c.remote {
            self.chain
                .peer_best
                .insert(node, (r.best_height, r.best_hash));
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
    fn ask_chain(&mut self, now: Instant, conn: ConnId, req: ChainReq, body: RequestBody) {
        let _ = self.chain_request(now, conn, req, &body);
    }

    /// Sends a built-in request on behalf of the chain layer: the same path, limits and
    /// accounting as any application request.
    fn chain_request(
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
        self.chain.peer_best.remove(&node);
        if self.chain.fork.as_ref().is_some_and(|f| f.node == node) {
            self.chain.fork = None;
        }
        // Its ranges in flight ended with PeerGone through `chain_request_failed`.
        self.drive_sync(now);
        // Replace the lost peer from the book, but not by redialing it at once.
        let lost: Vec<SocketAddr> = self
            .chain
            .addr_node
            .iter()
            .filter(|(_, n)| **n == node)
            .map(|(a, _)| *a)
            .collect();
        for a in lost {
            self.book_backoff(now, a);
        }
        if self.timers.get(Timer::TopUp).is_none() {
            self.timers
                .set(Timer::TopUp, now + self.cfg.backoff_initial);
        }
    }

    /// Holds back dials to a book address: `backoff_initial` doubled per recorded failure,
    /// up to `backoff_max`, with up to +25 % jitter.
    pub(crate) fn book_backoff(&mut self, now: Instant, addr: SocketAddr) {
        let failures = self
            .chain
            .book
            .get(&PeerAddr::from(addr))
            .map_or(0, |e| e.failures);
        let base = self
            .cfg
            .backoff_initial
            .saturating_mul(1u64 << failures.min(16))
            .min(self.cfg.backoff_max);
        let jitter = self.rng.below(base.as_micros() / 4 + 1);
        let at = now + Duration::from_micros(base.as_micros() + jitter);
        let e = self.chain.retry_at.entry(addr).or_insert(at);
        *e = (*e).max(at);
    }

    // ---- serving peers --------------------------------------------------------------------

    pub(crate) fn serve_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        body: RequestBody,
    ) -> Result<ResponseBody, RefuseReason> {
        let result = match body {
            RequestBody::Tip => Ok(ResponseBody::Tip {
                height: self.chain.tip.0,
                hash: self.chain.tip.1,
            }),
            RequestBody::HashAt { height } => self.store.hash_at(height).map(ResponseBody::HashAt),
            RequestBody::Blocks { from, count } => {
                self.blocks_from(from, count).map(ResponseBody::Blocks)
            }
            RequestBody::Peers => Ok(ResponseBody::Peers(self.addrs_for(conn))),
        };
        result.map_err(|e| {
            self.fatal(now, StoreOp::ServeRequest, e);
            RefuseReason::Unavailable
        })
    }

    fn blocks_from(&self, from: u64, count: u32) -> Result<Vec<Block>, S::Error> {
        let count = count.min(MAX_BLOCKS_PER_RESPONSE) as u64;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for h in from..from.saturating_add(count) {
            let Some(b) = self.store.block_at(h)? else {
                break;
            };
            bytes += b.wire_size();
            if bytes > self.cfg.max_response_bytes && !out.is_empty() {
                break;
            }
            out.push(b);
        }
        Ok(out)
    }

    fn addrs_for(&self, conn: ConnId) -> Vec<PeerAddr> {
        let asker = self
            .conns
            .get(&conn)
            .and_then(|c| c.listen_addr())
            .map(PeerAddr::from);
        let mut out: Vec<PeerAddr> = Vec::new();
        // Peers we are connected to first: they are known good. Then the book, whose entries
        // are distinct, so a duplicate can only be one of the peers already listed: checking
        // that short prefix replaces a set of everything taken.
        for a in self
            .peers
            .values()
            .filter_map(|id| self.conns.get(id)?.listen_addr())
            .map(PeerAddr::from)
        {
            if out.len() >= MAX_ADDRS_PER_RESPONSE {
                return out;
            }
            if Some(a) != asker && !out.contains(&a) {
                out.push(a);
            }
        }
        let connected = out.len();
        for a in self
            .chain
            .book
            .values()
            .filter(|e| e.failures == 0)
            .map(|e| e.addr)
        {
            if out.len() >= MAX_ADDRS_PER_RESPONSE {
                break;
            }
            if Some(a) != asker && !out[..connected].contains(&a) {
                out.push(a);
            }
        }
        out
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
                self.chain.in_flight.remove(&from);
                if !self.check_range_shape(now, conn, from, &asked, &blocks) {
                    return;
                }
                if blocks.is_empty() {
                    // The peer no longer has what it claimed (it reorged, or it lied): believe
                    // its silence, not its claim.
                    if let Some(b) = self.chain.peer_best.get_mut(&node) {
                        b.0 = b.0.min(from.saturating_sub(1));
                    }
                } else {
                    for b in blocks {
                        self.chain.pending.insert(b.header.height, (node, b));
                    }
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
    fn check_range_shape(
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
                self.chain.in_flight.remove(&from);
                if err == QueryError::Timeout {
                    if let Some(n) = node {
                        self.chain.stalled_until.insert(n, now + STALL_PENALTY);
                    }
                }
                if !self.stopped {
                    self.drive_sync(now);
                }
            }
            ChainReq::ForkProbe { .. } | ChainReq::Branch { .. } => {
                self.chain.fork = None;
                if let (Some(n), QueryError::Timeout) = (node, err) {
                    self.chain.stalled_until.insert(n, now + STALL_PENALTY);
                }
                if !self.stopped {
                    self.drive_sync(now);
                }
            }
            ChainReq::Tip | ChainReq::Peers => {}
        }
    }

    fn note_peer_best(&mut self, node: NodeId, height: u64, hash: BlockHash) {
        let e = self.chain.peer_best.entry(node).or_insert((height, hash));
        if height >= e.0 {
            *e = (height, hash);
        }
    }

    // ---- sync -----------------------------------------------------------------------------

    pub(crate) fn sync_tick(&mut self, now: Instant) {
        self.chain.stalled_until.retain(|_, until| *until > now);
        self.drive_sync(now);
    }

    /// Whether sync has anything left to do: a peer ahead of us, ranges requested or
    /// received ahead of the tip, or a fork being resolved.
    fn sync_busy(&self) -> bool {
        self.sync_target().is_some()
            || !self.chain.in_flight.is_empty()
            || !self.chain.pending.is_empty()
            || self.chain.fork.is_some()
    }

    /// Keeps the sync tick armed exactly while there is sync work. The tick is the safety
    /// net behind the event-driven calls to [`drive_sync`](Self::drive_sync): it retries
    /// peers whose stall penalty ran out. An armed tick keeps its deadline (re-arming on every
    /// call would postpone it forever while responses keep arriving).
    fn arm_sync_tick(&mut self, now: Instant) {
        if !self.stopped && self.sync_busy() {
            if self.timers.get(Timer::Sync).is_none() {
                self.timers.set(Timer::Sync, now + SYNC_TICK);
            }
        } else {
            self.timers.cancel(Timer::Sync);
            self.chain.stalled_until.retain(|_, until| *until > now);
        }
    }

    /// Asks peers ahead of us for the next ranges, up to `sync_parallel` in flight, and
    /// keeps the sync tick armed while anything is left.
    fn drive_sync(&mut self, now: Instant) {
        self.request_ranges(now);
        self.contest_equal_tip(now);
        self.arm_sync_tick(now);
    }

    /// Fork choice beyond height: a peer at our height on another tip that the rules
    /// prefer (a tie-break rule) is not "ahead", so range sync never asks it; search for the
    /// fork point with it instead. With the default rules a tie keeps ours and this does
    /// nothing.
    fn contest_equal_tip(&mut self, now: Instant) {
        if self.stopped
            || self.chain.fork.is_some()
            || !self.chain.in_flight.is_empty()
            || !self.chain.pending.is_empty()
        {
            return;
        }
        let ours = ChainTip {
            height: self.chain.tip.0,
            hash: self.chain.tip.1,
        };
        let rules = self.cfg.rules.clone();
        let contender = self.chain.peer_best.iter().find(|(n, (h, hash))| {
            *h == ours.height
                && *hash != ours.hash
                && self.peers.contains_key(n)
                && self.chain.stalled_until.get(n).is_none_or(|u| *u <= now)
                && rules.prefer(
                    &ours,
                    &ChainTip {
                        height: *h,
                        hash: *hash,
                    },
                )
        });
        if let Some((&node, _)) = contender {
            self.start_fork_search(now, node);
        }
    }

    fn request_ranges(&mut self, now: Instant) {
        if self.stopped || self.chain.fork.is_some() {
            return;
        }
        let batch = self.cfg.sync_batch as u64;
        let mut next = self.chain.tip.0 + 1;
        while self.chain.in_flight.len() < self.cfg.sync_parallel {
            // The lowest height neither applied, pending, nor requested.
            while let Some(f) = self
                .chain
                .in_flight
                .range(..=next)
                .next_back()
                .filter(|(f, r)| **f + r.count > next)
            {
                next = *f.0 + f.1.count;
            }
            while self.chain.pending.contains_key(&next) {
                next += 1;
            }
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
            self.chain.in_flight.insert(next, InFlight { count });
            next += count;
        }
    }

    /// A peer that has `height`, preferring peers not recently stalled, rotating among them.
    fn pick_sync_peer(&mut self, now: Instant, height: u64) -> Option<(NodeId, u64)> {
        let candidates: Vec<(NodeId, u64)> = self
            .chain
            .peer_best
            .iter()
            .filter(|(n, (h, _))| *h >= height && self.peers.contains_key(n))
            .filter(|(n, _)| self.chain.stalled_until.get(n).is_none_or(|u| *u <= now))
            .map(|(n, (h, _))| (*n, *h))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        self.chain.rr = self.chain.rr.wrapping_add(1);
        Some(candidates[(self.chain.rr % candidates.len() as u64) as usize])
    }

    /// Applies pending blocks that extend the tip, one store transaction per batch.
    fn apply_pending(&mut self, now: Instant) {
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
        while let Some((node, block)) = self.chain.pending.remove(&(parent.height + 1)) {
            match rules.check_block(&block, &parent, &ctx) {
                Ok(()) => {
                    parent = block.header.clone();
                    batch.push(block);
                }
                Err(crate::chain::BlockError::Unlinked) if batch.is_empty() => {
                    // The peer's chain diverges from ours below this height: find where.
                    self.chain.pending.clear();
                    self.start_fork_search(now, node);
                    break;
                }
                Err(e) => {
                    self.chain.pending.retain(|_, (n, _)| *n != node);
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
    fn commit(
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

    // ---- forks ----------------------------------------------------------------------------

    fn start_fork_search(&mut self, now: Instant, node: NodeId) {
        let tip = self.chain.tip.0;
        let tip_view = ChainTip {
            height: tip,
            hash: self.chain.tip.1,
        };
        // Never below what the rules call final, nor deeper than `max_reorg_depth`.
        let lo = tip
            .saturating_sub(self.cfg.max_reorg_depth)
            .max(self.cfg.rules.final_height(&tip_view).min(tip));
        self.chain.in_flight.clear();
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

    fn fork_probe(&mut self, now: Instant, height: u64) {
        self.fork_request(
            now,
            ChainReq::ForkProbe { height },
            RequestBody::HashAt { height },
        );
    }

    /// Sends a request of the fork search to the forking peer; abandons the search if that
    /// peer is gone or saturated (sync then resumes and may find the fork again).
    fn fork_request(&mut self, now: Instant, req: ChainReq, body: RequestBody) {
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

    fn on_fork_probe(
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
            self.chain.peer_best.remove(&node);
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

    fn fetch_branch(&mut self, now: Instant, from: u64) {
        let count = self.cfg.sync_batch;
        self.fork_request(
            now,
            ChainReq::Branch { from },
            RequestBody::Blocks { from, count },
        );
    }

    /// Accumulates the peer's branch; switches once it is higher than our chain.
    fn on_branch(&mut self, now: Instant, node: NodeId, from: u64, blocks: Vec<Block>) {
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
                self.chain.peer_best.remove(&node);
                return self.drive_sync(now);
            }
            let next = branch_tip + 1;
            return self.fetch_branch(now, next);
        }
        let Some(fork) = self.chain.fork.take() else {
            return;
        };
        // Validate the whole branch on top of the common block before touching the store.
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
        // Transactions of the abandoned blocks go back to the mempool? Out of scope: consensus
        // rules are not ours; they are simply no longer applied.
        self.chain.pending.clear();
        self.chain.in_flight.clear();
        self.commit(now, Some(fork.lo), fork.branch, Some(node), true);
        self.drive_sync(now);
    }

    // ---- gossip ---------------------------------------------------------------------------

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
    fn announce_block(&mut self, block: &Block, except: Option<NodeId>) {
        let payload = crate::protocol::encode(block);
        let _ = self.publish_from(builtin::BLOCK_TOPIC, &payload, except);
    }

    fn on_block_announce(&mut self, now: Instant, conn: ConnId, block: Block) -> Verdict {
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

    fn on_tx_broadcast(&mut self, tx: Tx, conn: ConnId) -> Verdict {
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
    fn accept_tx(&mut self, tx: Tx, _source: Option<NodeId>) -> Result<TxId, TxError> {
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

    // ---- production -----------------------------------------------------------------------

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

    // ---- peer exchange --------------------------------------------------------------------

    pub(crate) fn peer_exchange_tick(&mut self, now: Instant) {
        self.timers
            .set(Timer::PeerExchange, now + self.cfg.peer_exchange_interval);
        // One peer per interval, picked at random: every peer already told us its tip in its
        // `Hello` and announces new blocks, and every peer we dial is asked for addresses when it
        // comes up, so this poll is only the safety net for lost announcements and a stale
        // book. Polling every peer each time cost O(peers²) messages across the network for
        // no added information.
        if !self.peers.is_empty() {
            let pick = (self.rng.next_u64() % self.peers.len() as u64) as usize;
            if let Some(&conn) = self.peers.values().nth(pick) {
                self.ask_chain(now, conn, ChainReq::Peers, RequestBody::Peers);
                self.ask_chain(now, conn, ChainReq::Tip, RequestBody::Tip);
            }
        }
        self.top_up_outbound(now);
    }

    /// Adds an address to the book (bounded: the entry with most failures goes first).
    fn learn_addr(&mut self, addr: SocketAddr, node: Option<NodeId>, seen: bool) {
        if addr.port() == 0 || addr.ip().is_unspecified() || self.never_dial.contains(&addr) {
            return;
        }
        if let Some(n) = node {
            if self.chain.addr_node.len() >= self.cfg.addr_book_max
                && !self.chain.addr_node.contains_key(&addr)
            {
                self.chain.addr_node.pop_first();
            }
            self.chain.addr_node.insert(addr, n);
        }
        let key = PeerAddr::from(addr);
        let full = self.chain.book.len() >= self.cfg.addr_book_max;
        if !seen && full && !self.chain.book.any_failing() {
            // Hearsay into a full, healthy book changes nothing whether or not the address
            // is known (a known one keeps its entry as it is): decided without a lookup,
            // for every address of every `Peers` response once the book has filled.
            return;
        }
        let before = self.chain.book.get(&key).copied();
        if before.is_none() && full {
            // A hearsay address does not evict a known one unless that one is failing.
            if !seen && !self.chain.book.any_failing() {
                return;
            }
            match self.chain.book.worst().map(|e| e.addr) {
                Some(w) => self.evict_addr(w),
                None => return,
            }
        }
        let mut entry = before.unwrap_or(AddrEntry {
            addr: key,
            failures: 0,
            last_seen: None,
        });
        if seen {
            entry.failures = 0;
            entry.last_seen = Some(self.now.as_micros());
        }
        self.chain.book.put(entry);
        // Hearsay about an address we already know changes nothing: spare the store a write
        // (with LMDB, a transaction) for every address in every `Peers` response.
        if before == Some(entry) {
            return;
        }
        if let Err(err) = self.store.put_addr(entry) {
            let now = self.now;
            self.fatal(now, StoreOp::WriteAddrs, err);
        }
    }

    fn evict_addr(&mut self, addr: PeerAddr) {
        self.chain.book.remove(&addr);
        if let Err(err) = self.store.remove_addr(addr) {
            let now = self.now;
            self.fatal(now, StoreOp::WriteAddrs, err);
        }
    }

    /// An outbound attempt to `addr` ended: count failures in the book.
    pub(crate) fn book_conn_closed(
        &mut self,
        _now: Instant,
        addr: SocketAddr,
        dir: Direction,
        state: super::conn::ConnState,
    ) {
        if dir != Direction::Outbound || state == super::conn::ConnState::Established {
            return;
        }
        let key = PeerAddr::from(addr);
        let Some(mut entry) = self.chain.book.get(&key).copied() else {
            return;
        };
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= MAX_ADDR_FAILURES {
            self.evict_addr(key);
        } else {
            self.chain.book.put(entry);
            if let Err(err) = self.store.put_addr(entry) {
                let now = self.now;
                self.fatal(now, StoreOp::WriteAddrs, err);
            }
        }
    }

    /// Dials addresses from the book until `target_outbound` outbound connections exist or
    /// are being made.
    pub(crate) fn top_up_outbound(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        let outbound = self
            .conns
            .values()
            .filter(|c| c.dir == Direction::Outbound)
            .count();
        let mut want = self.cfg.target_outbound.saturating_sub(outbound);
        if want == 0 {
            return;
        }
        let connected: BTreeSet<NodeId> = self.peers.keys().copied().collect();
        self.chain.retry_at.retain(|_, at| *at > now);
        let retry_at = &self.chain.retry_at;
        let mut candidates: Vec<(u32, SocketAddr)> = self
            .chain
            .book
            .values()
            .map(|e| (e.failures, SocketAddr::from(e.addr)))
            .filter(|(_, a)| !self.targets.contains_key(a) && !self.never_dial.contains(a))
            .filter(|(_, a)| !retry_at.contains_key(a))
            .filter(|(_, a)| {
                self.chain
                    .addr_node
                    .get(a)
                    .is_none_or(|n| !connected.contains(n))
            })
            .collect();
        // Fewest failures first; the seeded RNG breaks ties so nodes spread their dials.
        let mut keyed: Vec<(u32, u64, SocketAddr)> = candidates
            .drain(..)
            .map(|(f, a)| (f, self.rng.next_u64(), a))
            .collect();
        keyed.sort();
        for (_, _, addr) in keyed {
            if want == 0 {
                break;
            }
            self.add_target(now, addr, false);
            want -= 1;
        }
        // Still short, and some addresses are only waiting out their backoff: come back then.
        if want > 0 {
            if let Some(&next) = self.chain.retry_at.values().min() {
                self.timers.set(Timer::TopUp, next);
            }
        }
    }

    /// Redials the persistent targets that reached `node`.
    pub(crate) fn redial_node(&mut self, now: Instant, node: NodeId) {
        let addrs: Vec<SocketAddr> = self
            .targets
            .iter()
            .filter(|(_, t)| t.node == Some(node) && t.conn.is_none())
            .map(|(a, _)| *a)
            .collect();
        for a in addrs {
            self.dial_now(now, a);
        }
    }
}
