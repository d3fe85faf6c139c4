//! # timed-store
//!
//! [`HeedStore`]: the node's chain, address book and identity in one LMDB environment (through
//! [heed]), implementing [`timed_core::Store`].
//!
//! ```no_run
//! use timed_core::{Network, Store};
//! use timed_store::HeedStore;
//!
//! # fn main() -> Result<(), timed_store::StoreError> {
//! let mut store = HeedStore::open("/var/lib/timed", Network::Devnet)?;
//! let height = store.verify()?; // every block links to its parent
//! let id = store.load_or_create_identity(|| timed_core::NodeId([7; 32]))?;
//! assert_eq!(store.tip()?.0, height);
//! # let _ = id; Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

mod codec;
mod error;

pub use error::StoreError;

use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U64};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, PutFlags, RoTxn, RwTxn, WithoutTls};
use std::fmt;
use std::path::{Path, PathBuf};
use timed_core::chain::merkle_root;
use timed_core::store::AddrEntry;
use timed_core::{Block, BlockHash, Header, Network, NodeId, PeerAddr, Store};

/// The on-disk layout this build writes and reads (see the tables on [`HeedStore`]).
/// Bump it on any change to a key or value layout.
pub const FORMAT_VERSION: u32 = 1;

/// Tuning for [`HeedStore::open_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Upper bound on the size of the data file, in bytes. LMDB maps this much address space
    /// up front but the file only grows as data is written, so a generous value costs nothing
    /// on 64-bit hosts. Reaching it fails the write with [`StoreError::MapFull`]. Rounded up to
    /// a multiple of 64 KiB (every OS page size in use divides that).
    pub map_size: usize,
}

impl StoreOptions {
    /// 1 GiB: tens of thousands of full blocks, millions of small ones.
    pub const DEFAULT_MAP_SIZE: usize = 1 << 30;
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            map_size: Self::DEFAULT_MAP_SIZE,
        }
    }
}

/// Named databases in the environment, and keys of the single-record ones.
mod names {
    pub const META: &str = "meta";
    pub const HEADERS: &str = "headers";
    pub const BODIES: &str = "bodies";
    pub const IDENTITY: &str = "identity";
    pub const ADDRS: &str = "addrs";

    pub const META_FORMAT: &str = "format";
    pub const META_NETWORK: &str = "network";
    pub const META_GENESIS: &str = "genesis";
    pub const IDENTITY_KEY: &str = "node_id";
}

type HeightDb = Database<'static, U64<BigEndian>, Bytes>;
type NamedDb = Database<'static, Str, Bytes>;
type RawDb = Database<'static, Bytes, Bytes>;

/// A [`Store`] on LMDB: one environment (a `data.mdb` and a `lock.mdb`) in the data directory.
///
/// # Layout
///
/// | database | key | value |
/// |---|---|---|
/// | `meta` | `"format"`, `"network"`, `"genesis"` | [`FORMAT_VERSION`] as u32 LE; the network's name; its genesis hash |
/// | `headers` | height, u64 big endian | the header's 80-byte hash encoding ([`Header::encode`]) |
/// | `bodies` | height, u64 big endian | u32 LE tx count, then per tx a u32 LE length and the bytes |
/// | `identity` | `"node_id"` | the 32 bytes of the [`NodeId`] |
/// | `addrs` | tag (0 v4, 1 v6), ip octets, port u16 BE | failures u32 LE, has-last-seen u8, last_seen u64 LE |
///
/// Heights are big endian so that key order is height order. Headers and bodies live apart
/// so the fork search's `hash_at` probes and `tip` touch a dense tree of 80-byte records, not
/// pages full of transactions. There is no separate tip record: the tip *is* the last key
/// in `headers`, so it cannot disagree with the blocks.
///
/// The `meta` record is written with genesis, in the transaction that creates the store. A
/// store without it is one whose creation never committed, so it is (re)initialised; a store
/// whose `meta` names another network, another genesis or another format is refused with an
/// error that names the directory and both sides, so the operator picks another `--data-dir`.
///
/// # Atomicity
///
/// [`Store::apply`] is one LMDB write transaction: delete the heights above `rollback_to`,
/// check that the batch links to the (rolled back) tip, append headers and bodies, commit.
/// LMDB never overwrites a page that the last committed transaction can see (copy-on-write
/// B+trees); a commit writes the new pages, `fsync`s them, then flips the root by writing
/// the alternate of its two meta pages and `fsync`s that. Whatever instant a `kill -9` lands
/// on, the next open finds the newest meta page that was completely written, which roots
/// either the old tree or the new one, whole: the chain before the batch or after it,
/// never a rollback without its replacement blocks. An error anywhere (map full, disk full,
/// a block that does not link) aborts the transaction with nothing written. The
/// crash test in `tests/crash.rs` checks this with SIGKILL at random moments.
///
/// The environment is opened with LMDB's safe defaults on purpose: no `NO_SYNC`/`NO_META_SYNC`
/// (a power loss could then lose or tear committed batches) and no `WRITEMAP` (a full disk
/// would become a `SIGBUS` on a page fault instead of an `ENOSPC` error from `write`).
/// Read transactions do not use thread-local storage, so a `HeedStore` can move between
/// threads, and stale reader slots left by a killed process are cleared on open.
///
/// Genesis is never rolled back: a `rollback_to` of 0 keeps it and `apply` refuses blocks at
/// height 0.
pub struct HeedStore {
    env: Env<WithoutTls>,
    path: PathBuf,
    network: Network,
    map_size: usize,
    meta: NamedDb,
    headers: HeightDb,
    bodies: HeightDb,
    identity: NamedDb,
    addrs: RawDb,
}

impl fmt::Debug for HeedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeedStore")
            .field("path", &self.path)
            .field("network", &self.network)
            .field("map_size", &self.map_size)
            .finish_non_exhaustive()
    }
}

impl HeedStore {
    /// Opens (creating if missing) the store in directory `path` for `network`, with the
    /// default [`StoreOptions`].
    pub fn open(path: impl AsRef<Path>, network: Network) -> Result<HeedStore, StoreError> {
        Self::open_with(path, network, StoreOptions::default())
    }

    /// Opens (creating if missing) the store in directory `path` for `network`.
    ///
    /// A new store holds `network.genesis()`. An existing one must have been created for the
    /// same network, genesis and [`FORMAT_VERSION`].
    pub fn open_with(
        path: impl AsRef<Path>,
        network: Network,
        options: StoreOptions,
    ) -> Result<HeedStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_dir(&path)?;
        let requested = round_map_size(options.map_size);

        let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
        env_options.map_size(requested).max_dbs(8);
        // SAFETY: LMDB maps `data.mdb`; the map must not be changed behind LMDB's back.
        // Other processes go through LMDB's own lock file, heed refuses a second open of
        // the same directory in this process (`AlreadyOpen`), and we set none of the flags
        // that relax LMDB's guarantees. What remains is outside any program's control
        // (someone truncating the file by hand), as with every mmap-based store.
        #[allow(unsafe_code)]
        let env =
            unsafe { env_options.open(&path) }.map_err(|e| error::classify(&path, requested, e))?;
        // LMDB grows the map to the file's size when an existing file is larger than asked.
        let map_size = env.info().map_size;
        let err = |e| error::classify(&path, map_size, e);

        // A killed process leaves its reader slot behind; until cleared it pins old pages,
        // which LMDB then cannot reuse, and the file grows.
        env.clear_stale_readers().map_err(err)?;

        let genesis = network.genesis();
        let wtxn = env.write_txn().map_err(err)?;
        let outcome = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                let meta = dbo.create_database::<Str, Bytes>(wtxn, Some(names::META))?;
                let headers =
                    dbo.create_database::<U64<BigEndian>, Bytes>(wtxn, Some(names::HEADERS))?;
                let bodies =
                    dbo.create_database::<U64<BigEndian>, Bytes>(wtxn, Some(names::BODIES))?;
                let identity = dbo.create_database::<Str, Bytes>(wtxn, Some(names::IDENTITY))?;
                let addrs = dbo.create_database::<Bytes, Bytes>(wtxn, Some(names::ADDRS))?;

                let decided = match meta.get(wtxn, names::META_FORMAT)? {
                    None if headers.is_empty(wtxn)? && bodies.is_empty(wtxn)? => {
                        // Fresh, or a creation that was killed before it committed: everything
                        // below commits together with the databases, or not at all.
                        meta.put(wtxn, names::META_FORMAT, &FORMAT_VERSION.to_le_bytes())?;
                        meta.put(wtxn, names::META_NETWORK, network.name().as_bytes())?;
                        meta.put(wtxn, names::META_GENESIS, &genesis.hash().0)?;
                        headers.put(wtxn, &0, &genesis.header.encode())?;
                        bodies.put(wtxn, &0, &codec::encode_body(&genesis.txs))?;
                        Ok(())
                    }
                    None => Err(StoreError::corrupt(
                        &path,
                        "it holds blocks but no meta record",
                    )),
                    Some(format) => check_meta(&path, network, format, &meta, &headers, wtxn)?,
                };
                Ok::<_, heed::Error>(match decided {
                    Ok(()) => CommitOrAbort::Commit((meta, headers, bodies, identity, addrs)),
                    // Dropping the transaction aborts it: a refused store is left untouched.
                    Err(e) => CommitOrAbort::Abort(e),
                })
            })
            .map_err(err)?;
        let (meta, headers, bodies, identity, addrs) = match outcome {
            CommitOrAbort::Commit(dbs) => dbs,
            CommitOrAbort::Abort(e) => return Err(e),
        };
        Ok(HeedStore {
            env,
            path,
            network,
            map_size,
            meta,
            headers,
            bodies,
            identity,
            addrs,
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The network this store was opened (and created) for.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The map size in effect, in bytes: the requested one rounded up, or the data file's size
    /// if that is larger (LMDB never maps less than the file).
    pub fn map_size(&self) -> usize {
        self.map_size
    }

    /// Walks the whole stored chain in one read transaction and checks it: the meta record's
    /// genesis, contiguous heights from 0, genesis equal to the network's, every header one
    /// above its parent and linked to its hash, every body present, decodable and matching
    /// its header's `tx_root`, no body without a header. Returns the tip height.
    ///
    /// Linear in the chain size (a sha256 per header and per transaction): run it at startup
    /// and in tests, not per batch.
    pub fn verify(&self) -> Result<u64, StoreError> {
        let rtxn = self.read()?;
        let expected_genesis = self.network.genesis();
        // `open` checked the meta record; check it again so that `verify` alone vouches for
        // the whole store.
        match self
            .meta
            .get(&rtxn, names::META_GENESIS)
            .map_err(|e| self.err(e))?
        {
            Some(h) if h == expected_genesis.hash().0 => {}
            _ => {
                return Err(self.corrupt(format!(
                    "the meta record does not name the {} genesis",
                    self.network
                )))
            }
        }
        let mut parent: Option<Header> = None;
        let mut bodies = self.bodies.iter(&rtxn).map_err(|e| self.err(e))?;
        for item in self.headers.iter(&rtxn).map_err(|e| self.err(e))? {
            let (key, bytes) = item.map_err(|e| self.err(e))?;
            let header = self.decode_header(key, bytes)?;
            match &parent {
                None => {
                    if key != 0 || header != expected_genesis.header {
                        return Err(self.corrupt(format!(
                            "the first block (height {key}) is not the {} genesis block",
                            self.network
                        )));
                    }
                }
                Some(p) => {
                    if key != p.height + 1 {
                        return Err(self.corrupt(format!(
                            "blocks {} to {} are missing",
                            p.height + 1,
                            key - 1
                        )));
                    }
                    if header.prev != p.hash() {
                        return Err(self
                            .corrupt(format!("block {key} does not link to block {}", p.height)));
                    }
                }
            }
            let body = match bodies.next() {
                Some(b) => b.map_err(|e| self.err(e))?,
                None => return Err(self.corrupt(format!("the body of block {key} is missing"))),
            };
            if body.0 != key {
                return Err(self.corrupt(format!(
                    "the body of block {key} is missing (found one for {})",
                    body.0
                )));
            }
            let txs = self.decode_body(key, body.1)?;
            if merkle_root(&txs) != header.tx_root {
                return Err(self.corrupt(format!(
                    "the transactions of block {key} do not match its tx_root"
                )));
            }
            parent = Some(header);
        }
        if let Some(extra) = bodies.next() {
            let (key, _) = extra.map_err(|e| self.err(e))?;
            return Err(self.corrupt(format!(
                "a body is stored for block {key}, which has no header"
            )));
        }
        match parent {
            Some(tip) => Ok(tip.height),
            None => Err(self.corrupt("it holds no blocks, not even genesis")),
        }
    }

    /// The persisted identity, or a new one from `generate`, stored before it is returned.
    /// Read and create happen in one write transaction, so two processes racing on one
    /// directory still end up with a single identity.
    pub fn load_or_create_identity(
        &mut self,
        generate: impl FnOnce() -> NodeId,
    ) -> Result<NodeId, StoreError> {
        let mut wtxn = self.write()?;
        if let Some(id) = self.read_identity(&wtxn)? {
            return Ok(id);
        }
        let id = generate();
        self.identity
            .put(&mut wtxn, names::IDENTITY_KEY, &id.0)
            .map_err(|e| self.err(e))?;
        wtxn.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }

    fn read(&self) -> Result<RoTxn<'_, WithoutTls>, StoreError> {
        self.env.read_txn().map_err(|e| self.err(e))
    }

    fn write(&self) -> Result<RwTxn<'_>, StoreError> {
        self.env.write_txn().map_err(|e| self.err(e))
    }

    fn err(&self, e: heed::Error) -> StoreError {
        error::classify(&self.path, self.map_size, e)
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::corrupt(&self.path, detail)
    }

    fn decode_header(&self, key: u64, bytes: &[u8]) -> Result<Header, StoreError> {
        match codec::decode_header(bytes) {
            Some(h) if h.height == key => Ok(h),
            Some(h) => Err(self.corrupt(format!(
                "the header stored at height {key} says height {}",
                h.height
            ))),
            None => Err(self.corrupt(format!(
                "the header of block {key} is {} bytes, not 80",
                bytes.len()
            ))),
        }
    }

    fn decode_body(&self, key: u64, bytes: &[u8]) -> Result<Vec<timed_core::Tx>, StoreError> {
        codec::decode_body(bytes)
            .ok_or_else(|| self.corrupt(format!("the body of block {key} cannot be decoded")))
    }

    fn read_identity(&self, txn: &RoTxn<'_>) -> Result<Option<NodeId>, StoreError> {
        match self
            .identity
            .get(txn, names::IDENTITY_KEY)
            .map_err(|e| self.err(e))?
        {
            None => Ok(None),
            Some(bytes) => match <[u8; 32]>::try_from(bytes) {
                Ok(b) => Ok(Some(NodeId(b))),
                Err(_) => Err(self.corrupt(format!(
                    "the node identity is {} bytes, not 32",
                    bytes.len()
                ))),
            },
        }
    }

    fn tip_header(&self, txn: &RoTxn<'_>) -> Result<Header, StoreError> {
        match self.headers.last(txn).map_err(|e| self.err(e))? {
            Some((key, bytes)) => self.decode_header(key, bytes),
            None => Err(self.corrupt("it holds no blocks, not even genesis")),
        }
    }
}

/// Checks an existing store's meta record against what this node expects. The outer
/// `Result` is an LMDB failure, the inner one a store this node must refuse.
fn check_meta(
    path: &Path,
    network: Network,
    format: &[u8],
    meta: &Database<'_, Str, Bytes>,
    headers: &Database<'_, U64<BigEndian>, Bytes>,
    txn: &RoTxn<'_>,
) -> Result<Result<(), StoreError>, heed::Error> {
    let Ok(format) = <[u8; 4]>::try_from(format).map(u32::from_le_bytes) else {
        return Ok(Err(StoreError::corrupt(
            path,
            "the format record is not 4 bytes",
        )));
    };
    if format != FORMAT_VERSION {
        return Ok(Err(StoreError::UnsupportedFormat {
            path: path.to_path_buf(),
            found: format,
            supported: FORMAT_VERSION,
        }));
    }
    let found = match meta.get(txn, names::META_NETWORK)? {
        Some(name) => String::from_utf8_lossy(name).into_owned(),
        None => {
            return Ok(Err(StoreError::corrupt(
                path,
                "the meta record names no network",
            )))
        }
    };
    if found != network.name() {
        return Ok(Err(StoreError::WrongNetwork {
            path: path.to_path_buf(),
            found,
            expected: network,
        }));
    }
    let expected = network.genesis_hash();
    let stored = match meta.get(txn, names::META_GENESIS)? {
        Some(h) => match <[u8; 32]>::try_from(h) {
            Ok(h) => BlockHash(h),
            Err(_) => {
                return Ok(Err(StoreError::corrupt(
                    path,
                    "the genesis record is not 32 bytes",
                )))
            }
        },
        None => {
            return Ok(Err(StoreError::corrupt(
                path,
                "the meta record has no genesis hash",
            )))
        }
    };
    if stored != expected {
        return Ok(Err(StoreError::WrongGenesis {
            path: path.to_path_buf(),
            network,
            found: stored,
            expected,
        }));
    }
    // The block at height 0 must be that genesis too (cheap; the full walk is `verify`).
    match headers.get(txn, &0)?.and_then(codec::decode_header) {
        Some(h) if h.hash() == expected => Ok(Ok(())),
        _ => Ok(Err(StoreError::corrupt(
            path,
            format!("the block at height 0 is not the {network} genesis block"),
        ))),
    }
}

fn create_dir(path: &Path) -> Result<(), StoreError> {
    // `create_dir_all` accepts an existing directory, and only a directory: a regular file in
    // the way is an error here rather than a confusing one from LMDB.
    std::fs::create_dir_all(path).map_err(|source| {
        error::classify_io_or(path, source, |path, source| StoreError::CreateDir {
            path,
            source,
        })
    })
}

/// Rounds up to a multiple of 64 KiB, at least 64 KiB: LMDB wants a multiple of the OS page
/// size, which is 4, 16 or 64 KiB on the platforms we run on.
fn round_map_size(size: usize) -> usize {
    const UNIT: usize = 64 * 1024;
    size.max(UNIT).div_ceil(UNIT).saturating_mul(UNIT)
}

impl Store for HeedStore {
    type Error = StoreError;

    fn identity(&self) -> Result<Option<NodeId>, StoreError> {
        let rtxn = self.read()?;
        self.read_identity(&rtxn)
    }

    fn set_identity(&mut self, id: NodeId) -> Result<(), StoreError> {
        let mut wtxn = self.write()?;
        self.identity
            .put(&mut wtxn, names::IDENTITY_KEY, &id.0)
            .map_err(|e| self.err(e))?;
        wtxn.commit().map_err(|e| self.err(e))
    }

    fn tip(&self) -> Result<(u64, BlockHash), StoreError> {
        let rtxn = self.read()?;
        let h = self.tip_header(&rtxn)?;
        Ok((h.height, h.hash()))
    }

    fn header_at(&self, height: u64) -> Result<Option<Header>, StoreError> {
        let rtxn = self.read()?;
        match self.headers.get(&rtxn, &height).map_err(|e| self.err(e))? {
            Some(bytes) => self.decode_header(height, bytes).map(Some),
            None => Ok(None),
        }
    }

    fn block_at(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let rtxn = self.read()?;
        let Some(bytes) = self.headers.get(&rtxn, &height).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let header = self.decode_header(height, bytes)?;
        match self.bodies.get(&rtxn, &height).map_err(|e| self.err(e))? {
            Some(body) => Ok(Some(Block {
                header,
                txs: self.decode_body(height, body)?,
            })),
            None => Err(self.corrupt(format!("the body of block {height} is missing"))),
        }
    }

    /// One write transaction: rollback, linkage check, append, commit. Any error drops the
    /// transaction, which aborts it, so the store keeps exactly the chain it had.
    fn apply(&mut self, rollback_to: Option<u64>, blocks: &[Block]) -> Result<(), StoreError> {
        if rollback_to.is_none() && blocks.is_empty() {
            return Ok(());
        }
        let mut wtxn = self.write()?;
        if let Some(keep) = rollback_to {
            // Deleting from `keep + 1` up never reaches genesis. A `keep` at or above the tip
            // deletes nothing, like `MemStore`'s truncate.
            if let Some(from) = keep.checked_add(1) {
                self.headers
                    .delete_range(&mut wtxn, &(from..))
                    .map_err(|e| self.err(e))?;
                self.bodies
                    .delete_range(&mut wtxn, &(from..))
                    .map_err(|e| self.err(e))?;
            }
        }
        // The caller validated the blocks, but a batch that does not extend the tip it is
        // written on would leave a chain `verify` rejects; checking costs one 80-byte hash per
        // block, and also stops two processes racing on one directory from interleaving.
        let mut parent = self.tip_header(&wtxn)?;
        for block in blocks {
            let h = &block.header;
            if h.height != parent.height + 1 || h.prev != parent.hash() {
                return Err(StoreError::Unlinked {
                    path: self.path.clone(),
                    detail: format!(
                        "block {} ({}) does not extend block {} ({})",
                        h.height,
                        block.hash(),
                        parent.height,
                        parent.hash()
                    ),
                });
            }
            // APPEND: keys arrive in order past the last one, so LMDB fills pages instead of
            // splitting them; it also fails loudly if that ever stops being true.
            self.headers
                .put_with_flags(&mut wtxn, PutFlags::APPEND, &h.height, &h.encode())
                .map_err(|e| self.err(e))?;
            self.bodies
                .put_with_flags(
                    &mut wtxn,
                    PutFlags::APPEND,
                    &h.height,
                    &codec::encode_body(&block.txs),
                )
                .map_err(|e| self.err(e))?;
            parent = h.clone();
        }
        wtxn.commit().map_err(|e| self.err(e))
    }

    fn addrs(&self) -> Result<Vec<AddrEntry>, StoreError> {
        let rtxn = self.read()?;
        let mut out = Vec::new();
        for item in self.addrs.iter(&rtxn).map_err(|e| self.err(e))? {
            let (key, value) = item.map_err(|e| self.err(e))?;
            match codec::decode_addr(key, value) {
                Some(entry) => out.push(entry),
                None => {
                    return Err(self.corrupt(format!(
                        "an address book record cannot be decoded (key {key:02x?})"
                    )))
                }
            }
        }
        Ok(out)
    }

    fn put_addr(&mut self, entry: AddrEntry) -> Result<(), StoreError> {
        let mut wtxn = self.write()?;
        self.addrs
            .put(
                &mut wtxn,
                &codec::addr_key(&entry.addr),
                &codec::encode_addr_value(&entry),
            )
            .map_err(|e| self.err(e))?;
        wtxn.commit().map_err(|e| self.err(e))
    }

    fn remove_addr(&mut self, addr: PeerAddr) -> Result<(), StoreError> {
        let mut wtxn = self.write()?;
        self.addrs
            .delete(&mut wtxn, &codec::addr_key(&addr))
            .map_err(|e| self.err(e))?;
        wtxn.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_size_is_rounded_to_whole_64k_units() {
        assert_eq!(round_map_size(0), 64 * 1024);
        assert_eq!(round_map_size(64 * 1024), 64 * 1024);
        assert_eq!(round_map_size(64 * 1024 + 1), 128 * 1024);
        assert_eq!(round_map_size(StoreOptions::DEFAULT_MAP_SIZE), 1 << 30);
    }

    #[test]
    fn the_store_can_move_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<HeedStore>();
        check::<StoreError>();
    }
}
