//! Adversarial stories found by the property tests and the fuzzers, each reduced to the
//! smallest input that shows it.

use std::net::SocketAddr;
use timed_core::testing::Switchboard;
use timed_core::wire::{Decoded, FrameDecoder, Hello, Message, MAGIC, PROTOCOL_VERSION};
use timed_core::{
    Action, CloseReason, Config, ConnId, Duration, GoodbyeReason, Input, Instant, MemStore,
    Network, NodeEvent, NodeId, PeerMachine,
};

fn config(n: u8, port: u16) -> Config {
    let mut c = Config::new(Network::Devnet, NodeId([n; 32]), u64::from(n));
    c.listen_port = Some(port);
    c
}

fn hello(n: u8) -> Message {
    Message::Hello(Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        min_version: PROTOCOL_VERSION,
        network: Network::Devnet.id(),
        genesis: Network::Devnet.genesis_hash(),
        node_id: NodeId([n; 32]),
        boot: 42,
        listen_port: None,
        best_height: 0,
        best_hash: Network::Devnet.genesis_hash(),
        user_agent: String::from("adversary"),
        protocols: timed_core::protocol::builtin::default_adverts().0,
        topics: timed_core::protocol::builtin::default_adverts().1,
    })
}

/// A machine with one inbound connection from a scripted remote, driven by hand.
struct Raw {
    m: PeerMachine<MemStore>,
    conn: ConnId,
    now: Instant,
    closed: bool,
    decoder: FrameDecoder,
    received: Vec<Message>,
}

impl Raw {
    fn new() -> Self {
        let now = Instant::ZERO;
        let mut m = PeerMachine::new(config(1, 7000), MemStore::new(Network::Devnet), now).unwrap();
        let remote: SocketAddr = "10.9.9.9:50000".parse().unwrap();
        let conn = m.accept(now, remote).unwrap();
        let mut raw = Raw {
            m,
            conn,
            now,
            closed: false,
            decoder: FrameDecoder::new(u32::MAX),
            received: Vec::new(),
        };
        raw.drain();
        raw
    }

    fn drain(&mut self) {
        while let Some(a) = self.m.poll_action() {
            match a {
                Action::Send { conn, data } if conn == self.conn => {
                    assert!(!self.closed, "Send after Close");
                    self.decoder.push(&data);
                    while let Some(p) = self.decoder.next_frame().unwrap() {
                        if let Ok(Decoded::Known(msg)) = Message::decode(p) {
                            self.received.push(msg);
                        }
                    }
                    self.m.handle(
                        self.now,
                        Input::Written {
                            conn,
                            bytes: data.len(),
                        },
                    );
                }
                Action::Close { conn } if conn == self.conn => self.closed = true,
                // Dials the machine makes on its own (address book) fail at once.
                Action::Dial { conn, .. } => self.m.handle(self.now, Input::DialFailed { conn }),
                _ => {}
            }
        }
    }

    fn bytes(&mut self, data: &[u8]) {
        self.m.handle(
            self.now,
            Input::BytesIn {
                conn: self.conn,
                data,
            },
        );
        self.drain();
    }

    fn advance_to(&mut self, t: Instant) {
        while let Some(d) = self.m.poll_timeout() {
            if d > t {
                break;
            }
            self.now = d;
            self.m.handle_timeout(d);
            self.drain();
        }
        self.now = t;
    }
}

/// A peer that completes the handshake, then declares a 1 MiB frame and trickles one byte of
/// it every minute, never sending a complete frame again, must be dropped at the ping timeout
/// (a peer that has not been heard from for `ping_timeout` is disconnected, and only a whole
/// *frame* received proves liveness). Otherwise 125 such sockets hold every connection slot
/// forever (slowloris).
#[test]
fn a_peer_trickling_an_endless_frame_is_dropped_at_the_ping_timeout() {
    let mut r = Raw::new();
    r.bytes(&hello(2).to_frame());
    assert_eq!(r.m.status().peers.len(), 1, "handshake completed");
    let last_frame_at = r.now;
    r.bytes(&(1u32 << 20).to_le_bytes());
    let ping_timeout = r.m.config().ping_timeout;
    for minute in 1..=10u64 {
        let t = Instant::ZERO + Duration::from_secs(60 * minute);
        r.advance_to(t);
        if r.closed {
            break;
        }
        r.bytes(&[0]);
    }
    assert!(
        r.closed,
        "still connected after 10 minutes without a single complete frame"
    );
    let down =
        r.m.status()
            .counters
            .conns_closed
            .get(CloseReason::Goodbye(GoodbyeReason::PingTimeout));
    assert_eq!(down, 1, "dropped for the ping timeout");
    assert!(r.now <= last_frame_at + ping_timeout + Duration::from_secs(60));
}

/// The property test's minimal counterexample (`machine_props`, with desync corruption): one
/// stray byte on a live connection leaves its decoder out of step, so no frame is ever
/// decoded again on that end; since the other end keeps sending pings, the bytes keep
/// arriving and neither end ever drops the connection — it is a zombie with no pong for hours.
#[test]
fn a_desynchronised_connection_is_dropped_and_replaced() {
    let mut net = Switchboard::new();
    let a0: SocketAddr = "10.0.0.1:7000".parse().unwrap();
    let a1: SocketAddr = "10.0.0.2:7000".parse().unwrap();
    let mut c0 = config(1, 7000);
    c0.persistent_peers.push(a1);
    let n0 = net.add(
        PeerMachine::new(c0, MemStore::new(Network::Devnet), net.now()).unwrap(),
        a0,
    );
    let n1 = net.add(
        PeerMachine::new(config(2, 7000), MemStore::new(Network::Devnet), net.now()).unwrap(),
        a1,
    );
    net.run_for(Duration::from_secs(1));
    let conn = net.machine(n0).status().peers[0].conn;
    net.inject(n0, conn, &[0]);
    let pongs_before: Vec<u64> = [n0, n1]
        .map(|n| net.machine(n).status().counters.pongs_received)
        .to_vec();
    net.run_for(Duration::from_secs(600));
    for (k, n) in [n0, n1].into_iter().enumerate() {
        let s = net.machine(n).status();
        assert_eq!(s.peers.len(), 1, "node {n} reconnected");
        let pongs = s.counters.pongs_received;
        assert!(
            pongs > pongs_before[k],
            "node {n}: a zombie connection, no pong in 10 minutes: {:?}",
            s.peers[0]
        );
    }
    let downs = net
        .events(n0)
        .iter()
        .filter(|(_, e)| matches!(e, NodeEvent::PeerDown { .. }))
        .count();
    assert!(downs >= 1);
}
