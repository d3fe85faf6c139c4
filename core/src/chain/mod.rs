//! Blocks, transactions, genesis, and the structural rules a block must pass.
//!
//! Consensus beyond structure is out of scope: the core checks linkage, heights, hashes,
//! sizes, Merkle roots and timestamps, and prefers the higher chain.

mod block;
mod genesis;
mod validate;

pub use block::{merkle_root, Block, BlockHash, Header, Tx, TxId};
pub use genesis::Network;
pub use validate::{check_block, BlockError, Limits};
