//! Prometheus text exposition of a node's status.

use crate::observe::Observed;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use timed_core::machine::RTT_BUCKETS_MS;
use timed_core::protocol::{ProtocolId, TopicId};
use timed_core::{ProtocolStats, QueryError, QueryOutcome, Status, TopicStats};

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
        "timed_mempool_bytes",
        "gauge",
        "Bytes of transactions in the mempool.",
        s.mempool_bytes,
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
        c.queries.by_label(),
    );
    let mut refused = std::collections::BTreeMap::new();
    for (outcome, n) in c.queries.iter() {
        if let QueryOutcome::Failed(QueryError::Refused(r)) = outcome {
            *refused.entry(r.as_str()).or_insert(0) += n;
        }
    }
    o.by_label(
        "timed_queries_refused_total",
        "Queries the peer refused, by its reason.",
        "reason",
        refused,
    );
    o.by_label(
        "timed_misbehaviour_total",
        "Peers disconnected and banned, by reason.",
        "reason",
        c.misbehaviour.by_label(),
    );
    o.by_label(
        "timed_connections_closed_total",
        "Connections closed, by reason.",
        "reason",
        c.conns_closed.by_label(),
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
    protocols(&mut o, &s.protocols);
    topics(&mut o, &s.topics);
    o.0
}

/// A label value in the exposition format: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The label value for each declared protocol or topic: its name, escaped. The core does
/// not require names to be unique (ids are), so a name that is empty or shared by two ids
/// gets the id appended (`name#1000`) rather than two series colliding in one scrape.
fn series_names<'a, K: Ord + Copy>(
    names: impl Iterator<Item = (K, &'a str)> + Clone,
    id: impl Fn(K) -> u32,
) -> BTreeMap<K, String> {
    let mut seen = BTreeSet::new();
    let shared: BTreeSet<&str> = names
        .clone()
        .filter(|(_, n)| !seen.insert(*n))
        .map(|(_, n)| n)
        .collect();
    names
        .map(|(k, n)| {
            let label = if n.is_empty() || shared.contains(n) {
                format!("{n}#{}", id(k))
            } else {
                n.to_string()
            };
            (k, escape(&label))
        })
        .collect()
}

/// Per request/response protocol, one series per declared protocol (never per peer).
fn protocols(o: &mut Out, stats: &BTreeMap<ProtocolId, ProtocolStats>) {
    let names = series_names(stats.iter().map(|(id, s)| (*id, s.name)), |p| p.0);
    let label = |id: &ProtocolId| format!("protocol=\"{}\"", names[id]);
    o.family(
        "timed_protocol_requests_total",
        "counter",
        "Requests per request/response protocol: ours to peers (out), peers' to us (in).",
    );
    for (id, s) in stats {
        let l = label(id);
        o.sample(
            "timed_protocol_requests_total",
            &format!("{l},direction=\"out\""),
            s.requests_out,
        );
        o.sample(
            "timed_protocol_requests_total",
            &format!("{l},direction=\"in\""),
            s.requests_in,
        );
    }
    o.family(
        "timed_protocol_bytes_total",
        "counter",
        "Frame bytes per protocol: our requests and responses (out), peers' (in).",
    );
    for (id, s) in stats {
        let l = label(id);
        o.sample(
            "timed_protocol_bytes_total",
            &format!("{l},direction=\"out\""),
            s.bytes_out,
        );
        o.sample(
            "timed_protocol_bytes_total",
            &format!("{l},direction=\"in\""),
            s.bytes_in,
        );
    }
    o.family(
        "timed_protocol_results_total",
        "counter",
        "How our requests ended, per protocol: ok, or why not.",
    );
    for (id, s) in stats {
        let l = label(id);
        for (k, v) in &s.results {
            let labels = format!("{l},result=\"{}\"", escape(k));
            o.sample("timed_protocol_results_total", &labels, v);
        }
    }
    o.family(
        "timed_protocol_refused_total",
        "counter",
        "Peers' requests we refused, per protocol, by reason.",
    );
    for (id, s) in stats {
        let l = label(id);
        for (k, v) in &s.refused {
            let labels = format!("{l},reason=\"{}\"", escape(k));
            o.sample("timed_protocol_refused_total", &labels, v);
        }
    }
}

/// A per-topic counter family: the word in its name, its help, and its field.
type TopicFamily = (&'static str, &'static str, fn(&TopicStats) -> u64);

/// Per gossip topic, one series per declared topic (never per peer).
fn topics(o: &mut Out, stats: &BTreeMap<TopicId, TopicStats>) {
    let names = series_names(stats.iter().map(|(id, s)| (*id, s.name)), |t| t.0);
    let families: [TopicFamily; 9] = [
        (
            "published",
            "Gossip messages we published, per topic.",
            |s| s.published,
        ),
        (
            "received",
            "New gossip messages received from peers, per topic (duplicates not counted).",
            |s| s.received,
        ),
        (
            "accepted",
            "Received gossip messages validated as good (forwarded), per topic.",
            |s| s.accepted,
        ),
        (
            "rejected",
            "Received gossip messages validated as bad (sender banned), per topic.",
            |s| s.rejected,
        ),
        (
            "ignored",
            "Received gossip messages not worth forwarding (not the sender's fault), per topic.",
            |s| s.ignored,
        ),
        (
            "expired",
            "Received gossip messages dropped unjudged (too many pending, or too slow), per topic.",
            |s| s.expired,
        ),
        (
            "duplicates",
            "Gossip messages received again and dropped, per topic.",
            |s| s.duplicates,
        ),
        (
            "rate_limited",
            "Gossip messages dropped because their sender was over the rate, per topic.",
            |s| s.rate_limited,
        ),
        (
            "sent",
            "Gossip copies sent to peers (published and forwarded), per topic.",
            |s| s.sent,
        ),
    ];
    for (what, help, get) in families {
        let name = format!("timed_topic_{what}_total");
        o.family(&name, "counter", help);
        for (id, s) in stats {
            o.sample(&name, &format!("topic=\"{}\"", names[id]), get(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str, family: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .map(String::from)
            .collect()
    }

    #[test]
    fn protocol_series_are_one_per_declared_protocol_and_named_by_it() {
        let mut stats = BTreeMap::new();
        let mut blocks = ProtocolStats {
            name: "timed/blocks/1",
            requests_out: 7,
            requests_in: 3,
            bytes_out: 100,
            bytes_in: 9000,
            ..ProtocolStats::default()
        };
        blocks.results.insert("ok", 6);
        blocks.results.insert("timeout", 1);
        blocks.refused.insert("too_many_requests", 2);
        stats.insert(ProtocolId(3), blocks);
        // An application's names: one with characters to escape, two sharing a name.
        for (id, name) in [(1000, "odd \"name\"\\"), (1001, "same"), (1002, "same")] {
            stats.insert(
                ProtocolId(id),
                ProtocolStats {
                    name,
                    ..ProtocolStats::default()
                },
            );
        }
        let mut o = Out(String::new());
        protocols(&mut o, &stats);
        let text = o.0;
        for family in [
            "timed_protocol_requests_total",
            "timed_protocol_bytes_total",
            "timed_protocol_results_total",
            "timed_protocol_refused_total",
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {family} counter\n")).count(),
                1,
                "{text}"
            );
            assert_eq!(text.matches(&format!("# HELP {family} ")).count(), 1);
        }
        let req = lines(&text, "timed_protocol_requests_total");
        assert_eq!(req.len(), 8, "two directions per protocol: {req:?}");
        assert!(req.contains(
            &"timed_protocol_requests_total{protocol=\"timed/blocks/1\",direction=\"out\"} 7"
                .into()
        ));
        assert!(req.contains(
            &"timed_protocol_requests_total{protocol=\"timed/blocks/1\",direction=\"in\"} 3".into()
        ));
        assert!(req
            .iter()
            .any(|l| l.contains("protocol=\"odd \\\"name\\\"\\\\\"")));
        assert!(req.iter().any(|l| l.contains("protocol=\"same#1001\"")));
        assert!(req.iter().any(|l| l.contains("protocol=\"same#1002\"")));
        assert!(text.contains(
            "timed_protocol_bytes_total{protocol=\"timed/blocks/1\",direction=\"in\"} 9000\n"
        ));
        assert_eq!(
            lines(&text, "timed_protocol_results_total"),
            [
                "timed_protocol_results_total{protocol=\"timed/blocks/1\",result=\"ok\"} 6",
                "timed_protocol_results_total{protocol=\"timed/blocks/1\",result=\"timeout\"} 1",
            ]
        );
        assert_eq!(
            lines(&text, "timed_protocol_refused_total"),
            ["timed_protocol_refused_total{protocol=\"timed/blocks/1\",reason=\"too_many_requests\"} 2"]
        );
        // The value follows the last space (a label value may hold spaces).
        let series: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        let unique: BTreeSet<&str> = series.iter().copied().collect();
        assert_eq!(unique.len(), series.len(), "no series twice: {series:?}");
    }

    #[test]
    fn every_topic_counter_has_a_series_per_topic() {
        let mut stats = BTreeMap::new();
        stats.insert(
            TopicId(1),
            TopicStats {
                name: "timed/blocks",
                published: 5,
                received: 4,
                accepted: 3,
                rejected: 1,
                duplicates: 9,
                sent: 10,
                ..TopicStats::default()
            },
        );
        stats.insert(
            TopicId(2),
            TopicStats {
                name: "timed/txs",
                ..TopicStats::default()
            },
        );
        let mut o = Out(String::new());
        topics(&mut o, &stats);
        let text = o.0;
        for what in [
            "published",
            "received",
            "accepted",
            "rejected",
            "ignored",
            "expired",
            "duplicates",
            "rate_limited",
            "sent",
        ] {
            let family = format!("timed_topic_{what}_total");
            assert!(
                text.contains(&format!("# TYPE {family} counter\n")),
                "{text}"
            );
            assert_eq!(lines(&text, &family).len(), 2, "{family}: {text}");
            assert!(text.contains(&format!("{family}{{topic=\"timed/txs\"}} 0\n")));
        }
        assert!(text.contains("timed_topic_published_total{topic=\"timed/blocks\"} 5\n"));
        assert!(text.contains("timed_topic_duplicates_total{topic=\"timed/blocks\"} 9\n"));
        assert!(text.contains("timed_topic_sent_total{topic=\"timed/blocks\"} 10\n"));
    }
}
