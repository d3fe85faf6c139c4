//! The operator surface of the application protocols and gossip topics, with real `timed`
//! processes over loopback TCP: per-protocol and per-topic counters in `/metrics` and
//! `/status`, each peer's advertised protocols and topics in `/peers`, and the count in
//! `timed status`.
//!
//! Every wait is a bounded poll of the HTTP API.

mod common;

use common::{http_get_text, lists_exactly, tempdir, wait_until, TestNode, BIN};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);
const PING: &str = "200ms";

const PROTOCOLS: [(u64, &str); 4] = [
    (1, "timed/tip/1"),
    (2, "timed/hash-at/1"),
    (3, "timed/blocks/1"),
    (4, "timed/peers/1"),
];
const TOPICS: [(u64, &str); 2] = [(1, "timed/blocks"), (2, "timed/txs")];

/// The value of the one sample `series` (its name and labels, exactly) in a scrape.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `(id, name)` of each entry of a `protocols` or `topics` array.
fn ids_and_names(list: &Value) -> Vec<(u64, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn named(list: &[(u64, &str)]) -> Vec<(u64, String)> {
    list.iter().map(|(i, n)| (*i, n.to_string())).collect()
}

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// A node that starts empty syncs from a producer through `timed/blocks/1`: both count it
/// (requests out on the syncing node with `ok` results, requests in on the producer), in
/// `/metrics` and `/status`; `/peers` shows what each advertised; a transaction posted to
/// one shows up in both nodes' `timed/txs` counters.
#[test]
fn a_sync_and_a_gossiped_tx_show_in_the_protocol_and_topic_counters() {
    let tmp = tempdir();
    let n1 = TestNode::start(
        "producer",
        &tmp.path().join("1"),
        0,
        &["--ping-interval", PING, "--produce-blocks", "20ms"],
    );
    // Built before the second node exists, so it can only get these by asking for them.
    let target = 30;
    wait_until(LONG, "the producer to build 30 blocks", || {
        (n1.height() >= target).then_some(())
    });
    let n2 = TestNode::start(
        "follower",
        &tmp.path().join("2"),
        0,
        &["--ping-interval", PING, "--peer", &n1.p2p.to_string()],
    );
    wait_until(LONG, "the follower to sync to height 30", || {
        (n2.height() >= target && lists_exactly(&n1, &[&n2]) && lists_exactly(&n2, &[&n1]))
            .then_some(())
    });

    // ---- /metrics -----------------------------------------------------------------------
    let blocks_in = "timed_protocol_requests_total{protocol=\"timed/blocks/1\",direction=\"in\"}";
    let blocks_out = "timed_protocol_requests_total{protocol=\"timed/blocks/1\",direction=\"out\"}";
    let blocks_ok = "timed_protocol_results_total{protocol=\"timed/blocks/1\",result=\"ok\"}";
    let m1 = http_get_text(&n1, "/metrics");
    let m2 = http_get_text(&n2, "/metrics");
    assert!(
        sample(&m1, blocks_in) > Some(0),
        "producer served blocks:\n{m1}"
    );
    assert!(sample(&m2, blocks_out) > Some(0), "follower asked:\n{m2}");
    assert!(sample(&m2, blocks_ok) > Some(0), "and was answered:\n{m2}");
    assert!(
        sample(
            &m1,
            "timed_protocol_bytes_total{protocol=\"timed/blocks/1\",direction=\"out\"}"
        ) > Some(0),
        "{m1}"
    );
    assert!(
        sample(&m1, "timed_topic_published_total{topic=\"timed/blocks\"}") > Some(0),
        "the producer announces its blocks:\n{m1}"
    );
    for m in [&m1, &m2] {
        for family in [
            "timed_protocol_requests_total",
            "timed_protocol_bytes_total",
            "timed_protocol_results_total",
            "timed_protocol_refused_total",
            "timed_topic_published_total",
            "timed_topic_received_total",
            "timed_topic_accepted_total",
            "timed_topic_rejected_total",
            "timed_topic_ignored_total",
            "timed_topic_expired_total",
            "timed_topic_duplicates_total",
            "timed_topic_rate_limited_total",
            "timed_topic_sent_total",
        ] {
            assert!(
                m.contains(&format!("# HELP {family} "))
                    && m.contains(&format!("# TYPE {family} counter\n")),
                "{family} lacks HELP/TYPE:\n{m}"
            );
        }
        // One series per declared protocol and direction, never per peer.
        for (_, name) in PROTOCOLS {
            for dir in ["in", "out"] {
                let series = format!(
                    "timed_protocol_requests_total{{protocol=\"{name}\",direction=\"{dir}\"}}"
                );
                assert!(sample(m, &series).is_some(), "no {series}:\n{m}");
            }
        }
        for (_, name) in TOPICS {
            let series = format!("timed_topic_sent_total{{topic=\"{name}\"}}");
            assert!(sample(m, &series).is_some(), "no {series}:\n{m}");
        }
        let app_lines: Vec<&str> = m
            .lines()
            .filter(|l| l.starts_with("timed_protocol_") || l.starts_with("timed_topic_"))
            .collect();
        assert!(
            app_lines.iter().all(|l| !l.contains("peer=")),
            "{app_lines:?}"
        );
        assert_eq!(
            app_lines
                .iter()
                .filter(|l| l.starts_with("timed_protocol_requests_total{"))
                .count(),
            PROTOCOLS.len() * 2
        );
    }

    // ---- /status ------------------------------------------------------------------------
    let s1 = n1.status();
    let s2 = n2.status();
    for s in [&s1, &s2] {
        assert_eq!(ids_and_names(&s["protocols"]), named(&PROTOCOLS), "{s}");
        assert_eq!(ids_and_names(&s["topics"]), named(&TOPICS), "{s}");
    }
    let b1 = entry(&s1["protocols"], "timed/blocks/1");
    assert!(b1["requests_in"].as_u64() > Some(0), "{b1}");
    assert!(b1["bytes_out"].as_u64() > Some(0), "{b1}");
    let b2 = entry(&s2["protocols"], "timed/blocks/1");
    assert!(b2["requests_out"].as_u64() > Some(0), "{b2}");
    assert!(b2["results"]["ok"].as_u64() > Some(0), "{b2}");
    assert!(b2["refused"].is_object(), "{b2}");
    for key in [
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
        assert!(
            entry(&s1["topics"], "timed/txs")[key].is_u64(),
            "{key}: {s1}"
        );
    }

    // ---- /peers -------------------------------------------------------------------------
    for (n, other) in [(&n1, &n2), (&n2, &n1)] {
        let peers = n.peers();
        let p = peers
            .iter()
            .find(|p| p["node_id"] == other.node_id.as_str())
            .unwrap_or_else(|| panic!("{}: no {} in {peers:?}", n.name, other.name));
        assert_eq!(ids_and_names(&p["protocols"]), named(&PROTOCOLS), "{p}");
        assert_eq!(ids_and_names(&p["topics"]), named(&TOPICS), "{p}");
    }

    // ---- a gossiped transaction ---------------------------------------------------------
    let r = timed_node::http::post(n1.api, "/tx", b"c0ffee", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(LONG, "the follower to receive and accept the tx", || {
        let t = entry(&n2.status()["topics"], "timed/txs").clone();
        (t["received"].as_u64() >= Some(1) && t["accepted"].as_u64() >= Some(1)).then_some(())
    });
    let t1 = entry(&n1.status()["topics"], "timed/txs").clone();
    assert_eq!(t1["published"], 1, "{t1}");
    assert!(t1["sent"].as_u64() >= Some(1), "{t1}");
    let m2 = http_get_text(&n2, "/metrics");
    assert!(
        sample(&m2, "timed_topic_received_total{topic=\"timed/txs\"}") >= Some(1),
        "{m2}"
    );

    // ---- timed status -------------------------------------------------------------------
    let out = Command::new(BIN)
        .args(["status", "--api", &n2.api.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().find(|l| l.starts_with("PEER")).unwrap_or("");
    let row = table
        .lines()
        .find(|l| l.starts_with(&n1.node_id[..8]))
        .unwrap_or("");
    assert!(
        header.ends_with("PROTOS") && row.ends_with(&format!(" {}", PROTOCOLS.len())),
        "{table}"
    );
}
