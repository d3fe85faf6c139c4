//! The CI sweep: 200 chaos seeds, zero violations.

use timed_sim::cli::{sweep, SeedRange};
use timed_sim::RunSpec;

#[test]
fn two_hundred_chaos_seeds_break_no_invariant() {
    let base = RunSpec {
        scenario: "chaos".into(),
        model: "machine".into(),
        seed: 0,
        nodes: None,
        duration: None,
    };
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let results = sweep(&base, SeedRange { start: 0, end: 200 }, jobs, |_, _| {})
        .expect("the chaos scenario exists");
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
