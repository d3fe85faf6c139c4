use alloc::vec::Vec;
use core::fmt;
use sha2::{Digest, Sha256};

/// sha256 of a block's encoded header.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct BlockHash(pub [u8; 32]);

/// sha256 of a transaction's bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct TxId(pub [u8; 32]);

macro_rules! hex_debug {
    ($t:ty, $name:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "("))?;
                for b in &self.0[..6] {
                    write!(f, "{b:02x}")?;
                }
                write!(f, ")")
            }
        }
    };
}
hex_debug!(BlockHash, "BlockHash");
hex_debug!(TxId, "TxId");

/// A block header. Its hash is the block's identity.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// The block's height: 0 for genesis, its parent's plus one otherwise.
    pub height: u64,
    /// The hash of the parent block's header; all zeros for genesis.
    pub prev: BlockHash,
    /// Seconds since the Unix epoch, as claimed by the producer.
    pub time: u64,
    /// The [`merkle_root`] of the block's transactions.
    pub tx_root: [u8; 32],
}

/// An opaque transaction. The core bounds its size and deduplicates it by hash; what it means
/// is the application's business.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Tx(pub Vec<u8>);

/// A block: a header and the transactions it commits to.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Block {
    /// The header; its hash is the block's.
    pub header: Header,
    /// The transactions, in order; `header.tx_root` is their Merkle root.
    pub txs: Vec<Tx>,
}

impl Header {
    /// The canonical encoding the hash is taken over: fixed width, little endian, so it can
    /// never depend on a serializer's choices.
    pub fn encode(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[0..8].copy_from_slice(&self.height.to_le_bytes());
        out[8..40].copy_from_slice(&self.prev.0);
        out[40..48].copy_from_slice(&self.time.to_le_bytes());
        out[48..80].copy_from_slice(&self.tx_root);
        out
    }

    /// sha256 of [`encode`](Self::encode): the block's identity.
    pub fn hash(&self) -> BlockHash {
        BlockHash(Sha256::digest(self.encode()).into())
    }
}

impl Tx {
    /// sha256 of the transaction's bytes.
    pub fn id(&self) -> TxId {
        TxId(Sha256::digest(&self.0).into())
    }
}

impl Block {
    /// The hash of the block's header.
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The block's height, from its header.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Builds a block on top of `prev` with a correct Merkle root.
    pub fn build(prev: &Header, time: u64, txs: Vec<Tx>) -> Block {
        let tx_root = merkle_root(&txs);
        Block {
            header: Header {
                height: prev.height + 1,
                prev: prev.hash(),
                time,
                tx_root,
            },
            txs,
        }
    }

    /// Bytes this block occupies on the wire (approximately: payload bytes plus per-item
    /// overhead), used for response byte caps without serializing twice.
    pub fn wire_size(&self) -> usize {
        80 + 10 + self.txs.iter().map(|t| t.0.len() + 5).sum::<usize>()
    }
}

/// sha256 Merkle root over transaction ids; the last node is paired with itself on odd
/// levels, and an empty block has the all-zero root.
pub fn merkle_root(txs: &[Tx]) -> [u8; 32] {
    if txs.is_empty() {
        return [0u8; 32];
    }
    let mut level: Vec<[u8; 32]> = txs.iter().map(|t| t.id().0).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            let right = pair.get(1).unwrap_or(&pair[0]);
            let mut h = Sha256::new();
            h.update(pair[0]);
            h.update(right);
            next.push(h.finalize().into());
        }
        level = next;
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn merkle_root_changes_with_any_tx_and_with_order() {
        let a = Tx(vec![1]);
        let b = Tx(vec![2]);
        let c = Tx(vec![3]);
        let r1 = merkle_root(&[a.clone(), b.clone(), c.clone()]);
        let r2 = merkle_root(&[a.clone(), c.clone(), b.clone()]);
        let r3 = merkle_root(&[a.clone(), b.clone()]);
        assert_ne!(r1, r2);
        assert_ne!(r1, r3);
        assert_eq!(merkle_root(&[]), [0u8; 32]);
        assert_eq!(merkle_root(core::slice::from_ref(&a)), a.id().0);
    }

    #[test]
    fn header_hash_covers_every_field() {
        let h = Header {
            height: 1,
            prev: BlockHash([1; 32]),
            time: 5,
            tx_root: [2; 32],
        };
        let base = h.hash();
        let mut x = h.clone();
        x.height = 2;
        assert_ne!(x.hash(), base);
        let mut x = h.clone();
        x.prev = BlockHash([3; 32]);
        assert_ne!(x.hash(), base);
        let mut x = h.clone();
        x.time = 6;
        assert_ne!(x.hash(), base);
        let mut x = h.clone();
        x.tx_root = [9; 32];
        assert_ne!(x.hash(), base);
    }
}
