//! Prometheus text exposition of a node's status.

use crate::observe::Observed;
use std::fmt::Write;
use timed_core::machine::RTT_BUCKETS_MS;
use timed_core::Status;

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
    fn by_label<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, "counter", help);
        for (k, v) in values {
            self.sample(name, &format!("{label}=\"{k}\""), v);
        }
    }
}

/// Renders every metric. `uptime_secs` and the node's own observations come from the node.
pub fn render(s: &Status, observed: &Observed, uptime_secs: u64) -> String {
    let c = &s.counters;
    let mut o = Out(String::new());
    o.one("timed_up", "gauge", "1 while the node runs.", 1);
    o.one(
        "timed_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        uptime_secs,
    );
    o.one(
        "timed_height",
        "gauge",
        "Height of our best block.",
        s.height,
    );
    o.one(
        "timed_sync_target",
        "gauge",
        "Best height a peer told us about (our height when none is ahead).",
        s.sync_target.unwrap_or(s.height),
    );
    o.one(
        "timed_syncing",
        "gauge",
        "1 while a peer is known to be ahead of us.",
        u8::from(s.syncing),
    );
    o.one(
        "timed_sync_blocks_per_second",
        "gauge",
        "Blocks applied per second, recently.",
        format!("{:.3}", observed.blocks_per_sec),
    );
    o.one("timed_peers", "gauge", "Established peers.", s.peers.len());
    o.one(
        "timed_connections",
        "gauge",
        "Connections in any state.",
        s.connections,
    );
    o.one(
        "timed_mempool_transactions",
        "gauge",
        "Transactions in the mempool.",
        s.mempool_len,
    );
    o.one(
        "timed_address_book_entries",
        "gauge",
        "Addresses in the address book.",
        s.addr_book_len,
    );
    o.one(
        "timed_pings_sent_total",
        "counter",
        "Pings sent.",
        c.pings_sent,
    );
    o.one(
        "timed_pongs_received_total",
        "counter",
        "Pongs received (pings answered).",
        c.pongs_received,
    );
    o.one(
        "timed_ping_timeouts_total",
        "counter",
        "Peers dropped for silence past the ping timeout.",
        c.ping_timeouts,
    );
    o.one(
        "timed_reconnects_total",
        "counter",
        "Peers that came up again after having been lost.",
        c.reconnects,
    );
    o.one(
        "timed_connections_inbound_total",
        "counter",
        "Inbound connections accepted.",
        c.conns_inbound,
    );
    o.one(
        "timed_connections_outbound_total",
        "counter",
        "Outbound connections opened.",
        c.conns_outbound,
    );
    o.one("timed_dials_total", "counter", "Dials started.", c.dials);
    o.one(
        "timed_dial_failures_total",
        "counter",
        "Dials that failed.",
        c.dial_failures,
    );
    o.one(
        "timed_duplicates_resolved_total",
        "counter",
        "Duplicate connections resolved.",
        c.duplicates_resolved,
    );
    o.family("timed_bytes_total", "counter", "Bytes on the wire.");
    o.sample("timed_bytes_total", "direction=\"in\"", c.bytes_in);
    o.sample("timed_bytes_total", "direction=\"out\"", c.bytes_out);
    o.family("timed_frames_total", "counter", "Frames on the wire.");
    o.sample("timed_frames_total", "direction=\"in\"", c.frames_in);
    o.sample("timed_frames_total", "direction=\"out\"", c.frames_out);
    o.one(
        "timed_unknown_kinds_total",
        "counter",
        "Frames of an unknown kind, skipped.",
        c.unknown_kinds,
    );
    o.one(
        "timed_protocol_errors_total",
        "counter",
        "Protocol errors by peers.",
        c.protocol_errors,
    );
    o.one(
        "timed_blocks_applied_total",
        "counter",
        "Blocks applied.",
        c.blocks_applied,
    );
    o.one(
        "timed_reorgs_total",
        "counter",
        "Chain reorganisations.",
        c.reorgs,
    );
    o.one(
        "timed_txs_accepted_total",
        "counter",
        "Transactions accepted into the mempool.",
        c.txs_accepted,
    );
    o.by_label(
        "timed_queries_total",
        "Application queries by outcome.",
        "outcome",
        c.queries.iter().map(|(k, v)| (*k, *v)),
    );
    o.by_label(
        "timed_misbehaviour_total",
        "Peers disconnected and banned, by reason.",
        "reason",
        c.misbehaviour.iter().map(|(k, v)| (*k, *v)),
    );
    o.by_label(
        "timed_connections_closed_total",
        "Connections closed, by reason.",
        "reason",
        c.conns_closed.iter().map(|(k, v)| (*k, *v)),
    );
    o.by_label(
        "timed_goodbyes_received_total",
        "Goodbyes peers sent us, by reason.",
        "reason",
        observed.goodbyes_received.iter().map(|(k, v)| (*k, *v)),
    );
    // RTT histogram: the core counts per bucket; Prometheus wants cumulative counts.
    o.family(
        "timed_rtt_milliseconds",
        "histogram",
        "Ping round-trip times.",
    );
    let mut cum = 0u64;
    for (i, n) in c.rtt_buckets.iter().enumerate() {
        cum += n;
        let le = RTT_BUCKETS_MS
            .get(i)
            .map(|b| b.to_string())
            .unwrap_or_else(|| "+Inf".into());
        o.sample(
            "timed_rtt_milliseconds_bucket",
            &format!("le=\"{le}\""),
            cum,
        );
    }
    o.sample(
        "timed_rtt_milliseconds_sum",
        "",
        format!("{:.3}", c.rtt_sum_us as f64 / 1000.0),
    );
    o.sample("timed_rtt_milliseconds_count", "", cum);
    o.family(
        "timed_peer_rtt_milliseconds",
        "gauge",
        "Latest RTT per peer.",
    );
    for p in &s.peers {
        if let Some(rtt) = p.rtt {
            o.sample(
                "timed_peer_rtt_milliseconds",
                &format!("peer=\"{}\"", p.node_id.short()),
                format!("{:.3}", rtt.as_micros() as f64 / 1000.0),
            );
        }
    }
    o.0
}
