//! Application protocols and topics declared from outside the core, and chain rules
//! supplied by the application: every promise the core keeps for its own protocols holds
//! for them too.

mod common;

use common::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use timed_core::chain::{BlockError, ChainRules, RuleContext};
use timed_core::protocol::{Protocol, ProtocolId, ProtocolSpec, Topic, TopicId, TopicSpec};
use timed_core::testing::{NodeIx, Switchboard};
use timed_core::wire::{Message, RefuseReason};
use timed_core::{
    Action, Block, Config, GoodbyeReason, Header, MemStore, Misbehaviour, Network, NodeEvent,
    QueryError, QueryId, Rules, Store, Verdict,
};

fn machine_with(
    c: Config,
    store: MemStore,
    now: timed_core::Instant,
) -> timed_core::PeerMachine<MemStore> {
    timed_core::PeerMachine::new(c, store, now).expect("valid config")
}

/// "Which masternodes do you know?" — the shape of the TIME Coin node's `GetMasternodes`.
struct Masternodes;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct MnRequest {
    max: u16,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct MnResponse {
    nodes: Vec<[u8; 32]>,
}

impl Protocol for Masternodes {
    const SPEC: ProtocolSpec = ProtocolSpec::new(ProtocolId(1000), "test/masternodes/1")
        .with_max_request_bytes(64)
        .with_in_flight(4, 2)
        .with_timeout(timed_core::Duration::from_secs(8));
    type Request = MnRequest;
    type Response = MnResponse;
}

/// A consensus vote, gossiped.
struct Votes;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Vote {
    height: u64,
    voter: u8,
}

impl Topic for Votes {
    const SPEC: TopicSpec =
        TopicSpec::new(TopicId(1000), "test/votes/1").with_max_message_bytes(64);
    type Message = Vote;
}

fn app_config(n: u8, listen: &str, peers: &[&str]) -> Config {
    let mut c = config(n, listen, peers);
    c.protocols.push(Masternodes::SPEC);
    c.topics.push(Votes::SPEC);
    c
}

fn add_app(net: &mut Switchboard, n: u8, listen: &str, peers: &[&str]) -> NodeIx {
    let now = net.now();
    net.add(machine(app_config(n, listen, peers), now), addr(listen))
}

fn pair() -> (Switchboard, NodeIx, NodeIx) {
    let mut net = Switchboard::new();
    let a = add_app(&mut net, 1, "127.0.0.1:7000", &[]);
    let b = add_app(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(2));
    assert_single_link(&mut net, a, b);
    (net, a, b)
}

/// Every `RequestDone` seen by `node`, per id.
fn request_results(
    net: &Switchboard,
    node: NodeIx,
) -> BTreeMap<QueryId, Vec<Result<Vec<u8>, QueryError>>> {
    let mut m: BTreeMap<QueryId, Vec<_>> = BTreeMap::new();
    for (_, e) in net.events(node) {
        if let NodeEvent::RequestDone { id, result, .. } = e {
            m.entry(*id).or_default().push(result.clone());
        }
    }
    m
}

fn inbound(net: &Switchboard, node: NodeIx) -> Vec<(timed_core::InboundId, Vec<u8>)> {
    net.events(node)
        .iter()
        .filter_map(|(_, e)| match e {
            NodeEvent::InboundRequest { id, payload, .. } => Some((*id, payload.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_typed_request_is_answered_on_the_connection_it_came_in_on_and_ends_once() {
    let (mut net, a, b) = pair();
    net.enable_trace();
    let now = net.now();
    let q = net.machine(a).request(
        now,
        id(2),
        Masternodes::SPEC.id,
        Masternodes::encode_request(&MnRequest { max: 3 }),
    );
    net.run_for(secs(1));
    let reqs = inbound(&net, b);
    assert_eq!(reqs.len(), 1, "b's application sees the request");
    let (handle, payload) = reqs[0].clone();
    assert_eq!(
        Masternodes::decode_request(&payload).unwrap(),
        MnRequest { max: 3 }
    );
    assert_eq!(Some(handle.conn()), net.machine(b).peer_conn(id(1)));
    let answer = MnResponse {
        nodes: vec![[7; 32], [8; 32]],
    };
    let now = net.now();
    net.machine(b)
        .respond(now, handle, Ok(Masternodes::encode_response(&answer)))
        .expect("a waiting request can be answered");
    net.run_for(secs(30));
    let r = request_results(&net, a);
    assert_eq!(r[&q].len(), 1, "exactly one result");
    let bytes = r[&q][0].clone().expect("answered");
    assert_eq!(Masternodes::decode_response(&bytes).unwrap(), answer);
    // The response travelled b → a on the connection the request came in on.
    let responses: Vec<_> = net
        .trace()
        .iter()
        .filter(|t| matches!(t.message, Message::Response { .. }) && t.from.0 == b)
        .collect();
    assert!(!responses.is_empty());
    for t in responses {
        assert_eq!(t.from.1, handle.conn());
    }
    // A second answer to the same request is refused locally: it already ended.
    let now = net.now();
    assert!(net.machine(b).respond(now, handle, Ok(vec![])).is_err());
    assert_eq!(net.machine(a).status().counters.protocol_errors, 0);
}

#[test]
fn a_peer_without_the_protocol_ends_the_request_at_once_with_unsupported_and_no_frame() {
    let mut net = Switchboard::new();
    let a = add_app(&mut net, 1, "127.0.0.1:7000", &[]);
    // b runs no application protocol at all.
    let b = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(2));
    assert_single_link(&mut net, a, b);
    let frames_before = net.machine(a).status().counters.frames_out;
    let now = net.now();
    let q = net
        .machine(a)
        .request(now, id(2), Masternodes::SPEC.id, vec![1]);
    assert_eq!(
        request_results(&net, a).get(&q).cloned(),
        None,
        "not yet drained"
    );
    net.drain(a);
    assert_eq!(
        request_results(&net, a)[&q],
        vec![Err(QueryError::Unsupported)]
    );
    assert_eq!(net.machine(a).status().counters.frames_out, frames_before);
    net.run_for(secs(5));
    assert_single_link(&mut net, a, b);
    // b, asked on a protocol it does not run (bypassing a's check), refuses it without
    // holding it against the sender. (The injected request is not a's, so a then treats the
    // refusal as unsolicited: that part is a's business.)
    let conn = net.machine(b).peer_conn(id(1)).unwrap();
    let before = net.machine(b).status().counters.unknown_kinds;
    let req = Message::Request {
        id: 1,
        protocol: ProtocolId(4242),
        payload: vec![],
    };
    net.inject(b, conn, &req.to_frame());
    net.drain(b);
    let st = net.machine(b).status();
    assert_eq!(st.counters.unknown_kinds, before + 1);
    assert!(st.counters.misbehaviour.is_empty());
    assert_eq!(net.machine(b).peer_conn(id(1)), Some(conn));
}

#[test]
fn a_request_the_application_never_answers_is_refused_before_the_requester_times_out() {
    let (mut net, a, b) = pair();
    let now = net.now();
    let q = net
        .machine(a)
        .request(now, id(2), Masternodes::SPEC.id, vec![0]);
    net.run_for(secs(60));
    assert_eq!(inbound(&net, b).len(), 1);
    assert_eq!(
        request_results(&net, a)[&q],
        vec![Err(QueryError::Refused(RefuseReason::Unanswered))],
        "refused by b's machine at 3/4 of the timeout, not timed out at a"
    );
    assert_eq!(net.machine(b).inbound_waiting(), 0);
    let stats = &net.machine(b).status().protocols[&Masternodes::SPEC.id];
    assert_eq!(stats.refused.get("unanswered"), Some(&1));
    assert_single_link(&mut net, a, b);
}

#[test]
fn limits_end_requests_without_a_round_trip_and_refuse_floods() {
    let (mut net, a, b) = pair();
    let now = net.now();
    let big = net
        .machine(a)
        .request(now, id(2), Masternodes::SPEC.id, vec![0; 65]);
    // The protocol allows 4 of ours in flight but b advertised it holds only 2.
    let qs: Vec<QueryId> = (0..3)
        .map(|i| {
            net.machine(a)
                .request(now, id(2), Masternodes::SPEC.id, vec![i])
        })
        .collect();
    net.run_for(secs(1));
    let r = request_results(&net, a);
    assert_eq!(r[&big], vec![Err(QueryError::TooLarge)]);
    assert_eq!(r[&qs[2]], vec![Err(QueryError::TooManyInFlight)]);
    assert!(!r.contains_key(&qs[0]) && !r.contains_key(&qs[1]));
    assert_eq!(inbound(&net, b).len(), 2);
    // A peer that ignores the advertised limit gets `TooManyRequests`, not a disconnect.
    let conn = net.machine(b).peer_conn(id(1)).unwrap();
    net.inject(
        b,
        conn,
        &Message::Request {
            id: 999,
            protocol: Masternodes::SPEC.id,
            payload: vec![],
        }
        .to_frame(),
    );
    net.drain(b);
    let st = net.machine(b).status();
    assert_eq!(
        st.protocols[&Masternodes::SPEC.id]
            .refused
            .get("too_many_requests"),
        Some(&1)
    );
    assert!(st.counters.misbehaviour.is_empty());
    assert_eq!(net.machine(b).peer_conn(id(1)), Some(conn));
}

#[test]
fn requests_in_flight_end_once_when_the_peer_goes_away() {
    let (mut net, a, b) = pair();
    let now = net.now();
    let q = net
        .machine(a)
        .request(now, id(2), Masternodes::SPEC.id, vec![]);
    net.run_for(secs(1));
    net.crash(b);
    net.run_for(secs(120));
    assert_eq!(request_results(&net, a)[&q].len(), 1);
    assert!(request_results(&net, a)[&q][0].is_err());
}

fn gossip_seen(net: &Switchboard, node: NodeIx) -> Vec<(timed_core::GossipId, Vec<u8>)> {
    net.events(node)
        .iter()
        .filter_map(|(_, e)| match e {
            NodeEvent::GossipReceived { id, payload, .. } => Some((*id, payload.clone())),
            _ => None,
        })
        .collect()
}

/// a — b — c in a line.
fn line() -> (Switchboard, NodeIx, NodeIx, NodeIx) {
    let mut net = Switchboard::new();
    let a = add_app(&mut net, 1, "127.0.0.1:7000", &[]);
    let b = add_app(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    let now = net.now();
    let mut cc = app_config(3, "127.0.0.1:7002", &["127.0.0.1:7001"]);
    cc.target_outbound = 1;
    let c = net.add(machine(cc, now), addr("127.0.0.1:7002"));
    net.run_for(secs(3));
    assert_eq!(
        net.machine(a).peer_conn(id(3)),
        None,
        "a line: a and c are not neighbours"
    );
    (net, a, b, c)
}

#[test]
fn gossip_is_forwarded_only_after_the_application_accepts_it_and_only_once() {
    let (mut net, a, b, c) = line();
    let vote = Vote {
        height: 5,
        voter: 1,
    };
    let now = net.now();
    net.machine(a)
        .publish(now, Votes::SPEC.id, Votes::encode(&vote))
        .expect("published");
    net.run_for(secs(1));
    let at_b = gossip_seen(&net, b);
    assert_eq!(at_b.len(), 1);
    assert_eq!(Votes::decode(&at_b[0].1).unwrap(), vote);
    assert!(
        gossip_seen(&net, c).is_empty(),
        "not forwarded before validation"
    );
    let now = net.now();
    net.machine(b)
        .validate(now, at_b[0].0, Verdict::Accept)
        .expect("pending");
    net.run_for(secs(1));
    assert_eq!(gossip_seen(&net, c).len(), 1, "forwarded once accepted");
    // c accepts too; the copy it forwards back is a duplicate everywhere.
    let id_c = gossip_seen(&net, c)[0].0;
    let now = net.now();
    net.machine(c).validate(now, id_c, Verdict::Accept).unwrap();
    net.run_for(secs(1));
    assert_eq!(gossip_seen(&net, b).len(), 1);
    assert_eq!(
        gossip_seen(&net, a).len(),
        0,
        "the publisher never sees its own message"
    );
    let now = net.now();
    assert!(net
        .machine(a)
        .publish(now, Votes::SPEC.id, Votes::encode(&vote))
        .is_err());
}

#[test]
fn a_rejected_message_bans_its_sender_and_an_ignored_one_goes_nowhere() {
    let (mut net, a, b) = pair();
    let now = net.now();
    net.machine(a)
        .publish(
            now,
            Votes::SPEC.id,
            Votes::encode(&Vote {
                height: 1,
                voter: 1,
            }),
        )
        .unwrap();
    net.run_for(secs(1));
    let g = gossip_seen(&net, b);
    let now = net.now();
    net.machine(b)
        .validate(now, g[0].0, Verdict::Reject)
        .unwrap();
    net.run_for(secs(1));
    assert_eq!(net.machine(b).peer_conn(id(1)), None);
    let st = net.machine(b).status();
    assert_eq!(st.counters.misbehaviour.get(Misbehaviour::InvalidGossip), 1);
    assert_eq!(st.topics[&Votes::SPEC.id].rejected, 1);
}

#[test]
fn a_message_never_judged_expires_and_the_pending_table_stays_bounded() {
    let (mut net, a, b) = pair();
    for h in 0..10 {
        let now = net.now();
        net.machine(a)
            .publish(
                now,
                Votes::SPEC.id,
                Votes::encode(&Vote {
                    height: h,
                    voter: 1,
                }),
            )
            .unwrap();
    }
    net.run_for(secs(1));
    assert_eq!(net.machine(b).gossip_pending(), 10);
    net.run_for(secs(30));
    assert_eq!(net.machine(b).gossip_pending(), 0);
    assert_eq!(net.machine(b).status().topics[&Votes::SPEC.id].expired, 10);
}

#[test]
fn oversized_gossip_is_misbehaviour_and_a_sender_over_its_rate_is_throttled() {
    let (mut net, a, b) = pair();
    let conn = net.machine(b).peer_conn(id(1)).unwrap();
    // Within the size limit but far over the rate (100/s, burst 200): the excess is dropped.
    let mut frames = Vec::new();
    for i in 0u32..400 {
        Message::Gossip {
            topic: Votes::SPEC.id,
            payload: i.to_le_bytes().to_vec(),
        }
        .encode_frame(&mut frames);
    }
    net.inject(b, conn, &frames);
    net.run_for(secs(1));
    let st = net.machine(b).status().topics[&Votes::SPEC.id].clone();
    assert_eq!(st.received, 200);
    assert_eq!(st.rate_limited, 200);
    assert_eq!(net.machine(b).peer_conn(id(1)), Some(conn));
    let big = Message::Gossip {
        topic: Votes::SPEC.id,
        payload: vec![0; 65],
    };
    net.inject(b, conn, &big.to_frame());
    net.run_for(secs(1));
    assert_eq!(net.machine(b).peer_conn(id(1)), None);
    let _ = a;
}

/// Rules of a coin that allows no empty blocks after height 3 and calls everything two
/// below the tip final.
#[derive(Debug)]
struct NoEmptyBlocks;

impl ChainRules for NoEmptyBlocks {
    fn check_block(
        &self,
        block: &Block,
        parent: &Header,
        ctx: &RuleContext<'_>,
    ) -> Result<(), BlockError> {
        timed_core::chain::check_block(block, parent, ctx.limits, ctx.wall_secs)?;
        if block.header.height > 3 && block.txs.is_empty() {
            return Err(BlockError::Rejected("empty block"));
        }
        Ok(())
    }
}

#[test]
fn a_block_the_applications_rules_reject_is_not_applied_and_bans_its_sender() {
    let mut net = Switchboard::new();
    let now = net.now();
    let mut store = MemStore::new(Network::Devnet);
    store.extend_empty(6);
    net.add(
        machine_with(config(1, "127.0.0.1:7000", &[]), store, now),
        addr("127.0.0.1:7000"),
    );
    let mut cb = config(2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    cb.rules = Rules::new(NoEmptyBlocks);
    let b = net.add(machine(cb, now), addr("127.0.0.1:7001"));
    net.run_for(secs(10));
    assert_eq!(
        net.machine(b).height(),
        3,
        "blocks 1..=3 pass, block 4 is rejected"
    );
    assert_eq!(
        net.machine(b)
            .status()
            .counters
            .misbehaviour
            .get(Misbehaviour::InvalidBlock),
        1
    );
}

#[derive(Debug)]
struct FinalAtTwoBelow;

impl ChainRules for FinalAtTwoBelow {
    fn final_height(&self, tip: &timed_core::ChainTip) -> u64 {
        tip.height.saturating_sub(2)
    }
}

#[test]
fn finality_from_the_rules_stops_a_reorg_below_the_final_height() {
    // a and b share blocks 1..=2, then diverge: a holds 3 more blocks of its own, b 6.
    let mut common = MemStore::new(Network::Devnet);
    common.extend_empty(2);
    let mut sa = common.clone();
    sa.extend_empty(3);
    let mut sb = common.clone();
    let top = sb.block_at(2).unwrap().expect("block 2");
    sb.push_unchecked(Block::build(&top.header, top.header.time + 5, vec![]));
    sb.extend_empty(5);
    for (rules, want_b_chain) in [
        (Rules::default(), true),
        (Rules::new(FinalAtTwoBelow), false),
    ] {
        let mut net = Switchboard::new();
        let now = net.now();
        let mut ca = config(1, "127.0.0.1:7000", &[]);
        ca.rules = rules;
        let a = net.add(machine_with(ca, sa.clone(), now), addr("127.0.0.1:7000"));
        net.add(
            machine_with(
                config(2, "127.0.0.1:7001", &["127.0.0.1:7000"]),
                sb.clone(),
                now,
            ),
            addr("127.0.0.1:7001"),
        );
        net.run_for(secs(20));
        let (h, _) = (net.machine(a).height(), ());
        if want_b_chain {
            assert_eq!(h, 8, "the default rules take the higher branch");
        } else {
            assert_eq!(
                h, 5,
                "the fork at 2 is below a's final height (5 - 2 = 3): a keeps its chain"
            );
        }
    }
}

#[test]
fn a_version_1_peer_is_told_to_upgrade_not_banned() {
    let now = timed_core::Instant::ZERO;
    let mut m = machine(config(1, "127.0.0.1:7000", &[]), now);
    let conn = m.accept(now, addr("127.0.0.1:5000")).unwrap();
    // A v1 Hello: the same leading fields, no protocol lists.
    #[derive(Serialize)]
    struct HelloV1 {
        magic: [u8; 4],
        version: u16,
        min_version: u16,
        network: u32,
        genesis: timed_core::BlockHash,
        node_id: timed_core::NodeId,
        boot: u64,
        listen_port: Option<u16>,
        best_height: u64,
        best_hash: timed_core::BlockHash,
        user_agent: String,
    }
    let g = Network::Devnet.genesis_hash();
    let mut payload = postcard::to_allocvec(&0u32).unwrap();
    payload.extend(
        postcard::to_allocvec(&HelloV1 {
            magic: timed_core::wire::MAGIC,
            version: 1,
            min_version: 1,
            network: Network::Devnet.id(),
            genesis: g,
            node_id: id(9),
            boot: 1,
            listen_port: None,
            best_height: 0,
            best_hash: g,
            user_agent: "timed/0.1.0".into(),
        })
        .unwrap(),
    );
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend(payload);
    m.handle(now, timed_core::Input::BytesIn { conn, data: &frame });
    let mut goodbye = None;
    while let Some(a) = m.poll_action() {
        if let timed_core::Action::Send { data, .. } = a {
            if let Ok(timed_core::wire::Decoded::Known(Message::Goodbye(g))) =
                Message::decode(&data[4..])
            {
                goodbye = Some(g);
            }
        }
    }
    let g = goodbye.expect("told why");
    assert_eq!(g.reason, GoodbyeReason::IncompatibleVersion);
    assert!(g.detail.contains("upgrade"), "{}", g.detail);
    assert!(m.status().counters.misbehaviour.is_empty(), "not banned");
}

/// A tie-break rule: at equal height the smaller tip hash wins.
#[derive(Debug)]
struct SmallerHashWinsTies;

impl ChainRules for SmallerHashWinsTies {
    fn prefer(&self, current: &timed_core::ChainTip, candidate: &timed_core::ChainTip) -> bool {
        candidate.height > current.height
            || (candidate.height == current.height && candidate.hash < current.hash)
    }
}

#[test]
fn a_fork_choice_rule_that_breaks_ties_makes_equal_height_branches_converge() {
    // Two branches of equal height from a common block 1.
    let mut common = MemStore::new(Network::Devnet);
    common.extend_empty(1);
    let base = common.block_at(1).unwrap().expect("block 1").header;
    let branch = |t: u64| {
        let mut s = common.clone();
        s.push_unchecked(Block::build(&base, base.time + t, vec![]));
        s.extend_empty(2);
        s
    };
    let (s1, s2) = (branch(1), branch(2));
    let tips = [s1.tip().unwrap().1, s2.tip().unwrap().1];
    let smaller = *tips.iter().min().unwrap();
    for (rules, converge) in [
        (Rules::default(), false),
        (Rules::new(SmallerHashWinsTies), true),
    ] {
        let mut net = Switchboard::new();
        let now = net.now();
        let mut ca = config(1, "127.0.0.1:7000", &[]);
        ca.rules = rules.clone();
        let mut cb = config(2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
        cb.rules = rules;
        let a = net.add(machine_with(ca, s1.clone(), now), addr("127.0.0.1:7000"));
        let b = net.add(machine_with(cb, s2.clone(), now), addr("127.0.0.1:7001"));
        net.run_for(secs(30));
        let (ta, tb) = (
            net.machine(a).status().tip_hash,
            net.machine(b).status().tip_hash,
        );
        if converge {
            assert_eq!(ta, smaller, "a converged on the preferred tip");
            assert_eq!(tb, smaller, "b converged on the preferred tip");
        } else {
            assert_eq!(
                (ta, tb),
                (tips[0], tips[1]),
                "the default rules: a tie keeps ours"
            );
        }
    }
}

/// A message published to many peers is encoded once: every connection's `Send` carries the
/// same shared buffer, so a block gossiped to N peers costs one copy, not N.
#[test]
fn gossip_to_many_peers_shares_one_encoding() {
    let mut net = Switchboard::new();
    let a = add_app(&mut net, 1, "127.0.0.1:7000", &[]);
    for n in 2..=4u8 {
        let listen = format!("127.0.0.1:{}", 7000 + u16::from(n));
        add_app(&mut net, n, &listen, &["127.0.0.1:7000"]);
    }
    net.run_for(secs(2));
    assert_eq!(net.machine(a).status().peers.len(), 3);
    let now = net.now();
    let m = net.machine(a);
    m.publish(
        now,
        Votes::SPEC.id,
        Votes::encode(&Vote {
            height: 9,
            voter: 1,
        }),
    )
    .unwrap();
    let mut sent = Vec::new();
    while let Some(action) = m.poll_action() {
        if let Action::Send { data, .. } = action {
            sent.push(data);
        }
    }
    assert_eq!(sent.len(), 3, "one frame per peer");
    let shared: Vec<_> = sent
        .iter()
        .map(|p| match p {
            timed_core::wire::Payload::Shared(s) => s.clone(),
            other => panic!("gossip sent as an owned copy: {other:?}"),
        })
        .collect();
    assert!(shared.iter().all(|s| std::sync::Arc::ptr_eq(s, &shared[0])));
}
