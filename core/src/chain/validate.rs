use super::block::{merkle_root, Block, Header};

/// Structural limits a block must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest transaction, in bytes, in a block or the mempool. Default 64 KiB.
    pub max_tx_bytes: usize,
    /// Most transactions in one block. Default 10 000.
    pub max_block_txs: usize,
    /// Largest block, in bytes as [`Block::wire_size`] estimates it. Default 2 MiB.
    pub max_block_bytes: usize,
    /// How far in the future (seconds, against the caller's wall-clock estimate) a block time may be.
    pub max_future_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tx_bytes: 64 * 1024,
            max_block_txs: 10_000,
            max_block_bytes: 2 * 1024 * 1024,
            max_future_secs: 2 * 60 * 60,
        }
    }
}

/// Why a block was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// Its height is not one above its parent's.
    BadHeight,
    /// Its `prev` is not its parent's hash.
    Unlinked,
    /// `tx_root` does not match its transactions.
    BadTxRoot,
    /// Too many transactions, a transaction too large, or the block too large.
    TooLarge,
    /// Its time is before its parent's or too far in the future.
    BadTime,
    /// The application's rules reject it, saying why.
    Rejected(&'static str),
}

impl BlockError {
    /// A short description, for logs and `Misbehaved` details.
    pub const fn as_str(self) -> &'static str {
        match self {
            BlockError::BadHeight => "bad height",
            BlockError::Unlinked => "does not link to its parent",
            BlockError::BadTxRoot => "tx_root does not match its transactions",
            BlockError::TooLarge => "over the size limits",
            BlockError::BadTime => "timestamp out of range",
            BlockError::Rejected(why) => why,
        }
    }
}

/// Checks `block` as the child of `parent`. `wall_secs` is the caller's best estimate of the
/// current Unix time, if it has one (the simulator and the node do; a bare machine may not).
pub fn check_block(
    block: &Block,
    parent: &Header,
    limits: &Limits,
    wall_secs: Option<u64>,
) -> Result<(), BlockError> {
    let h = &block.header;
    if h.height != parent.height + 1 {
        return Err(BlockError::BadHeight);
    }
    if h.prev != parent.hash() {
        return Err(BlockError::Unlinked);
    }
    if block.txs.len() > limits.max_block_txs
        || block.txs.iter().any(|t| t.0.len() > limits.max_tx_bytes)
        || block.wire_size() > limits.max_block_bytes
    {
        return Err(BlockError::TooLarge);
    }
    if h.time < parent.time {
        return Err(BlockError::BadTime);
    }
    if let Some(now) = wall_secs {
        if h.time > now.saturating_add(limits.max_future_secs) {
            return Err(BlockError::BadTime);
        }
    }
    if h.tx_root != merkle_root(&block.txs) {
        return Err(BlockError::BadTxRoot);
    }
    Ok(())
}
