//! The messages of protocol version 1 and their encoding.
//!
//! Payload = varint kind ‖ postcard body. Bodies are structs and enums with serde derives;
//! postcard is not self-describing, so fields are only ever *appended* to a body in later
//! versions (postcard ignores trailing bytes), and new messages get new kinds.

use crate::chain::{Block, BlockHash, Tx};
use crate::id::NodeId;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use serde::{Deserialize, Serialize};

pub const MAGIC: [u8; 4] = *b"TIME";
pub const PROTOCOL_VERSION: u16 = 1;
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// Longest user agent we keep; longer ones are truncated, not refused.
pub const MAX_USER_AGENT: usize = 256;

/// The first message on every connection, in both directions.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Hello {
    pub magic: [u8; 4],
    pub version: u16,
    pub min_version: u16,
    pub network: u32,
    pub genesis: BlockHash,
    pub node_id: NodeId,
    /// Random per process start. Two connections carrying the same `boot` in opposite directions
    /// are a simultaneous open; a new `boot` means the peer restarted.
    pub boot: u64,
    pub listen_port: Option<u16>,
    pub best_height: u64,
    pub best_hash: BlockHash,
    pub user_agent: String,
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
    WrongNetwork,
    WrongGenesis,
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
    Other(u16),
}

impl GoodbyeReason {
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

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Goodbye {
    pub reason: GoodbyeReason,
    /// Free text for the operator on the other side; bounded by the frame size only.
    pub detail: String,
}

/// An address as exchanged between peers (observed IP + advertised port).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum PeerAddr {
    V4([u8; 4], u16),
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

/// What a peer may ask of us.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RequestBody {
    /// Our best height and hash.
    Tip,
    /// The hash of our block at `height`, if we have one.
    HashAt { height: u64 },
    /// Blocks `from..from+count`, capped by the responder in count and bytes.
    Blocks { from: u64, count: u32 },
    /// Addresses from our address book.
    Peers,
}

impl RequestBody {
    /// Number of variants this version knows; a larger discriminant is a newer request kind,
    /// answered with `Refused(Unsupported)` rather than treated as an error.
    pub const KNOWN_KINDS: u32 = 4;
}

/// Why a request was not served.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RefuseReason {
    /// We do not know this request kind.
    Unsupported,
    /// Too many of the peer's requests are in flight.
    TooManyRequests,
    Other(u16),
}

impl RefuseReason {
    pub const fn code(self) -> u16 {
        match self {
            RefuseReason::Unsupported => 1,
            RefuseReason::TooManyRequests => 2,
            RefuseReason::Other(c) => c,
        }
    }
    pub const fn from_code(c: u16) -> Self {
        match c {
            1 => RefuseReason::Unsupported,
            2 => RefuseReason::TooManyRequests,
            c => RefuseReason::Other(c),
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
    Tip {
        height: u64,
        hash: BlockHash,
    },
    HashAt(Option<BlockHash>),
    /// Consecutive blocks starting at the requested height; fewer than asked (possibly none)
    /// when we have fewer or the byte cap was reached.
    Blocks(Vec<Block>),
    Peers(Vec<PeerAddr>),
    Refused(RefuseReason),
}

/// Every message of protocol version 1.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    Hello(Hello),
    Ping { nonce: u64 },
    Pong { nonce: u64 },
    Goodbye(Goodbye),
    Request { id: u64, body: RequestBody },
    Response { id: u64, body: ResponseBody },
    BlockAnnounce(Block),
    TxBroadcast(Tx),
}

/// Message kinds, as numbered on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u32)]
pub enum MessageKind {
    Hello = 0,
    Ping = 1,
    Pong = 2,
    Goodbye = 3,
    Request = 4,
    Response = 5,
    BlockAnnounce = 6,
    TxBroadcast = 7,
}

impl MessageKind {
    pub const ALL: [MessageKind; 8] = [
        MessageKind::Hello,
        MessageKind::Ping,
        MessageKind::Pong,
        MessageKind::Goodbye,
        MessageKind::Request,
        MessageKind::Response,
        MessageKind::BlockAnnounce,
        MessageKind::TxBroadcast,
    ];

    pub fn from_u32(k: u32) -> Option<Self> {
        Self::ALL.get(k as usize).copied()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Hello => "hello",
            MessageKind::Ping => "ping",
            MessageKind::Pong => "pong",
            MessageKind::Goodbye => "goodbye",
            MessageKind::Request => "request",
            MessageKind::Response => "response",
            MessageKind::BlockAnnounce => "block_announce",
            MessageKind::TxBroadcast => "tx_broadcast",
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
pub enum Decoded {
    Known(Message),
    /// A message kind this version does not know: skip it.
    UnknownKind(u32),
    /// A request kind this version does not know: answer `Refused(Unsupported)`.
    UnknownRequest {
        id: u64,
        kind: u32,
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

impl Message {
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Hello(_) => MessageKind::Hello,
            Message::Ping { .. } => MessageKind::Ping,
            Message::Pong { .. } => MessageKind::Pong,
            Message::Goodbye(_) => MessageKind::Goodbye,
            Message::Request { .. } => MessageKind::Request,
            Message::Response { .. } => MessageKind::Response,
            Message::BlockAnnounce(_) => MessageKind::BlockAnnounce,
            Message::TxBroadcast(_) => MessageKind::TxBroadcast,
        }
    }

    /// Appends this message as one complete frame (length prefix included) to `out`.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        if let Message::Ping { nonce } | Message::Pong { nonce } = *self {
            // The hot path: length, kind and one varint, written directly (the same bytes
            // postcard writes).
            let mut buf = [0u8; 4 + 1 + 10];
            buf[4] = self.kind() as u8;
            let mut n = 5;
            let mut v = nonce;
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    buf[n] = b;
                    n += 1;
                    break;
                }
                buf[n] = b | 0x80;
                n += 1;
            }
            buf[..4].copy_from_slice(&((n - 4) as u32).to_le_bytes());
            out.extend_from_slice(&buf[..n]);
            return;
        }
        let at = out.len();
        out.extend_from_slice(&[0u8; 4]);
        let mut w = core::mem::take(out);
        w = ser(&(self.kind() as u32), w);
        w = match self {
            Message::Hello(h) => ser(h, w),
            Message::Ping { nonce } | Message::Pong { nonce } => ser(nonce, w),
            Message::Goodbye(g) => ser(g, w),
            Message::Request { id, body } => ser(&(id, body), w),
            Message::Response { id, body } => ser(&(id, body), w),
            Message::BlockAnnounce(b) => ser(b, w),
            Message::TxBroadcast(t) => ser(t, w),
        };
        let len = (w.len() - at - 4) as u32;
        w[at..at + 4].copy_from_slice(&len.to_le_bytes());
        *out = w;
    }

    /// The hot path of [`decode`](Self::decode): a ping or pong whose kind is one byte and
    /// whose nonce varint ends within 9 bytes, read directly. Those bytes decode to the same
    /// message through postcard (9 varint bytes hold 63 bits, so nothing can overflow, and
    /// postcard ignores trailing bytes too); anything else returns `None` and takes the
    /// general path, errors included.
    #[inline]
    fn decode_ping_pong(payload: &[u8]) -> Option<Message> {
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
                    Message::Ping { nonce }
                } else {
                    Message::Pong { nonce }
                });
            }
        }
        None
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

    /// Decodes one frame payload (without the length prefix).
    pub fn decode(payload: &[u8]) -> Result<Decoded, WireError> {
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
            MessageKind::Hello => Message::Hello(postcard::from_bytes(body).map_err(bad)?),
            MessageKind::Ping => Message::Ping {
                nonce: postcard::from_bytes(body).map_err(bad)?,
            },
            MessageKind::Pong => Message::Pong {
                nonce: postcard::from_bytes(body).map_err(bad)?,
            },
            MessageKind::Goodbye => Message::Goodbye(postcard::from_bytes(body).map_err(bad)?),
            MessageKind::Request => {
                let (id, rest) = postcard::take_from_bytes::<u64>(body).map_err(bad)?;
                match postcard::from_bytes::<RequestBody>(rest) {
                    Ok(body) => Message::Request { id, body },
                    Err(_) => {
                        // A discriminant past the ones we know is a newer request kind, not garbage.
                        let (disc, _) = postcard::take_from_bytes::<u32>(rest).map_err(bad)?;
                        if disc >= RequestBody::KNOWN_KINDS {
                            return Ok(Decoded::UnknownRequest { id, kind: disc });
                        }
                        return Err(WireError::MalformedBody(kind));
                    }
                }
            }
            MessageKind::Response => {
                let (id, body) = postcard::from_bytes::<(u64, ResponseBody)>(body).map_err(bad)?;
                Message::Response { id, body }
            }
            MessageKind::BlockAnnounce => {
                Message::BlockAnnounce(postcard::from_bytes(body).map_err(bad)?)
            }
            MessageKind::TxBroadcast => {
                Message::TxBroadcast(postcard::from_bytes(body).map_err(bad)?)
            }
        };
        Ok(Decoded::Known(msg))
    }
}

fn ser<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Vec<u8> {
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
    fn control_messages_roundtrip() {
        roundtrip(Message::Ping { nonce: 42 });
        roundtrip(Message::Pong { nonce: u64::MAX });
        roundtrip(Message::Goodbye(Goodbye {
            reason: GoodbyeReason::Other(999),
            detail: "x".into(),
        }));
        roundtrip(Message::Request {
            id: 7,
            body: RequestBody::Blocks { from: 3, count: 9 },
        });
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
    fn an_unknown_request_kind_is_not_an_error() {
        let mut payload = postcard::to_allocvec(&(MessageKind::Request as u32)).unwrap();
        payload.extend(postcard::to_allocvec(&5u64).unwrap());
        payload.extend(postcard::to_allocvec(&9u32).unwrap());
        assert_eq!(
            Message::decode(&payload).unwrap(),
            Decoded::UnknownRequest { id: 5, kind: 9 }
        );
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
