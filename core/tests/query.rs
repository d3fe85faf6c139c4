//! Every query ends exactly once: answered, timed out, peer lost, unknown peer, over the cap.

mod common;

use common::*;
use std::collections::BTreeMap;
use timed_core::testing::{NodeIx, Switchboard};
use timed_core::wire::Message;
use timed_core::{NodeEvent, QueryError, QueryId, QueryOutcome, RequestBody, ResponseBody};

/// Outcomes per query id seen by `node`.
fn outcomes(
    net: &Switchboard,
    node: NodeIx,
) -> BTreeMap<QueryId, Vec<Result<ResponseBody, QueryError>>> {
    let mut m: BTreeMap<QueryId, Vec<_>> = BTreeMap::new();
    for (_, e) in net.events(node) {
        if let NodeEvent::QueryDone { id, result } = e {
            m.entry(*id).or_default().push(result.clone());
        }
    }
    m
}

fn pair() -> (Switchboard, NodeIx, NodeIx) {
    let mut net = Switchboard::new();
    let a = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let b = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(2));
    assert_single_link(&mut net, a, b);
    (net, a, b)
}

#[test]
fn an_answered_query_ends_once_with_its_response() {
    let (mut net, a, _b) = pair();
    let now = net.now();
    let q = net.machine(a).query(now, id(2), RequestBody::Tip);
    net.run_for(secs(30));
    let o = outcomes(&net, a);
    assert_eq!(o[&q].len(), 1);
    assert!(
        matches!(o[&q][0], Ok(ResponseBody::Tip { height: 0, .. })),
        "{:?}",
        o[&q]
    );
}

#[test]
fn an_unanswered_query_times_out_once_and_a_late_response_is_ignored_quietly() {
    let (mut net, a, _b) = pair();
    // Responses are delayed beyond the query timeout by dropping them; the peer stays healthy.
    net.set_filter(Box::new(|from, _to, m| {
        from == 1 && matches!(m, Message::Response { .. })
    }));
    let now = net.now();
    let q = net.machine(a).query(now, id(2), RequestBody::Tip);
    net.run_for(secs(60));
    let o = outcomes(&net, a);
    assert_eq!(o[&q], vec![Err(QueryError::Timeout)]);
    let conn = net
        .machine(a)
        .peer_conn(id(2))
        .expect("a timeout is not a disconnect");
    // The response finally arrives (ids on a fresh connection count from 1, and `a`, which
    // accepted this connection, sent no request on it before ours): it is dropped quietly,
    // not treated as unsolicited.
    let late = Message::builtin_response(
        1,
        &ResponseBody::Tip {
            height: 0,
            hash: timed_core::BlockHash([0; 32]),
        },
    );
    net.inject(a, conn, &late.to_frame());
    net.run_for(secs(1));
    assert_eq!(net.machine(a).peer_conn(id(2)), Some(conn));
    assert_eq!(net.machine(a).status().counters.protocol_errors, 0);
    assert_eq!(outcomes(&net, a)[&q].len(), 1, "still ended exactly once");
    // A response to an id never sent is a protocol error.
    net.inject(
        a,
        conn,
        &Message::builtin_response(999, &ResponseBody::HashAt(None)).to_frame(),
    );
    net.drain(a);
    assert_eq!(net.machine(a).peer_conn(id(2)), None);
}

#[test]
fn a_query_whose_peer_leaves_mid_flight_ends_with_peer_gone() {
    let (mut net, a, b) = pair();
    net.set_filter(Box::new(|from, _to, m| {
        from == 1 && matches!(m, Message::Response { .. })
    }));
    let now = net.now();
    let q = net.machine(a).query(now, id(2), RequestBody::Tip);
    net.run_for(timed_core::Duration::from_millis(100));
    let now = net.now();
    net.machine(b).shutdown(now);
    net.run_for(secs(60));
    assert_eq!(outcomes(&net, a)[&q], vec![Err(QueryError::PeerGone)]);
}

#[test]
fn a_query_to_an_unknown_peer_ends_at_once() {
    let (mut net, a, _b) = pair();
    let now = net.now();
    let q = net.machine(a).query(now, id(77), RequestBody::Tip);
    net.drain(a);
    assert_eq!(outcomes(&net, a)[&q], vec![Err(QueryError::UnknownPeer)]);
}

#[test]
fn queries_over_the_in_flight_cap_are_refused_and_the_rest_still_end_once() {
    let (mut net, a, _b) = pair();
    net.set_filter(Box::new(|from, _to, m| {
        from == 1 && matches!(m, Message::Response { .. })
    }));
    let cap = net.machine(a).config().max_requests_in_flight;
    let now = net.now();
    let ids: Vec<QueryId> = (0..cap + 5)
        .map(|_| net.machine(a).query(now, id(2), RequestBody::Tip))
        .collect();
    net.run_for(secs(60));
    let o = outcomes(&net, a);
    for (i, q) in ids.iter().enumerate() {
        let want = if i < cap {
            QueryError::Timeout
        } else {
            QueryError::TooManyInFlight
        };
        assert_eq!(o[q], vec![Err(want)], "query #{i}");
    }
    let by_outcome = net.machine(a).status().counters.queries;
    let failed = |e| by_outcome.get(QueryOutcome::Failed(e));
    assert_eq!(failed(QueryError::Timeout), cap as u64);
    assert_eq!(failed(QueryError::TooManyInFlight), 5);
    assert_eq!(
        by_outcome.by_label().get("over_cap"),
        Some(&5),
        "the metrics label"
    );
}

#[test]
fn queries_survive_a_simultaneous_open_that_moves_the_peer_to_another_connection() {
    // Both dial at once; queries issued as soon as the first connection is up must still end
    // with their responses even when that connection turns out to be the duplicate.
    for lat in [50u64, 300, 1_000, 3_000] {
        let mut net = Switchboard::new();
        net.set_latency(timed_core::Duration::from_micros(lat));
        let a = add(&mut net, 9, "127.0.0.1:7000", &["127.0.0.1:7001"]);
        let b = add(&mut net, 1, "127.0.0.1:7001", &["127.0.0.1:7000"]);
        let mut issued = Vec::new();
        for _ in 0..200 {
            net.run_for(timed_core::Duration::from_micros(lat / 2 + 1));
            let now = net.now();
            if net.machine(a).peer_conn(id(1)).is_some() && issued.len() < 20 {
                issued.push(net.machine(a).query(now, id(1), RequestBody::Tip));
            }
        }
        net.run_for(secs(30));
        assert_single_link(&mut net, a, b);
        let o = outcomes(&net, a);
        assert!(!issued.is_empty());
        for q in issued {
            assert_eq!(o[&q].len(), 1, "query {q} ended {} times", o[&q].len());
            assert!(o[&q][0].is_ok(), "latency {lat}: {:?}", o[&q]);
        }
    }
}
