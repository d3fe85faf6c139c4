//! Stories of the connection layer: dedup, liveness, backoff, handshake failures.

mod common;

use common::*;
use timed_core::testing::{NodeIx, Switchboard};
use timed_core::wire::{Decoded, FrameDecoder, Message, MessageKind};
use timed_core::{Action, Direction, DownReason, GoodbyeReason, Instant, NodeEvent};

#[test]
fn simultaneous_open_converges_to_one_connection_and_both_ends_agree() {
    for seed_latency in 0..24u64 {
        let mut net = Switchboard::new();
        net.set_latency(secs(0) + timed_core::Duration::from_micros(100 + seed_latency * 3_777));
        let a = add(
            &mut net,
            1 + (seed_latency % 3) as u8,
            "127.0.0.1:7000",
            &["127.0.0.1:7001"],
        );
        let b = add(&mut net, 9, "127.0.0.1:7001", &["127.0.0.1:7000"]);
        // Both dial at t=0: the two connections cross.
        for t in [1u64, 2, 3, 5, 10, 60, 600] {
            net.run_until(Instant::ZERO + secs(t));
            // Never zero connections once the handshakes had time to finish.
            if t >= 1 {
                assert!(
                    !peer_ids(&mut net, a).is_empty(),
                    "node a lost its peer at t={t}s"
                );
                assert!(
                    !peer_ids(&mut net, b).is_empty(),
                    "node b lost its peer at t={t}s"
                );
            }
        }
        assert_single_link(&mut net, a, b);
        assert_eq!(
            peer_downs(&net, a) + peer_downs(&net, b),
            0,
            "a simultaneous open must not flap the peer"
        );
        assert_eq!(net.machine(a).status().counters.reconnects, 0);
        // The kept connection is the one the smaller node id initiated.
        let (ida, idb) = (net.machine(a).node_id(), net.machine(b).node_id());
        let smaller_is_a = ida < idb;
        let dir_at_a = net.machine(a).status().peers[0].direction;
        assert_eq!(dir_at_a == timed_core::Direction::Outbound, smaller_is_a);
    }
}

#[test]
fn a_restarted_peer_takes_over_its_half_open_connection_within_the_probe_timeout_whichever_side_dialed(
) {
    // `dialer_restarts`: the original connection was dialed by the node that restarts (true)
    // or by the node that stays (false).
    for dialer_restarts in [true, false] {
        let mut net = Switchboard::new();
        let (stay_peers, restart_peers): (&[&str], &[&str]) = if dialer_restarts {
            (&[], &["127.0.0.1:7000"])
        } else {
            (&["127.0.0.1:7001"], &["127.0.0.1:7000"])
        };
        let stay = add(&mut net, 1, "127.0.0.1:7000", stay_peers);
        let mut cfg = config(2, "127.0.0.1:7001", restart_peers);
        let r = net.add(machine(cfg.clone(), net.now()), addr("127.0.0.1:7001"));
        net.run_for(secs(60));
        assert_single_link(&mut net, stay, r);
        let old_conn = net.machine(stay).peer_conn(id(2)).expect("connected");

        // kill -9: no FIN reaches `stay`; its connection is half-open.
        let store = net.crash(r).expect("running");
        cfg.seed += 1; // a new process: new boot nonce
        let restarted_at = net.now();
        net.restart(
            r,
            timed_core::PeerMachine::new(cfg, store, restarted_at).expect("config"),
        );
        net.run_for(secs(10));
        let new_conn = net
            .machine(stay)
            .peer_conn(id(2))
            .expect("the restarted peer is connected again");
        assert_ne!(
            new_conn, old_conn,
            "the newcomer must replace the half-open connection"
        );
        assert_single_link(&mut net, stay, r);
        // It happened within the probe timeout of the newcomer's handshake (latency ≪ 1 s).
        let replaced_at = net
            .events(stay)
            .iter()
            .find(|(_, e)| {
                matches!(
                    e,
                    NodeEvent::PeerDown {
                        reason: DownReason::Replaced,
                        ..
                    }
                )
            })
            .map(|(t, _)| *t)
            .expect("the old connection was replaced");
        let probe = net.machine(stay).config().probe_timeout;
        assert!(
            replaced_at - restarted_at <= probe + secs(1),
            "took {:?}",
            replaced_at - restarted_at
        );
    }
}

#[test]
fn a_second_connection_claiming_a_live_peers_id_is_refused_and_the_live_one_kept() {
    let mut net = Switchboard::new();
    let a = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let b = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(5));
    let live = net.machine(a).peer_conn(id(2)).expect("connected");
    // A stranger on another host claims node 2's id.
    let mut impostor = config(2, "127.0.0.9:7001", &["127.0.0.1:7000"]);
    impostor.seed = 999;
    let i = net.add(machine(impostor, net.now()), addr("127.0.0.9:7001"));
    net.run_for(secs(600));
    assert_eq!(
        net.machine(a).peer_conn(id(2)),
        Some(live),
        "a claim alone must never evict a live connection"
    );
    assert_single_link(&mut net, a, b);
    assert!(peer_ids(&mut net, i).is_empty());
    let refused = count_events(&net, i, |e| {
        matches!(
            e,
            NodeEvent::ConnFailed {
                reason: DownReason::GoodbyeReceived(GoodbyeReason::Duplicate),
                ..
            } | NodeEvent::PeerDown {
                reason: DownReason::GoodbyeReceived(GoodbyeReason::Duplicate),
                ..
            }
        )
    });
    assert!(refused >= 1, "the impostor is told Duplicate");
    assert_eq!(peer_downs(&net, a), 0);
}

#[test]
fn a_pong_always_leaves_on_the_connection_its_ping_arrived_on() {
    let mut net = Switchboard::new();
    net.enable_trace();
    // Three nodes on one IP, the legacy node's worst case.
    let n1 = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let n2 = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    let n3 = add(&mut net, 3, "127.0.0.1:7002", &["127.0.0.1:7000"]);
    net.run_for(secs(3600));
    let trace = net.trace().to_vec();
    let mut pings = 0;
    for t in &trace {
        if let Message::Ping { nonce } = t.message {
            pings += 1;
            let answered = trace.iter().any(|p| {
                matches!(p.message, Message::Pong { nonce: n } if n == nonce)
                    && p.from == t.to
                    && p.to == t.from
            });
            let conn_ended_soon = t.at + secs(1) > net.now();
            assert!(
                answered || conn_ended_soon,
                "ping {nonce:x} on {:?} not answered on the same connection",
                t.to
            );
        }
    }
    // Three connections, each kept alive by its dialer: 120 pings an hour each.
    assert!(
        pings > 3 * 100,
        "expected steady pinging, saw {pings} pings"
    );
    for n in [n1, n2, n3] {
        assert_eq!(net.machine(n).status().peers.len(), 2);
    }
}

#[test]
fn three_nodes_behind_one_ip_stay_three_peers_with_one_connection_each() {
    let mut net = Switchboard::new();
    let n1 = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let n2 = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    let n3 = add(&mut net, 3, "127.0.0.1:7002", &["127.0.0.1:7000"]);
    net.run_for(secs(3600));
    assert_single_link(&mut net, n1, n2);
    assert_single_link(&mut net, n1, n3);
    assert_single_link(&mut net, n2, n3); // found through peer exchange
    for n in [n1, n2, n3] {
        let s = net.machine(n).status();
        assert_eq!(s.peers.len(), 2, "node {n} peers: {:?}", s.peers);
        assert_eq!(s.counters.reconnects, 0);
    }
}

#[test]
fn a_healthy_pair_stays_connected_for_24_virtual_hours_with_every_ping_answered() {
    let mut net = Switchboard::new();
    let a = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let b = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(24 * 3600));
    assert_single_link(&mut net, a, b);
    for n in [a, b] {
        let s = net.machine(n).status();
        assert_eq!(s.counters.reconnects, 0);
        assert_eq!(peer_downs(&net, n), 0);
        let p = &s.peers[0];
        match p.direction {
            // The dialer keeps the link alive: 24 h / 30 s = 2880 pings, plus one at connect.
            Direction::Outbound => assert!(p.pings_sent >= 2880, "pings sent: {}", p.pings_sent),
            // The acceptor pings once, at connect, for its RTT; the dialer's pings keep it
            // sure of the peer after that.
            Direction::Inbound => assert_eq!(p.pings_sent, 1, "acceptor's pings"),
        }
        assert!(p.rtt.is_some(), "both ends measured the RTT");
        assert!(
            p.pongs_received + 1 >= p.pings_sent,
            "{} pings, {} pongs",
            p.pings_sent,
            p.pongs_received
        );
        assert_eq!(s.counters.ping_timeouts, 0);
    }
}

/// Two nodes, one dialing the other, connected and left alone for `settle_secs`: returns the
/// network, the acceptor and the dialer.
fn dialed_pair(settle_secs: u64) -> (Switchboard, NodeIx, NodeIx) {
    let mut net = Switchboard::new();
    let acceptor = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let dialer = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(settle_secs));
    assert_single_link(&mut net, acceptor, dialer);
    (net, acceptor, dialer)
}

/// The dialer keeps a connection alive, but the acceptor does not depend on it: when the
/// dialer's pings stop arriving (here: a filter eats them; in the field: an implementation
/// that never pings), the acceptor pings on its own grid, the dialer hears from it, and the
/// link survives with nobody timing out.
#[test]
fn an_acceptor_whose_dialer_stops_pinging_keeps_the_link_alive_itself() {
    let (mut net, acceptor, dialer) = dialed_pair(120);
    let before = net.machine(acceptor).status().peers[0].pings_sent;
    assert_eq!(
        before, 1,
        "while the dialer pings, the acceptor only pinged at connect"
    );

    net.set_filter(Box::new(move |from, _to, m| {
        from == dialer && matches!(m, Message::Ping { .. })
    }));
    net.run_for(secs(3600));
    assert_single_link(&mut net, acceptor, dialer);
    for n in [acceptor, dialer] {
        let s = net.machine(n).status();
        assert_eq!(s.counters.ping_timeouts, 0, "node {n} timed out");
        assert_eq!(peer_downs(&net, n), 0);
    }
    let p = net.machine(acceptor).status().peers[0].clone();
    assert!(
        p.pings_sent - before >= 115,
        "the acceptor took over the pinging: {} pings in the hour",
        p.pings_sent - before
    );
    assert!(p.pongs_received + 1 >= p.pings_sent);
}

/// A dialer that vanishes without a FIN is noticed by the acceptor, which was not pinging
/// it, at the same instant as before: last frame + ping timeout.
#[test]
fn an_acceptor_drops_a_silent_dialer_at_the_ping_timeout() {
    let (mut net, acceptor, dialer) = dialed_pair(300);
    let _store = net.crash(dialer);
    let crashed_at = net.now();
    net.run_for(secs(200));
    let s = net.machine(acceptor).status();
    assert_eq!(s.counters.ping_timeouts, 1);
    assert!(s.peers.is_empty());
    let down_at = net
        .events(acceptor)
        .iter()
        .find_map(|(t, e)| matches!(e, NodeEvent::PeerDown { .. }).then_some(*t))
        .expect("the acceptor reports the dialer down");
    let timeout = net.machine(acceptor).config().ping_timeout;
    // The dialer's last frame arrived at most one interval before the crash (and at most
    // one 1 ms latency after it).
    let interval = net.machine(acceptor).config().ping_interval;
    assert!(
        down_at <= crashed_at + timeout + secs(1),
        "dropped at {down_at:?}"
    );
    assert!(
        down_at + interval >= crashed_at + timeout,
        "dropped at {down_at:?}"
    );
}

/// No per-tick work: a node in step with its peers wakes for its pings
/// (once per interval for all of them) and the occasional peer exchange, nothing else. A 1 s
/// sync tick, an idle check per connection per timeout or a ping phase per connection would
/// multiply its wake-ups (and a 10 000-node simulation's events).
#[test]
fn a_node_in_step_with_its_peers_wakes_only_to_ping_them() {
    let mut net = Switchboard::new();
    let a = add(
        &mut net,
        1,
        "127.0.0.1:7000",
        &["127.0.0.1:7001", "127.0.0.1:7002"],
    );
    let _b = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7002"]);
    let _c = add(&mut net, 3, "127.0.0.1:7002", &[]);
    net.run_for(secs(60));
    assert_eq!(peer_ids(&mut net, a).len(), 2);
    let pings_before = net.machine(a).status().counters.pings_sent;

    let window = secs(600);
    let until = net.now() + window;
    let mut wakeups = 0u64;
    for _ in 0..100_000 {
        let Some(t) = net.next_deadline().filter(|t| *t <= until) else {
            break;
        };
        if net.machine(a).poll_timeout() == Some(t) {
            wakeups += 1;
        }
        net.run_until(t);
    }
    net.run_until(until);
    let pings = net.machine(a).status().counters.pings_sent - pings_before;
    let interval = net.machine(a).config().ping_interval;
    let exchange = net.machine(a).config().peer_exchange_interval;
    // Two connections, one ping each per interval...
    let ticks = window.as_micros() / interval.as_micros();
    assert_eq!(pings, 2 * ticks);
    // ...both sent in the same wake-up: a node pings all its peers on one grid.
    let budget = ticks + window.as_micros() / exchange.as_micros() + 1;
    assert!(
        wakeups <= budget,
        "{wakeups} timer wake-ups in {}s for {pings} pings (budget {budget})",
        window.as_micros() / 1_000_000
    );
}

#[test]
fn a_peer_that_stops_answering_is_dropped_at_exactly_the_ping_timeout_then_redialed_with_growing_backoff(
) {
    let mut net = Switchboard::new();
    net.enable_trace();
    let a = add(&mut net, 1, "127.0.0.1:7000", &["127.0.0.1:7001"]);
    let b = add(&mut net, 2, "127.0.0.1:7001", &[]);
    net.run_for(secs(100));
    assert_single_link(&mut net, a, b);
    net.cut(a, b);
    let cut_at = net.now();
    net.run_for(secs(1800));
    let last_heard = net
        .trace()
        .iter()
        .filter(|t| t.to.0 == a && t.at <= cut_at)
        .map(|t| t.at)
        .max()
        .expect("traffic");
    let (down_at, reason) = net
        .events(a)
        .iter()
        .find_map(|(t, e)| match e {
            NodeEvent::PeerDown { reason, .. } => Some((*t, *reason)),
            _ => None,
        })
        .expect("peer dropped");
    assert_eq!(reason, DownReason::GoodbyeSent(GoodbyeReason::PingTimeout));
    assert_eq!(
        down_at - last_heard,
        net.machine(a).config().ping_timeout,
        "dropped exactly at the ping timeout"
    );
    let dials: Vec<Instant> = net
        .action_log(a)
        .iter()
        .filter(|(t, act)| *t >= down_at && matches!(act, Action::Dial { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert!(dials.len() >= 6, "redials: {dials:?}");
    let gaps: Vec<u64> = dials
        .windows(2)
        .map(|w| (w[1] - w[0]).as_micros())
        .collect();
    // Doubling (with up to +25 % jitter) until the cap, then held at the cap.
    let max = net.machine(a).config().backoff_max.as_micros();
    for g in gaps.windows(2) {
        if g[0] < max {
            assert!(
                g[1] > g[0],
                "backoff must grow below the cap: gaps {gaps:?}"
            );
        }
    }
    assert!(gaps.iter().all(|g| *g <= max + max / 4), "capped: {gaps:?}");
    assert!(
        gaps.last().is_some_and(|g| *g >= max),
        "reaches the cap: {gaps:?}"
    );
    // Healing lets the next redial succeed.
    net.heal(a, b);
    net.run_for(secs(600));
    assert_single_link(&mut net, a, b);
}

/// Decodes the goodbye `node` sent on its last closed connection.
fn goodbyes_sent(net: &Switchboard, node: usize) -> Vec<(GoodbyeReason, String)> {
    let mut out = Vec::new();
    for (_, a) in net.action_log(node) {
        if let Action::Send { data, .. } = a {
            let mut d = FrameDecoder::new(u32::MAX);
            d.push(data);
            while let Ok(Some(p)) = d.next_frame() {
                if let Ok(Decoded::Known(Message::Goodbye(g))) = Message::decode(p) {
                    out.push((g.reason, g.detail));
                }
            }
        }
    }
    out
}

#[test]
fn a_peer_on_another_network_is_told_why_and_dropped() {
    let mut net = Switchboard::new();
    let a = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let mut other = config(2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    other.network = timed_core::Network::Testnet;
    let b = net.add(
        timed_core::PeerMachine::new(
            other,
            timed_core::MemStore::new(timed_core::Network::Testnet),
            net.now(),
        )
        .expect("config"),
        addr("127.0.0.1:7001"),
    );
    net.run_for(secs(5));
    assert!(peer_ids(&mut net, a).is_empty() && peer_ids(&mut net, b).is_empty());
    let told = goodbyes_sent(&net, a);
    let (reason, detail) = told.first().expect("a goodbye");
    // The first check that fails is the network id; the detail names both sides.
    assert_eq!(*reason, GoodbyeReason::WrongNetwork);
    assert!(detail.contains("devnet"), "detail: {detail}");
}

#[test]
fn a_peer_with_another_genesis_is_told_why() {
    let now = Instant::ZERO;
    let mut m = machine(config(1, "127.0.0.1:7000", &[]), now);
    let conn = m.accept(now, addr("127.0.0.1:5000")).expect("accepted");
    let mut hello = timed_core::wire::Hello {
        magic: timed_core::wire::MAGIC,
        version: timed_core::wire::PROTOCOL_VERSION,
        min_version: timed_core::wire::MIN_PROTOCOL_VERSION,
        network: timed_core::Network::Devnet.id(),
        genesis: timed_core::BlockHash([7; 32]),
        node_id: id(2),
        boot: 1,
        listen_port: None,
        best_height: 0,
        best_hash: timed_core::BlockHash([7; 32]),
        user_agent: "test".into(),
        protocols: timed_core::protocol::builtin::default_adverts().0,
        topics: timed_core::protocol::builtin::default_adverts().1,
    };
    hello.best_hash = hello.genesis;
    m.handle(
        now,
        timed_core::Input::BytesIn {
            conn,
            data: &Message::Hello(hello).to_frame(),
        },
    );
    let mut goodbye = None;
    let mut closed = false;
    while let Some(a) = m.poll_action() {
        match a {
            Action::Send { data, .. } => {
                let mut d = FrameDecoder::new(u32::MAX);
                d.push(&data);
                while let Ok(Some(p)) = d.next_frame() {
                    if let Ok(Decoded::Known(Message::Goodbye(g))) = Message::decode(p) {
                        goodbye = Some(g);
                    }
                }
            }
            Action::Close { conn: c } => closed |= c == conn,
            _ => {}
        }
    }
    let g = goodbye.expect("told why");
    assert_eq!(g.reason, GoodbyeReason::WrongGenesis);
    assert!(
        g.detail.contains("0707"),
        "detail names their genesis: {}",
        g.detail
    );
    assert!(closed);
}

#[test]
fn garbage_before_hello_is_a_protocol_error_that_disconnects() {
    let now = Instant::ZERO;
    let mut m = machine(config(1, "127.0.0.1:7000", &[]), now);
    let conn = m.accept(now, addr("127.0.0.1:5000")).expect("accepted");
    // A plausible frame holding a Ping: a valid message, but not a Hello.
    m.handle(
        now,
        timed_core::Input::BytesIn {
            conn,
            data: &Message::Ping { nonce: 1 }.to_frame(),
        },
    );
    let actions: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Close { conn: c } if *c == conn)));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Notify(NodeEvent::Misbehaved { .. }))));
    assert_eq!(m.status().counters.protocol_errors, 1);
    // Pure noise on a second connection too.
    let conn2 = m.accept(now, addr("127.0.0.1:5001")).expect("accepted");
    m.handle(
        now,
        timed_core::Input::BytesIn {
            conn: conn2,
            data: &[9, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4],
        },
    );
    let actions: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Close { conn: c } if *c == conn2)));
    assert_eq!(m.status().connections, 0);
}

#[test]
fn a_4gib_length_prefix_disconnects_the_peer() {
    let mut net = Switchboard::new();
    let a = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let b = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(2));
    let conn = net.machine(a).peer_conn(id(2)).expect("connected");
    net.inject(a, conn, &u32::MAX.to_le_bytes());
    net.drain(a);
    assert!(net.machine(a).peer_conn(id(2)).is_none());
    assert_eq!(net.machine(a).status().counters.protocol_errors, 1);
    let told = goodbyes_sent(&net, a);
    assert!(
        told.iter()
            .any(|(r, d)| *r == GoodbyeReason::ProtocolError && d.contains("4294967295")),
        "{told:?}"
    );
    let _ = b;
}

#[test]
fn an_unknown_message_kind_is_skipped_and_counted() {
    let mut net = Switchboard::new();
    let a = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let b = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(2));
    let conn = net.machine(a).peer_conn(id(2)).expect("connected");
    // kind 200 (a varint over one byte), with a body we cannot know.
    let mut frame = vec![5, 0, 0, 0, 0xc8, 0x01, 1, 2, 3];
    frame.extend_from_slice(&Message::Ping { nonce: 5 }.to_frame());
    net.inject(a, conn, &frame);
    net.run_for(secs(60));
    assert_eq!(net.machine(a).status().counters.unknown_kinds, 1);
    assert_eq!(
        net.machine(a).peer_conn(id(2)),
        Some(conn),
        "the connection survives"
    );
    assert_single_link(&mut net, a, b);
    let _ = MessageKind::ALL;
}

#[test]
fn a_self_connection_is_dropped_and_that_address_never_dialed_again() {
    let mut net = Switchboard::new();
    let a = add(&mut net, 1, "127.0.0.1:7000", &["127.0.0.1:7000"]);
    net.run_for(secs(3600));
    let dials = net
        .action_log(a)
        .iter()
        .filter(|(_, act)| matches!(act, Action::Dial { .. }))
        .count();
    assert_eq!(dials, 1);
    assert!(goodbyes_sent(&net, a)
        .iter()
        .any(|(r, _)| *r == GoodbyeReason::SelfConnection));
    assert!(peer_ids(&mut net, a).is_empty());
}

/// Driver contract, `recycle`: a buffer given back after its bytes were written carries a
/// later frame (cleared first), so a driver that recycles answers pings without allocating.
#[test]
fn a_recycled_send_buffer_carries_the_next_frame() {
    let mut s = Script::new(0);
    while let Some(a) = s.m.poll_action() {
        if let Action::Send { conn, data } = a {
            s.m.handle(
                s.now,
                timed_core::Input::Written {
                    conn,
                    bytes: data.len(),
                },
            );
        }
    }
    // A buffer no frame would be allocated with, still holding old bytes.
    let mut buf = Vec::with_capacity(1000);
    buf.extend_from_slice(b"bytes of an earlier frame");
    s.m.recycle(buf);

    s.send(Message::Ping { nonce: 7 });
    let pong = loop {
        match s.m.poll_action().expect("a pong is sent") {
            Action::Send { data, .. } => break data,
            _ => continue,
        }
    };
    let timed_core::wire::Payload::Owned(pong) = pong else {
        panic!("a pong is the machine's own buffer, not shared");
    };
    assert_eq!(
        pong.capacity(),
        1000,
        "the pong was written into the recycled buffer"
    );
    let mut d = FrameDecoder::new(u32::MAX);
    d.push(&pong);
    let payload = d.next_frame().expect("whole frame").expect("one frame");
    assert!(matches!(
        Message::decode(payload),
        Ok(Decoded::Known(Message::Pong { nonce: 7 }))
    ));
    assert!(
        d.next_frame().expect("nothing left").is_none(),
        "no stale bytes"
    );
}
