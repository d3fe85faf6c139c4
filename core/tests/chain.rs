//! Stories of the chain layer: sync from zero, forks, bad blocks, stalls, gossip, peer exchange.

mod common;

use common::*;
use timed_core::protocol::builtin;
use timed_core::testing::{NodeIx, Switchboard};
use timed_core::wire::{Hello, Message, PeerAddr};
use timed_core::{
    Block, Config, MemStore, Misbehaviour, Network, NodeEvent, PeerMachine, Store, Tx,
};

fn chain_of(n: u64) -> MemStore {
    let mut s = MemStore::new(Network::Devnet);
    s.extend_empty(n);
    s
}

fn add_with(net: &mut Switchboard, c: Config, store: MemStore, listen: &str) -> NodeIx {
    let m = PeerMachine::new(c, store, net.now()).expect("config");
    net.add(m, addr(listen))
}

fn tip(net: &mut Switchboard, n: NodeIx) -> (u64, timed_core::BlockHash) {
    let s = net.machine(n).status();
    (s.height, s.tip_hash)
}

#[test]
fn a_fresh_node_syncs_from_zero_over_many_batches_with_arbitrary_chunking() {
    let mut net = Switchboard::new();
    net.split_writes(42);
    let mut pc = config(1, "127.0.0.1:7000", &[]);
    pc.sync_batch = 64;
    let producer = add_with(&mut net, pc, chain_of(2_000), "127.0.0.1:7000");
    let mut fresh = Vec::new();
    for n in 2..5u8 {
        let mut c = config(n, &format!("127.0.0.1:70{n:02}"), &["127.0.0.1:7000"]);
        c.sync_batch = 64;
        fresh.push(add_with(
            &mut net,
            c,
            MemStore::new(Network::Devnet),
            &format!("127.0.0.1:70{n:02}"),
        ));
    }
    net.run_for(secs(120));
    let want = tip(&mut net, producer);
    assert_eq!(want.0, 2_000);
    for n in fresh {
        assert_eq!(
            tip(&mut net, n),
            want,
            "node {n} reached the producer's tip"
        );
        let s = net.machine(n).status();
        assert!(
            !s.syncing && s.sync_target.is_none(),
            "no sync state left behind"
        );
        assert_eq!(s.counters.blocks_applied, 2_000);
        assert_eq!(s.counters.protocol_errors, 0);
    }
}

#[test]
fn nodes_on_competing_branches_converge_on_the_higher_one_across_a_fork_deeper_than_one_batch() {
    let mut net = Switchboard::new();
    let base = chain_of(20);
    let mut ca = config(1, "127.0.0.1:7000", &[]);
    let mut cb = config(2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    for c in [&mut ca, &mut cb] {
        c.sync_batch = 10;
        c.max_reorg_depth = 100;
    }
    // Competing branches from height 20: A has 45 blocks more, B has 60 more.
    let mut sa = base.clone();
    sa.extend_empty(45);
    let mut sb = base;
    for _ in 0..60 {
        let (h, _) = sb.tip().expect("mem");
        let parent = sb.header_at(h).expect("mem").expect("tip");
        // Different times make B's blocks differ from A's.
        sb.push_unchecked(Block::build(
            &parent,
            parent.time + 7,
            vec![Tx(vec![h as u8])],
        ));
    }
    let a = add_with(&mut net, ca, sa, "127.0.0.1:7000");
    let b = add_with(&mut net, cb, sb, "127.0.0.1:7001");
    net.run_for(secs(120));
    let tb = tip(&mut net, b);
    assert_eq!(tb.0, 80);
    assert_eq!(tip(&mut net, a), tb, "A switched to the higher branch");
    let s = net.machine(a).status();
    assert_eq!(s.counters.reorgs, 1);
    let reorg = net.events(a).iter().find_map(|(_, e)| match e {
        NodeEvent::Reorg { fork, old_tip, to } => Some((*fork, *old_tip, *to)),
        _ => None,
    });
    // It switched as soon as the fetched branch was higher than its own chain, then synced on.
    let (fork, old_tip, to) = reorg.expect("a reorg");
    assert_eq!((fork, old_tip), (20, 65));
    assert!(to > 65 && to <= 80);
    // The loser's chain is intact in the store: every block links.
    for h in 1..=80 {
        let header = net
            .machine(a)
            .store()
            .header_at(h)
            .expect("mem")
            .expect("block");
        let parent = net
            .machine(a)
            .store()
            .header_at(h - 1)
            .expect("mem")
            .expect("block");
        assert_eq!(header.prev, parent.hash());
    }
    assert_eq!(
        net.machine(b).status().counters.reorgs,
        0,
        "the higher chain never moves"
    );
}

fn valid_chain(n: u64) -> Vec<Block> {
    let s = chain_of(n);
    (1..=n)
        .map(|h| s.block_at(h).expect("mem").expect("block"))
        .collect()
}

#[test]
fn a_peer_serving_invalid_blocks_is_disconnected_and_banned() {
    type Corrupt = fn(&mut Vec<Block>);
    let cases: [(&str, Corrupt); 4] = [
        ("bad tx root", |bs| bs[3].txs.push(Tx(vec![1, 2, 3]))),
        ("unlinked inside the range", |bs| {
            bs[5].header.prev = timed_core::BlockHash([9; 32])
        }),
        ("oversized", |bs| {
            let parent = bs[1].header.clone();
            bs[2] = Block::build(
                &parent,
                parent.time + 1,
                (0..10_001u32)
                    .map(|i| Tx(i.to_le_bytes().to_vec()))
                    .collect(),
            );
        }),
        ("out of range", |bs| {
            bs.remove(0);
        }),
    ];
    for (name, corrupt) in cases {
        let mut s = Script::new(10);
        let (msgs, _, _) = s.outputs();
        let (rid, from, _) =
            Script::range_request(&msgs).expect("sync starts from the Hello's height");
        assert_eq!(from, 1);
        let mut blocks = valid_chain(10);
        corrupt(&mut blocks);
        s.send(blocks_response(rid, blocks));
        let (_, events, closed) = s.outputs();
        assert!(closed, "{name}: disconnected");
        let what = events.iter().find_map(|e| match e {
            NodeEvent::Misbehaved { what, .. } => Some(*what),
            _ => None,
        });
        assert!(
            matches!(
                what,
                Some(Misbehaviour::InvalidBlock | Misbehaviour::BadResponse)
            ),
            "{name}: {what:?}"
        );
        // Banned: the same node id is turned away at its next handshake.
        let conn = s.m.accept(s.now, addr("127.0.0.1:5001")).expect("accept");
        s.conn = conn;
        let g = Network::Devnet.genesis_hash();
        s.send(Message::Hello(Hello {
            magic: timed_core::wire::MAGIC,
            version: timed_core::wire::PROTOCOL_VERSION,
            min_version: timed_core::wire::MIN_PROTOCOL_VERSION,
            network: Network::Devnet.id(),
            genesis: g,
            node_id: id(66),
            boot: 2,
            listen_port: None,
            best_height: 10,
            best_hash: g,
            user_agent: "again".into(),
            protocols: timed_core::protocol::builtin::default_adverts().0,
            topics: timed_core::protocol::builtin::default_adverts().1,
        }));
        let (msgs, _, closed) = s.outputs();
        assert!(closed, "{name}: banned id refused");
        assert!(msgs.iter().any(
            |m| matches!(m, Message::Goodbye(g) if g.reason == timed_core::GoodbyeReason::Banned)
        ));
        // Nothing invalid reached the store.
        assert!(s.m.status().height < 10, "{name}");
    }
}

#[test]
fn a_peer_that_stalls_mid_sync_times_out_and_another_peer_finishes_the_job() {
    let mut net = Switchboard::new();
    let chain = chain_of(600);
    let mk = |n: u8, listen: &str, peers: &[&str]| {
        let mut c = config(n, listen, peers);
        c.sync_batch = 50;
        c
    };
    let staller = add_with(
        &mut net,
        mk(1, "127.0.0.1:7000", &[]),
        chain.clone(),
        "127.0.0.1:7000",
    );
    let good = add_with(
        &mut net,
        mk(2, "127.0.0.1:7001", &[]),
        chain,
        "127.0.0.1:7001",
    );
    let fresh = add_with(
        &mut net,
        mk(3, "127.0.0.1:7002", &["127.0.0.1:7000", "127.0.0.1:7001"]),
        MemStore::new(Network::Devnet),
        "127.0.0.1:7002",
    );
    // The staller answers pings but never sends blocks.
    net.set_filter(drop_responses(builtin::BLOCKS, move |from, _to| {
        from == staller
    }));
    net.run_for(secs(300));
    assert_eq!(tip(&mut net, fresh), tip(&mut net, good));
    assert!(
        net.machine(fresh).peer_conn(id(1)).is_some(),
        "a stall is not a disconnect"
    );
}

/// The sync tick is armed only while there is sync work, so it must still be there when the
/// only peer ahead stalled: nothing else will happen (no blocks, no announcements), and the
/// node must ask again once the stall penalty is over.
#[test]
fn a_node_whose_only_peer_stalled_asks_it_again_after_the_penalty_without_any_new_event() {
    let mut net = Switchboard::new();
    let source = add_with(
        &mut net,
        config(1, "127.0.0.1:7000", &[]),
        chain_of(300),
        "127.0.0.1:7000",
    );
    let fresh = add_with(
        &mut net,
        config(2, "127.0.0.1:7001", &["127.0.0.1:7000"]),
        MemStore::new(Network::Devnet),
        "127.0.0.1:7001",
    );
    // Blocks responses are lost for the first 30 s: the first range request times out.
    let started = net.now();
    let stall_for = secs(30);
    let clock = std::rc::Rc::new(std::cell::Cell::new(started));
    let seen = clock.clone();
    net.set_filter(drop_responses(builtin::BLOCKS, move |from, _to| {
        from == source && seen.get() < started + stall_for
    }));
    while net.now() < started + stall_for {
        net.run_for(secs(1));
        clock.set(net.now());
    }
    clock.set(net.now());
    assert_eq!(
        tip(&mut net, fresh).0,
        0,
        "nothing arrived during the stall"
    );
    // No new block, no announcement: only the tick can restart the sync.
    net.run_for(secs(120));
    assert_eq!(tip(&mut net, fresh), tip(&mut net, source));
}

#[test]
fn announcements_of_blocks_we_already_have_change_nothing() {
    let mut net = Switchboard::new();
    let a = add_with(
        &mut net,
        config(1, "127.0.0.1:7000", &[]),
        chain_of(5),
        "127.0.0.1:7000",
    );
    let b = add_with(
        &mut net,
        config(2, "127.0.0.1:7001", &["127.0.0.1:7000"]),
        chain_of(5),
        "127.0.0.1:7001",
    );
    net.run_for(secs(5));
    let conn = net.machine(a).peer_conn(id(2)).expect("connected");
    let before = net.machine(a).status().counters;
    for h in 1..=5 {
        let block = net
            .machine(b)
            .store()
            .block_at(h)
            .expect("mem")
            .expect("block");
        net.inject(a, conn, &block_gossip(&block).to_frame());
    }
    net.run_for(secs(5));
    let after = net.machine(a).status().counters;
    assert_eq!(after.blocks_applied, before.blocks_applied);
    assert_eq!(after.reorgs, 0);
    assert_eq!(after.protocol_errors, 0);
    assert_eq!(net.machine(a).peer_conn(id(2)), Some(conn));
}

#[test]
fn a_transaction_is_accepted_once_by_every_node_of_a_cycle() {
    let mut net = Switchboard::new();
    net.enable_trace();
    // A ring: each node's only configured peer is the next one.
    let n = 5u8;
    let nodes: Vec<NodeIx> = (0..n)
        .map(|i| {
            let listen = format!("127.0.0.1:{}", 7000 + i as u16);
            let next = format!("127.0.0.1:{}", 7000 + ((i + 1) % n) as u16);
            add(&mut net, i + 1, &listen, &[next.as_str()])
        })
        .collect();
    net.run_for(secs(60));
    let now = net.now();
    let tx = Tx(b"pay alice 5".to_vec());
    let txid = net
        .machine(nodes[0])
        .submit_tx(now, tx.clone())
        .expect("accepted");
    assert_eq!(
        net.machine(nodes[0]).submit_tx(now, tx),
        Err(timed_core::TxError::Duplicate)
    );
    net.run_for(secs(10));
    for &node in &nodes {
        let accepted = count_events(
            &net,
            node,
            |e| matches!(e, NodeEvent::TxAccepted { id } if *id == txid),
        );
        assert_eq!(accepted, 1, "node {node}");
        assert_eq!(net.machine(node).status().mempool_len, 1);
    }
    // Each node forwards it at most once to each of its peers.
    let broadcasts = net
        .trace()
        .iter()
        .filter(
            |t| matches!(t.message, Message::Gossip { topic, .. } if topic == builtin::TX_TOPIC),
        )
        .count();
    let links: usize = nodes
        .iter()
        .map(|&x| net.machine(x).status().peers.len())
        .sum();
    assert!(
        broadcasts <= links,
        "{broadcasts} broadcasts over {links} link ends"
    );
}

/// Transactions travel on the built-in tx topic, whose size limit is the transaction limit
/// plus its length prefix: a peer that sends one over it saw that limit in our `Hello` and
/// is banned for invalid gossip; one that fits the topic but not the transaction limit is
/// rejected by the chain layer's validation, with the same outcome.
#[test]
fn a_transaction_over_the_size_limit_bans_its_sender_for_invalid_gossip() {
    let max = Script::new(0).m.config().limits.max_tx_bytes;
    for (name, len) in [
        ("over the topic's limit", max + 100),
        ("over max_tx_bytes", max + 1),
    ] {
        let mut s = Script::new(0);
        let _ = s.outputs();
        // One within the limit first: relayed transactions are accepted.
        s.send(tx_gossip(&Tx(vec![7; 10])));
        let (_, events, closed) = s.outputs();
        assert!(!closed, "{name}: a valid transaction is not misbehaviour");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, NodeEvent::TxAccepted { .. })),
            "{name}: {events:?}"
        );
        s.send(tx_gossip(&Tx(vec![1; len])));
        let (_, events, closed) = s.outputs();
        assert!(closed, "{name}: disconnected");
        let what = events.iter().find_map(|e| match e {
            NodeEvent::Misbehaved { what, .. } => Some(*what),
            _ => None,
        });
        assert_eq!(what, Some(Misbehaviour::InvalidGossip), "{name}");
        assert_eq!(
            s.m.status().mempool_len,
            1,
            "{name}: only the valid one was kept"
        );
    }
}

#[test]
fn a_producing_node_includes_mempool_transactions_and_they_leave_every_mempool() {
    let mut net = Switchboard::new();
    let mut pc = config(1, "127.0.0.1:7000", &[]);
    pc.produce_blocks = Some(secs(10));
    let p = add_with(
        &mut net,
        pc,
        MemStore::new(Network::Devnet),
        "127.0.0.1:7000",
    );
    let o = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(5));
    let now = net.now();
    net.machine(o)
        .submit_tx(now, Tx(vec![1; 100]))
        .expect("accepted");
    net.run_for(secs(60));
    assert!(tip(&mut net, p).0 >= 5);
    assert_eq!(tip(&mut net, o), tip(&mut net, p));
    assert_eq!(net.machine(p).status().mempool_len, 0);
    assert_eq!(net.machine(o).status().mempool_len, 0);
    let included = (1..=tip(&mut net, o).0).any(|h| {
        net.machine(o)
            .store()
            .block_at(h)
            .expect("mem")
            .is_some_and(|b| b.txs == vec![Tx(vec![1; 100])])
    });
    assert!(included);
}

#[test]
fn the_address_book_stays_within_its_bound_whatever_peers_send() {
    let mut s = Script::new(0);
    let (msgs, _, _) = s.outputs();
    let max = s.m.config().addr_book_max;
    // The scripted peer dialed us: only peers we chose are asked for addresses at once, so
    // the first request comes from the periodic exchange. Answer it, then keep sending more
    // via fresh requests.
    assert_eq!(
        Script::peers_request(&msgs),
        None,
        "an inbound peer is not asked at connect"
    );
    let interval = s.m.config().peer_exchange_interval;
    let msgs = s.advance(interval);
    let rid = Script::peers_request(&msgs).expect("the periodic exchange asks it");
    let list: Vec<PeerAddr> = (0..100u32)
        .map(|i| PeerAddr::V4([10, 0, (i >> 8) as u8, i as u8], 24200))
        .collect();
    s.send(peers_response(rid, list));
    let _ = s.outputs();
    assert!(s.m.status().addr_book_len <= max);
    assert_eq!(s.m.status().addr_book_len, 100);
    // Many more rounds through the periodic exchange.
    for round in 0..30u32 {
        for m in s.advance(interval) {
            if let Some(id) = as_peers_request(&m) {
                let list: Vec<PeerAddr> = (0..100u32)
                    .map(|i| PeerAddr::V4([11, round as u8, (i >> 8) as u8, i as u8], 24200))
                    .collect();
                s.send(peers_response(id, list));
            }
        }
        let _ = s.outputs();
        assert!(
            s.m.status().addr_book_len <= max,
            "round {round}: {}",
            s.m.status().addr_book_len
        );
    }
    assert_eq!(s.m.status().addr_book_len, max);
}

#[test]
fn a_peer_lost_with_ranges_in_flight_leaves_no_range_stuck() {
    // Regression (sim sync-chaos seed 50): the only peer ahead went away with a range in
    // flight; the range was re-requested on the dying connection and never ended, so the
    // node never asked for those heights again.
    use std::cell::Cell;
    use std::rc::Rc;
    let mut net = Switchboard::new();
    let mut pc = config(1, "127.0.0.1:7000", &[]);
    pc.sync_batch = 50;
    let p = add_with(&mut net, pc, chain_of(300), "127.0.0.1:7000");
    let mut fc = config(2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    fc.sync_batch = 50;
    let f = add_with(
        &mut net,
        fc,
        MemStore::new(Network::Devnet),
        "127.0.0.1:7001",
    );
    let hold = Rc::new(Cell::new(true));
    let h = hold.clone();
    net.set_filter(drop_responses(builtin::BLOCKS, move |from, _to| {
        h.get() && from == 0
    }));
    net.run_for(timed_core::Duration::from_millis(500));
    assert_eq!(tip(&mut net, f).0, 0, "ranges are in flight, unanswered");
    // The producer's connection ends with a duplicate goodbye while those ranges wait.
    let conn = net.machine(f).peer_conn(id(1)).expect("connected");
    let bye = Message::Goodbye(timed_core::wire::Goodbye {
        reason: timed_core::GoodbyeReason::Duplicate,
        detail: String::new(),
    });
    net.inject(f, conn, &bye.to_frame());
    hold.set(false);
    net.run_for(secs(120));
    assert_eq!(
        tip(&mut net, f),
        tip(&mut net, p),
        "sync resumed after the reconnect"
    );
}

/// Addresses come from peers we chose: a dialer asks the peer it dialed for addresses as soon
/// as the handshake is done; the acceptor does not ask back (anyone can dial in, and a book
/// filled by whoever dialed in is one an attacker can fill). It polls its peers only through
/// the periodic exchange.
#[test]
fn only_the_dialer_asks_for_addresses_when_a_connection_comes_up() {
    let mut net = Switchboard::new();
    net.enable_trace();
    let acceptor = add(&mut net, 1, "127.0.0.1:7000", &[]);
    let dialer = add(&mut net, 2, "127.0.0.1:7001", &["127.0.0.1:7000"]);
    net.run_for(secs(10));
    let asks = |from| {
        net.trace()
            .iter()
            .filter(|t| t.from.0 == from && is_request_on(&t.message, builtin::PEERS))
            .count()
    };
    assert_eq!(asks(dialer), 1, "the dialer asks the peer it chose");
    assert_eq!(
        asks(acceptor),
        0,
        "the acceptor does not ask whoever dialed in"
    );
}
