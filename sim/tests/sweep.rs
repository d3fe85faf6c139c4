//! The CI sweeps: 200 seeds each of the fault scenarios, zero violations.

use timed_sim::cli::{sweep, SeedRange};
use timed_sim::RunSpec;

/// Sweeps seeds `0..200` of `scenario` and fails listing every failing seed with its replay
/// command.
fn assert_200_seeds_clean(scenario: &str) {
    let base = RunSpec {
        scenario: scenario.into(),
        model: "machine".into(),
        seed: 0,
        nodes: None,
        duration: None,
    };
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let results = sweep(&base, SeedRange { start: 0, end: 200 }, jobs, |_, _| {})
        .unwrap_or_else(|e| panic!("the {scenario} scenario exists: {e}"));
    assert_eq!(results.len(), 200);
    let failing: Vec<String> = results
        .iter()
        .filter(|r| r.violations > 0)
        .map(|r| {
            format!(
                "seed {}: {}\n  {}",
                r.seed,
                r.first.as_deref().unwrap_or(""),
                r.replay
            )
        })
        .collect();
    assert!(
        failing.is_empty(),
        "{} failing seeds:\n{}",
        failing.len(),
        failing.join("\n")
    );
}

#[test]
fn two_hundred_chaos_seeds_break_no_invariant() {
    assert_200_seeds_clean("chaos");
}

#[test]
fn two_hundred_app_chaos_seeds_end_every_application_request_once() {
    assert_200_seeds_clean("app-chaos");
}

#[test]
fn two_hundred_sync_chaos_seeds_all_reach_one_tip() {
    assert_200_seeds_clean("sync-chaos");
}
