//! The old node's test plan, automated: real `timed` processes over loopback TCP.
//!
//! Ping interval 200 ms, so "30 ping intervals" is 6 s. Every wait is bounded and polls the
//! HTTP API.

mod common;

use common::{lists_exactly, tempdir, wait_until, TestNode, BIN};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const PING: &str = "200ms";
const LONG: Duration = Duration::from_secs(30);

fn pongs_ok(p: &Value) -> bool {
    let pings = p["pings_sent"].as_u64().unwrap_or(0);
    let pongs = p["pongs_received"].as_u64().unwrap_or(0);
    // One ping may be in flight when we look.
    (pongs + 1) as f64 >= 0.99 * pings as f64
}

/// The three-node plan: every node lists each other node exactly once; the connections
/// survive 30 ping intervals with zero reconnects and ≥ 99 % pongs; the API, metrics and
/// `timed status` show it; then SIGTERM and Ctrl-C stop two nodes cleanly with a Goodbye the
/// remaining node counts (and logs) as a shutdown.
#[test]
fn three_nodes_mesh_stay_connected_30_ping_intervals_and_shut_down_with_goodbye() {
    let tmp = tempdir();
    let n1 = TestNode::start(
        "node1",
        &tmp.path().join("1"),
        0,
        &["--ping-interval", PING, "--produce-blocks", "500ms"],
    );
    let seed = n1.p2p.to_string();
    let mut n2 = TestNode::start(
        "node2",
        &tmp.path().join("2"),
        0,
        &["--ping-interval", PING, "--peer", &seed],
    );
    let mut n3 = TestNode::start(
        "node3",
        &tmp.path().join("3"),
        0,
        &["--ping-interval", PING, "--peer", &seed],
    );

    // Node 3 only knows node 1: it finds node 2 through peer exchange (or node 2 finds it).
    wait_until(
        LONG,
        "every node lists each other node exactly once",
        || {
            (lists_exactly(&n1, &[&n2, &n3])
                && lists_exactly(&n2, &[&n1, &n3])
                && lists_exactly(&n3, &[&n1, &n2]))
            .then_some(())
        },
    );
    let conns = |n: &TestNode| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = n
            .peers()
            .iter()
            .map(|p| {
                (
                    p["node_id"].as_str().unwrap_or("").to_string(),
                    p["conn_id"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before: Vec<_> = [&n1, &n2, &n3].iter().map(|n| conns(n)).collect();

    // 30 ping intervals on every connection, observed through the pings of its dialer (the
    // dialer keeps a connection alive; the acceptor answers) and counted at both ends.
    let count = |p: &Value, k: &str| p[k].as_u64().unwrap_or(0);
    wait_until(
        Duration::from_secs(40),
        "30 pings on every connection",
        || {
            let all: Vec<Vec<Value>> = [&n1, &n2, &n3].iter().map(|n| n.peers()).collect();
            let dialed = all
                .iter()
                .flatten()
                .filter(|p| p["direction"] == "outbound")
                .count();
            let pinged = all.iter().flatten().all(|p| {
                if p["direction"] == "outbound" {
                    count(p, "pings_sent") >= 30
                } else {
                    count(p, "pings_received") >= 30
                }
            });
            (all.iter().all(|peers| peers.len() == 2) && dialed == 3 && pinged).then_some(())
        },
    );
    for (i, n) in [&n1, &n2, &n3].iter().enumerate() {
        assert_eq!(conns(n), before[i], "{}: a connection was replaced", n.name);
        let st = n.status();
        assert_eq!(st["reconnects_total"], 0, "{}: {st}", n.name);
        assert_eq!(st["peer_count"], 2);
        for p in n.peers() {
            assert!(pongs_ok(&p), "{}: pong success below 99%: {p}", n.name);
            assert!(p["rtt_ms"].as_f64().is_some(), "{}: no RTT: {p}", n.name);
        }
    }

    // The API surface.
    let chain = n1.get("/chain").unwrap();
    assert!(
        chain["height"].as_u64().unwrap() > 0,
        "node 1 produces blocks: {chain}"
    );
    assert_eq!(chain["genesis_hash"], n2.status()["genesis_hash"]);
    let metrics = common::http_get_text(&n1, "/metrics");
    for needle in [
        "timed_pings_sent_total",
        "timed_pongs_received_total",
        "timed_rtt_milliseconds_bucket{le=\"+Inf\"}",
        "timed_reconnects_total 0",
        "timed_bytes_total{direction=\"in\"}",
        "timed_frames_total{direction=\"out\"}",
        "timed_height",
        "timed_queries_total",
        "timed_misbehaviour_total",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    let out = Command::new(BIN)
        .args(["status", "--api", &n1.api.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("PONG %")
            && table.contains(&n2.node_id[..8])
            && table.contains(&n3.node_id[..8]),
        "{table}"
    );

    // SIGTERM node 3, Ctrl-C (SIGINT) node 2: both exit 0, and node 1 is told why.
    n3.signal(Signal::SIGTERM);
    assert!(
        n3.wait_exit(Duration::from_secs(15)).success(),
        "node3 log:\n{}",
        n3.log()
    );
    n2.signal(Signal::SIGINT);
    assert!(
        n2.wait_exit(Duration::from_secs(15)).success(),
        "node2 log:\n{}",
        n2.log()
    );
    wait_until(
        Duration::from_secs(10),
        "node 1 to count two shutdown goodbyes",
        || {
            let st = n1.status();
            (st["goodbyes_received"]["shutdown"].as_u64() == Some(2) && st["peer_count"] == 0)
                .then_some(())
        },
    );
    assert!(n3.log().contains("stopped cleanly"), "{}", n3.log());
    assert!(n1.log().contains("said goodbye (shutdown)"), "{}", n1.log());
    assert!(
        !n1.log().to_lowercase().contains("ping ") || !n1.log().contains("pong"),
        "no log line per ping at info"
    );
}

/// A fourth node started empty syncs to the producer's tip through a non-producing peer.
#[test]
fn a_fourth_node_started_empty_syncs_to_the_producers_tip() {
    let tmp = tempdir();
    let n1 = TestNode::start(
        "node1",
        &tmp.path().join("1"),
        0,
        &["--ping-interval", PING, "--produce-blocks", "20ms"],
    );
    let n2 = TestNode::start(
        "node2",
        &tmp.path().join("2"),
        0,
        &["--ping-interval", PING, "--peer", &n1.p2p.to_string()],
    );
    // Let the producer build a chain longer than one sync batch's worth of round trips.
    let target = 150;
    wait_until(LONG, "node 2 to follow node 1 past height 150", || {
        (n2.height() >= target).then_some(())
    });
    let n4 = TestNode::start(
        "node4",
        &tmp.path().join("4"),
        0,
        &["--ping-interval", PING, "--peer", &n2.p2p.to_string()],
    );
    assert!(
        n4.log().contains("height=0"),
        "node 4 starts empty:\n{}",
        n4.log()
    );
    wait_until(LONG, "node 4 to reach the producer's tip", || {
        let h1 = n1.status();
        let h4 = n4.status();
        (h4["height"].as_u64() >= Some(target) && h4["tip_hash"] == h1["tip_hash"]).then_some(())
    });
    let chain = n4.get("/chain").unwrap();
    assert!(
        chain["blocks_applied_total"].as_u64().unwrap() >= target,
        "{chain}"
    );
}

/// `kill -9` of the hub node, restart on the same port and data dir: it keeps its identity,
/// resumes from its stored height, and the others reconnect to it (with backoff).
#[test]
fn kill_9_and_restart_resumes_from_stored_height_and_peers_reconnect() {
    let tmp = tempdir();
    let d1 = tmp.path().join("1");
    let mut n1 = TestNode::start(
        "node1",
        &d1,
        0,
        &["--ping-interval", PING, "--produce-blocks", "100ms"],
    );
    let port = n1.p2p.port();
    let seed = n1.p2p.to_string();
    let n2 = TestNode::start(
        "node2",
        &tmp.path().join("2"),
        0,
        &["--ping-interval", PING, "--peer", &seed],
    );
    let n3 = TestNode::start(
        "node3",
        &tmp.path().join("3"),
        0,
        &["--ping-interval", PING, "--peer", &seed],
    );
    wait_until(LONG, "full mesh", || {
        (lists_exactly(&n1, &[&n2, &n3])
            && lists_exactly(&n2, &[&n1, &n3])
            && lists_exactly(&n3, &[&n1, &n2]))
        .then_some(())
    });
    wait_until(LONG, "some blocks", || (n1.height() >= 20).then_some(()));
    let id = n1.node_id.clone();
    let height_before = n1.height();

    n1.kill9();
    wait_until(LONG, "the others to notice node 1 is gone", || {
        (!n2.peer_ids().contains(&id) && !n3.peer_ids().contains(&id)).then_some(())
    });

    let n1 = TestNode::start(
        "node1-restarted",
        &d1,
        port,
        &["--ping-interval", PING, "--produce-blocks", "100ms"],
    );
    assert_eq!(n1.node_id, id, "the identity is persisted in the data dir");
    let st = n1.status();
    assert!(
        st["height"].as_u64().unwrap() >= height_before,
        "resumed from the stored height: {st} < {height_before}"
    );
    wait_until(LONG, "node 2 and node 3 to reconnect to node 1", || {
        (lists_exactly(&n1, &[&n2, &n3])
            && n2.peer_ids().contains(&id)
            && n3.peer_ids().contains(&id))
        .then_some(())
    });
    for n in [&n2, &n3] {
        let st = n.status();
        assert!(
            st["reconnects_total"].as_u64().unwrap() >= 1,
            "{}: reconnect counted: {st}",
            n.name
        );
    }
    let h = n1.height();
    wait_until(LONG, "node 2 to follow the restarted producer", || {
        (n2.height() > h).then_some(())
    });
}

/// A single node's `POST /tx`: hex in, id out; a clear 4xx otherwise.
#[test]
fn post_tx_returns_the_id_or_a_clear_4xx() {
    let tmp = tempdir();
    let n = TestNode::start("node", &tmp.path().join("n"), 0, &[]);
    let post = |body: &str| {
        timed_node::http::post(n.api, "/tx", body.as_bytes(), Duration::from_secs(5)).unwrap()
    };
    let ok = post("deadbeef");
    assert_eq!(ok.status, 200, "{}", ok.body);
    let v: Value = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(v["tx_id"].as_str().unwrap().len(), 64);
    let dup = post("deadbeef");
    assert_eq!(dup.status, 409, "{}", dup.body);
    let bad = post("not hex");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("hex"), "{}", bad.body);
    assert_eq!(post("").status, 400);
    let st = n.status();
    assert_eq!(st["network"], "devnet");
    assert_eq!(st["height"], 0);
}

/// Bad flags and config files name the problem and the fix: non-zero exit, no panic.
#[test]
fn bad_flags_and_config_name_the_problem_and_the_fix() {
    let tmp = tempdir();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{args:?}: {err}"
        );
        err
    };
    let data = tmp.path().join("d");
    let data = data.to_str().unwrap();
    let e = run(&["--ping-interval", "30"]);
    assert!(e.contains("30s"), "{e}");
    let e = run(&[
        "--data-dir",
        data,
        "--api",
        "off",
        "--ping-interval",
        "10s",
        "--ping-timeout",
        "5s",
    ]);
    assert!(
        e.contains("ping_timeout") && e.contains("--ping-timeout"),
        "{e}"
    );
    let e = run(&["--network", "moonnet"]);
    assert!(e.contains("devnet"), "{e}");
    let e = run(&["--peer", "localhost"]);
    assert!(e.contains("HOST:PORT"), "{e}");
    let e = run(&["--node-id", "99"]);
    assert!(e.contains("1 to 49"), "{e}");
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "ping_intervall = \"1s\"\n").unwrap();
    let e = run(&["--config", cfg.to_str().unwrap()]);
    assert!(e.contains("ping_intervall") && e.contains("fix:"), "{e}");
    let e = run(&["--data-dir", data, "--api", "127.0.0.1:notaport"]);
    assert!(e.contains("--api"), "{e}");
}

/// A TOML config file is read and the command line overrides it.
#[test]
fn a_config_file_sets_the_node_and_flags_override_it() {
    let tmp = tempdir();
    let cfg = tmp.path().join("timed.toml");
    std::fs::write(
        &cfg,
        "network = \"testnet\"\nping_interval = \"250ms\"\nproduce_blocks = \"50ms\"\n",
    )
    .unwrap();
    let n = TestNode::start(
        "node",
        &tmp.path().join("n"),
        0,
        &["--config", cfg.to_str().unwrap(), "--produce-blocks", "10m"],
    );
    assert_eq!(n.status()["network"], "testnet");
    // 10m from the command line beats 50ms from the file: nothing is produced meanwhile.
    let chain = n.get("/chain").unwrap();
    assert_eq!(chain["height"], 0, "{chain}");
}

/// `timed devnet` (the README's main-job command) starts real nodes that form a full mesh,
/// prints its live table, and Ctrl-C stops every node cleanly and prints the summary.
#[test]
fn devnet_runs_a_full_mesh_and_ctrl_c_stops_every_node_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .args([
            "devnet",
            "--nodes",
            "3",
            "--ping-interval",
            "200ms",
            "--produce-blocks",
            "200ms",
            "--every",
            "300ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    // The latest table row per node: ["node", N, pid, height, peers, ...].
    let mut peers = std::collections::BTreeMap::new();
    let guard = scopeguard(child.id());
    wait_until(
        LONG,
        "the devnet table to show every node with 2 peers",
        || {
            while let Ok(line) = rx.try_recv() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() >= 5 && f[0] == "node" && f[2].parse::<u32>().is_ok() {
                    peers.insert(f[1].to_string(), f[4].to_string());
                }
                out.push(line);
            }
            (peers.len() == 3 && peers.values().all(|p| p == "2")).then_some(())
        },
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGINT,
    )
    .unwrap();
    let status = wait_until(LONG, "devnet to exit", || child.try_wait().ok().flatten());
    drop(guard);
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        out.push(line);
    }
    let text = out.join("\n");
    assert!(status.success(), "{text}");
    assert!(text.contains("summary"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("node ") && l.ends_with(" clean"))
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains("every node sees every other: yes"), "{text}");
}

/// Kills the process on drop if a test fails before it exits (no orphans).
fn scopeguard(pid: u32) -> impl Drop {
    struct G(u32);
    impl Drop for G {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.0 as i32),
                    Signal::SIGKILL,
                );
            }
        }
    }
    G(pid)
}

/// A second node on a data dir already in use is refused with the holder's pid, and the
/// running node is untouched.
#[test]
fn a_second_node_on_the_same_data_dir_is_refused_and_told_why() {
    let tmp = tempdir();
    let dir = tmp.path().join("shared");
    let first = TestNode::start("first", &dir, 0, &[]);
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--api", "off"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("another timed process")
            && err.contains(&format!("pid {}", first.child.id()))
            && err.contains("--data-dir"),
        "{err}"
    );
    assert_eq!(first.status()["node_id"], first.node_id.as_str());
}
