//! The TIME Coin protocols in the simulator, under the `chaos` scenario's faults
//! (partitions, clogs, kills, crashes, filters, NAT, skewed clocks): every application
//! request ends exactly once and no reply leaves on a connection its request did not
//! arrive on (the engine's invariants), on every seed.

use std::sync::Arc;
use timecoin_embed::protocols::{
    declare, GetMasternodes, GetPending, Masternode, Masternodes, PendingTransactions,
    UtxoStateHash, Vote, Votes,
};
use timecoin_embed::state::TimeCoinState;
use timed_core::protocol::{Protocol, Topic};
use timed_core::{Config, Instant, MemStore, NodeEvent, NodeId, PeerMachine, QueryId, Verdict};
use timed_sim::model::app::SimApp;
use timed_sim::RunSpec;

/// Every simulated node runs the same TIME Coin state (the simulator's nodes are
/// interchangeable), answers with it, and votes with each query.
#[derive(Debug)]
struct TimeCoinSim {
    state: TimeCoinState,
}

impl TimeCoinSim {
    fn new() -> Self {
        let mut state = TimeCoinState {
            masternodes: (1..=5)
                .map(|i| Masternode {
                    id: [i; 32],
                    collateral: 1000,
                    address: format!("10.0.0.{i}:24000"),
                })
                .collect(),
            ..TimeCoinState::default()
        };
        for i in 0..20u8 {
            state.add_pending(vec![vec![i; 40]]);
        }
        TimeCoinSim { state }
    }
}

impl SimApp for TimeCoinSim {
    fn configure(&self, cfg: &mut Config) {
        declare(cfg);
    }

    fn on_event(&self, m: &mut PeerMachine<MemStore>, now: Instant, event: &NodeEvent) {
        match event {
            NodeEvent::InboundRequest {
                id,
                protocol,
                payload,
                ..
            } => {
                let _ = m.respond(now, *id, self.state.answer(*protocol, payload));
            }
            NodeEvent::GossipReceived { id, payload, .. } => {
                // The shared state is read-only here: judge by membership alone.
                let verdict = match Votes::decode(payload) {
                    Ok(v) if self.state.masternodes.iter().any(|m| m.id == v.voter) => {
                        Verdict::Accept
                    }
                    Ok(_) | Err(_) => Verdict::Reject,
                };
                let _ = m.validate(now, *id, verdict);
            }
            _ => {}
        }
    }

    fn query(&self, m: &mut PeerMachine<MemStore>, now: Instant, peer: NodeId) -> QueryId {
        let t = now.as_micros() / 1_000_000;
        let vote = Vote {
            height: t,
            block: [(t % 251) as u8; 32],
            voter: [(t % 5 + 1) as u8; 32],
        };
        let _ = m.publish(now, Votes::SPEC.id, Votes::encode(&vote));
        let (protocol, payload) = match t % 3 {
            0 => (
                Masternodes::SPEC.id,
                Masternodes::encode_request(&GetMasternodes { max: 3 }),
            ),
            1 => (
                PendingTransactions::SPEC.id,
                PendingTransactions::encode_request(&GetPending {
                    have: vec![],
                    max: 10,
                }),
            ),
            _ => (UtxoStateHash::SPEC.id, UtxoStateHash::encode_request(&t)),
        };
        m.request(now, peer, protocol, payload)
    }
}

#[test]
fn the_time_coin_protocols_keep_every_promise_under_chaos() {
    let app = Arc::new(TimeCoinSim::new());
    let (mut started, mut ok) = (0, 0);
    for seed in 0..20 {
        let spec = RunSpec {
            scenario: "chaos".into(),
            model: "machine".into(),
            seed,
            nodes: None,
            duration: None,
        };
        let s = timed_sim::run_with_app(&spec, app.clone()).expect("chaos exists");
        assert_eq!(
            s.invariant_violations, 0,
            "seed {seed}: {:?}\nreplay: {}",
            s.first_violations, s.replay
        );
        started += s.queries_started;
        ok += s.queries_ok;
    }
    assert!(
        started > 500,
        "the scenario exercised the protocols ({started} requests)"
    );
    assert!(
        ok * 2 > started,
        "most requests answered despite the faults ({ok}/{started})"
    );
}
