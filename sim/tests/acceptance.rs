//! The acceptance figures: the legacy node's failures reproduced, the machine
//! without them, on the same topology and seed.

use timed_sim::cli::summary_of;
use timed_sim::RunSpec;

fn spec(scenario: &str, model: &str, seed: u64) -> RunSpec {
    RunSpec {
        scenario: scenario.into(),
        model: model.into(),
        seed,
        nodes: None,
        duration: None,
    }
}

#[test]
fn legacy_seed_3node_cycles_every_90_odd_seconds_and_its_outbound_pings_go_unanswered() {
    for seed in [1, 2, 3] {
        let s = summary_of(&spec("seed-3node", "legacy", seed));
        assert!(
            s.reconnects_per_pair_hour >= 30.0,
            "seed {seed}: {} reconnects/pair/h",
            s.reconnects_per_pair_hour
        );
        let cycle = s.cycle_period_secs.expect("the legacy model cycles");
        assert!(
            (85.0..=100.0).contains(&cycle),
            "seed {seed}: cycle {cycle}s"
        );
        let out = s
            .pong_success_rate_outbound
            .expect("outbound pings were judged");
        assert!(out < 0.5, "seed {seed}: outbound pong success {out}");
        // The same peer listed twice: two connections per pair, for good.
        assert_eq!(s.max_connections_per_pair, 2, "seed {seed}");
        assert!(
            s.invariant_violations > 0,
            "the legacy model breaks the new design's rules"
        );
    }
}

#[test]
fn machine_seed_3node_never_reconnects_keeps_one_connection_per_pair_and_answers_every_ping() {
    for seed in [1, 2, 3] {
        let s = summary_of(&spec("seed-3node", "machine", seed));
        assert_eq!(
            s.invariant_violations, 0,
            "seed {seed}: {:?}",
            s.first_violations
        );
        assert_eq!(s.reconnects_total, 0, "seed {seed}");
        assert_eq!(s.max_connections_per_pair, 1, "seed {seed}");
        assert_eq!(s.final_connections_per_pair, 1, "seed {seed}");
        assert_eq!(s.pairs_connected_final, 3, "seed {seed}");
        assert_eq!(s.pong_success_rate, Some(1.0), "seed {seed}");
        assert_eq!(s.ping_timeouts, 0, "seed {seed}");
        // Three connections for an hour, each pinged every 30 s by its dialer.
        assert!(
            s.pings_sent > 3 * 115,
            "seed {seed}: {} pings",
            s.pings_sent
        );
        assert!(
            s.queries_ok > 0 && s.queries_failed == 0,
            "seed {seed}: {} ok {} failed",
            s.queries_ok,
            s.queries_failed
        );
    }
}

#[test]
fn machine_under_pong_loss_times_out_at_the_ping_timeout_and_reports_the_cycle() {
    let s = summary_of(&spec("pong-loss", "machine", 1));
    assert_eq!(s.invariant_violations, 0, "{:?}", s.first_violations);
    assert!(s.ping_timeouts >= 30, "{} ping timeouts", s.ping_timeouts);
    let cycle = s.cycle_period_secs.expect("connections cycle");
    // Ping timeout 90 s, then a redial after the 1 s initial backoff (+25 % jitter) and a handshake.
    assert!((90.0..=100.0).contains(&cycle), "cycle {cycle}s");
    assert!(
        s.reconnects_per_pair_hour >= 30.0,
        "{}",
        s.reconnects_per_pair_hour
    );
    // Never two live connections beyond the settle grace, even while cycling.
    assert_eq!(s.max_connections_per_pair, 1);
}

#[test]
fn compare_shows_both_models_on_the_same_topology() {
    let legacy = summary_of(&spec("seed-3node", "legacy", 7));
    let machine = summary_of(&spec("seed-3node", "machine", 7));
    assert_eq!(legacy.nodes, machine.nodes);
    assert_eq!(legacy.virtual_secs, machine.virtual_secs);
    assert!(legacy.reconnects_total > 0 && machine.reconnects_total == 0);
}
