//! The `timed-sim` binary: outputs, files, and errors that say how to fix them.

use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_timed-sim"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = sim().args(args).output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_names_every_scenario_with_a_description() {
    let (code, out, _) = run(&["list"]);
    assert_eq!(code, 0);
    for name in [
        "seed-3node",
        "mesh",
        "pong-loss",
        "partition-heal",
        "churn",
        "chaos",
    ] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
}

#[test]
fn json_output_has_the_stable_fields() {
    let (code, out, err) = run(&[
        "run",
        "--scenario",
        "seed-3node",
        "--duration",
        "5m",
        "--seed",
        "3",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    for field in [
        "scenario",
        "model",
        "seed",
        "nodes",
        "virtual_secs",
        "wall_secs",
        "events",
        "events_per_sec",
        "max_connections_per_pair",
        "final_connections_per_pair",
        "reconnects_total",
        "reconnects_per_pair_hour",
        "cycle_period_secs",
        "pings_sent",
        "pongs_received",
        "pong_success_rate",
        "rtt_ms_p50",
        "rtt_ms_p99",
        "ping_timeouts",
        "invariant_violations",
        "trace_hash",
        "height_min",
        "height_max",
        "reorgs",
        "blocks_applied",
        "sync_secs",
    ] {
        assert!(v.get(field).is_some(), "field {field} missing");
    }
    assert_eq!(v["scenario"], "seed-3node");
    assert_eq!(v["seed"], 3);
    assert_eq!(v["virtual_secs"], 300.0);
    assert!(v["cycle_period_secs"].is_null(), "no reconnects, no cycle");
}

#[test]
fn check_determinism_runs_twice_and_says_so() {
    let (code, out, err) = run(&[
        "run",
        "--scenario",
        "chaos",
        "--seed",
        "5",
        "--check-determinism",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("determinism: ok"), "{out}");
}

#[test]
fn svg_and_trace_files_are_written() {
    let dir = std::env::temp_dir().join(format!("timed-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("t.svg");
    let trace = dir.join("t.jsonl");
    let (code, _, err) = run(&[
        "run",
        "--scenario",
        "seed-3node",
        "--model",
        "legacy",
        "--duration",
        "10m",
        "--svg",
        svg.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("n0–n1") && svg.matches("<rect").count() > 10);
    let trace = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<serde_json::Value> = trace
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.iter().any(|l| l["ev"] == "pair_up"));
    assert!(lines.iter().all(|l| l["t"].is_number()));
}

#[test]
fn bad_input_says_what_is_wrong_and_how_to_fix_it() {
    let (code, _, err) = run(&["run", "--scenario", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown scenario \"nope\"")
            && err.contains("seed-3node")
            && err.contains("timed-sim list"),
        "{err}"
    );

    let (code, _, err) = run(&["run", "--scenario", "mesh", "--duration", "5x"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown unit") && err.contains("5x"), "{err}");

    let (code, _, err) = run(&["sweep", "--scenario", "chaos", "--seeds", "10..5"]);
    assert_ne!(code, 0);
    assert!(err.contains("A..B"), "{err}");

    let (code, _, err) = run(&["run", "--scenario", "mesh", "--model", "old"]);
    assert_ne!(code, 0);
    assert!(err.contains("machine") && err.contains("legacy"), "{err}");

    let (code, _, err) = run(&["run", "--scenario", "mesh", "--nodes", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("at least 2"), "{err}");
}

#[test]
fn sweep_reports_seeds_and_exits_zero_when_all_pass() {
    let (code, out, err) = run(&[
        "sweep",
        "--scenario",
        "partition-heal",
        "--seeds",
        "0..4",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["seeds"], 4);
    assert_eq!(v["failing"], 0);
}

#[test]
fn compare_prints_legacy_and_machine_side_by_side() {
    let (code, out, err) = run(&["compare", "--scenario", "seed-3node", "--duration", "20m"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("legacy")
            && out.contains("machine")
            && out.contains("reconnects per pair per hour"),
        "{out}"
    );
}
