use super::block::{Block, BlockHash, Header};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

/// Which network a node belongs to. Each has its own id on the wire, its own default port and
/// its own constant genesis block, identical on every node — the legacy node built genesis at
/// startup and nodes disagreed on it.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
pub enum Network {
    /// `mainnet`: network id `0x5449_4d00`, default port 24000.
    Mainnet,
    /// `testnet`: network id `0x5449_4d01`, default port 24100.
    Testnet,
    /// `devnet`: network id `0x5449_4d02`, default port 24200.
    Devnet,
}

impl Network {
    /// Every network.
    pub const ALL: [Network; 3] = [Network::Mainnet, Network::Testnet, Network::Devnet];

    /// The id carried in `Hello`.
    pub const fn id(self) -> u32 {
        match self {
            Network::Mainnet => 0x5449_4d00,
            Network::Testnet => 0x5449_4d01,
            Network::Devnet => 0x5449_4d02,
        }
    }

    /// The lowercase name, as `Display` prints it and `FromStr` parses it.
    pub const fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Devnet => "devnet",
        }
    }

    /// Default P2P port.
    pub const fn default_port(self) -> u16 {
        match self {
            Network::Mainnet => 24000,
            Network::Testnet => 24100,
            Network::Devnet => 24200,
        }
    }

    /// Genesis timestamps are fixed constants so that every node builds the same block.
    const fn genesis_time(self) -> u64 {
        match self {
            Network::Mainnet => 1_767_225_600, // 2026-01-01T00:00:00Z
            Network::Testnet => 1_767_225_601,
            Network::Devnet => 1_767_225_602,
        }
    }

    /// The genesis block of this network: a constant, the same on every node.
    pub fn genesis(self) -> Block {
        Block {
            header: Header {
                height: 0,
                prev: BlockHash([0; 32]),
                time: self.genesis_time(),
                tx_root: [0; 32],
            },
            txs: Vec::new(),
        }
    }

    /// The hash of [`genesis`](Self::genesis), carried in `Hello`.
    pub fn genesis_hash(self) -> BlockHash {
        self.genesis().hash()
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Network {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mainnet" => Ok(Network::Mainnet),
            "testnet" => Ok(Network::Testnet),
            "devnet" => Ok(Network::Devnet),
            _ => Err("expected one of: mainnet, testnet, devnet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_network_has_a_distinct_constant_genesis() {
        let a = Network::Mainnet.genesis_hash();
        assert_eq!(a, Network::Mainnet.genesis_hash());
        assert_ne!(a, Network::Testnet.genesis_hash());
        assert_ne!(
            Network::Testnet.genesis_hash(),
            Network::Devnet.genesis_hash()
        );
    }
}
