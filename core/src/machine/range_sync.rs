//! Range sync's own state: what each peer told us of its tip, which peers are penalised for
//! stalling, the ranges requested, and the blocks received ahead of our tip.
//!
//! It decides which height to ask for next and whom to ask; the machine sends the requests,
//! validates and commits the blocks.

use crate::chain::{Block, BlockHash};
use crate::id::NodeId;
use crate::time::Instant;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

#[derive(Debug, Default)]
pub(crate) struct RangeSync {
    /// Best height and hash each peer has shown us.
    best: BTreeMap<NodeId, (u64, BlockHash)>,
    /// Peers not to ask before the given instant (a range of theirs timed out).
    stalled_until: BTreeMap<NodeId, Instant>,
    /// Ranges requested: first height → block count.
    in_flight: BTreeMap<u64, u64>,
    /// Blocks received ahead of our tip, waiting for the gap to fill. Bounded by what is
    /// requested: `sync_parallel × sync_batch`.
    pending: BTreeMap<u64, (NodeId, Block)>,
    /// Rotates the choice among peers that have a height.
    rr: u64,
}

impl RangeSync {
    // ---- what peers told us -------------------------------------------------------------

    /// A peer showed us a tip at `height` (a `Hello`, a `Tip` answer, an announcement); a
    /// lower one than it showed before changes nothing.
    pub fn note_best(&mut self, node: NodeId, height: u64, hash: BlockHash) {
        let e = self.best.entry(node).or_insert((height, hash));
        if height >= e.0 {
            *e = (height, hash);
        }
    }

    /// The peer's handshake tip, replacing whatever it showed before.
    pub fn set_best(&mut self, node: NodeId, height: u64, hash: BlockHash) {
        self.best.insert(node, (height, hash));
    }

    /// The peer does not have what it claimed above `height`: believe its silence.
    pub fn lower_best(&mut self, node: NodeId, height: u64) {
        if let Some(b) = self.best.get_mut(&node) {
            b.0 = b.0.min(height);
        }
    }

    /// Forgets the peer's tip (it left, or its branch lost).
    pub fn forget(&mut self, node: NodeId) {
        self.best.remove(&node);
    }

    /// The highest tip any peer has shown.
    pub fn best_height(&self) -> Option<u64> {
        self.best.values().map(|(h, _)| *h).max()
    }

    // ---- stalls ---------------------------------------------------------------------------

    pub fn stall(&mut self, node: NodeId, until: Instant) {
        self.stalled_until.insert(node, until);
    }

    /// Forgets penalties that are over.
    pub fn prune_stalls(&mut self, now: Instant) {
        self.stalled_until.retain(|_, until| *until > now);
    }

    fn stalled(&self, node: &NodeId, now: Instant) -> bool {
        self.stalled_until.get(node).is_some_and(|u| *u > now)
    }

    // ---- ranges and blocks ----------------------------------------------------------------

    /// Whether ranges are out or blocks wait for a gap.
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty() || !self.pending.is_empty()
    }

    pub fn ranges_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The lowest height from `from` on neither pending nor requested.
    pub fn next_gap(&self, from: u64) -> u64 {
        let mut next = from;
        loop {
            let covered = self
                .in_flight
                .range(..=next)
                .next_back()
                .filter(|(f, count)| **f + **count > next);
            match covered {
                Some((f, count)) => next = f + count,
                None if self.pending.contains_key(&next) => next += 1,
                None => return next,
            }
        }
    }

    /// A range was requested.
    pub fn requested(&mut self, from: u64, count: u64) {
        self.in_flight.insert(from, count);
    }

    /// The range from `from` ended (answered or failed).
    pub fn range_done(&mut self, from: u64) {
        self.in_flight.remove(&from);
    }

    /// Blocks of a range, held until they extend the tip.
    pub fn buffer(&mut self, node: NodeId, blocks: Vec<Block>) {
        for b in blocks {
            self.pending.insert(b.header.height, (node, b));
        }
    }

    /// The held block at `height`, if any, and who sent it.
    pub fn take_pending(&mut self, height: u64) -> Option<(NodeId, Block)> {
        self.pending.remove(&height)
    }

    /// Drops every held block `node` sent (one of them was invalid).
    pub fn drop_from(&mut self, node: NodeId) {
        self.pending.retain(|_, (n, _)| *n != node);
    }

    /// Drops every held block and forgets every range (a fork switch rewrote the chain).
    pub fn reset_ranges(&mut self) {
        self.pending.clear();
        self.in_flight.clear();
    }

    /// Forgets every range requested, so none counts as in flight.
    pub fn forget_ranges(&mut self) {
        self.in_flight.clear();
    }

    /// Drops every held block (they build on a chain we do not follow).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
    }

    // ---- whom to ask ------------------------------------------------------------------------

    /// A peer that has `height`, not stalled, rotating among them; `connected` says which
    /// nodes are peers now. Returns it with its best height.
    pub fn pick_peer(
        &mut self,
        now: Instant,
        height: u64,
        connected: impl Fn(&NodeId) -> bool,
    ) -> Option<(NodeId, u64)> {
        let candidates: Vec<(NodeId, u64)> = self
            .best
            .iter()
            .filter(|(n, (h, _))| *h >= height && connected(n) && !self.stalled(n, now))
            .map(|(n, (h, _))| (*n, *h))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        self.rr = self.rr.wrapping_add(1);
        candidates
            .get((self.rr % candidates.len() as u64) as usize)
            .copied()
    }

    /// A connected, unstalled peer at exactly `height` on another tip that `wins` prefers
    /// to ours: range sync never asks it (it is not ahead), so a fork search must.
    pub fn contender(
        &self,
        now: Instant,
        height: u64,
        ours: BlockHash,
        connected: impl Fn(&NodeId) -> bool,
        wins: impl Fn(u64, BlockHash) -> bool,
    ) -> Option<NodeId> {
        self.best
            .iter()
            .find(|(n, (h, hash))| {
                *h == height
                    && *hash != ours
                    && connected(n)
                    && !self.stalled(n, now)
                    && wins(*h, *hash)
            })
            .map(|(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Network;

    fn node(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    fn hash(n: u8) -> BlockHash {
        BlockHash([n; 32])
    }

    fn blocks(from: u64, n: u64) -> Vec<Block> {
        let mut parent = Network::Devnet.genesis().header;
        let mut out = Vec::new();
        for _ in 0..from + n - 1 {
            let b = Block::build(&parent, parent.time + 1, Vec::new());
            parent = b.header.clone();
            out.push(b);
        }
        out.split_off((from - 1) as usize)
    }

    #[test]
    fn a_peer_best_only_moves_up_unless_its_silence_lowers_it() {
        let mut s = RangeSync::default();
        s.note_best(node(1), 10, hash(1));
        s.note_best(node(1), 5, hash(2));
        assert_eq!(s.best_height(), Some(10));
        s.lower_best(node(1), 3);
        assert_eq!(s.best_height(), Some(3));
        s.forget(node(1));
        assert_eq!(s.best_height(), None);
    }

    #[test]
    fn the_next_gap_skips_ranges_in_flight_and_blocks_held() {
        let mut s = RangeSync::default();
        assert_eq!(s.next_gap(1), 1);
        s.requested(1, 10);
        assert_eq!(s.next_gap(1), 11);
        s.buffer(node(1), blocks(11, 2));
        assert_eq!(s.next_gap(1), 13);
        s.requested(13, 5);
        assert_eq!(
            s.next_gap(1),
            18,
            "a range after held blocks is skipped too"
        );
        s.range_done(1);
        assert_eq!(s.next_gap(1), 1, "the range ended unanswered: ask again");
        assert!(s.busy());
        s.reset_ranges();
        assert!(!s.busy());
    }

    #[test]
    fn peers_are_picked_in_turn_among_those_ahead_and_not_stalled() {
        let mut s = RangeSync::default();
        for n in 1..=3 {
            s.note_best(node(n), 10 * u64::from(n), hash(n));
        }
        let t = Instant::ZERO;
        let all = |_: &NodeId| true;
        let mut seen: Vec<NodeId> = (0..4)
            .filter_map(|_| s.pick_peer(t, 15, all))
            .map(|(n, _)| n)
            .collect();
        seen.dedup();
        assert_eq!(seen.len(), 4, "alternates between the two peers ahead");
        assert!(seen.iter().all(|n| *n != node(1)), "node 1 is not at 15");
        s.stall(node(2), Instant(1_000_000));
        assert_eq!(s.pick_peer(t, 15, all), Some((node(3), 30)));
        assert_eq!(s.pick_peer(t, 15, |n| *n != node(3)), None);
        s.prune_stalls(Instant(1_000_000));
        assert!(s
            .pick_peer(Instant(1_000_000), 15, |n| *n == node(2))
            .is_some());
    }

    #[test]
    fn held_blocks_come_out_by_height_and_a_bad_sender_loses_them_all() {
        let mut s = RangeSync::default();
        s.buffer(node(1), blocks(1, 2));
        s.buffer(node(2), blocks(3, 1));
        assert_eq!(
            s.take_pending(1).map(|(n, b)| (n, b.header.height)),
            Some((node(1), 1))
        );
        s.drop_from(node(1));
        assert!(s.take_pending(2).is_none());
        assert_eq!(s.take_pending(3).map(|(n, _)| n), Some(node(2)));
    }

    #[test]
    fn a_contender_is_at_our_height_on_a_tip_the_rules_prefer() {
        let mut s = RangeSync::default();
        s.note_best(node(1), 5, hash(9));
        s.note_best(node(2), 5, hash(7));
        let t = Instant::ZERO;
        let prefer_nine = |_: u64, h: BlockHash| h == hash(9);
        assert_eq!(
            s.contender(t, 5, hash(7), |_| true, prefer_nine),
            Some(node(1))
        );
        assert_eq!(
            s.contender(t, 5, hash(9), |_| true, prefer_nine),
            None,
            "ours already"
        );
        assert_eq!(s.contender(t, 6, hash(7), |_| true, prefer_nine), None);
    }
}
