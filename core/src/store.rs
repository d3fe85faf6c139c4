//! Storage the machine needs: the chain, the address book and the node's identity.
//!
//! The trait is synchronous and small. Implementations must make [`Store::apply`] atomic:
//! after a crash at any instant the store holds either the old chain or the new one, never a
//! mix. [`MemStore`] is the in-memory implementation used by the simulator and tests;
//! `timed-store` implements it on LMDB.

use crate::chain::{Block, BlockHash, Header, Network};
use crate::id::NodeId;
use crate::wire::PeerAddr;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::error::Error;
use core::fmt;

/// What the machine was doing when its store failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StoreOp {
    /// Reading the chain tip at start.
    ReadTip,
    /// Reading the block at this height (start, fork choice, answering a peer).
    ReadBlock {
        /// The height of the block being read.
        height: u64,
    },
    /// Reading the chain to answer a peer's request.
    ServeRequest,
    /// Writing blocks (sync, a reorg, a produced block).
    WriteBlocks,
    /// Reading the address book at start.
    ReadAddrs,
    /// Writing the address book.
    WriteAddrs,
}

impl fmt::Display for StoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreOp::ReadTip => f.write_str("reading the chain tip"),
            StoreOp::ReadBlock { height } => write!(f, "reading block {height}"),
            StoreOp::ServeRequest => f.write_str("reading the chain to answer a peer"),
            StoreOp::WriteBlocks => f.write_str("writing blocks"),
            StoreOp::ReadAddrs => f.write_str("reading the address book"),
            StoreOp::WriteAddrs => f.write_str("writing the address book"),
        }
    }
}

/// A store failure that stopped the machine ([`NodeEvent::Fatal`](crate::NodeEvent::Fatal)):
/// the operation, and the store's own error as a value. `downcast_ref::<S::Error>()` gives
/// back the store's type (`timed_store::StoreError` names the path and says what to do).
#[derive(Clone, Debug)]
pub struct StoreFailure {
    /// What the machine was doing.
    pub op: StoreOp,
    error: Arc<dyn Error + Send + Sync>,
}

impl StoreFailure {
    /// A failure of `op`, keeping the store's `error`.
    pub fn new<E: Error + Send + Sync + 'static>(op: StoreOp, error: E) -> Self {
        StoreFailure {
            op,
            error: Arc::new(error),
        }
    }

    /// The store's error.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The store's error as its own type, if it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }
}

impl fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.error)
    }
}

impl Error for StoreFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.error)
    }
}

/// Two failures are equal when they are the same operation and the same error, or errors
/// that read the same (errors have no equality of their own).
impl PartialEq for StoreFailure {
    fn eq(&self, other: &Self) -> bool {
        use alloc::string::ToString;
        self.op == other.op
            && (Arc::ptr_eq(&self.error, &other.error)
                || self.error.to_string() == other.error.to_string())
    }
}

impl Eq for StoreFailure {}

/// What the address book remembers about one address.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct AddrEntry {
    /// The address (IP and listening port); the book's key.
    pub addr: PeerAddr,
    /// Consecutive failed dials; reset by a successful handshake.
    pub failures: u32,
    /// Microseconds (machine time) of the last successful handshake, if any.
    pub last_seen: Option<u64>,
}

/// Persistent storage for one node: its identity, its chain (genesis included) and its
/// address book.
pub trait Store {
    /// An I/O failure. The machine stops on any store error and reports it, as a value
    /// ([`StoreFailure`]) the application can downcast back to this type; its message should
    /// name the path and the cause.
    type Error: Error + Send + Sync + 'static;

    /// The persisted node identity, if one was created.
    fn identity(&self) -> Result<Option<NodeId>, Self::Error>;
    /// Persists the node identity, replacing any earlier one.
    fn set_identity(&mut self, id: NodeId) -> Result<(), Self::Error>;

    /// Height and hash of the best block. A store always holds at least its genesis block.
    fn tip(&self) -> Result<(u64, BlockHash), Self::Error>;
    /// The header of our block at `height`; `None` above the tip.
    fn header_at(&self, height: u64) -> Result<Option<Header>, Self::Error>;
    /// Our block at `height`; `None` above the tip.
    fn block_at(&self, height: u64) -> Result<Option<Block>, Self::Error>;
    /// The hash of our block at `height`; `None` above the tip. The default hashes
    /// [`header_at`](Self::header_at); a store that keeps hashes may answer directly.
    fn hash_at(&self, height: u64) -> Result<Option<BlockHash>, Self::Error> {
        Ok(self.header_at(height)?.map(|h| h.hash()))
    }

    /// Atomically removes every block above `rollback_to` (when given), then appends `blocks`,
    /// which are consecutive and start one above the (possibly rolled back) tip. The caller has
    /// validated them.
    fn apply(&mut self, rollback_to: Option<u64>, blocks: &[Block]) -> Result<(), Self::Error>;

    /// Every address in the book.
    fn addrs(&self) -> Result<Vec<AddrEntry>, Self::Error>;
    /// Inserts `entry`, or replaces the entry of the same address.
    fn put_addr(&mut self, entry: AddrEntry) -> Result<(), Self::Error>;
    /// Forgets `addr`; nothing happens if it is not in the book.
    fn remove_addr(&mut self, addr: PeerAddr) -> Result<(), Self::Error>;
}

/// An in-memory [`Store`]: the simulator's and the tests' store. "Crash and restart with the
/// store kept" means handing the same `MemStore` to a new machine.
#[derive(Clone, Debug)]
pub struct MemStore {
    identity: Option<NodeId>,
    blocks: Vec<Block>,
    addrs: BTreeMap<PeerAddr, AddrEntry>,
}

/// `MemStore` cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Never {}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl Error for Never {}

impl MemStore {
    /// A store holding only `network`'s genesis block.
    pub fn new(network: Network) -> Self {
        MemStore {
            identity: None,
            blocks: alloc::vec![network.genesis()],
            addrs: BTreeMap::new(),
        }
    }

    /// Height of the tip block.
    pub fn height(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }

    /// Appends blocks without validation: for building test chains quickly.
    #[cfg(any(test, feature = "testing"))]
    pub fn push_unchecked(&mut self, block: Block) {
        self.blocks.push(block);
    }

    /// Builds `n` empty blocks on the tip with times one second apart.
    #[cfg(any(test, feature = "testing"))]
    pub fn extend_empty(&mut self, n: u64) {
        for _ in 0..n {
            let prev = &self.blocks[self.blocks.len() - 1].header;
            let b = Block::build(prev, prev.time + 1, Vec::new());
            self.blocks.push(b);
        }
    }
}

impl Store for MemStore {
    type Error = Never;

    fn identity(&self) -> Result<Option<NodeId>, Never> {
        Ok(self.identity)
    }
    fn set_identity(&mut self, id: NodeId) -> Result<(), Never> {
        self.identity = Some(id);
        Ok(())
    }
    fn tip(&self) -> Result<(u64, BlockHash), Never> {
        let b = &self.blocks[self.blocks.len() - 1];
        Ok((b.header.height, b.hash()))
    }
    fn header_at(&self, height: u64) -> Result<Option<Header>, Never> {
        Ok(usize::try_from(height)
            .ok()
            .and_then(|h| self.blocks.get(h))
            .map(|b| b.header.clone()))
    }
    fn block_at(&self, height: u64) -> Result<Option<Block>, Never> {
        Ok(usize::try_from(height)
            .ok()
            .and_then(|h| self.blocks.get(h))
            .cloned())
    }
    fn apply(&mut self, rollback_to: Option<u64>, blocks: &[Block]) -> Result<(), Never> {
        if let Some(h) = rollback_to {
            // Genesis is never rolled back.
            self.blocks.truncate((h as usize).saturating_add(1).max(1));
        }
        self.blocks.extend_from_slice(blocks);
        Ok(())
    }
    fn addrs(&self) -> Result<Vec<AddrEntry>, Never> {
        Ok(self.addrs.values().copied().collect())
    }
    fn put_addr(&mut self, entry: AddrEntry) -> Result<(), Never> {
        self.addrs.insert(entry.addr, entry);
        Ok(())
    }
    fn remove_addr(&mut self, addr: PeerAddr) -> Result<(), Never> {
        self.addrs.remove(&addr);
        Ok(())
    }
}
