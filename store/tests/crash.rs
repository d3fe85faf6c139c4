//! The crash test: a child process applies batches of blocks to a `HeedStore` as fast as it
//! can, and is killed with SIGKILL at seeded pseudo-random moments, again and again. After
//! every kill the store must open, `verify` must pass, and the tip must be exactly the chain
//! before the batch in flight or the chain after it: never a rollback without its blocks,
//! never half a batch. The next child must resume from the stored tip.
//!
//! This file is its own test binary without libtest (`harness = false`): the same binary is
//! the parent (`main`) and, re-executed with `TIMED_STORE_CRASH_CHILD` set, the child.
//!
//! Protocol, one line per event on the child's stdout (each line is a single `write` to a
//! pipe, which a kill cannot split):
//!
//! ```text
//! start <height> <hash>                      opened the store; this is its tip
//! begin <rollback_to|-> <height> <hash>      about to apply a batch that ends at this tip
//! done <height> <hash>                       the batch committed
//! ```
//!
//! Nothing waits on a clock: the parent kills after the child reported the N-th event (N
//! from the seeded RNG), sometimes after a seeded amount of busy work, or right after
//! spawning it, and reads lines with a generous deadline only as a safety net against a hung
//! child. The seed fixes every decision of parent and child; where in the child's work each
//! kill lands still depends on scheduling, which is the point.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;
use timed_core::rng::Rng;
use timed_core::store::AddrEntry;
use timed_core::{Block, BlockHash, Network, NodeId, PeerAddr, Store, Tx};
use timed_store::HeedStore;

const NAME: &str = "sigkill_at_random_moments_leaves_the_old_or_the_new_chain";
const CHILD_DIR: &str = "TIMED_STORE_CRASH_CHILD";
const CHILD_SEED: &str = "TIMED_STORE_CRASH_CHILD_SEED";
/// Overrides the parent's seed, to explore or to replay.
const SEED_VAR: &str = "TIMED_STORE_CRASH_SEED";
const DEFAULT_SEED: u64 = 0x7173_6b69_6c6c;
const KILLS: u32 = 100;
const NETWORK: Network = Network::Devnet;
/// Safety net only: a healthy child reports within milliseconds.
const LINE_DEADLINE: Duration = Duration::from_secs(30);

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let seed = std::env::var(CHILD_SEED)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        child(Path::new(&dir), seed);
        return;
    }
    if !selected() {
        return;
    }
    println!("\nrunning 1 test");
    parent();
    println!("test {NAME} ... ok\n\ntest result: ok. 1 passed; 0 failed");
}

/// Just enough of libtest's command line for `cargo test <filter>` and `--list`.
fn selected() -> bool {
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => {
                println!("{NAME}: test");
                return false;
            }
            // Only ignored tests were asked for; this one is not ignored.
            "--ignored" => return false,
            "--test-threads" | "--skip" | "--color" | "--format" | "--logfile" | "-Z" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => filters.push(a.to_owned()),
        }
    }
    filters.is_empty() || filters.iter().any(|f| NAME.contains(f.as_str()))
}

// ---------------------------------------------------------------------------------------
// Child
// ---------------------------------------------------------------------------------------

/// Applies batches forever (until killed). Blocks are valid and carry transactions so that
/// each commit writes real pages (up to ~200 KiB); a quarter of the batches roll back first
/// (a reorg onto a branch made different by this run's seed).
fn child(dir: &Path, seed: u64) {
    let mut store = match HeedStore::open(dir, NETWORK) {
        Ok(s) => s,
        Err(e) => fail(&format!("open: {e}")),
    };
    let mut rng = Rng::new(seed);
    if let Err(e) = store.load_or_create_identity(|| {
        let mut id = [0u8; 32];
        rng.fill(&mut id);
        NodeId(id)
    }) {
        fail(&format!("identity: {e}"));
    }
    let (mut height, hash) = store.tip().unwrap_or_else(|e| fail(&format!("tip: {e}")));
    say(&format!("start {height} {hash}"));

    for batch_no in 0u64.. {
        let rollback_to = (height > 0 && rng.below(4) == 0)
            .then(|| height - rng.range_inclusive(1, height.min(12)));
        let base = rollback_to.unwrap_or(height);
        let mut parent = match store.header_at(base) {
            Ok(Some(h)) => h,
            Ok(None) => fail(&format!("no block at {base} below the tip {height}")),
            Err(e) => fail(&format!("header_at: {e}")),
        };
        // Most reorgs end higher than they started, as the core's chain choice demands; some
        // end lower (even a bare truncation), which the trait allows and which is the one way
        // the height may go down.
        let len = match rollback_to {
            Some(_) if rng.below(3) == 0 => rng.below(4),
            Some(r) => rng.range_inclusive(height - r + 1, height - r + 8),
            None => rng.range_inclusive(1, 8),
        };
        let mut batch = Vec::new();
        for i in 0..len {
            let txs = (0..rng.below(12))
                .map(|t| {
                    let mut bytes = vec![0u8; rng.range_inclusive(32, 2048) as usize];
                    rng.fill(&mut bytes);
                    // Unique per run, batch and position, so branches never coincide.
                    bytes[..8].copy_from_slice(&seed.to_le_bytes());
                    bytes[8..16].copy_from_slice(&(batch_no << 16 | i << 8 | t).to_le_bytes());
                    Tx(bytes)
                })
                .collect();
            let block = Block::build(&parent, parent.time + 1, txs);
            parent = block.header.clone();
            batch.push(block);
        }
        let new_hash = parent.hash();
        let r = rollback_to.map_or_else(|| "-".to_owned(), |r| r.to_string());
        say(&format!("begin {r} {} {new_hash}", parent.height));
        if let Err(e) = store.apply(rollback_to, &batch) {
            fail(&format!("apply: {e}"));
        }
        height = parent.height;
        say(&format!("done {height} {new_hash}"));

        // Interleave a small unrelated transaction, so kills also land in those.
        if rng.below(3) == 0 {
            let addr = PeerAddr::V4([10, 0, 0, rng.below(8) as u8], 24200);
            let entry = AddrEntry {
                addr,
                failures: batch_no as u32,
                last_seen: None,
            };
            if let Err(e) = store.put_addr(entry) {
                fail(&format!("put_addr: {e}"));
            }
        }
    }
}

/// One `write` per line; if the parent is gone there is nobody to work for.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("crash child: {msg}");
    std::process::exit(2)
}

// ---------------------------------------------------------------------------------------
// Parent
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tip {
    height: u64,
    hash: BlockHash,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    rollback_to: Option<u64>,
    to: Tip,
}

/// What the parent knows: the last state the child reported as committed and the batch it
/// announced but has not (yet) reported.
#[derive(Debug)]
struct Known {
    committed: Tip,
    in_flight: Option<InFlight>,
    /// A rollback committed since the last check: only then may the height go down.
    rolled_back: bool,
    batches: u64,
    rollbacks: u64,
}

impl Known {
    fn on_line(&mut self, line: &str, ctx: &str) {
        let f: Vec<&str> = line.split(' ').collect();
        let tip = |h: &str, x: &str| Tip {
            height: h
                .parse()
                .unwrap_or_else(|_| panic!("{ctx}: bad line {line:?}")),
            hash: parse_hash(x),
        };
        match f.as_slice() {
            ["start", h, x] => {
                assert_eq!(
                    tip(h, x),
                    self.committed,
                    "{ctx}: the child must resume from the stored tip"
                );
                assert!(
                    self.in_flight.is_none(),
                    "{ctx}: start while a batch is in flight"
                );
            }
            ["begin", r, h, x] => {
                assert!(self.in_flight.is_none(), "{ctx}: two batches in flight");
                let rollback_to = (*r != "-").then(|| {
                    r.parse::<u64>()
                        .unwrap_or_else(|_| panic!("{ctx}: bad line {line:?}"))
                });
                if let Some(r) = rollback_to {
                    assert!(
                        r < self.committed.height,
                        "{ctx}: rollback_to {r} not below the tip"
                    );
                }
                self.in_flight = Some(InFlight {
                    rollback_to,
                    to: tip(h, x),
                });
            }
            ["done", h, x] => {
                let b = self
                    .in_flight
                    .take()
                    .unwrap_or_else(|| panic!("{ctx}: done without begin"));
                assert_eq!(b.to, tip(h, x), "{ctx}: done does not match its begin");
                self.commit(b);
            }
            _ => panic!("{ctx}: unexpected line from the child: {line:?}"),
        }
    }

    fn commit(&mut self, b: InFlight) {
        self.committed = b.to;
        self.rolled_back |= b.rollback_to.is_some();
        self.batches += 1;
        self.rollbacks += u64::from(b.rollback_to.is_some());
    }
}

fn spin(n: u64) {
    for i in 0..n {
        std::hint::black_box(i);
        std::hint::spin_loop();
    }
}

fn parse_hash(s: &str) -> BlockHash {
    assert_eq!(s.len(), 64, "bad hash {s:?}");
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .unwrap_or_else(|_| panic!("bad hash {s:?}"));
    }
    BlockHash(out)
}

/// Forwards complete lines from the child; ends at EOF, i.e. once the child is dead.
fn reader(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if !line.ends_with('\n') => break,
                Ok(_) => {
                    line.pop();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

fn spawn_child(dir: &Path, seed: u64) -> (Child, Receiver<String>) {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let mut child = Command::new(exe)
        .env(CHILD_DIR, dir)
        .env(CHILD_SEED, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the crash child");
    let stdout = child.stdout.take().expect("piped stdout");
    (child, reader(stdout))
}

#[derive(Default, Debug)]
struct Stats {
    kills_at_spawn: u32,
    kills_after_begin: u32,
    kills_after_done: u32,
    /// Kills with a batch announced and not reported done...
    in_flight_at_check: u32,
    /// ...of which the store had committed.
    in_flight_committed: u32,
    /// Checks that found the height lower than at the previous check.
    height_decreases: u32,
}

fn parent() {
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    println!("crash test seed {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let genesis = NETWORK.genesis();
    let mut known = Known {
        committed: Tip {
            height: 0,
            hash: genesis.hash(),
        },
        in_flight: None,
        rolled_back: false,
        batches: 0,
        rollbacks: 0,
    };
    let mut last_height = 0;
    let mut identity: Option<NodeId> = None;
    let mut stats = Stats::default();

    for kill in 0..KILLS {
        let ctx = format!("seed {seed}, kill {kill}");
        let (mut child, lines) = spawn_child(dir.path(), rng.next_u64());
        // One kill in six lands right after spawn (during exec, the creation of the store,
        // or the first batch);
        // the others after the child reported 1..=40 events, half of which are `begin`s,
        // i.e. with the apply in progress.
        let target = if rng.below(6) == 0 {
            0
        } else {
            rng.range_inclusive(1, 40)
        };
        let mut seen = 0;
        let mut last = "";
        while seen < target {
            let line = match lines.recv_timeout(LINE_DEADLINE) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("{ctx}: the child reported nothing for {LINE_DEADLINE:?}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{ctx}: the child exited on its own: {:?}", child.wait());
                }
            };
            known.on_line(&line, &ctx);
            last = if line.starts_with("begin") {
                "begin"
            } else {
                "other"
            };
            seen += 1;
        }
        // The child keeps working while we decide; a seeded amount of busy work (0 to a few
        // ms, log-uniform) spreads the kill instants over the whole apply, commit and fsync
        // included, instead of always the same distance after a line arrives.
        if target > 0 && rng.below(2) == 0 {
            let scale = 1 << rng.below(23);
            spin(rng.below(scale));
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("reap the child");
        assert!(
            !status.success(),
            "{ctx}: the child was killed, not exited: {status:?}"
        );
        match (target, last) {
            (0, _) => stats.kills_at_spawn += 1,
            (_, "begin") => stats.kills_after_begin += 1,
            _ => stats.kills_after_done += 1,
        }
        // The child went on between our last read and the kill: take everything it said.
        loop {
            match lines.recv_timeout(LINE_DEADLINE) {
                Ok(line) => known.on_line(&line, &ctx),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("{ctx}: the child's stdout did not close"),
            }
        }

        // The store must open, be whole, and hold the old or the new chain.
        let store =
            HeedStore::open(dir.path(), NETWORK).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
        let height = store
            .verify()
            .unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
        let (tip_height, hash) = store.tip().unwrap_or_else(|e| panic!("{ctx}: tip: {e}"));
        assert_eq!(tip_height, height, "{ctx}");
        let found = Tip { height, hash };
        if let Some(b) = known.in_flight.take() {
            stats.in_flight_at_check += 1;
            if found == b.to {
                stats.in_flight_committed += 1;
                known.commit(b);
            }
        }
        assert_eq!(
            found, known.committed,
            "{ctx}: the store holds neither the chain before the batch in flight nor the one after it"
        );
        if height < last_height {
            assert!(
                known.rolled_back,
                "{ctx}: the height went from {last_height} to {height} without a rollback"
            );
            stats.height_decreases += 1;
        }
        known.rolled_back = false;
        last_height = height;

        // The identity is created once and never changes; the address book stays readable.
        let id = store
            .identity()
            .unwrap_or_else(|e| panic!("{ctx}: identity: {e}"));
        match (identity, id) {
            (Some(old), new) => assert_eq!(Some(old), new, "{ctx}: the identity changed"),
            (None, new) => identity = new,
        }
        let addrs = store
            .addrs()
            .unwrap_or_else(|e| panic!("{ctx}: addrs: {e}"));
        assert!(addrs.len() <= 8, "{ctx}: {addrs:?}");
        drop(store);
    }

    let store = HeedStore::open(dir.path(), NETWORK).expect("final open");
    let height = store.verify().expect("final verify");
    assert_eq!(
        store.tip().expect("final tip"),
        (known.committed.height, known.committed.hash)
    );
    assert!(
        identity.is_some(),
        "no run ever got as far as creating an identity"
    );
    assert!(height > 0, "no run ever committed a batch");
    println!(
        "crash test: {KILLS} kills, {} batches committed ({} with a rollback), final height {height}, {stats:?}",
        known.batches, known.rollbacks
    );
}
