//! The chain scenarios: sync from zero, a fork across a partition, sync under
//! chaos; the same-tip invariant and the chain figures of the summary.

use timed_core::Store;
use timed_sim::cli::summary_of;
use timed_sim::engine::{RunOptions, Sim};
use timed_sim::faults::Filter;
use timed_sim::invariants::tips_at;
use timed_sim::model::machine::Machine;
use timed_sim::model::{NodeModel, TipChange};
use timed_sim::net::wire::Kind;
use timed_sim::scenario::chain::{fork_with, sync_from_zero_with, SYNC_HEIGHT};
use timed_sim::scenario::Scenario;
use timed_sim::time::MIN;
use timed_sim::{RunSpec, Summary};

fn spec(scenario: &str, seed: u64) -> RunSpec {
    RunSpec {
        scenario: scenario.into(),
        model: "machine".into(),
        seed,
        nodes: None,
        duration: None,
    }
}

/// Runs a hand-built scenario to the end (not stopping at a violation) and summarises it.
fn run(sc: Scenario, seed: u64) -> (Sim<Machine>, Summary) {
    let mut sim = Sim::<Machine>::new(
        sc,
        seed,
        RunOptions {
            stop_on_violation: false,
            trace: None,
        },
    );
    sim.run();
    let summary = Summary::from_sim(&sim, format!("(hand-built scenario, seed {seed})"), 0.0);
    (sim, summary)
}

fn logs(sim: &Sim<Machine>) -> Vec<&[TipChange]> {
    (0..sim.nodes.len())
        .map(|i| sim.model(i).expect("every node is up").tip_log())
        .collect()
}

#[test]
fn sync_from_zero_brings_five_fresh_nodes_to_the_producers_tip_of_10_000() {
    for seed in [1, 2] {
        let s = summary_of(&spec("sync-from-zero", seed));
        assert_eq!(
            s.invariant_violations, 0,
            "seed {seed}: {:?}",
            s.first_violations
        );
        assert_eq!(s.nodes, 6);
        assert_eq!(s.height_min, Some(SYNC_HEIGHT), "seed {seed}");
        assert_eq!(s.height_max, Some(SYNC_HEIGHT), "seed {seed}");
        // Every fresh node applied the whole chain once; nobody reorged.
        assert_eq!(s.blocks_applied, Some(5 * SYNC_HEIGHT), "seed {seed}");
        assert_eq!(s.reorgs, Some(0));
        let secs = s.sync_secs.expect("all reached the tip");
        assert!(secs > 0.0 && secs < 60.0, "seed {seed}: {secs}s");
        let rate = s.sync_blocks_per_sec.expect("a rate");
        assert!(rate > 1000.0, "seed {seed}: {rate} blocks/s");
    }
}

#[test]
fn fork_every_node_ends_on_the_higher_chain_and_the_lower_half_reorgs() {
    for seed in [1, 2, 3] {
        let sc = fork_with(6, 20 * MIN, seed);
        let heal = sc.plan.healed_at;
        let (sim, s) = run(sc, seed);
        assert_eq!(
            s.invariant_violations, 0,
            "seed {seed}: {:?}",
            s.first_violations
        );
        // The tips at the heal.
        let at_heal: Vec<TipChange> = tips_at(&logs(&sim), heal)
            .into_iter()
            .map(|t| t.expect("every node has a tip"))
            .collect();
        let best = at_heal.iter().max_by_key(|t| t.height).copied().unwrap();
        let hash_at = |i: usize, h: u64| {
            let Ok(hash) = sim.model(i).unwrap().machine().store().hash_at(h);
            hash.map(|h| h.0)
        };
        // Afterwards every node's chain holds the highest tip of the heal...
        for i in 0..sim.nodes.len() {
            assert_eq!(
                hash_at(i, best.height),
                Some(best.hash),
                "seed {seed}: n{i}"
            );
        }
        // ...and none holds the tips of the other branch, which were all lower (no tie).
        let lower: Vec<&TipChange> = at_heal
            .iter()
            .filter(|t| hash_at(0, t.height) != Some(t.hash))
            .collect();
        assert!(
            !lower.is_empty(),
            "seed {seed}: no fork at the heal: {at_heal:?}"
        );
        for t in &lower {
            assert!(
                t.height < best.height,
                "seed {seed}: a tie at the heal: {at_heal:?}"
            );
            for i in 0..sim.nodes.len() {
                assert_ne!(
                    hash_at(i, t.height),
                    Some(t.hash),
                    "seed {seed}: n{i} kept the lower branch"
                );
            }
        }
        assert!(
            s.reorgs.unwrap() >= lower.len() as u64,
            "seed {seed}: {:?} reorgs for {} nodes on the lower branch",
            s.reorgs,
            lower.len()
        );
        let secs = s.sync_secs.expect("converged");
        assert!(secs < 250.0, "seed {seed}: {secs}s after the heal");
    }
}

#[test]
fn a_node_that_cannot_sync_breaks_the_same_tip_invariant() {
    // Every request and response is dropped: the fresh nodes never get a block.
    let mut sc = sync_from_zero_with(3, 50, 5 * MIN, 4);
    sc.filters.push(Filter {
        kinds: Filter::kinds(&[Kind::Request, Kind::Response]),
        side: None,
        from: None,
        prob: 1.0,
    });
    let (_, s) = run(sc, 4);
    assert_eq!(
        s.violations_by_kind.get("same_tip"),
        Some(&1),
        "{:?}",
        s.first_violations
    );
    let v = s
        .first_violations
        .iter()
        .find(|v| v.kind == "same_tip")
        .unwrap();
    assert!(
        v.detail.contains("n1 0/") && v.detail.contains("n0 50/"),
        "{}",
        v.detail
    );
    assert_eq!(s.sync_secs, None);
}

#[test]
fn the_binary_lists_the_chain_scenarios_and_replays_them_bit_identically() {
    let sim = || std::process::Command::new(env!("CARGO_BIN_EXE_timed-sim"));
    let out = sim().arg("list").output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    for name in ["sync-from-zero", "fork", "sync-chaos"] {
        assert!(list.contains(name), "{name} missing from:\n{list}");
    }
    let out = sim()
        .args([
            "run",
            "--scenario",
            "fork",
            "--seed",
            "9",
            "--check-determinism",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["determinism_ok"], true);
    for field in [
        "height_min",
        "height_max",
        "reorgs",
        "blocks_applied",
        "sync_secs",
    ] {
        assert!(!v[field].is_null(), "{field} is null: {v}");
    }
    assert!(v["reorgs"].as_u64().unwrap() > 0);
}
