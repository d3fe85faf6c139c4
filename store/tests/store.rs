//! `HeedStore` against `MemStore`, the reference: every method, reopen, the refusals, and
//! the errors that must come back as values.

use std::path::Path;
use timed_core::rng::Rng;
use timed_core::store::AddrEntry;
use timed_core::{Block, Header, MemStore, Network, NodeId, PeerAddr, Store, Tx};
use timed_store::{HeedStore, StoreError, StoreOptions};

/// `n` valid blocks on top of `parent`, each with a few transactions. `salt` makes branches
/// built on the same parent differ.
fn blocks(parent: &Header, n: usize, rng: &mut Rng, salt: u8) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::with_capacity(n);
    let mut prev = parent.clone();
    for _ in 0..n {
        let txs = (0..rng.below(5))
            .map(|_| {
                let mut tx = vec![salt; 1 + rng.below(200) as usize];
                rng.fill(&mut tx[1..]);
                Tx(tx)
            })
            .collect();
        let b = Block::build(&prev, prev.time + 1, txs);
        prev = b.header.clone();
        out.push(b);
    }
    out
}

fn tip_header<S: Store>(s: &S) -> Header
where
    S::Error: std::fmt::Debug,
{
    let (h, _) = s.tip().unwrap();
    s.header_at(h).unwrap().unwrap()
}

/// Every read method answers the same on both stores.
fn assert_same(heed: &HeedStore, mem: &MemStore) {
    let tip = mem.tip().unwrap();
    assert_eq!(heed.tip().unwrap(), tip);
    for h in 0..=tip.0 + 2 {
        assert_eq!(
            heed.header_at(h).unwrap(),
            mem.header_at(h).unwrap(),
            "header_at({h})"
        );
        assert_eq!(
            heed.block_at(h).unwrap(),
            mem.block_at(h).unwrap(),
            "block_at({h})"
        );
        assert_eq!(
            heed.hash_at(h).unwrap(),
            mem.hash_at(h).unwrap(),
            "hash_at({h})"
        );
    }
    assert_eq!(heed.header_at(u64::MAX).unwrap(), None);
    assert_eq!(heed.identity().unwrap(), mem.identity().unwrap());
    assert_eq!(heed.addrs().unwrap(), mem.addrs().unwrap());
    assert_eq!(heed.verify().unwrap(), tip.0);
}

fn entry(addr: PeerAddr, failures: u32, last_seen: Option<u64>) -> AddrEntry {
    AddrEntry {
        addr,
        failures,
        last_seen,
    }
}

fn apply_both(heed: &mut HeedStore, mem: &mut MemStore, rollback_to: Option<u64>, batch: &[Block]) {
    heed.apply(rollback_to, batch).unwrap();
    mem.apply(rollback_to, batch).unwrap();
    assert_same(heed, mem);
}

#[test]
fn fresh_store_holds_exactly_the_networks_genesis() {
    for network in Network::ALL {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open(dir.path(), network).unwrap();
        assert_same(&store, &MemStore::new(network));
        assert_eq!(store.tip().unwrap(), (0, network.genesis_hash()));
        assert_eq!(store.block_at(0).unwrap(), Some(network.genesis()));
        assert_eq!(store.network(), network);
        assert_eq!(store.path(), dir.path());
    }
}

#[test]
fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    let store = HeedStore::open(&nested, Network::Devnet).unwrap();
    assert_eq!(store.verify().unwrap(), 0);
    assert!(nested.join("data.mdb").is_file());
}

#[test]
fn apply_without_rollback_appends_like_memstore() {
    let dir = tempfile::tempdir().unwrap();
    let mut heed = HeedStore::open(dir.path(), Network::Devnet).unwrap();
    let mut mem = MemStore::new(Network::Devnet);
    let mut rng = Rng::new(1);
    for n in [1, 5, 0, 17] {
        let batch = blocks(&tip_header(&mem), n, &mut rng, 0);
        apply_both(&mut heed, &mut mem, None, &batch);
    }
    assert_eq!(heed.tip().unwrap().0, 23);
}

#[test]
fn apply_with_rollback_reorgs_like_memstore() {
    let dir = tempfile::tempdir().unwrap();
    let mut heed = HeedStore::open(dir.path(), Network::Testnet).unwrap();
    let mut mem = MemStore::new(Network::Testnet);
    let mut rng = Rng::new(2);
    let batch = blocks(&tip_header(&mem), 10, &mut rng, 0);
    apply_both(&mut heed, &mut mem, None, &batch);

    // A reorg: drop 7..=10, switch to a longer branch from 6.
    let fork_base = mem.header_at(6).unwrap().unwrap();
    let branch = blocks(&fork_base, 6, &mut rng, 1);
    let old_hash_7 = heed.hash_at(7).unwrap();
    apply_both(&mut heed, &mut mem, Some(6), &branch);
    assert_eq!(heed.tip().unwrap().0, 12);
    assert_ne!(heed.hash_at(7).unwrap(), old_hash_7);

    // A rollback with no blocks is a plain truncation.
    apply_both(&mut heed, &mut mem, Some(9), &[]);
    assert_eq!(heed.tip().unwrap().0, 9);

    // A rollback at or above the tip removes nothing.
    let batch = blocks(&tip_header(&mem), 2, &mut rng, 2);
    apply_both(&mut heed, &mut mem, Some(9), &batch);
    apply_both(&mut heed, &mut mem, Some(500), &[]);
    apply_both(&mut heed, &mut mem, Some(u64::MAX), &[]);
    assert_eq!(heed.tip().unwrap().0, 11);

    // Rolling back to 0 keeps genesis, and a new chain grows from it.
    let genesis = Network::Testnet.genesis();
    let branch = blocks(&genesis.header, 3, &mut rng, 3);
    apply_both(&mut heed, &mut mem, Some(0), &branch);
    assert_eq!(heed.tip().unwrap().0, 3);
    apply_both(&mut heed, &mut mem, Some(0), &[]);
    assert_eq!(heed.tip().unwrap(), (0, genesis.hash()));
    assert_eq!(heed.block_at(0).unwrap(), Some(genesis));
}

#[test]
fn random_operations_match_memstore() {
    let dir = tempfile::tempdir().unwrap();
    let mut heed = HeedStore::open(dir.path(), Network::Devnet).unwrap();
    let mut mem = MemStore::new(Network::Devnet);
    let mut rng = Rng::new(0x5eed);
    let addr_pool: Vec<PeerAddr> = (0..12u8)
        .map(|i| {
            if i % 3 == 0 {
                PeerAddr::V6([i; 16], 24200 + u16::from(i))
            } else {
                PeerAddr::V4([10, 0, 0, i], 24200)
            }
        })
        .collect();
    for step in 0..300u32 {
        match rng.below(10) {
            0..=4 => {
                let tip = mem.height();
                let rollback_to = (rng.below(3) == 0).then(|| rng.below(tip + 2));
                let base = rollback_to.map_or(tip, |r| r.min(tip));
                let parent = mem.header_at(base).unwrap().unwrap();
                let batch = blocks(&parent, rng.below(6) as usize, &mut rng, step as u8);
                heed.apply(rollback_to, &batch).unwrap();
                mem.apply(rollback_to, &batch).unwrap();
            }
            5 | 6 => {
                let addr = addr_pool[rng.below(addr_pool.len() as u64) as usize];
                let e = entry(
                    addr,
                    rng.below(5) as u32,
                    (rng.below(2) == 0).then(|| rng.next_u64()),
                );
                heed.put_addr(e).unwrap();
                mem.put_addr(e).unwrap();
            }
            7 => {
                let addr = addr_pool[rng.below(addr_pool.len() as u64) as usize];
                heed.remove_addr(addr).unwrap();
                mem.remove_addr(addr).unwrap();
            }
            8 => {
                let mut id = [0u8; 32];
                rng.fill(&mut id);
                heed.set_identity(NodeId(id)).unwrap();
                mem.set_identity(NodeId(id)).unwrap();
            }
            _ => {
                // Close and reopen: everything must come back.
                drop(heed);
                heed = HeedStore::open(dir.path(), Network::Devnet).unwrap();
            }
        }
        assert_same(&heed, &mem);
    }
}

#[test]
fn reopen_preserves_chain_identity_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = MemStore::new(Network::Mainnet);
    {
        let mut heed = HeedStore::open(dir.path(), Network::Mainnet).unwrap();
        let mut rng = Rng::new(3);
        let batch = blocks(&tip_header(&mem), 40, &mut rng, 0);
        apply_both(&mut heed, &mut mem, None, &batch);
        for e in [
            entry(PeerAddr::V4([1, 2, 3, 4], 24000), 2, Some(77)),
            entry(PeerAddr::V6([9; 16], 1), 0, None),
        ] {
            heed.put_addr(e).unwrap();
            mem.put_addr(e).unwrap();
        }
        heed.set_identity(NodeId([42; 32])).unwrap();
        mem.set_identity(NodeId([42; 32])).unwrap();
    }
    let heed = HeedStore::open(dir.path(), Network::Mainnet).unwrap();
    assert_same(&heed, &mem);
    assert_eq!(heed.tip().unwrap().0, 40);
}

#[test]
fn address_book_puts_replaces_and_removes_like_memstore() {
    enum Op {
        Put(AddrEntry),
        Remove(PeerAddr),
    }
    let dir = tempfile::tempdir().unwrap();
    let mut heed = HeedStore::open(dir.path(), Network::Devnet).unwrap();
    let mut mem = MemStore::new(Network::Devnet);
    let a = PeerAddr::V4([192, 168, 0, 1], 24200);
    let b = PeerAddr::V4([10, 0, 0, 1], 24201);
    let c = PeerAddr::V6([0xfe; 16], 24200);
    let same_ip_other_port = PeerAddr::V4([10, 0, 0, 1], 9);
    let ops = [
        Op::Put(entry(c, 0, None)),
        Op::Put(entry(a, 1, Some(5))),
        Op::Put(entry(b, 0, None)),
        Op::Put(entry(same_ip_other_port, 3, None)),
        // Replacing an entry keeps one record per address.
        Op::Put(entry(a, 0, Some(99))),
        Op::Remove(b),
        // Removing an absent address is not an error.
        Op::Remove(b),
        Op::Remove(PeerAddr::V6([1; 16], 1)),
    ];
    for op in ops {
        match op {
            Op::Put(e) => {
                heed.put_addr(e).unwrap();
                mem.put_addr(e).unwrap();
            }
            Op::Remove(addr) => {
                heed.remove_addr(addr).unwrap();
                mem.remove_addr(addr).unwrap();
            }
        }
        assert_eq!(heed.addrs().unwrap(), mem.addrs().unwrap());
    }
    assert_eq!(
        heed.addrs().unwrap(),
        vec![
            entry(same_ip_other_port, 3, None),
            entry(a, 0, Some(99)),
            entry(c, 0, None)
        ],
        "sorted like PeerAddr's Ord, one entry per address"
    );
}

#[test]
fn identity_is_persisted_and_created_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = HeedStore::open(dir.path(), Network::Devnet).unwrap();
        assert_eq!(store.identity().unwrap(), None);
        let id = store.load_or_create_identity(|| NodeId([1; 32])).unwrap();
        assert_eq!(id, NodeId([1; 32]));
        let again = store
            .load_or_create_identity(|| panic!("an identity exists; must not generate"))
            .unwrap();
        assert_eq!(again, id);
    }
    let mut store = HeedStore::open(dir.path(), Network::Devnet).unwrap();
    assert_eq!(store.identity().unwrap(), Some(NodeId([1; 32])));
    assert_eq!(
        store.load_or_create_identity(|| NodeId([2; 32])).unwrap(),
        NodeId([1; 32])
    );
    store.set_identity(NodeId([3; 32])).unwrap();
    drop(store);
    let store = HeedStore::open(dir.path(), Network::Devnet).unwrap();
    assert_eq!(store.identity().unwrap(), Some(NodeId([3; 32])));
}

#[test]
fn wrong_network_reopen_names_the_path_and_both_networks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = HeedStore::open(dir.path(), Network::Mainnet).unwrap();
        let batch = blocks(&Network::Mainnet.genesis().header, 3, &mut Rng::new(4), 0);
        store.apply(None, &batch).unwrap();
    }
    let err = HeedStore::open(dir.path(), Network::Devnet).unwrap_err();
    assert!(matches!(err, StoreError::WrongNetwork { .. }), "{err:?}");
    let msg = err.to_string();
    let path = dir.path().display().to_string();
    assert!(msg.contains(&path), "{msg}");
    assert!(msg.contains("mainnet") && msg.contains("devnet"), "{msg}");
    assert!(msg.contains("--data-dir"), "{msg}");
    assert_eq!(err.path(), dir.path());
    // The refused open wrote nothing: the mainnet store is intact.
    let store = HeedStore::open(dir.path(), Network::Mainnet).unwrap();
    assert_eq!(store.verify().unwrap(), 3);
}

type RawDb = heed::Database<'static, heed::types::Bytes, heed::types::Bytes>;

/// Opens database `name` of the raw environment, bypassing `HeedStore`, and lets `f` tamper
/// with it the way a bug, another build or a failing disk would.
fn tamper(path: &Path, name: &str, f: impl FnOnce(RawDb, &mut heed::RwTxn<'_>)) {
    // SAFETY: no other handle to this environment is open in this process.
    let env = unsafe { heed::EnvOpenOptions::new().max_dbs(8).open(path) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let db: RawDb = env
        .create_databases_and_commit(wtxn, |dbo, wtxn| {
            dbo.create_database(wtxn, Some(name))
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    let mut wtxn = env.write_txn().unwrap();
    f(db, &mut wtxn);
    wtxn.commit().unwrap();
}

#[test]
fn wrong_genesis_and_future_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(HeedStore::open(dir.path(), Network::Devnet).unwrap());
    tamper(dir.path(), "meta", |db, wtxn| {
        db.put(wtxn, b"genesis", &[9; 32]).unwrap()
    });
    let err = HeedStore::open(dir.path(), Network::Devnet).unwrap_err();
    assert!(matches!(err, StoreError::WrongGenesis { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().display().to_string()) && msg.contains("devnet"),
        "{msg}"
    );
    assert!(
        msg.contains(&Network::Devnet.genesis_hash().to_string()),
        "{msg}"
    );
    assert!(msg.contains("--data-dir"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    drop(HeedStore::open(dir.path(), Network::Devnet).unwrap());
    tamper(dir.path(), "meta", |db, wtxn| {
        db.put(wtxn, b"format", &2u32.to_le_bytes()).unwrap()
    });
    let err = HeedStore::open(dir.path(), Network::Devnet).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn map_full_is_an_error_value_and_the_old_chain_survives() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        map_size: 256 * 1024,
    };
    let mut store = HeedStore::open_with(dir.path(), Network::Devnet, options).unwrap();
    assert_eq!(store.map_size(), 256 * 1024);
    let mut rng = Rng::new(5);
    let small = blocks(&Network::Devnet.genesis().header, 3, &mut rng, 0);
    store.apply(None, &small).unwrap();
    let before = store.tip().unwrap();

    // ~1 MiB of transactions in one batch, after a rollback: neither may survive.
    let parent = store.header_at(1).unwrap().unwrap();
    let mut prev = parent.clone();
    let big: Vec<Block> = (0..16)
        .map(|i| {
            let b = Block::build(&prev, prev.time + 1, vec![Tx(vec![i; 64 * 1024])]);
            prev = b.header.clone();
            b
        })
        .collect();
    let err = store.apply(Some(1), &big).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MapFull {
                map_size: 262144,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().display().to_string()) && msg.contains("map size"),
        "{msg}"
    );

    assert_eq!(
        store.tip().unwrap(),
        before,
        "the aborted batch left nothing behind, not even its rollback"
    );
    assert_eq!(store.verify().unwrap(), 3);
    // The store keeps working.
    let more = blocks(&store.header_at(3).unwrap().unwrap(), 2, &mut rng, 1);
    store.apply(None, &more).unwrap();
    assert_eq!(store.verify().unwrap(), 5);
    drop(store);
    let store = HeedStore::open_with(dir.path(), Network::Devnet, options).unwrap();
    assert_eq!(store.verify().unwrap(), 5);
    drop(store);

    // The remedy the message gives works: a larger map takes the batch.
    let larger = StoreOptions { map_size: 4 << 20 };
    let mut store = HeedStore::open_with(dir.path(), Network::Devnet, larger).unwrap();
    assert_eq!(store.map_size(), 4 << 20);
    store.apply(Some(1), &big).unwrap();
    assert_eq!(store.verify().unwrap(), 17);
    drop(store);
    // A smaller map than the file is raised to the file's size, not an error.
    let store = HeedStore::open_with(dir.path(), Network::Devnet, options).unwrap();
    assert!(store.map_size() > 256 * 1024);
    assert_eq!(store.verify().unwrap(), 17);
}

#[test]
fn an_unlinked_batch_is_refused_with_its_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = HeedStore::open(dir.path(), Network::Devnet).unwrap();
    let mut rng = Rng::new(6);
    let chain = blocks(&Network::Devnet.genesis().header, 8, &mut rng, 0);
    store.apply(None, &chain).unwrap();
    let before = store.tip().unwrap();

    // Built on block 5, but applied after a rollback to 3.
    let wrong = blocks(&chain[4].header, 2, &mut rng, 1);
    let err = store.apply(Some(3), &wrong).unwrap_err();
    assert!(matches!(err, StoreError::Unlinked { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(store.tip().unwrap(), before);

    // A gap in the middle of a batch.
    let mut gappy = blocks(&chain[7].header, 3, &mut rng, 2);
    gappy.remove(1);
    assert!(matches!(
        store.apply(None, &gappy),
        Err(StoreError::Unlinked { .. })
    ));
    // Right height, wrong parent.
    let mut forged = blocks(&chain[7].header, 1, &mut rng, 3);
    forged[0].header.prev = chain[6].hash();
    assert!(matches!(
        store.apply(None, &forged),
        Err(StoreError::Unlinked { .. })
    ));
    // Genesis cannot be replaced, even after rolling back to it.
    let genesis = Network::Devnet.genesis();
    assert!(matches!(
        store.apply(Some(0), &[genesis]),
        Err(StoreError::Unlinked { .. })
    ));

    assert_eq!(store.tip().unwrap(), before);
    assert_eq!(store.verify().unwrap(), 8);
}

#[test]
fn verify_finds_tampered_bodies_broken_links_and_gaps() {
    let setup = || {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HeedStore::open(dir.path(), Network::Devnet).unwrap();
        let chain = blocks(&Network::Devnet.genesis().header, 6, &mut Rng::new(7), 0);
        store.apply(None, &chain).unwrap();
        assert_eq!(store.verify().unwrap(), 6);
        (dir, chain)
    };
    let check = |dir: &Path, expect: &str| {
        let store = HeedStore::open(dir, Network::Devnet).unwrap();
        let err = store.verify().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(expect) && msg.contains(&dir.display().to_string()),
            "{msg}"
        );
    };

    // Other transactions under block 3's header.
    let (dir, _) = setup();
    tamper(dir.path(), "bodies", |db, wtxn| {
        let mut body = 1u32.to_le_bytes().to_vec();
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(b"bad");
        db.put(wtxn, &3u64.to_be_bytes(), &body).unwrap();
    });
    check(dir.path(), "block 3 do not match its tx_root");

    // Block 4 replaced by a sibling that does not link to block 3.
    let (dir, chain) = setup();
    let sibling = Block::build(&chain[1].header, 1, vec![]);
    let mut header = sibling.header.clone();
    header.height = 4;
    tamper(dir.path(), "headers", |db, wtxn| {
        db.put(wtxn, &4u64.to_be_bytes(), &header.encode()).unwrap()
    });
    check(dir.path(), "block 4 does not link to block 3");

    // A hole at height 2.
    let (dir, _) = setup();
    tamper(dir.path(), "headers", |db, wtxn| {
        assert!(db.delete(wtxn, &2u64.to_be_bytes()).unwrap())
    });
    check(dir.path(), "blocks 2 to 2 are missing");

    // A body without its header.
    let (dir, _) = setup();
    tamper(dir.path(), "bodies", |db, wtxn| {
        db.put(wtxn, &9u64.to_be_bytes(), &0u32.to_le_bytes())
            .unwrap()
    });
    check(dir.path(), "block 9, which has no header");
}

#[test]
fn a_file_in_place_of_the_data_dir_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = HeedStore::open(&file, Network::Devnet).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string()) && msg.contains("--data-dir"),
        "{msg}"
    );
}

#[test]
fn a_second_open_in_one_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = HeedStore::open(dir.path(), Network::Devnet).unwrap();
    let err = HeedStore::open(dir.path(), Network::Devnet).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}
