//! A `PeerMachine` that declares one application protocol and two application topics (one
//! validated by the application, one not), all with small limits, accepts one inbound
//! connection and receives arbitrary bytes — sometimes after a valid `Hello`, sometimes after
//! valid frames of other kinds — interleaved with time jumps, write completions, a transport
//! close, and the application's own calls: queries and requests to the remote, answers to the
//! remote's requests (some answered, some refused, some never), verdicts on gossip, publishes.
//!
//! The remote's vocabulary includes `Hello`s with arbitrary adverts, the v1 `Hello` (no protocol
//! lists), requests on built-in, declared and unknown protocol ids, within and over the declared
//! protocol's size limit, request floods past its inbound in-flight limit (and, with a tight
//! transport window, past `max_requests_in_flight`), responses to unknown ids and to the
//! machine's own requests, and gossip on built-in, declared and unknown topics within and over
//! their size limits. It must never panic, and it must stay coherent:
//!
//! - everything it sends on a connection is a well-formed frame, `Hello` first, advertising
//!   exactly what its config declares;
//! - nothing is sent on a connection after its `Close`, and a closed connection is no longer
//!   a peer;
//! - after `handle_timeout(now)`, no timer is still due at `now`;
//! - every `QueryDone` answers a `query`, every `RequestDone` a `request` (same protocol), each
//!   once, and every one has ended after a long enough quiet period; a request on an undeclared
//!   protocol ends at once;
//! - a request or gossip message the machine sends is on a protocol or topic the remote
//!   advertised and within the remote's advertised (and our own) size limit;
//! - every request the remote sends gets at most one response, and exactly one on a
//!   connection still open once the answer deadline has passed and the transport drained;
//! - `inbound_waiting()` and `gossip_pending()` are, after every step and every timer firing,
//!   exactly what the application was handed and has not answered, judged or seen expire (so
//!   within their bounds), and `respond` / `validate` succeed exactly on those;
//! - a v1 `Hello` is told to upgrade (`IncompatibleVersion`) and is not treated as misbehaviour.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use timed_core::protocol::{
    builtin, ProtocolAd, ProtocolId, ProtocolSpec, TopicAd, TopicId, TopicSpec,
};
use timed_core::wire::{
    encode_frame, Decoded, FrameDecoder, GoodbyeReason, Hello, Message, RefuseReason, RequestBody,
    ResponseBody, MAGIC, PROTOCOL_VERSION,
};
use timed_core::{
    Action, Block, CloseKind, Config, ConnId, Duration, GossipId, HandleError, InboundId, Input,
    Instant, MemStore, Network, NodeEvent, NodeId, PeerMachine, PublishError, QueryId, Tx, Verdict,
};

const ME: NodeId = NodeId([0x11; 32]);
const REMOTE: NodeId = NodeId([0x22; 32]);

/// The declared request/response protocol.
const APP: ProtocolId = ProtocolId(1000);
const APP_MAX_REQUEST: usize = 16;
const APP_MAX_RESPONSE: usize = 32;
const APP_MAX_INBOUND: usize = 3;
/// Three quarters of the protocol's 4 s timeout.
const APP_ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// A declared topic the application validates.
const VOTES: TopicId = TopicId(1000);
const VOTES_MAX_PENDING: usize = 4;
const VOTES_VALIDATION: Duration = Duration::from_secs(2);
/// A declared topic forwarded without validation.
const NEWS: TopicId = TopicId(1001);
const TOPIC_MAX: usize = 24;
/// Ids nobody declares.
const NO_PROTOCOL: ProtocolId = ProtocolId(4242);
const NO_TOPIC: TopicId = TopicId(4242);

fn app_protocol() -> ProtocolSpec {
    ProtocolSpec::new(APP, "fuzz/echo/1")
        .with_max_request_bytes(APP_MAX_REQUEST as u32)
        .with_max_response_bytes(APP_MAX_RESPONSE as u32)
        .with_in_flight(2, APP_MAX_INBOUND as u16)
        .with_timeout(Duration::from_secs(4))
}

fn votes_topic() -> TopicSpec {
    TopicSpec {
        seen_capacity: 8,
        max_pending: VOTES_MAX_PENDING,
        validation_timeout: VOTES_VALIDATION,
        ..TopicSpec::new(VOTES, "fuzz/votes/1")
            .with_max_message_bytes(TOPIC_MAX as u32)
            .with_rate(5, 8)
    }
}

fn news_topic() -> TopicSpec {
    TopicSpec {
        seen_capacity: 8,
        ..TopicSpec::new(NEWS, "fuzz/news/1")
            .with_max_message_bytes(TOPIC_MAX as u32)
            .with_rate(5, 8)
            .without_validation()
    }
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// Raw bytes from the remote.
    Bytes(Vec<u8>),
    /// A well-formed frame from the remote.
    Frame(Frame),
    /// Time passes: `ms` mod 1000 milliseconds times 1, 10, 60 or 240 (so up to 4 minutes,
    /// often under a second); timers fire.
    Advance(u16, u8),
    /// The transport reports `n` bytes written (arbitrary, possibly more than were sent).
    Written(u16),
    /// The remote closes.
    Closed(u8),
    /// The application queries the remote (or an unknown id) on a built-in protocol.
    Query(bool, u8),
    /// The application sends a request to the remote (or an unknown id): on the declared
    /// protocol, a built-in one, or one nobody declares; `len` bytes (mod 40). With `reply`,
    /// the remote answers it at once if it went on the wire (as `Frame::Reply`).
    Request {
        known: bool,
        proto: u8,
        len: u8,
        reply: Option<(u8, u8, u16)>,
    },
    /// The application answers the `pick`-th latest inbound request it was ever handed
    /// (answered, expired or not): `len` bytes (mod 40, so sometimes over the response limit) or a refusal.
    Respond {
        pick: u8,
        len: u8,
        refuse: Option<u16>,
    },
    /// The application judges the `pick`-th latest gossip message it was ever handed.
    Validate {
        pick: u8,
        verdict: u8,
    },
    /// The application publishes on a declared topic or one nobody declares.
    Publish {
        topic: u8,
        len: u8,
        fill: u8,
    },
    SubmitTx(Vec<u8>),
    /// A second inbound connection from the same IP, carrying bytes.
    Second(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Ads {
    /// What a node with our config advertises.
    Mirror,
    None,
    /// Picked ids (see `protocol_id`, `topic_id`) with arbitrary limits.
    Custom {
        protocols: Vec<(u8, u16, u8)>,
        topics: Vec<(u8, u16)>,
    },
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
        ads: Ads,
    },
    /// A `Hello` in the shape of wire version 1 (no protocol or topic lists), version 0..=3.
    OldHello {
        version: u8,
        min_version: u8,
        good_magic: bool,
    },
    Ping(u64),
    Pong(u64),
    Goodbye(u16, String),
    /// A well-formed built-in request.
    Builtin(u8, u8, u64, u32),
    /// A request on a picked protocol id (`protocol_id`) with `len` (mod 40) bytes. Ids are
    /// taken mod 16, so ids are reused, while waiting and after their answer.
    Request {
        id: u8,
        proto: u8,
        len: u8,
        fill: u8,
    },
    /// `count` (mod 80) requests on the declared protocol with consecutive ids from
    /// `first` mod 16, in one read.
    Flood {
        first: u8,
        count: u8,
        len: u8,
    },
    /// A response to any id (usually one the machine never used).
    Response(u64, u8, u64),
    /// A response to the `pick`-th latest request the machine sent on this connection: a fitting
    /// payload (`len` mod 40 bytes on the declared protocol, a well-formed empty answer on a
    /// built-in one), raw bytes, or a refusal.
    Reply {
        pick: u8,
        how: u8,
        len: u8,
        code: u16,
    },
    /// Gossip on a picked topic (`topic_id`) with `len` (mod 40) bytes from a small alphabet
    /// (so duplicates happen).
    Gossip {
        topic: u8,
        len: u8,
        fill: u8,
    },
    /// A transaction on the built-in topic.
    Tx(Vec<u8>),
    /// A block on the built-in topic: a child of genesis, or junk.
    Block {
        time: u32,
        txs: u8,
        junk: bool,
    },
    UnknownKind(u32, Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Script {
    hello_first: bool,
    remote_v6: bool,
    /// A small transport window and `max_requests_in_flight`, so unanswered responses queue
    /// in the machine and request floods reach the flood limit.
    tight: bool,
    steps: Vec<Step>,
}

fn protocol_id(k: u8) -> ProtocolId {
    match k % 8 {
        0 => builtin::TIP,
        1 => builtin::HASH_AT,
        2 => builtin::BLOCKS,
        3 => builtin::PEERS,
        4 | 5 => APP,
        6 => NO_PROTOCOL,
        _ => ProtocolId(u32::from(k) * 977),
    }
}

fn topic_id(k: u8) -> TopicId {
    match k % 8 {
        0 => builtin::BLOCK_TOPIC,
        1 => builtin::TX_TOPIC,
        2 | 3 => VOTES,
        4 | 5 => NEWS,
        6 => NO_TOPIC,
        _ => TopicId(u32::from(k) * 977),
    }
}

fn fill(len: u8, fill: u8) -> Vec<u8> {
    vec![fill % 4; usize::from(len % 40)]
}

fn config(tight: bool) -> Config {
    let mut cfg = Config::new(Network::Devnet, ME, 1);
    cfg.listen_port = Some(7000);
    cfg.protocols.push(app_protocol());
    cfg.topics.push(votes_topic());
    cfg.topics.push(news_topic());
    if tight {
        cfg.max_requests_in_flight = 8;
        cfg.transport_window = 512;
    }
    cfg
}

#[allow(clippy::too_many_arguments)]
fn hello(
    node: u8,
    boot: u64,
    version: u16,
    min_version: u16,
    good: bool,
    user_agent: String,
    ads: Ads,
    cfg: &Config,
) -> Hello {
    let genesis = Network::Devnet.genesis_hash();
    let (protocols, topics) = match ads {
        Ads::Mirror => builtin::adverts(cfg),
        Ads::None => (Vec::new(), Vec::new()),
        Ads::Custom { protocols, topics } => (
            protocols
                .into_iter()
                .map(|(k, max, n)| ProtocolAd {
                    id: protocol_id(k),
                    max_request_bytes: u32::from(max % 80),
                    max_in_flight: u16::from(n % 5),
                })
                .collect(),
            topics
                .into_iter()
                .map(|(k, max)| TopicAd {
                    id: topic_id(k),
                    max_message_bytes: u32::from(max % 40),
                })
                .collect(),
        ),
    };
    Hello {
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
        protocols,
        topics,
    }
}

/// A version-1 `Hello`: the v2 body without its two trailing lists (postcard writes each
/// empty list as one zero byte).
fn old_hello(version: u16, min_version: u16, good_magic: bool, cfg: &Config) -> Vec<u8> {
    let mut h = hello(
        0x22,
        9,
        version,
        min_version,
        true,
        "timed/0.1.0".into(),
        Ads::None,
        cfg,
    );
    if !good_magic {
        h.magic = *b"EMIT";
    }
    let frame = Message::Hello(h).to_frame();
    assert_eq!(&frame[frame.len() - 2..], &[0, 0]);
    let mut out = Vec::new();
    encode_frame(&frame[4..frame.len() - 2], &mut out);
    out
}

/// Any refusal an application can construct, canonical or not (`Other(0)`, `App(65000)`).
fn refusal(code: u16) -> RefuseReason {
    match code % 8 {
        0 => RefuseReason::Unsupported,
        1 => RefuseReason::TooManyRequests,
        2 => RefuseReason::Unavailable,
        3 => RefuseReason::BadRequest,
        4 | 5 => RefuseReason::App((code / 8).wrapping_mul(9)),
        _ => RefuseReason::Other(code / 8),
    }
}

fn builtin_request(k: u8, a: u64, b: u32) -> RequestBody {
    match k % 4 {
        0 => RequestBody::Tip,
        1 => RequestBody::HashAt { height: a },
        2 => RequestBody::Blocks { from: a, count: b },
        _ => RequestBody::Peers,
    }
}

/// A well-formed, harmless answer to a built-in request of `protocol`.
fn builtin_answer(protocol: ProtocolId) -> Vec<u8> {
    let body = match protocol {
        builtin::TIP => ResponseBody::Tip {
            height: 0,
            hash: Network::Devnet.genesis_hash(),
        },
        builtin::HASH_AT => ResponseBody::HashAt(None),
        builtin::BLOCKS => ResponseBody::Blocks(Vec::new()),
        _ => ResponseBody::Peers(Vec::new()),
    };
    builtin::encode_response(&body)
}

/// The `pick`-th element from the end (0 is the latest), wrapping.
fn latest<T>(v: &[T], pick: u8) -> Option<&T> {
    let n = v.len();
    (n > 0).then(|| &v[n - 1 - usize::from(pick) % n])
}

/// The advert a node keeps of a peer's list: the first `MAX_ADVERTISED` entries, first
/// occurrence of an id wins.
fn advert<T: Copy, K: PartialEq>(ads: &[T], key: impl Fn(&T) -> K, id: K) -> Option<T> {
    ads.iter()
        .take(timed_core::protocol::MAX_ADVERTISED)
        .find(|a| key(a) == id)
        .copied()
}

/// What the harness knows of one connection.
struct ConnLog {
    /// Decoder of what the machine sent; whether `Close` was emitted; frames decoded.
    out: FrameDecoder,
    closed: bool,
    frames_out: usize,
    /// Bytes sent and not yet reported written.
    unwritten: usize,
    last_goodbye: Option<GoodbyeReason>,
    /// A mirror of the machine's decoder of what the remote sent (`None` after a frame error:
    /// the machine closes the connection then).
    inbound: Option<FrameDecoder>,
    frames_in: usize,
    /// The remote's `Hello`, if its first frame was one.
    remote: Option<Hello>,
    /// The remote's first frame was a v1 `Hello`.
    old_hello: bool,
    /// Requests the remote sent, and responses the machine sent, per id.
    requests_in: BTreeMap<u64, usize>,
    responses_out: BTreeMap<u64, usize>,
    /// Requests the machine sent: id and protocol.
    requests_out: Vec<(u64, ProtocolId)>,
}

impl ConnLog {
    fn new(max_frame: u32) -> Self {
        ConnLog {
            out: FrameDecoder::new(u32::MAX),
            closed: false,
            frames_out: 0,
            unwritten: 0,
            last_goodbye: None,
            inbound: Some(FrameDecoder::new(max_frame)),
            frames_in: 0,
            remote: None,
            old_hello: false,
            requests_in: BTreeMap::new(),
            responses_out: BTreeMap::new(),
            requests_out: Vec::new(),
        }
    }
}

struct Harness {
    m: PeerMachine<MemStore>,
    cfg: Config,
    /// What our `Hello` advertises: `builtin::adverts(&cfg)`.
    ads: (Vec<ProtocolAd>, Vec<TopicAd>),
    now: Instant,
    conns: BTreeMap<ConnId, ConnLog>,
    /// Connections the transport closed (we reported `Closed`).
    gone: BTreeSet<ConnId>,
    queries: BTreeSet<QueryId>,
    requests: BTreeMap<QueryId, ProtocolId>,
    done: BTreeSet<QueryId>,
    /// Every inbound request and gossip message the application was handed, in order.
    inbound_seen: Vec<InboundId>,
    gossip_seen: Vec<GossipId>,
    /// The model: inbound requests waiting for an answer (with their answer deadline), and
    /// `VOTES` messages waiting for a verdict (with their validation deadline).
    waiting: BTreeMap<InboundId, Instant>,
    pending: VecDeque<(GossipId, Instant)>,
}

impl Harness {
    fn log(&mut self, conn: ConnId) -> &mut ConnLog {
        let max = self.cfg.max_frame;
        self.conns.entry(conn).or_insert_with(|| ConnLog::new(max))
    }

    fn is_closed(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.closed) || self.gone.contains(&conn)
    }

    /// Feeds bytes from the remote to the machine, mirroring its frame decoder.
    fn feed(&mut self, conn: ConnId, data: &[u8]) {
        if !self.is_closed(conn) {
            let log = self.log(conn);
            if let Some(dec) = log.inbound.as_mut() {
                dec.push(data);
                loop {
                    match dec.next_frame() {
                        Ok(Some(p)) => {
                            let first = log.frames_in == 0;
                            log.frames_in += 1;
                            match Message::decode(p) {
                                Ok(Decoded::Known(Message::Hello(h))) if first => {
                                    log.remote = Some(h)
                                }
                                Ok(Decoded::OldHello { .. }) if first => log.old_hello = true,
                                Ok(Decoded::Known(Message::Request { id, .. })) => {
                                    *log.requests_in.entry(id).or_default() += 1
                                }
                                _ => {}
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            log.inbound = None;
                            break;
                        }
                    }
                }
            }
        }
        self.m.handle(self.now, Input::BytesIn { conn, data });
    }

    fn on_sent(&mut self, conn: ConnId, data: &[u8]) {
        let max = self.cfg.max_frame;
        let our_ads = &self.ads;
        let gone = self.gone.contains(&conn);
        let e = self.conns.entry(conn).or_insert_with(|| ConnLog::new(max));
        assert!(!e.closed, "Send on {conn} after its Close");
        assert!(!gone, "Send on {conn} after the transport closed it");
        e.unwritten += data.len();
        e.out.push(data);
        while let Some(p) = e.out.next_frame().expect("machine frames are bounded") {
            let decoded = Message::decode(p);
            let Ok(Decoded::Known(msg)) = decoded else {
                panic!("machine sent an undecodable frame: {decoded:?}")
            };
            if e.frames_out == 0 {
                let Message::Hello(h) = &msg else {
                    panic!("first frame on {conn} is not Hello: {msg:?}")
                };
                assert_eq!(h.version, PROTOCOL_VERSION);
                assert_eq!(
                    (&h.protocols, &h.topics),
                    (&our_ads.0, &our_ads.1),
                    "the Hello does not advertise what the config declares"
                );
            }
            e.frames_out += 1;
            match msg {
                Message::Goodbye(g) => e.last_goodbye = Some(g.reason),
                Message::Response { id, .. } => {
                    let n = e.responses_out.entry(id).or_default();
                    *n += 1;
                    let asked = e.requests_in.get(&id).copied().unwrap_or(0);
                    assert!(
                        *n <= asked,
                        "{conn}: response #{n} to request {id}, asked {asked} times"
                    );
                }
                Message::Request {
                    id,
                    protocol,
                    payload,
                } => {
                    let remote = e
                        .remote
                        .as_ref()
                        .expect("a request before the peer's Hello");
                    let ad = advert(&remote.protocols, |a| a.id, protocol).unwrap_or_else(|| {
                        panic!("{conn}: request on {protocol}, which the peer never advertised")
                    });
                    assert!(
                        payload.len() <= ad.max_request_bytes as usize,
                        "{conn}: {} request bytes on {protocol}, the peer accepts {}",
                        payload.len(),
                        ad.max_request_bytes
                    );
                    let ours = advert(&our_ads.0, |a| a.id, protocol)
                        .expect("a request on a protocol we do not declare");
                    assert!(payload.len() <= ours.max_request_bytes as usize);
                    e.requests_out.push((id, protocol));
                }
                Message::Gossip { topic, payload } => {
                    let remote = e.remote.as_ref().expect("gossip before the peer's Hello");
                    let ad = advert(&remote.topics, |a| a.id, topic).unwrap_or_else(|| {
                        panic!("{conn}: gossip on {topic}, which the peer never advertised")
                    });
                    assert!(
                        payload.len() <= ad.max_message_bytes as usize,
                        "{conn}: {} gossip bytes on {topic}, the peer accepts {}",
                        payload.len(),
                        ad.max_message_bytes
                    );
                    let ours = advert(&our_ads.1, |a| a.id, topic)
                        .expect("gossip on a topic we do not declare");
                    assert!(payload.len() <= ours.max_message_bytes as usize);
                }
                _ => {}
            }
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.m.poll_action() {
            match a {
                Action::Send { conn, data } => self.on_sent(conn, &data),
                Action::Close { conn } => {
                    let e = self.log(conn);
                    assert!(!e.closed, "Close on {conn} twice");
                    e.closed = true;
                    self.waiting.retain(|id, _| id.conn() != conn);
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
                Action::Notify(NodeEvent::RequestDone { id, protocol, .. }) => {
                    let asked = self.requests.get(&id).unwrap_or_else(|| {
                        panic!("RequestDone for {id} never returned by request()")
                    });
                    assert_eq!(*asked, protocol, "{id} ended on another protocol");
                    assert!(self.done.insert(id), "{id} ended twice");
                }
                Action::Notify(NodeEvent::InboundRequest {
                    id,
                    protocol,
                    payload,
                    ..
                }) => {
                    assert_eq!(protocol, APP, "only the declared protocol reaches the app");
                    assert!(
                        payload.len() <= APP_MAX_REQUEST,
                        "an oversized request reached the app"
                    );
                    assert!(
                        !self.is_closed(id.conn()),
                        "a request from a closed connection"
                    );
                    assert!(
                        self.waiting
                            .insert(id, self.now + APP_ANSWER_WITHIN)
                            .is_none(),
                        "{id:?} handed to the application twice while waiting"
                    );
                    self.inbound_seen.push(id);
                }
                Action::Notify(NodeEvent::GossipReceived {
                    id, topic, payload, ..
                }) => {
                    assert!(
                        topic == VOTES || topic == NEWS,
                        "built-in gossip reached the app"
                    );
                    assert_eq!(id.topic(), topic);
                    assert!(
                        payload.len() <= TOPIC_MAX,
                        "oversized gossip reached the app"
                    );
                    if topic == VOTES {
                        if self.pending.len() >= VOTES_MAX_PENDING {
                            self.pending.pop_front();
                        }
                        self.pending.push_back((id, self.now + VOTES_VALIDATION));
                    }
                    self.gossip_seen.push(id);
                }
                Action::Notify(_) => {}
            }
        }
    }

    /// A closed connection is no longer a peer; the application's tables match the model.
    fn check(&self) {
        let st = self.m.status();
        for p in &st.peers {
            assert!(
                !self.is_closed(p.conn),
                "{} is still a peer after its connection closed",
                p.conn
            );
        }
        let waiting = self.m.inbound_waiting();
        assert!(
            waiting <= APP_MAX_INBOUND * st.connections,
            "{waiting} inbound requests waiting on {} connections",
            st.connections
        );
        assert_eq!(
            waiting,
            self.waiting.len(),
            "inbound_waiting() vs the model"
        );
        let pending = self.m.gossip_pending();
        assert!(
            pending <= VOTES_MAX_PENDING,
            "{pending} gossip messages pending"
        );
        assert_eq!(pending, self.pending.len(), "gossip_pending() vs the model");
        for (conn, log) in &self.conns {
            if log.old_hello {
                assert!(
                    self.is_closed(*conn),
                    "{conn}: a v1 Hello left the connection open"
                );
                assert_eq!(
                    log.last_goodbye,
                    Some(GoodbyeReason::IncompatibleVersion),
                    "{conn}: a v1 Hello is not told to upgrade"
                );
            }
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
            self.expire();
            assert_eq!(
                self.m.inbound_waiting(),
                self.waiting.len(),
                "inbound_waiting() vs the model at {:?}",
                self.now
            );
            assert_eq!(
                self.m.gossip_pending(),
                self.pending.len(),
                "gossip_pending() vs the model at {:?}",
                self.now
            );
        }
        self.now = until;
        self.expire();
    }

    /// The model's deadlines: what is due by now was refused or dropped.
    fn expire(&mut self) {
        let now = self.now;
        self.waiting.retain(|_, at| *at > now);
        self.pending.retain(|(_, at)| *at > now);
    }

    /// Reports every byte written until the machine has nothing left to send.
    fn flush(&mut self) {
        for _ in 0..10_000 {
            let open: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(c, l)| l.unwritten > 0 && !l.closed && !self.gone.contains(c))
                .map(|(c, _)| *c)
                .collect();
            if open.is_empty() {
                return;
            }
            for conn in open {
                let bytes = std::mem::take(&mut self.log(conn).unwritten);
                self.m.handle(self.now, Input::Written { conn, bytes });
                self.drain();
            }
        }
        panic!("the machine never stops sending");
    }

    fn frame_bytes(&self, conn: ConnId, f: Frame) -> Vec<u8> {
        let msg = match f {
            Frame::Hello {
                node,
                boot,
                version,
                min_version,
                good_network,
                user_agent,
                ads,
            } => Message::Hello(hello(
                node,
                boot,
                version,
                min_version,
                good_network,
                user_agent,
                ads,
                &self.cfg,
            )),
            Frame::OldHello {
                version,
                min_version,
                good_magic,
            } => {
                return old_hello(
                    u16::from(version % 4),
                    u16::from(min_version % 4),
                    good_magic,
                    &self.cfg,
                )
            }
            Frame::Ping(n) => Message::Ping { nonce: n },
            Frame::Pong(n) => Message::Pong { nonce: n },
            Frame::Goodbye(c, d) => Message::Goodbye(timed_core::wire::Goodbye {
                reason: GoodbyeReason::from_code(c),
                detail: d,
            }),
            Frame::Builtin(id, k, a, b) => {
                Message::builtin_request(u64::from(id), &builtin_request(k, a, b))
            }
            Frame::Request {
                id,
                proto,
                len,
                fill: f,
            } => Message::Request {
                id: u64::from(id % 16),
                protocol: protocol_id(proto),
                payload: fill(len, f),
            },
            Frame::Flood { first, count, len } => {
                let mut out = Vec::new();
                for i in 0..u64::from(count % 80) {
                    Message::Request {
                        id: u64::from(first % 16) + i,
                        protocol: APP,
                        payload: fill(len, i as u8),
                    }
                    .encode_frame(&mut out);
                }
                return out;
            }
            Frame::Response(id, k, a) => Message::builtin_response(
                id,
                &match k % 3 {
                    0 => ResponseBody::HashAt(None),
                    1 => ResponseBody::Tip {
                        height: a,
                        hash: Network::Devnet.genesis_hash(),
                    },
                    _ => ResponseBody::Blocks(Vec::new()),
                },
            ),
            Frame::Reply {
                pick,
                how,
                len,
                code,
            } => {
                let sent = self
                    .conns
                    .get(&conn)
                    .map_or(&[][..], |l| &l.requests_out[..]);
                let Some(&(id, protocol)) = latest(sent, pick) else {
                    return Vec::new();
                };
                Message::Response {
                    id,
                    result: match how % 3 {
                        0 if protocol == APP => Ok(fill(len, code as u8)),
                        0 => Ok(builtin_answer(protocol)),
                        1 => Ok(fill(len, code as u8)),
                        _ => Err(refusal(code)),
                    },
                }
            }
            Frame::Gossip {
                topic,
                len,
                fill: f,
            } => Message::Gossip {
                topic: topic_id(topic),
                payload: fill(len, f),
            },
            Frame::Tx(t) => Message::Gossip {
                topic: builtin::TX_TOPIC,
                payload: postcard::to_allocvec(&Tx(t)).expect("encodes"),
            },
            Frame::Block { time, txs, junk } => {
                let genesis = Network::Devnet.genesis();
                let txs = (0..txs % 4).map(|i| Tx(vec![i; 3])).collect();
                let mut block = Block::build(
                    &genesis.header,
                    genesis.header.time + u64::from(time % 600) + 1,
                    txs,
                );
                if junk {
                    block.header.tx_root[0] ^= 1;
                }
                Message::Gossip {
                    topic: builtin::BLOCK_TOPIC,
                    payload: postcard::to_allocvec(&block).expect("encodes"),
                }
            }
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
                encode_frame(&payload, &mut out);
                return out;
            }
        };
        msg.to_frame()
    }
}

fuzz_target!(|script: Script| {
    let cfg = config(script.tight);
    let now = Instant::ZERO;
    let m =
        PeerMachine::new(cfg.clone(), MemStore::new(Network::Devnet), now).expect("valid config");
    let mut h = Harness {
        m,
        ads: builtin::adverts(&cfg),
        cfg,
        now,
        conns: BTreeMap::new(),
        gone: BTreeSet::new(),
        queries: BTreeSet::new(),
        requests: BTreeMap::new(),
        done: BTreeSet::new(),
        inbound_seen: Vec::new(),
        gossip_seen: Vec::new(),
        waiting: BTreeMap::new(),
        pending: VecDeque::new(),
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
        let frame = Message::Hello(hello(
            REMOTE.0[0],
            7,
            PROTOCOL_VERSION,
            PROTOCOL_VERSION,
            true,
            String::from("fuzz"),
            Ads::Mirror,
            &h.cfg,
        ))
        .to_frame();
        h.feed(conn, &frame);
        h.drain();
    }
    let mut second: Option<ConnId> = None;
    for step in script.steps.into_iter().take(64) {
        match step {
            Step::Bytes(b) => h.feed(conn, &b),
            Step::Frame(f) => {
                let b = h.frame_bytes(conn, f);
                let misbehaved = h.m.counters().misbehaviour.total();
                let old = h.conns.get(&conn).is_some_and(|l| l.old_hello);
                h.feed(conn, &b);
                let upgrade = h.conns.get(&conn).is_some_and(|l| l.old_hello);
                if upgrade && !old {
                    assert_eq!(
                        h.m.counters().misbehaviour.total(),
                        misbehaved,
                        "a v1 Hello is treated as misbehaviour"
                    );
                }
            }
            Step::Advance(ms, scale) => {
                let scale = [1, 10, 60, 240][usize::from(scale % 4)];
                h.advance(Duration::from_millis(u64::from(ms % 1000) * scale));
            }
            Step::Written(n) => {
                let log = h.log(conn);
                log.unwritten = log.unwritten.saturating_sub(usize::from(n));
                h.m.handle(
                    h.now,
                    Input::Written {
                        conn,
                        bytes: usize::from(n),
                    },
                )
            }
            Step::Closed(k) => {
                let kind = [CloseKind::Fin, CloseKind::Reset, CloseKind::Error][usize::from(k % 3)];
                h.m.handle(h.now, Input::Closed { conn, kind });
                h.gone.insert(conn);
                h.waiting.retain(|id, _| id.conn() != conn);
            }
            Step::Query(known, k) => {
                let peer = if known { REMOTE } else { NodeId([k; 32]) };
                let body = if k % 2 == 0 {
                    RequestBody::Tip
                } else {
                    RequestBody::Peers
                };
                let id = h.m.query(h.now, peer, body);
                assert!(
                    h.queries.insert(id) && !h.requests.contains_key(&id),
                    "query() returned {id} twice"
                );
            }
            Step::Request {
                known,
                proto,
                len,
                reply,
            } => {
                let sent_before = h.conns.get(&conn).map_or(0, |l| l.requests_out.len());
                let peer = if known { REMOTE } else { NodeId([len; 32]) };
                let (protocol, payload) = match proto % 4 {
                    0 | 1 => (APP, fill(len, proto)),
                    2 => (builtin::TIP, Vec::new()),
                    _ => (NO_PROTOCOL, fill(len, proto)),
                };
                let id = h.m.request(h.now, peer, protocol, payload);
                assert!(
                    !h.queries.contains(&id) && h.requests.insert(id, protocol).is_none(),
                    "request() returned {id} twice"
                );
                h.drain();
                if protocol == NO_PROTOCOL {
                    assert!(
                        h.done.contains(&id),
                        "a request on an undeclared protocol is pending"
                    );
                }
                let sent = h.conns.get(&conn).map_or(0, |l| l.requests_out.len());
                if let (Some((how, len, code)), true) = (reply, sent > sent_before) {
                    let pick = 0;
                    let b = h.frame_bytes(
                        conn,
                        Frame::Reply {
                            pick,
                            how,
                            len,
                            code,
                        },
                    );
                    h.feed(conn, &b);
                }
            }
            Step::Respond { pick, len, refuse } => {
                let Some(&id) = latest(&h.inbound_seen, pick) else {
                    continue;
                };
                let result = match refuse {
                    Some(code) => Err(refusal(code)),
                    None => Ok(vec![len; usize::from(len % 40)]),
                };
                let too_large = result.as_ref().is_ok_and(|b| b.len() > APP_MAX_RESPONSE);
                let got = h.m.respond(h.now, id, result);
                let expected = match h.waiting.remove(&id) {
                    None => Err(HandleError::Unknown),
                    Some(_) if too_large => Err(HandleError::TooLarge),
                    Some(_) => Ok(()),
                };
                assert_eq!(got, expected, "respond({id:?})");
            }
            Step::Validate { pick, verdict } => {
                let Some(&id) = latest(&h.gossip_seen, pick) else {
                    continue;
                };
                let verdict =
                    [Verdict::Accept, Verdict::Reject, Verdict::Ignore][usize::from(verdict % 3)];
                let got = h.m.validate(h.now, id, verdict);
                let expected = match h.pending.iter().position(|(g, _)| *g == id) {
                    Some(i) => {
                        h.pending.remove(i);
                        Ok(())
                    }
                    None => Err(HandleError::Unknown),
                };
                assert_eq!(got, expected, "validate({id:?})");
            }
            Step::Publish {
                topic,
                len,
                fill: f,
            } => {
                let topic = [VOTES, NEWS, NO_TOPIC][usize::from(topic % 3)];
                let payload = fill(len, f);
                let big = payload.len() > TOPIC_MAX;
                let got = h.m.publish(h.now, topic, payload);
                match got {
                    Err(PublishError::UnknownTopic) => assert_eq!(topic, NO_TOPIC),
                    Err(PublishError::TooLarge) => assert!(big && topic != NO_TOPIC),
                    Err(PublishError::ShuttingDown) => panic!("not shut down"),
                    Ok(_) | Err(PublishError::Duplicate) => {
                        assert!(!big && topic != NO_TOPIC, "publish: {got:?}")
                    }
                }
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
                h.feed(c, &b);
            }
        }
        h.drain();
        h.check();
    }
    // Every request of the remote's is answered once its deadline has passed and the
    // transport has taken everything queued.
    h.advance(APP_ANSWER_WITHIN + Duration::from_secs(1));
    h.flush();
    h.check();
    for (c, log) in &h.conns {
        if h.is_closed(*c) || log.inbound.is_none() {
            continue;
        }
        for (id, asked) in &log.requests_in {
            let answered = log.responses_out.get(id).copied().unwrap_or(0);
            assert_eq!(
                answered, *asked,
                "{c}: request {id} asked {asked} times, answered {answered} times"
            );
        }
    }
    // Everything still pending ends: queries, requests and handshakes time out.
    h.advance(Duration::from_secs(120));
    h.check();
    for id in h.queries.iter().chain(h.requests.keys()) {
        assert!(h.done.contains(id), "{id} never ended");
    }
});
