//! A `PeerMachine` accepts one inbound connection and receives arbitrary bytes — sometimes
//! after a valid `Hello`, sometimes after valid frames of other kinds — interleaved with time
//! jumps, write completions and a transport close. It must never panic, and it must stay
//! coherent:
//!
//! - everything it sends on the connection is a well-formed frame, `Hello` first;
//! - nothing is sent on a connection after its `Close`, and a closed connection is no longer
//!   a peer;
//! - after `handle_timeout(now)`, no timer is still due at `now`;
//! - every `QueryDone` answers a query it returned, once.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use timed_core::wire::{
    Decoded, FrameDecoder, Hello, Message, RequestBody, ResponseBody, MAGIC, PROTOCOL_VERSION,
};
use timed_core::{
    Action, CloseKind, Config, ConnId, Duration, Input, Instant, MemStore, Network, NodeEvent,
    NodeId, PeerMachine, QueryId, Tx,
};

#[derive(Debug, Arbitrary)]
enum Step {
    /// Raw bytes from the remote.
    Bytes(Vec<u8>),
    /// A well-formed frame from the remote.
    Frame(Frame),
    /// Time passes (milliseconds, up to ~4 minutes); timers fire.
    Advance(u16, u8),
    /// The transport reports `n` bytes written (arbitrary, possibly more than were sent).
    Written(u16),
    /// The remote closes.
    Closed(u8),
    /// The application queries the remote (or an unknown id).
    Query(bool, u8),
    SubmitTx(Vec<u8>),
    /// A second inbound connection from the same IP, carrying bytes.
    Second(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Frame {
    Hello {
        node: u8,
        boot: u64,
        version: u16,
        min_version: u16,
        good_network: bool,
        user_agent: String,
    },
    Ping(u64),
    Pong(u64),
    Goodbye(u16, String),
    Request(u64, u8, u64, u32),
    Response(u64, u8, u64),
    Tx(Vec<u8>),
    UnknownKind(u32, Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Script {
    hello_first: bool,
    remote_v6: bool,
    steps: Vec<Step>,
}

const ME: NodeId = NodeId([0x11; 32]);

fn hello(
    node: u8,
    boot: u64,
    version: u16,
    min_version: u16,
    good: bool,
    user_agent: String,
) -> Message {
    let genesis = Network::Devnet.genesis_hash();
    Message::Hello(Hello {
        magic: MAGIC,
        version,
        min_version,
        network: if good {
            Network::Devnet.id()
        } else {
            Network::Mainnet.id()
        },
        genesis,
        node_id: NodeId([node; 32]),
        boot,
        listen_port: Some(7001),
        best_height: 0,
        best_hash: genesis,
        user_agent,
    })
}

fn frame_bytes(f: Frame) -> Vec<u8> {
    let msg = match f {
        Frame::Hello {
            node,
            boot,
            version,
            min_version,
            good_network,
            user_agent,
        } => hello(node, boot, version, min_version, good_network, user_agent),
        Frame::Ping(n) => Message::Ping { nonce: n },
        Frame::Pong(n) => Message::Pong { nonce: n },
        Frame::Goodbye(c, d) => Message::Goodbye(timed_core::wire::Goodbye {
            reason: timed_core::GoodbyeReason::from_code(c),
            detail: d,
        }),
        Frame::Request(id, k, a, b) => Message::Request {
            id,
            body: match k % 4 {
                0 => RequestBody::Tip,
                1 => RequestBody::HashAt { height: a },
                2 => RequestBody::Blocks { from: a, count: b },
                _ => RequestBody::Peers,
            },
        },
        Frame::Response(id, k, a) => Message::Response {
            id,
            body: match k % 3 {
                0 => ResponseBody::HashAt(None),
                1 => ResponseBody::Tip {
                    height: a,
                    hash: Network::Devnet.genesis_hash(),
                },
                _ => ResponseBody::Blocks(Vec::new()),
            },
        },
        Frame::Tx(t) => Message::TxBroadcast(Tx(t)),
        Frame::UnknownKind(k, body) => {
            let mut payload = Vec::new();
            let mut k = k.max(8);
            // postcard varint of the kind
            while k >= 0x80 {
                payload.push((k as u8) | 0x80);
                k >>= 7;
            }
            payload.push(k as u8);
            payload.extend(body);
            let mut out = Vec::new();
            timed_core::wire::encode_frame(&payload, &mut out);
            return out;
        }
    };
    msg.to_frame()
}

struct Harness {
    m: PeerMachine<MemStore>,
    now: Instant,
    /// Per connection: decoder of what the machine sent, whether `Close` was emitted, frames.
    out: BTreeMap<ConnId, (FrameDecoder, bool, usize)>,
    /// Connections the transport closed (we reported `Closed`).
    gone: BTreeSet<ConnId>,
    queries: BTreeSet<QueryId>,
    done: BTreeSet<QueryId>,
}

impl Harness {
    fn drain(&mut self) {
        while let Some(a) = self.m.poll_action() {
            match a {
                Action::Send { conn, data } => {
                    let e = self
                        .out
                        .entry(conn)
                        .or_insert_with(|| (FrameDecoder::new(u32::MAX), false, 0));
                    assert!(!e.1, "Send on {conn} after its Close");
                    assert!(
                        !self.gone.contains(&conn),
                        "Send on {conn} after the transport closed it"
                    );
                    e.0.push(&data);
                    while let Some(p) = e.0.next_frame().expect("machine frames are bounded") {
                        let decoded = Message::decode(p);
                        let Ok(Decoded::Known(msg)) = decoded else {
                            panic!("machine sent an undecodable frame: {decoded:?}")
                        };
                        if e.2 == 0 {
                            assert!(
                                matches!(msg, Message::Hello(_)),
                                "first frame on {conn} is not Hello: {msg:?}"
                            );
                        }
                        e.2 += 1;
                    }
                }
                Action::Close { conn } => {
                    let e = self
                        .out
                        .entry(conn)
                        .or_insert_with(|| (FrameDecoder::new(u32::MAX), false, 0));
                    assert!(!e.1, "Close on {conn} twice");
                    e.1 = true;
                }
                Action::Dial { conn, .. } => {
                    // Dials from the address book fail at once.
                    self.m.handle(self.now, Input::DialFailed { conn });
                }
                Action::PauseRead { .. } | Action::ResumeRead { .. } => {}
                Action::Notify(NodeEvent::QueryDone { id, .. }) => {
                    assert!(
                        self.queries.contains(&id),
                        "QueryDone for {id} never returned by query()"
                    );
                    assert!(self.done.insert(id), "{id} ended twice");
                }
                Action::Notify(_) => {}
            }
        }
    }

    /// A closed connection is no longer a peer.
    fn check_peers(&self) {
        for p in &self.m.status().peers {
            let closed = self.out.get(&p.conn).is_some_and(|e| e.1) || self.gone.contains(&p.conn);
            assert!(
                !closed,
                "{} is still a peer after its connection closed",
                p.conn
            );
        }
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.m.poll_timeout() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.m.handle_timeout(self.now);
            assert!(
                self.m.poll_timeout().is_none_or(|t| t > self.now),
                "a timer is still due after handle_timeout"
            );
            self.drain();
        }
        self.now = until;
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut cfg = Config::new(Network::Devnet, ME, 1);
    cfg.listen_port = Some(7000);
    let now = Instant::ZERO;
    let m = PeerMachine::new(cfg, MemStore::new(Network::Devnet), now).expect("valid config");
    let mut h = Harness {
        m,
        now,
        out: BTreeMap::new(),
        gone: BTreeSet::new(),
        queries: BTreeSet::new(),
        done: BTreeSet::new(),
    };
    let remote: SocketAddr = if script.remote_v6 {
        "[2001:db8::1]:50000".parse().unwrap()
    } else {
        "10.1.2.3:50000".parse().unwrap()
    };
    let Ok(conn) = h.m.accept(now, remote) else {
        return;
    };
    h.drain();
    if script.hello_first {
        let frame = hello(
            0x22,
            7,
            PROTOCOL_VERSION,
            PROTOCOL_VERSION,
            true,
            String::from("fuzz"),
        )
        .to_frame();
        h.m.handle(h.now, Input::BytesIn { conn, data: &frame });
        h.drain();
    }
    let mut second: Option<ConnId> = None;
    for step in script.steps.into_iter().take(64) {
        match step {
            Step::Bytes(b) => h.m.handle(h.now, Input::BytesIn { conn, data: &b }),
            Step::Frame(f) => {
                let b = frame_bytes(f);
                h.m.handle(h.now, Input::BytesIn { conn, data: &b });
            }
            Step::Advance(ms, mul) => {
                h.advance(Duration::from_millis(
                    u64::from(ms) * (u64::from(mul % 4) + 1),
                ));
            }
            Step::Written(n) => h.m.handle(
                h.now,
                Input::Written {
                    conn,
                    bytes: usize::from(n),
                },
            ),
            Step::Closed(k) => {
                let kind = [CloseKind::Fin, CloseKind::Reset, CloseKind::Error][usize::from(k % 3)];
                h.m.handle(h.now, Input::Closed { conn, kind });
                h.gone.insert(conn);
            }
            Step::Query(known, k) => {
                let peer = if known {
                    NodeId([0x22; 32])
                } else {
                    NodeId([k; 32])
                };
                let body = if k % 2 == 0 {
                    RequestBody::Tip
                } else {
                    RequestBody::Peers
                };
                let id = h.m.query(h.now, peer, body);
                assert!(h.queries.insert(id), "query() returned {id} twice");
            }
            Step::SubmitTx(t) => {
                let _ = h.m.submit_tx(h.now, Tx(t));
            }
            Step::Second(b) => {
                let c = match second {
                    Some(c) => c,
                    None => match h.m.accept(h.now, remote) {
                        Ok(c) => *second.insert(c),
                        Err(_) => continue,
                    },
                };
                h.m.handle(h.now, Input::BytesIn { conn: c, data: &b });
            }
        }
        h.drain();
        h.check_peers();
    }
    // Everything still pending ends: queries and handshakes time out.
    h.advance(Duration::from_secs(120));
    h.check_peers();
    for id in &h.queries {
        assert!(h.done.contains(id), "{id} never ended");
    }
});
