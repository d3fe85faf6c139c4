//! Blocks, transactions, genesis, and the structural rules a block must pass.
//!
//! The core checks structure (linkage, heights, hashes, sizes, Merkle roots, timestamps);
//! consensus beyond that is the application's, through [`ChainRules`].

mod block;
mod genesis;
mod rules;
mod validate;

pub use block::{merkle_root, Block, BlockHash, Header, Tx, TxId};
pub use genesis::Network;
pub use rules::{ChainRules, ChainTip, DevnetRules, RuleContext, Rules};
pub use validate::{check_block, BlockError, Limits};
