//! Chain rules supplied by the application: block validity, fork choice and finality.
//!
//! The machine owns the mechanics — asking peers for ranges, finding a fork point by binary
//! search, fetching a branch, switching atomically in the store — and asks [`ChainRules`]
//! the three questions only a coin can answer: is this block valid on its parent, which of
//! two tips wins, and below which height the chain may never be replaced. A block the rules
//! reject scores its sender as any invalid block does.

use super::block::{Block, BlockHash, Header};
use super::validate::{check_block, BlockError, Limits};
use alloc::sync::Arc;
use core::fmt;

/// What the rules may consult besides the block and its parent.
#[derive(Clone, Copy, Debug)]
pub struct RuleContext<'a> {
    /// The node's structural limits (`Config::limits`).
    pub limits: &'a Limits,
    /// The driver's estimate of the Unix time now, if it has one.
    pub wall_secs: Option<u64>,
}

/// A chain tip as the rules compare it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChainTip {
    /// Height of the tip block.
    pub height: u64,
    /// Hash of the tip block.
    pub hash: BlockHash,
}

/// The chain's consensus rules, as the embedding application defines them.
///
/// Implementations must be deterministic (the same inputs give the same answers on every
/// node and in every replay) and cheap enough to run on every block received.
pub trait ChainRules: fmt::Debug + Send + Sync {
    /// Whether `block` is valid as the child of `parent`. The default checks structure only
    /// (see [`check_block`]); an implementation usually calls it first, then adds its own.
    fn check_block(
        &self,
        block: &Block,
        parent: &Header,
        ctx: &RuleContext<'_>,
    ) -> Result<(), BlockError> {
        check_block(block, parent, ctx.limits, ctx.wall_secs)
    }

    /// Fork choice: whether `candidate` should replace `current`. Must be a strict order
    /// (never true both ways), so two nodes cannot flip between two tips. The default: the
    /// higher chain wins and a tie keeps what we have.
    fn prefer(&self, current: &ChainTip, candidate: &ChainTip) -> bool {
        candidate.height > current.height
    }

    /// Finality: the highest height that may never be rolled back, with `tip` our best
    /// block. The machine also never reorgs deeper than `Config::max_reorg_depth`. The
    /// default adds no finality of its own.
    fn final_height(&self, tip: &ChainTip) -> u64 {
        let _ = tip;
        0
    }
}

/// Today's devnet rules: structural checks, longest chain, ties keep ours.
#[derive(Clone, Copy, Debug, Default)]
pub struct DevnetRules;

impl ChainRules for DevnetRules {}

/// The rules a machine runs, shared (the simulator restarts a node with the same rules).
#[derive(Clone)]
pub struct Rules(pub Arc<dyn ChainRules>);

impl Rules {
    /// Shares `rules` behind an `Arc`.
    pub fn new(rules: impl ChainRules + 'static) -> Self {
        Rules(Arc::new(rules))
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules::new(DevnetRules)
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl core::ops::Deref for Rules {
    type Target = dyn ChainRules;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
