//! The default, human-readable output.

use super::Summary;
use std::fmt::Write;

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|x| format!("{x}{unit}"))
        .unwrap_or_else(|| "-".into())
}

fn opt_u(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// Rows shown for one run, label → value.
pub fn rows(s: &Summary) -> Vec<(&'static str, String)> {
    vec![
        ("nodes", s.nodes.to_string()),
        ("virtual time", format!("{}s", s.virtual_secs)),
        ("wall time", format!("{:.3}s", s.wall_secs)),
        (
            "events",
            format!("{} ({:.0}/s)", s.events, s.events_per_sec),
        ),
        (
            "max connections per pair (settled)",
            s.max_connections_per_pair.to_string(),
        ),
        (
            "max connections per pair (any instant)",
            s.max_connections_per_pair_transient.to_string(),
        ),
        (
            "connections per pair at the end (max)",
            s.final_connections_per_pair.to_string(),
        ),
        (
            "pairs connected at the end",
            format!("{}/{}", s.pairs_connected_final, s.pairs_required),
        ),
        ("reconnects", s.reconnects_total.to_string()),
        (
            "reconnects per pair per hour",
            format!("{:.1}", s.reconnects_per_pair_hour),
        ),
        ("cycle period (median)", opt(s.cycle_period_secs, "s")),
        ("pings sent", s.pings_sent.to_string()),
        ("pongs received", s.pongs_received.to_string()),
        ("pong success", pct(s.pong_success_rate)),
        (
            "pong success, outbound pings",
            pct(s.pong_success_rate_outbound),
        ),
        (
            "pong success, inbound pings",
            pct(s.pong_success_rate_inbound),
        ),
        ("stray pongs", s.stray_pongs.to_string()),
        (
            "rtt p50 / p99",
            format!("{} / {}", opt(s.rtt_ms_p50, "ms"), opt(s.rtt_ms_p99, "ms")),
        ),
        ("ping timeouts", s.ping_timeouts.to_string()),
        (
            "queries ok / failed",
            format!("{} / {}", s.queries_ok, s.queries_failed),
        ),
        ("faults applied", s.faults_applied.to_string()),
        (
            "frames dropped by filters",
            s.frames_dropped_by_filters.to_string(),
        ),
        (
            "height min / max",
            format!("{} / {}", opt_u(s.height_min), opt_u(s.height_max)),
        ),
        (
            "blocks applied / reorgs",
            format!("{} / {}", opt_u(s.blocks_applied), opt_u(s.reorgs)),
        ),
        (
            "all on one tip after (heal or start)",
            match (s.sync_secs, s.sync_blocks_per_sec) {
                (Some(t), Some(r)) => format!("{t}s ({r} blocks/s)"),
                (Some(t), None) => format!("{t}s"),
                _ => "-".into(),
            },
        ),
        ("invariant violations", s.invariant_violations.to_string()),
        ("trace hash", s.trace_hash[..16].to_string()),
    ]
}

pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {}  model {}  seed {}",
        s.scenario, s.model, s.seed
    );
    for (k, v) in rows(s) {
        let _ = writeln!(out, "  {k:<40} {v}");
    }
    for (k, n) in &s.violations_by_kind {
        let _ = writeln!(out, "    {k}: {n}");
    }
    for v in s.first_violations.iter().take(5) {
        let _ = writeln!(
            out,
            "    at {:.3}s {}: {}",
            v.at as f64 / 1e6,
            v.kind,
            v.detail
        );
    }
    if s.invariant_violations > 0 {
        let _ = writeln!(out, "  replay: {}", s.replay);
    }
    out
}

/// Two runs side by side (legacy and machine on one scenario and seed).
pub fn render_compare(a: &Summary, b: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "scenario {}  seed {}", a.scenario, a.seed);
    let _ = writeln!(out, "  {:<40} {:>22} {:>22}", "", a.model, b.model);
    for ((k, va), (_, vb)) in rows(a).into_iter().zip(rows(b)) {
        let _ = writeln!(out, "  {k:<40} {va:>22} {vb:>22}");
    }
    out
}
