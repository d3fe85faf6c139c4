//! The simulator's speed workload: 50 nodes fully meshed for one virtual hour.
//!
//! `machine` runs the `PeerMachine` model, `legacy_baseline` the model of the old node on the
//! same topology, seed and duration in the same run. The legacy model has no framing, dedup
//! or chain layer, but it reconnects all the time (that is the bug it models), so its event
//! mix differs: each prints its event count once before measuring, and the figures are
//! compared per event as well as per run.
//!
//! Run: `cargo bench -p timed-sim --bench mesh`. The 10 000-node figure is one long run and is
//! measured with the CLI instead (see BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use timed_sim::RunSpec;

fn spec(model: &str) -> RunSpec {
    RunSpec {
        scenario: "mesh".into(),
        model: model.into(),
        seed: 1,
        nodes: Some(50),
        duration: Some(3600 * 1_000_000),
    }
}

fn run(model: &str) -> u64 {
    let out = timed_sim::run(&spec(model), None, None, false).expect("mesh runs");
    // The legacy model breaks the invariants by design; the machine must not.
    if model == "machine" {
        assert_eq!(
            out.summary.invariant_violations, 0,
            "a benchmark of a broken run measures nothing"
        );
    }
    out.summary.events
}

fn mesh_50_nodes_1h(c: &mut Criterion) {
    for model in ["legacy", "machine"] {
        eprintln!("mesh 50 nodes 1 h, {model}: {} events per run", run(model));
    }
    let mut g = c.benchmark_group("mesh_50_nodes_1h");
    g.sample_size(10);
    g.bench_function("legacy_baseline", |b| b.iter(|| black_box(run("legacy"))));
    g.bench_function("machine", |b| b.iter(|| black_box(run("machine"))));
    g.finish();
}

criterion_group!(benches, mesh_50_nodes_1h);
criterion_main!(benches);
