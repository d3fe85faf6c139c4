//! The fork consensus check: ask every peer for its block hash at a height, over the
//! existing connections, and act on the majority.

use std::collections::BTreeMap;
use timed_core::{BlockHash, NodeId};

/// What the check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkVerdict {
    pub height: u64,
    /// The hash most peers hold at `height`, with how many hold it.
    pub majority: Option<(BlockHash, usize)>,
    /// Peers that answered (with a hash, or "no block there").
    pub answered: usize,
    /// Peers asked that did not answer (timeout, refusal, gone).
    pub silent: usize,
    /// Whether our own hash at `height` is the majority's.
    pub we_agree: bool,
}

impl ForkVerdict {
    /// Whether the node should resync from a majority peer: a strict majority of those that
    /// answered hold a hash different from ours.
    pub fn should_resync(&self) -> bool {
        matches!(self.majority, Some((_, n)) if !self.we_agree && n * 2 > self.answered)
    }
}

/// Tallies the answers (`None` for a peer that did not answer, `Some(None)` for one with no
/// block at `height`) against our own hash.
pub fn tally(
    height: u64,
    ours: Option<BlockHash>,
    answers: &[(NodeId, Option<Option<BlockHash>>)],
) -> ForkVerdict {
    let mut counts: BTreeMap<BlockHash, usize> = BTreeMap::new();
    let mut answered = 0;
    let mut silent = 0;
    for (_, a) in answers {
        match a {
            Some(Some(h)) => {
                answered += 1;
                *counts.entry(*h).or_insert(0) += 1;
            }
            Some(None) => answered += 1,
            None => silent += 1,
        }
    }
    // Most votes first; ties broken by the smaller hash, so every node decides alike.
    let majority = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
    ForkVerdict {
        height,
        we_agree: majority.is_some_and(|(h, _)| Some(h) == ours),
        majority,
        answered,
        silent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u8) -> NodeId {
        NodeId([i; 32])
    }

    #[test]
    fn the_majority_decides_and_silence_does_not_vote() {
        let a = BlockHash([1; 32]);
        let b = BlockHash([2; 32]);
        let v = tally(
            5,
            Some(b),
            &[
                (n(1), Some(Some(a))),
                (n(2), Some(Some(a))),
                (n(3), Some(Some(b))),
                (n(4), None),
            ],
        );
        assert_eq!(v.majority, Some((a, 2)));
        assert_eq!((v.answered, v.silent), (3, 1));
        assert!(!v.we_agree);
        assert!(v.should_resync());
        let v = tally(5, Some(a), &[(n(1), Some(Some(a))), (n(2), Some(Some(b)))]);
        assert!(!v.should_resync(), "a tie is no majority against us");
    }
}
