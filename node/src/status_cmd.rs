//! `timed status`: a human table from a node's HTTP API.

use crate::cli::{default_api, SettingsError, StatusArgs};
use crate::http;
use serde_json::Value;
use std::time::Duration;

fn fail(problem: String, fix: &str) -> SettingsError {
    SettingsError {
        problem,
        fix: fix.into(),
    }
}

fn fetch(addr: std::net::SocketAddr, path: &str) -> Result<Value, SettingsError> {
    let r = http::get(addr, path, Duration::from_secs(5)).map_err(|e| {
        fail(
            e,
            "is the node running? Pass its API address with --api, or its --node-id / --network",
        )
    })?;
    if r.status != 200 {
        return Err(fail(
            format!("{addr}{path} answered HTTP {}: {}", r.status, r.body.trim()),
            "check the node's log",
        ));
    }
    serde_json::from_str(&r.body).map_err(|e| {
        fail(
            format!("{addr}{path}: not JSON: {e}"),
            "is --api the node's API address?",
        )
    })
}

pub fn short(s: &str) -> String {
    s.chars().take(8).collect()
}

pub fn run(args: &StatusArgs) -> Result<(), SettingsError> {
    let addr = args
        .api
        .unwrap_or_else(|| default_api(args.network.into(), args.node_id));
    let status = fetch(addr, "/status")?;
    let peers = fetch(addr, "/peers")?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "status": status, "peers": peers })
        );
        return Ok(());
    }
    print!("{}", render(&status, &peers));
    Ok(())
}

/// The table `timed status` prints.
pub fn render(status: &Value, peers: &Value) -> String {
    let s = |k: &str| {
        status
            .get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let mut out = String::new();
    out += &format!("node      {} ({})\n", s("node_id"), s("network"));
    out += &format!(
        "height    {}   tip {}   genesis {}\n",
        s("height"),
        short(&s("tip_hash")),
        short(&s("genesis_hash"))
    );
    out += &format!(
        "peers     {}   reconnects {}   uptime {}s   syncing {}\n\n",
        s("peer_count"),
        s("reconnects_total"),
        s("uptime_secs"),
        s("syncing")
    );
    out += &format!(
        "{:<10} {:<9} {:<22} {:>9} {:>10} {:>7} {:>7} {:>7} {:>8} {:>6}\n",
        "PEER",
        "DIR",
        "REMOTE",
        "RTT ms",
        "CONNECTED",
        "PINGS",
        "PONGS",
        "PONG %",
        "PINGS IN",
        "PROTOS"
    );
    for p in peers.as_array().map(|a| a.as_slice()).unwrap_or_default() {
        let g = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
        let pings = g("pings_sent").as_u64().unwrap_or(0);
        let pongs = g("pongs_received").as_u64().unwrap_or(0);
        let rate = if pings == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", 100.0 * pongs as f64 / pings as f64)
        };
        let rtt = g("rtt_ms")
            .as_f64()
            .map(|r| format!("{r:.2}"))
            .unwrap_or_else(|| "-".into());
        // The protocols the peer advertised; "-" from a node that does not report them.
        let protos = g("protocols")
            .as_array()
            .map(|a| a.len().to_string())
            .unwrap_or_else(|| "-".into());
        out += &format!(
            "{:<10} {:<9} {:<22} {:>9} {:>9}s {:>7} {:>7} {:>7} {:>8} {:>6}\n",
            short(g("node_id").as_str().unwrap_or("?")),
            g("direction").as_str().unwrap_or("?"),
            g("remote_addr").as_str().unwrap_or("?"),
            rtt,
            g("connected_secs").as_u64().unwrap_or(0),
            pings,
            pongs,
            rate,
            g("pings_received").as_u64().unwrap_or(0),
            protos
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_counts_the_protocols_each_peer_advertised() {
        let status = json!({ "node_id": "ab", "network": "devnet", "peer_count": 2 });
        let peers = json!([
            { "node_id": "1111111111", "protocols": [{ "id": 1 }, { "id": 3 }] },
            { "node_id": "2222222222" },
        ]);
        let table = render(&status, &peers);
        let rows: Vec<&str> = table.lines().collect();
        let header = rows.iter().find(|l| l.starts_with("PEER")).unwrap();
        assert!(header.ends_with("PROTOS"), "{table}");
        let one = rows.iter().find(|l| l.starts_with("11111111")).unwrap();
        assert!(one.ends_with(" 2"), "{table}");
        let two = rows.iter().find(|l| l.starts_with("22222222")).unwrap();
        assert!(two.ends_with(" -"), "an older node's peers: {table}");
    }
}
