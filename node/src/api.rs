//! The HTTP API: `GET /status`, `/peers`, `/chain`, `/metrics`, `POST /tx`.
//! Loopback by default; read-only apart from `/tx`.

use crate::observe::{self, Shared};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use timed_core::protocol::{ProtocolId, TopicId};
use timed_core::{ProtocolStats, Status, TopicStats, Tx, TxError};
use timed_tokio::NodeHandle;

#[derive(Clone)]
pub struct ApiState {
    pub handle: NodeHandle,
    pub observed: Shared,
    pub started: tokio::time::Instant,
    pub p2p: Option<std::net::SocketAddr>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/peers", get(peers))
        .route("/chain", get(chain))
        .route("/metrics", get(metrics))
        .route("/tx", post(tx))
        .with_state(state)
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "error": msg.into() }))).into_response()
}

async fn snapshot(s: &ApiState) -> Result<Status, Response> {
    s.handle
        .status()
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the node has stopped"))
}

async fn status(State(s): State<ApiState>) -> Response {
    let st = match snapshot(&s).await {
        Ok(st) => st,
        Err(r) => return r,
    };
    Json(json!({
        "node_id": st.node_id.to_hex(),
        "network": st.network.name(),
        "height": st.height,
        "tip_hash": st.tip_hash.to_string(),
        "genesis_hash": st.genesis_hash.to_string(),
        "peer_count": st.peers.len(),
        "reconnects_total": st.counters.reconnects,
        "uptime_secs": s.started.elapsed().as_secs(),
        "connections": st.connections,
        "syncing": st.syncing,
        "sync_target": st.sync_target,
        "p2p_addr": s.p2p.map(|a| a.to_string()),
        "pings_sent": st.counters.pings_sent,
        "pongs_received": st.counters.pongs_received,
        "conns_closed": st.counters.conns_closed.by_label(),
        "goodbyes_received": observe::lock(&s.observed).goodbyes_received.clone(),
        "boot": st.boot,
        "protocols": protocols_json(&st.protocols),
        "topics": topics_json(&st.topics),
    }))
    .into_response()
}

/// `/status`'s `protocols`: every protocol this node runs, by id, with its statistics.
pub fn protocols_json(stats: &BTreeMap<ProtocolId, ProtocolStats>) -> Value {
    stats
        .iter()
        .map(|(id, s)| {
            json!({
                "id": id.0,
                "name": s.name,
                "requests_out": s.requests_out,
                "requests_in": s.requests_in,
                "bytes_out": s.bytes_out,
                "bytes_in": s.bytes_in,
                "results": s.results,
                "refused": s.refused,
            })
        })
        .collect()
}

/// `/status`'s `topics`: every topic this node takes part in, by id, with its statistics.
pub fn topics_json(stats: &BTreeMap<TopicId, TopicStats>) -> Value {
    stats
        .iter()
        .map(|(id, s)| {
            json!({
                "id": id.0,
                "name": s.name,
                "published": s.published,
                "received": s.received,
                "accepted": s.accepted,
                "rejected": s.rejected,
                "ignored": s.ignored,
                "expired": s.expired,
                "duplicates": s.duplicates,
                "rate_limited": s.rate_limited,
                "sent": s.sent,
            })
        })
        .collect()
}

/// What a peer advertised, as `[{"id": 3, "name": "timed/blocks/1"}, …]`: the name is the
/// one this node knows the id by, or `null` for an id this node does not run.
pub fn advertised<K>(
    ids: &[K],
    id: impl Fn(&K) -> u32,
    name: impl Fn(&K) -> Option<&'static str>,
) -> Value {
    ids.iter()
        .map(|k| json!({ "id": id(k), "name": name(k) }))
        .collect()
}

async fn peers(State(s): State<ApiState>) -> Response {
    let st = match snapshot(&s).await {
        Ok(st) => st,
        Err(r) => return r,
    };
    let now = s.handle.now();
    let list: Vec<Value> = st
        .peers
        .iter()
        .map(|p| {
            json!({
                "node_id": p.node_id.to_hex(),
                "conn_id": p.conn.get(),
                "direction": p.direction.as_str(),
                "remote_addr": p.remote_addr.to_string(),
                "rtt_ms": p.rtt.map(|r| r.as_micros() as f64 / 1000.0),
                "connected_secs": now.saturating_since(p.connected_since).as_secs(),
                "pings_sent": p.pings_sent,
                "pongs_received": p.pongs_received,
                "pings_received": p.pings_received,
                "best_height": p.best_height,
                "user_agent": p.user_agent,
                "protocols": advertised(&p.protocols, |k| k.0, |k| st.protocols.get(k).map(|s| s.name)),
                "topics": advertised(&p.topics, |k| k.0, |k| st.topics.get(k).map(|s| s.name)),
            })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}

async fn chain(State(s): State<ApiState>) -> Response {
    let st = match snapshot(&s).await {
        Ok(st) => st,
        Err(r) => return r,
    };
    let o = observe::lock(&s.observed);
    Json(json!({
        "height": st.height,
        "tip_hash": st.tip_hash.to_string(),
        "genesis_hash": st.genesis_hash.to_string(),
        "syncing": st.syncing,
        "sync_target": st.sync_target,
        "blocks_per_sec": o.blocks_per_sec,
        "eta_secs": o.eta_secs,
        "blocks_applied_total": st.counters.blocks_applied,
        "reorgs_total": st.counters.reorgs,
        "mempool_len": st.mempool_len,
        "mempool_bytes": st.mempool_bytes,
    }))
    .into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let st = match snapshot(&s).await {
        Ok(st) => st,
        Err(r) => return r,
    };
    let text = crate::metrics::render(
        &st,
        &observe::lock(&s.observed),
        s.started.elapsed().as_secs(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn tx(State(s): State<ApiState>, body: String) -> Response {
    let text = body.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty body: send the transaction bytes as hex",
        );
    }
    let bytes = match hex::decode(text) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not hex ({e}): send the transaction bytes as hex"),
            )
        }
    };
    match s.handle.submit_tx(Tx(bytes)).await {
        Ok(id) => Json(json!({ "tx_id": id.to_string() })).into_response(),
        Err(e) => {
            let code = match e {
                TxError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                TxError::Duplicate => StatusCode::CONFLICT,
                TxError::MempoolFull | TxError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(code, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_advertised_ids_are_named_where_this_node_runs_them() {
        let mut known = BTreeMap::new();
        known.insert(
            ProtocolId(3),
            ProtocolStats {
                name: "timed/blocks/1",
                ..ProtocolStats::default()
            },
        );
        let ads = [ProtocolId(3), ProtocolId(1234)];
        let v = advertised(&ads, |k| k.0, |k| known.get(k).map(|s| s.name));
        assert_eq!(
            v,
            json!([
                { "id": 3, "name": "timed/blocks/1" },
                { "id": 1234, "name": null },
            ])
        );
    }

    #[test]
    fn status_lists_protocols_and_topics_with_their_stats() {
        let mut p = BTreeMap::new();
        let mut s = ProtocolStats {
            name: "timed/tip/1",
            requests_in: 2,
            ..ProtocolStats::default()
        };
        s.results.insert("ok", 1);
        p.insert(ProtocolId(1), s);
        let v = protocols_json(&p);
        assert_eq!(v[0]["id"], 1);
        assert_eq!(v[0]["name"], "timed/tip/1");
        assert_eq!(v[0]["requests_in"], 2);
        assert_eq!(v[0]["results"]["ok"], 1);
        assert_eq!(v[0]["refused"], json!({}));
        let mut t = BTreeMap::new();
        t.insert(
            TopicId(2),
            TopicStats {
                name: "timed/txs",
                rate_limited: 4,
                ..TopicStats::default()
            },
        );
        let v = topics_json(&t);
        assert_eq!(v[0]["id"], 2);
        assert_eq!(v[0]["name"], "timed/txs");
        assert_eq!(v[0]["rate_limited"], 4);
        assert_eq!(v[0]["expired"], 0);
    }
}
