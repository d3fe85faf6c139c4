//! Applications in the simulator: protocols and topics an embedding application declares,
//! run by every simulated node under the same faults as the core's own.
//!
//! A [`SimApp`] is the application side of a node, written sans-IO against the machine: it
//! declares its protocols, topics and chain rules ([`configure`](SimApp::configure)),
//! answers the events the machine surfaces ([`on_event`](SimApp::on_event): inbound
//! requests, gossip to validate), and issues the scenario's periodic queries
//! ([`query`](SimApp::query)). The engine checks its requests as it checks the core's:
//! every one ends exactly once, and no response leaves on a connection its request did not
//! arrive on.
//!
//! [`DemoApp`] is the built-in one, used by the `app-chaos` scenario.

use std::fmt::Debug;
use timed_core::protocol::{Protocol, ProtocolId, ProtocolSpec, Topic, TopicId, TopicSpec};
use timed_core::{
    Config, Duration, Instant, MemStore, NodeEvent, NodeId, PeerMachine, QueryId, RefuseReason,
    Verdict,
};

/// The application side of every simulated node. Must be deterministic: its only inputs are
/// its arguments.
pub trait SimApp: Debug + Send + Sync {
    /// Declares the application's protocols, topics and rules on a node's config.
    fn configure(&self, cfg: &mut Config);
    /// Reacts to one of the machine's events (answer a request, judge a message).
    fn on_event(&self, m: &mut PeerMachine<MemStore>, now: Instant, event: &NodeEvent);
    /// Starts the scenario's periodic query to `peer`.
    fn query(&self, m: &mut PeerMachine<MemStore>, now: Instant, peer: NodeId) -> QueryId;
}

/// "Which records do you hold?": a registry lookup, like the TIME Coin node's masternode list.
pub struct Registry;

impl Protocol for Registry {
    const SPEC: ProtocolSpec = ProtocolSpec::new(ProtocolId(1000), "sim/registry/1")
        .with_max_request_bytes(64)
        .with_in_flight(4, 4)
        .with_timeout(Duration::from_secs(8));
    type Request = u32;
    type Response = Vec<u64>;
}

/// A vote, like the TIME Coin node's consensus votes.
pub struct Votes;

impl Topic for Votes {
    const SPEC: TopicSpec = TopicSpec::new(TopicId(1000), "sim/votes/1").with_max_message_bytes(64);
    type Message = (u64, u64);
}

/// Answers most registry requests, leaves every seventh unanswered (the machine refuses it
/// at the deadline), refuses every eleventh; accepts votes, rejects none (nobody in the
/// simulator misbehaves), and publishes a vote with each query.
#[derive(Debug, Default)]
pub struct DemoApp;

impl SimApp for DemoApp {
    fn configure(&self, cfg: &mut Config) {
        cfg.protocols.push(Registry::SPEC);
        cfg.topics.push(Votes::SPEC);
    }

    fn on_event(&self, m: &mut PeerMachine<MemStore>, now: Instant, event: &NodeEvent) {
        match event {
            NodeEvent::InboundRequest { id, payload, .. } => {
                let Ok(n) = Registry::decode_request(payload) else {
                    let _ = m.respond(now, *id, Err(RefuseReason::BadRequest));
                    return;
                };
                if n % 7 == 3 {
                    return; // never answered: the machine refuses it at its deadline
                }
                let result = if n % 11 == 5 {
                    Err(RefuseReason::App(1))
                } else {
                    let records: Vec<u64> = (0..u64::from(n % 5)).map(|i| i * 31 + 7).collect();
                    Ok(Registry::encode_response(&records))
                };
                let _ = m.respond(now, *id, result);
            }
            NodeEvent::GossipReceived { id, .. } => {
                let _ = m.validate(now, *id, Verdict::Accept);
            }
            _ => {}
        }
    }

    fn query(&self, m: &mut PeerMachine<MemStore>, now: Instant, peer: NodeId) -> QueryId {
        let n = (now.as_micros() / 1000) as u32;
        let me = u64::from_le_bytes(m.node_id().0[..8].try_into().unwrap_or([0; 8]));
        let _ = m.publish(now, Votes::SPEC.id, Votes::encode(&(me, now.as_micros())));
        m.request(now, peer, Registry::SPEC.id, Registry::encode_request(&n))
    }
}
