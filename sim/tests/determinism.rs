//! Same seed, same run, bit for bit; different seeds, different runs.

use timed_sim::cli::summary_of;
use timed_sim::scenario::CATALOG;
use timed_sim::time::MIN;
use timed_sim::RunSpec;

fn spec(scenario: &str, model: &str, seed: u64) -> RunSpec {
    // The mesh is cut down to keep the test quick; every other scenario runs as listed.
    let (nodes, duration) = if scenario == "mesh" {
        (Some(12), Some(20 * MIN))
    } else {
        (None, None)
    };
    RunSpec {
        scenario: scenario.into(),
        model: model.into(),
        seed,
        nodes,
        duration,
    }
}

#[test]
fn every_scenario_replays_bit_identically_from_its_seed() {
    for entry in CATALOG {
        for model in ["machine", "legacy"] {
            let a = summary_of(&spec(entry.name, model, 11));
            let b = summary_of(&spec(entry.name, model, 11));
            assert_eq!(a.trace_hash, b.trace_hash, "{} {model}", entry.name);
            assert_eq!(a.events, b.events, "{} {model}", entry.name);
            assert_eq!(a.reconnects_total, b.reconnects_total);
            assert_eq!(a.pings_sent, b.pings_sent);
            if model == "machine" {
                assert_eq!(
                    a.invariant_violations, 0,
                    "{} seed 11: {:?}\nreplay: {}",
                    entry.name, a.first_violations, a.replay
                );
            }
        }
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let a = summary_of(&spec("chaos", "machine", 1));
    let b = summary_of(&spec("chaos", "machine", 2));
    assert_ne!(a.trace_hash, b.trace_hash);
}
