//! The messages of protocol version 2 and their encoding.
//!
//! Payload = varint kind ‖ body. Requests, responses and gossip are a small header of
//! varints (id, protocol or topic, status) followed by the protocol's own bytes, which run
//! to the end of the frame; every other body is postcard. Bodies are structs and enums with serde derives;
//! postcard is not self-describing, so fields are only ever *appended* to a body in later
//! versions (postcard ignores trailing bytes), and new messages get new kinds.

use crate::chain::{Block, BlockHash};
use crate::id::NodeId;
use crate::protocol::{ProtocolAd, ProtocolId, TopicAd, TopicId};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use serde::{Deserialize, Serialize};

/// The first field of every `Hello`: a peer sending anything else is not speaking this
/// protocol and is treated as misbehaving.
pub const MAGIC: [u8; 4] = *b"TIME";
/// Version 2: application protocols and topics, advertised in `Hello`; requests,
/// responses and gossip carry a protocol or topic id. Version-1 peers are told to upgrade.
pub const PROTOCOL_VERSION: u16 = 2;
/// The oldest wire version this node still speaks; a peer whose `version` is below it is
/// closed with [`GoodbyeReason::IncompatibleVersion`].
pub const MIN_PROTOCOL_VERSION: u16 = 2;
/// Longest user agent we keep; longer ones are truncated, not refused.
pub const MAX_USER_AGENT: usize = 256;

/// The first message on every connection, in both directions.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The newest wire version the sender speaks ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// The oldest wire version the sender speaks ([`MIN_PROTOCOL_VERSION`]); the two ranges
    /// must overlap.
    pub min_version: u16,
    /// The sender's network id (`Network::id`); must equal ours.
    pub network: u32,
    /// The hash of the sender's genesis block; must equal ours.
    pub genesis: BlockHash,
    /// The sender's persistent identity; ours means we dialled ourselves.
    pub node_id: NodeId,
    /// Random per process start. Two connections carrying the same `boot` in opposite directions
    /// are a simultaneous open; a new `boot` means the peer restarted.
    pub boot: u64,
    /// The port the sender accepts connections on, if it listens; with the IP we see it at,
    /// this is the address we share with other peers.
    pub listen_port: Option<u16>,
    /// The height of the sender's best block when it sent this.
    pub best_height: u64,
    /// The hash of the sender's best block when it sent this.
    pub best_hash: BlockHash,
    /// Free-form software name and version, for display; cut to [`MAX_USER_AGENT`] bytes.
    pub user_agent: String,
    /// The request/response protocols this node serves, with the limits it accepts.
    pub protocols: Vec<ProtocolAd>,
    /// The gossip topics this node takes part in.
    pub topics: Vec<TopicAd>,
}

/// Why a connection is being closed, in a form both machines and people can read.
///
/// Carried as a `u16` so that a reason added by a newer version arrives as `Other(code)`
/// instead of a decode error.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum GoodbyeReason {
    /// The node is shutting down.
    Shutdown,
    /// We already hold a connection to this node and keep that one.
    Duplicate,
    /// The peer's `Hello` named another network id.
    WrongNetwork,
    /// The peer's `Hello` named another genesis block.
    WrongGenesis,
    /// The two nodes' wire version ranges do not overlap; the detail names both.
    IncompatibleVersion,
    /// The `Hello` carried our own node id.
    SelfConnection,
    /// The peer sent something this protocol does not allow.
    ProtocolError,
    /// No frame from the peer for the ping timeout.
    PingTimeout,
    /// No `Hello` within the handshake timeout.
    HandshakeTimeout,
    /// Connection caps (total or per IP) are reached.
    TooManyConnections,
    /// The peer's node id or IP is banned for misbehaviour.
    Banned,
    /// The peer does not read what we send; its send queue overflowed.
    SlowReader,
    /// The peer sent a block that fails validation.
    InvalidBlock,
    /// The peer answered too slowly or not at all.
    Unresponsive,
    /// A code this version does not know, kept as sent.
    Other(u16),
}

impl GoodbyeReason {
    /// The code this reason travels as (`1..=14`, or the code of `Other`).
    pub const fn code(self) -> u16 {
        match self {
            GoodbyeReason::Shutdown => 1,
            GoodbyeReason::Duplicate => 2,
            GoodbyeReason::WrongNetwork => 3,
            GoodbyeReason::WrongGenesis => 4,
            GoodbyeReason::IncompatibleVersion => 5,
            GoodbyeReason::SelfConnection => 6,
            GoodbyeReason::ProtocolError => 7,
            GoodbyeReason::PingTimeout => 8,
            GoodbyeReason::HandshakeTimeout => 9,
            GoodbyeReason::TooManyConnections => 10,
            GoodbyeReason::Banned => 11,
            GoodbyeReason::SlowReader => 12,
            GoodbyeReason::InvalidBlock => 13,
            GoodbyeReason::Unresponsive => 14,
            GoodbyeReason::Other(c) => c,
        }
    }

    /// The reason a code stands for; an unknown code becomes `Other(code)`.
    pub const fn from_code(c: u16) -> Self {
        match c {
            1 => GoodbyeReason::Shutdown,
            2 => GoodbyeReason::Duplicate,
            3 => GoodbyeReason::WrongNetwork,
            4 => GoodbyeReason::WrongGenesis,
            5 => GoodbyeReason::IncompatibleVersion,
            6 => GoodbyeReason::SelfConnection,
            7 => GoodbyeReason::ProtocolError,
            8 => GoodbyeReason::PingTimeout,
            9 => GoodbyeReason::HandshakeTimeout,
            10 => GoodbyeReason::TooManyConnections,
            11 => GoodbyeReason::Banned,
            12 => GoodbyeReason::SlowReader,
            13 => GoodbyeReason::InvalidBlock,
            14 => GoodbyeReason::Unresponsive,
            c => GoodbyeReason::Other(c),
        }
    }

    /// A stable snake_case name, for logs, metrics labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            GoodbyeReason::Shutdown => "shutdown",
            GoodbyeReason::Duplicate => "duplicate",
            GoodbyeReason::WrongNetwork => "wrong_network",
            GoodbyeReason::WrongGenesis => "wrong_genesis",
            GoodbyeReason::IncompatibleVersion => "incompatible_version",
            GoodbyeReason::SelfConnection => "self_connection",
            GoodbyeReason::ProtocolError => "protocol_error",
            GoodbyeReason::PingTimeout => "ping_timeout",
            GoodbyeReason::HandshakeTimeout => "handshake_timeout",
            GoodbyeReason::TooManyConnections => "too_many_connections",
            GoodbyeReason::Banned => "banned",
            GoodbyeReason::SlowReader => "slow_reader",
            GoodbyeReason::InvalidBlock => "invalid_block",
            GoodbyeReason::Unresponsive => "unresponsive",
            GoodbyeReason::Other(_) => "other",
        }
    }
}

impl core::fmt::Display for GoodbyeReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GoodbyeReason::Other(c) => write!(f, "other({c})"),
            r => f.write_str(r.as_str()),
        }
    }
}

impl Serialize for GoodbyeReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for GoodbyeReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(GoodbyeReason::from_code)
    }
}

/// The last message on a connection: the sender closes it right after.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Goodbye {
    /// Why the sender is closing.
    pub reason: GoodbyeReason,
    /// Free text for the operator on the other side; bounded by the frame size only.
    pub detail: String,
}

/// An address as exchanged between peers (observed IP + advertised port).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum PeerAddr {
    /// An IPv4 address (octets) and port.
    V4([u8; 4], u16),
    /// An IPv6 address (octets) and port.
    V6([u8; 16], u16),
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        match a.ip() {
            IpAddr::V4(ip) => PeerAddr::V4(ip.octets(), a.port()),
            IpAddr::V6(ip) => PeerAddr::V6(ip.octets(), a.port()),
        }
    }
}

impl From<PeerAddr> for SocketAddr {
    fn from(a: PeerAddr) -> Self {
        match a {
            PeerAddr::V4(ip, port) => SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port),
            PeerAddr::V6(ip, port) => SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port),
        }
    }
}

/// What a peer may ask of the core's built-in protocols (see
/// [`protocol::builtin`](crate::protocol::builtin)); each variant travels on its own
/// protocol id.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RequestBody {
    /// Our best height and hash.
    Tip,
    /// The hash of our block at `height`, if we have one.
    HashAt {
        /// The block height asked about.
        height: u64,
    },
    /// Blocks `from..from+count`, capped by the responder in count and bytes.
    Blocks {
        /// The height of the first block wanted.
        from: u64,
        /// How many blocks are wanted; this core serves at most 1000 per response.
        count: u32,
    },
    /// Addresses from our address book.
    Peers,
}

/// Why a request was not served. Travels as a `u16`; a code added by a newer version
/// arrives as `Other(code)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum RefuseReason {
    /// We do not run this protocol.
    Unsupported,
    /// Too many of the peer's requests are in flight on this protocol.
    TooManyRequests,
    /// The request exceeds the protocol's `max_request_bytes`, or the response its
    /// `max_response_bytes`.
    TooLarge,
    /// The application did not answer within the protocol's deadline.
    Unanswered,
    /// The request did not decode as the protocol's request type.
    BadRequest,
    /// The responder could not serve it (a storage failure, shutting down).
    Unavailable,
    /// A refusal defined by the application's protocol: codes `0..=64534` (larger ones
    /// arrive as 64534).
    App(u16),
    /// A code this version does not know, kept as sent.
    Other(u16),
}

/// Application refusal codes start here (`App(0)` travels as this).
pub const APP_REFUSE_BASE: u16 = 1000;

impl RefuseReason {
    /// The status this reason travels as: `1..=6` for the core's reasons,
    /// [`APP_REFUSE_BASE`]` + code` for `App`; never 0, which means success.
    pub const fn code(self) -> u16 {
        match self {
            RefuseReason::Unsupported => 1,
            RefuseReason::TooManyRequests => 2,
            RefuseReason::TooLarge => 3,
            RefuseReason::Unanswered => 4,
            RefuseReason::BadRequest => 5,
            RefuseReason::Unavailable => 6,
            RefuseReason::App(c) => {
                let c = APP_REFUSE_BASE as u32 + c as u32;
                if c > u16::MAX as u32 - 1 {
                    u16::MAX - 1
                } else {
                    c as u16
                }
            }
            // 0 is the success status on the wire.
            RefuseReason::Other(0) => u16::MAX,
            RefuseReason::Other(c) => c,
        }
    }
    /// The reason a non-zero status stands for; an unknown code becomes `Other(code)`.
    pub const fn from_code(c: u16) -> Self {
        match c {
            1 => RefuseReason::Unsupported,
            2 => RefuseReason::TooManyRequests,
            3 => RefuseReason::TooLarge,
            4 => RefuseReason::Unanswered,
            5 => RefuseReason::BadRequest,
            6 => RefuseReason::Unavailable,
            u16::MAX => RefuseReason::Other(0),
            c if c >= APP_REFUSE_BASE => RefuseReason::App(c - APP_REFUSE_BASE),
            c => RefuseReason::Other(c),
        }
    }
    /// A stable snake_case name, for logs, metrics labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefuseReason::Unsupported => "unsupported",
            RefuseReason::TooManyRequests => "too_many_requests",
            RefuseReason::TooLarge => "too_large",
            RefuseReason::Unanswered => "unanswered",
            RefuseReason::BadRequest => "bad_request",
            RefuseReason::Unavailable => "unavailable",
            RefuseReason::App(_) => "app",
            RefuseReason::Other(_) => "other",
        }
    }
}

impl core::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RefuseReason::App(c) => write!(f, "refused by the application (code {c})"),
            RefuseReason::Other(c) => write!(f, "refused (code {c})"),
            r => f.write_str(r.as_str()),
        }
    }
}

impl Serialize for RefuseReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for RefuseReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(RefuseReason::from_code)
    }
}

/// The answer to a [`RequestBody`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ResponseBody {
    /// The responder's best block.
    Tip {
        /// Its height.
        height: u64,
        /// Its hash.
        hash: BlockHash,
    },
    /// The hash of the responder's block at the asked height; `None` when its chain is
    /// shorter.
    HashAt(Option<BlockHash>),
    /// Consecutive blocks starting at the requested height; fewer than asked (possibly none)
    /// when we have fewer or the byte cap was reached.
    Blocks(Vec<Block>),
    /// Addresses to dial: the responder's peers first, then its address book, without the
    /// asker's own address.
    Peers(Vec<PeerAddr>),
}

/// Every message of protocol version 2, owned. The machine reads frames through the
/// borrowing [`MessageRef`] (no copy of a payload); this form is for tests, tools and
/// anything that keeps a message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// The handshake: the first message in each direction.
    Hello(Hello),
    /// A liveness check; the peer answers with a `Pong` carrying the same nonce.
    Ping {
        /// Echoed by the `Pong`; this machine sends random non-zero nonces.
        nonce: u64,
    },
    /// The answer to a `Ping`.
    Pong {
        /// The nonce of the `Ping` answered.
        nonce: u64,
    },
    /// The sender is closing the connection, and says why.
    Goodbye(Goodbye),
    /// A request on a protocol; `id` is the requester's, per connection.
    Request {
        /// Chosen by the requester, unique among its requests on this connection.
        id: u64,
        /// The protocol the request is for.
        protocol: ProtocolId,
        /// The protocol's request bytes.
        payload: Vec<u8>,
    },
    /// The answer to request `id` on the same connection.
    Response {
        /// The id of the request answered.
        id: u64,
        /// The protocol's response bytes, or why the request was not served.
        result: Result<Vec<u8>, RefuseReason>,
    },
    /// A message on a gossip topic.
    Gossip {
        /// The topic the message belongs to.
        topic: TopicId,
        /// The topic's message bytes.
        payload: Vec<u8>,
    },
}

/// A message read in place from a frame: payloads borrow the frame's bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MessageRef<'a> {
    /// Boxed: a `Hello` is large and rare; every other message stays a few words, so
    /// decoding a ping does not move a `Hello`-sized value around.
    Hello(Box<Hello>),
    /// See [`Message::Ping`].
    Ping {
        /// Echoed by the `Pong`; this machine sends random non-zero nonces.
        nonce: u64,
    },
    /// See [`Message::Pong`].
    Pong {
        /// The nonce of the `Ping` answered.
        nonce: u64,
    },
    /// See [`Message::Goodbye`].
    Goodbye(Goodbye),
    /// See [`Message::Request`].
    Request {
        /// Chosen by the requester, unique among its requests on this connection.
        id: u64,
        /// The protocol the request is for.
        protocol: ProtocolId,
        /// The protocol's request bytes, borrowed from the frame.
        payload: &'a [u8],
    },
    /// See [`Message::Response`].
    Response {
        /// The id of the request answered.
        id: u64,
        /// The protocol's response bytes (borrowed from the frame), or why the request was
        /// not served.
        result: Result<&'a [u8], RefuseReason>,
    },
    /// See [`Message::Gossip`].
    Gossip {
        /// The topic the message belongs to.
        topic: TopicId,
        /// The topic's message bytes, borrowed from the frame.
        payload: &'a [u8],
    },
}

/// Message kinds, as numbered on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u32)]
pub enum MessageKind {
    /// [`Message::Hello`].
    Hello = 0,
    /// [`Message::Ping`].
    Ping = 1,
    /// [`Message::Pong`].
    Pong = 2,
    /// [`Message::Goodbye`].
    Goodbye = 3,
    /// [`Message::Request`].
    Request = 4,
    /// [`Message::Response`].
    Response = 5,
    /// [`Message::Gossip`].
    Gossip = 6,
}

impl MessageKind {
    /// Every kind, in wire order: `ALL[k]` is the kind numbered `k`.
    pub const ALL: [MessageKind; 7] = [
        MessageKind::Hello,
        MessageKind::Ping,
        MessageKind::Pong,
        MessageKind::Goodbye,
        MessageKind::Request,
        MessageKind::Response,
        MessageKind::Gossip,
    ];

    /// The kind numbered `k` on the wire, if this version knows it.
    pub fn from_u32(k: u32) -> Option<Self> {
        Self::ALL.get(k as usize).copied()
    }

    /// A stable lowercase name, for logs, metrics labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Hello => "hello",
            MessageKind::Ping => "ping",
            MessageKind::Pong => "pong",
            MessageKind::Goodbye => "goodbye",
            MessageKind::Request => "request",
            MessageKind::Response => "response",
            MessageKind::Gossip => "gossip",
        }
    }

    /// Control frames (handshake, liveness, goodbye) jump ahead of bulk frames still queued in
    /// the machine, so a peer busy receiving blocks still sees its pongs on time.
    pub const fn is_control(self) -> bool {
        matches!(
            self,
            MessageKind::Hello | MessageKind::Ping | MessageKind::Pong | MessageKind::Goodbye
        )
    }
}

/// What a payload decoded to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decoded<M = Message> {
    /// A message of a kind this version knows.
    Known(M),
    /// A message kind this version does not know: skip it.
    UnknownKind(u32),
    /// A `Hello` of a version before 2, which cannot be decoded as ours: the peer is told
    /// to upgrade.
    OldHello {
        /// The newest wire version the peer speaks.
        version: u16,
        /// The oldest wire version the peer speaks.
        min_version: u16,
    },
}

/// A payload that cannot be decoded: a protocol error by the sender.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WireError {
    /// No kind varint.
    MissingKind,
    /// The body of a known kind does not decode.
    MalformedBody(MessageKind),
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WireError::MissingKind => f.write_str("payload has no message kind"),
            WireError::MalformedBody(k) => write!(f, "malformed {} body", k.as_str()),
        }
    }
}

/// The leading fields every `Hello` of every version shares.
#[derive(Deserialize)]
struct HelloHead {
    magic: [u8; 4],
    version: u16,
    min_version: u16,
}

impl<'a> MessageRef<'a> {
    /// The kind this message travels as.
    pub fn kind(&self) -> MessageKind {
        match self {
            MessageRef::Hello(_) => MessageKind::Hello,
            MessageRef::Ping { .. } => MessageKind::Ping,
            MessageRef::Pong { .. } => MessageKind::Pong,
            MessageRef::Goodbye(_) => MessageKind::Goodbye,
            MessageRef::Request { .. } => MessageKind::Request,
            MessageRef::Response { .. } => MessageKind::Response,
            MessageRef::Gossip { .. } => MessageKind::Gossip,
        }
    }

    /// An owned copy, payloads included.
    pub fn to_owned(&self) -> Message {
        match self {
            MessageRef::Hello(h) => Message::Hello(Hello::clone(h)),
            MessageRef::Ping { nonce } => Message::Ping { nonce: *nonce },
            MessageRef::Pong { nonce } => Message::Pong { nonce: *nonce },
            MessageRef::Goodbye(g) => Message::Goodbye(g.clone()),
            MessageRef::Request {
                id,
                protocol,
                payload,
            } => Message::Request {
                id: *id,
                protocol: *protocol,
                payload: payload.to_vec(),
            },
            MessageRef::Response { id, result } => Message::Response {
                id: *id,
                result: result.map(<[u8]>::to_vec),
            },
            MessageRef::Gossip { topic, payload } => Message::Gossip {
                topic: *topic,
                payload: payload.to_vec(),
            },
        }
    }

    /// Appends this message as one complete frame (length prefix included) to `out`.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        if let MessageRef::Ping { nonce } | MessageRef::Pong { nonce } = *self {
            // The hot path: length, kind and one varint, written directly (the same bytes
            // postcard writes).
            let mut buf = [0u8; 4 + 1 + 10];
            buf[4] = self.kind() as u8;
            let n = 5 + write_varint(nonce, &mut buf[5..]);
            buf[..4].copy_from_slice(&((n - 4) as u32).to_le_bytes());
            // A fixed-size copy (two moves) then a truncate, instead of a copy of `n` bytes,
            // which compiles to a call to `memcpy` for a dozen bytes.
            let start = out.len();
            out.extend_from_slice(&buf);
            out.truncate(start + n);
            return;
        }
        let at = begin_frame(out, self.kind());
        match self {
            MessageRef::Hello(h) => ser_into(h, out),
            MessageRef::Ping { nonce } | MessageRef::Pong { nonce } => ser_into(nonce, out),
            MessageRef::Goodbye(g) => ser_into(g, out),
            MessageRef::Request {
                id,
                protocol,
                payload,
            } => {
                push_varint(*id, out);
                push_varint(u64::from(protocol.0), out);
                out.extend_from_slice(payload);
            }
            MessageRef::Response { id, result } => {
                push_varint(*id, out);
                match result {
                    Ok(payload) => {
                        push_varint(0, out);
                        out.extend_from_slice(payload);
                    }
                    Err(r) => push_varint(u64::from(r.code()), out),
                }
            }
            MessageRef::Gossip { topic, payload } => {
                push_varint(u64::from(topic.0), out);
                out.extend_from_slice(payload);
            }
        }
        end_frame(out, at);
    }

    /// The hot path of [`decode`](Self::decode): a ping or pong whose kind is one byte and
    /// whose nonce varint ends within 9 bytes, read directly. Those bytes decode to the same
    /// message through postcard (9 varint bytes hold 63 bits, so nothing can overflow, and
    /// postcard ignores trailing bytes too); anything else returns `None` and takes the
    /// general path, errors included.
    #[inline]
    fn decode_ping_pong(payload: &[u8]) -> Option<MessageRef<'a>> {
        let (&kind, body) = payload.split_first()?;
        let ping = kind == MessageKind::Ping as u8;
        if !ping && kind != MessageKind::Pong as u8 {
            return None;
        }
        let mut nonce = 0u64;
        for (i, &b) in body.iter().take(9).enumerate() {
            nonce |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(if ping {
                    MessageRef::Ping { nonce }
                } else {
                    MessageRef::Pong { nonce }
                });
            }
        }
        None
    }

    /// The kind of a payload, without decoding its body: lets a receiver refuse a kind that
    /// is not allowed in a connection's state before paying for its body.
    pub fn peek_kind(payload: &[u8]) -> Option<Result<MessageKind, u32>> {
        let (kind, _) = postcard::take_from_bytes::<u32>(payload).ok()?;
        Some(MessageKind::from_u32(kind).ok_or(kind))
    }

    /// Decodes one frame payload (without the length prefix), borrowing its bytes.
    pub fn decode(payload: &'a [u8]) -> Result<Decoded<MessageRef<'a>>, WireError> {
        if let Some(msg) = Self::decode_ping_pong(payload) {
            return Ok(Decoded::Known(msg));
        }
        let (kind, body) =
            postcard::take_from_bytes::<u32>(payload).map_err(|_| WireError::MissingKind)?;
        let Some(kind) = MessageKind::from_u32(kind) else {
            return Ok(Decoded::UnknownKind(kind));
        };
        let bad = |_| WireError::MalformedBody(kind);
        let msg = match kind {
            MessageKind::Hello => match postcard::from_bytes::<Hello>(body) {
                Ok(h) => MessageRef::Hello(Box::new(h)),
                Err(_) => {
                    // An older peer's `Hello` has fewer fields: tell it to upgrade rather
                    // than calling it garbage.
                    if let Ok((head, _)) = postcard::take_from_bytes::<HelloHead>(body) {
                        if head.magic == MAGIC && head.version < MIN_PROTOCOL_VERSION {
                            return Ok(Decoded::OldHello {
                                version: head.version,
                                min_version: head.min_version,
                            });
                        }
                    }
                    return Err(WireError::MalformedBody(kind));
                }
            },
            MessageKind::Ping => MessageRef::Ping {
                nonce: postcard::from_bytes(body).map_err(bad)?,
            },
            MessageKind::Pong => MessageRef::Pong {
                nonce: postcard::from_bytes(body).map_err(bad)?,
            },
            MessageKind::Goodbye => MessageRef::Goodbye(postcard::from_bytes(body).map_err(bad)?),
            MessageKind::Request => {
                let (id, rest) = postcard::take_from_bytes::<u64>(body).map_err(bad)?;
                let (protocol, payload) = postcard::take_from_bytes::<u32>(rest).map_err(bad)?;
                MessageRef::Request {
                    id,
                    protocol: ProtocolId(protocol),
                    payload,
                }
            }
            MessageKind::Response => {
                let (id, rest) = postcard::take_from_bytes::<u64>(body).map_err(bad)?;
                let (status, payload) = postcard::take_from_bytes::<u16>(rest).map_err(bad)?;
                let result = if status == 0 {
                    Ok(payload)
                } else if payload.is_empty() {
                    Err(RefuseReason::from_code(status))
                } else {
                    return Err(WireError::MalformedBody(kind));
                };
                MessageRef::Response { id, result }
            }
            MessageKind::Gossip => {
                let (topic, payload) = postcard::take_from_bytes::<u32>(body).map_err(bad)?;
                MessageRef::Gossip {
                    topic: TopicId(topic),
                    payload,
                }
            }
        };
        Ok(Decoded::Known(msg))
    }
}

impl Message {
    /// The kind this message travels as.
    pub fn kind(&self) -> MessageKind {
        self.as_ref().kind()
    }

    /// This message, borrowing its payload.
    pub fn as_ref(&self) -> MessageRef<'_> {
        match self {
            Message::Hello(h) => MessageRef::Hello(Box::new(h.clone())),
            Message::Ping { nonce } => MessageRef::Ping { nonce: *nonce },
            Message::Pong { nonce } => MessageRef::Pong { nonce: *nonce },
            Message::Goodbye(g) => MessageRef::Goodbye(g.clone()),
            Message::Request {
                id,
                protocol,
                payload,
            } => MessageRef::Request {
                id: *id,
                protocol: *protocol,
                payload,
            },
            Message::Response { id, result } => MessageRef::Response {
                id: *id,
                result: result.as_deref().map_err(|r| *r),
            },
            Message::Gossip { topic, payload } => MessageRef::Gossip {
                topic: *topic,
                payload,
            },
        }
    }

    /// A request of the core's built-in protocols.
    pub fn builtin_request(id: u64, body: &RequestBody) -> Message {
        let (protocol, payload) = crate::protocol::builtin::encode_request(body);
        Message::Request {
            id,
            protocol,
            payload,
        }
    }

    /// A successful response of the core's built-in protocols.
    pub fn builtin_response(id: u64, body: &ResponseBody) -> Message {
        Message::Response {
            id,
            result: Ok(crate::protocol::builtin::encode_response(body)),
        }
    }

    /// This message as a built-in request, if it is one.
    pub fn as_builtin_request(&self) -> Option<(u64, RequestBody)> {
        match self {
            Message::Request {
                id,
                protocol,
                payload,
            } => Some((
                *id,
                crate::protocol::builtin::decode_request(*protocol, payload)?,
            )),
            _ => None,
        }
    }

    /// Appends this message as one complete frame (length prefix included) to `out`.
    #[inline]
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        match *self {
            // The hot path, without building a `MessageRef` first.
            Message::Ping { nonce } => MessageRef::Ping { nonce }.encode_frame(out),
            Message::Pong { nonce } => MessageRef::Pong { nonce }.encode_frame(out),
            _ => self.as_ref().encode_frame(out),
        }
    }

    /// This message as one frame.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(match self {
            Message::Ping { .. } | Message::Pong { .. } => 16,
            _ => 64,
        });
        self.encode_frame(&mut v);
        v
    }

    /// Decodes one frame payload (without the length prefix) into an owned message.
    pub fn decode(payload: &[u8]) -> Result<Decoded, WireError> {
        if let Some(m) = MessageRef::decode_ping_pong(payload) {
            return Ok(Decoded::Known(m.to_owned()));
        }
        Ok(match MessageRef::decode(payload)? {
            Decoded::Known(m) => Decoded::Known(m.to_owned()),
            Decoded::UnknownKind(k) => Decoded::UnknownKind(k),
            Decoded::OldHello {
                version,
                min_version,
            } => Decoded::OldHello {
                version,
                min_version,
            },
        })
    }
}

/// Starts a frame of `kind` in `out`: a length placeholder and the kind. Returns where the
/// frame starts, for [`end_frame`].
pub(crate) fn begin_frame(out: &mut Vec<u8>, kind: MessageKind) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0u8; 4]);
    push_varint(kind as u64, out);
    at
}

/// Writes the length of the frame begun at `at`.
pub(crate) fn end_frame(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Writes `v` as a LEB128 varint (postcard's integer encoding) into `buf`; returns its length.
fn write_varint(mut v: u64, buf: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = b;
            return n + 1;
        }
        buf[n] = b | 0x80;
        n += 1;
    }
}

pub(crate) fn push_varint(v: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 10];
    let n = write_varint(v, &mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// Serializes `value` onto the end of `out`.
pub(crate) fn ser_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let w = core::mem::take(out);
    *out = ser(value, w);
}

pub(crate) fn ser<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Vec<u8> {
    // Serializing our own in-memory types into a Vec cannot fail: postcard only errors on
    // unsupported serde features (none are used) or on a full fixed buffer (a Vec grows).
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(_) => unreachable!("postcard serialization into a Vec is infallible for wire types"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::FrameDecoder;
    use alloc::vec;

    fn roundtrip(m: Message) {
        let frame = m.to_frame();
        let mut d = FrameDecoder::new(1 << 20);
        d.push(&frame);
        let payload = d.next_frame().unwrap().unwrap();
        assert_eq!(Message::decode(payload).unwrap(), Decoded::Known(m));
    }

    #[test]
    fn every_kind_roundtrips() {
        roundtrip(Message::Ping { nonce: 42 });
        roundtrip(Message::Pong { nonce: u64::MAX });
        roundtrip(Message::Goodbye(Goodbye {
            reason: GoodbyeReason::Other(999),
            detail: "x".into(),
        }));
        roundtrip(Message::builtin_request(
            7,
            &RequestBody::Blocks { from: 3, count: 9 },
        ));
        roundtrip(Message::Request {
            id: 1,
            protocol: ProtocolId(5000),
            payload: vec![],
        });
        roundtrip(Message::Response {
            id: 9,
            result: Ok(vec![1, 2, 3]),
        });
        roundtrip(Message::Response {
            id: 9,
            result: Err(RefuseReason::App(7)),
        });
        roundtrip(Message::Gossip {
            topic: TopicId(1001),
            payload: vec![0; 300],
        });
    }

    #[test]
    fn a_refusal_with_a_payload_is_malformed() {
        let mut frame = Message::Response {
            id: 1,
            result: Err(RefuseReason::Unanswered),
        }
        .to_frame();
        frame.push(0);
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(
            Message::decode(&frame[4..]),
            Err(WireError::MalformedBody(MessageKind::Response))
        );
    }

    #[test]
    fn a_version_1_hello_is_recognised_as_old_not_as_garbage() {
        // The v1 `Hello`: the same fields without the protocol and topic lists.
        #[derive(Serialize)]
        struct HelloV1 {
            magic: [u8; 4],
            version: u16,
            min_version: u16,
            network: u32,
            genesis: BlockHash,
            node_id: NodeId,
            boot: u64,
            listen_port: Option<u16>,
            best_height: u64,
            best_hash: BlockHash,
            user_agent: String,
        }
        let mut payload = postcard::to_allocvec(&0u32).unwrap();
        payload.extend(
            postcard::to_allocvec(&HelloV1 {
                magic: MAGIC,
                version: 1,
                min_version: 1,
                network: 1,
                genesis: BlockHash([0; 32]),
                node_id: NodeId([1; 32]),
                boot: 1,
                listen_port: None,
                best_height: 0,
                best_hash: BlockHash([0; 32]),
                user_agent: "timed/0.1.0".into(),
            })
            .unwrap(),
        );
        assert_eq!(
            Message::decode(&payload),
            Ok(Decoded::OldHello {
                version: 1,
                min_version: 1
            })
        );
    }

    #[test]
    fn refusal_codes_roundtrip() {
        for r in [
            RefuseReason::Unsupported,
            RefuseReason::TooManyRequests,
            RefuseReason::TooLarge,
            RefuseReason::Unanswered,
            RefuseReason::BadRequest,
            RefuseReason::Unavailable,
            RefuseReason::App(0),
            RefuseReason::App(42),
            RefuseReason::App(64534),
            RefuseReason::Other(77),
            RefuseReason::Other(0),
        ] {
            assert_eq!(RefuseReason::from_code(r.code()), r);
        }
    }

    #[test]
    fn the_ping_fast_path_writes_what_postcard_writes() {
        for nonce in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            for m in [Message::Ping { nonce }, Message::Pong { nonce }] {
                let mut want = Vec::from([0u8; 4]);
                want = ser(&(m.kind() as u32), want);
                want = ser(&nonce, want);
                let len = (want.len() - 4) as u32;
                want[..4].copy_from_slice(&len.to_le_bytes());
                assert_eq!(m.to_frame(), want);
                roundtrip(m);
            }
        }
    }

    /// The ping/pong decode fast path agrees with postcard on every short payload shape:
    /// canonical, overlong, unterminated, 9- and 10-byte varints, trailing bytes.
    #[test]
    fn the_ping_fast_path_reads_what_postcard_reads() {
        let general = |payload: &[u8]| -> Result<Decoded, WireError> {
            let (kind, body) =
                postcard::take_from_bytes::<u32>(payload).map_err(|_| WireError::MissingKind)?;
            let bad = |_| WireError::MalformedBody(MessageKind::from_u32(kind).unwrap());
            let nonce = postcard::from_bytes(body).map_err(bad)?;
            Ok(Decoded::Known(if kind == 1 {
                Message::Ping { nonce }
            } else {
                Message::Pong { nonce }
            }))
        };
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for nonce in [
            0,
            1,
            127,
            128,
            300,
            1 << 35,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX,
        ] {
            bodies.push(postcard::to_allocvec(&nonce).unwrap());
        }
        bodies.push(Vec::new());
        bodies.push(vec![0x80]);
        bodies.push(vec![0x80, 0x00]);
        bodies.push(vec![0x05, 0xff, 0xff]);
        bodies.push(vec![0xff; 9]);
        bodies.push(vec![0xff; 10]);
        bodies.push(vec![0xff; 11]);
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        bodies.push(ten);
        for body in bodies {
            for kind in [1u8, 2] {
                let mut payload = vec![kind];
                payload.extend_from_slice(&body);
                assert_eq!(Message::decode(&payload), general(&payload), "{payload:?}");
            }
        }
    }

    #[test]
    fn an_unknown_kind_decodes_as_skippable() {
        let payload = postcard::to_allocvec(&77u32).unwrap();
        assert_eq!(Message::decode(&payload).unwrap(), Decoded::UnknownKind(77));
    }

    #[test]
    fn a_truncated_known_body_is_malformed() {
        let frame = Message::Ping { nonce: u64::MAX }.to_frame();
        let payload = &frame[4..frame.len() - 2];
        assert_eq!(
            Message::decode(payload),
            Err(WireError::MalformedBody(MessageKind::Ping))
        );
    }
}
