//! Application protocols: request/response protocols and gossip topics declared from
//! outside the core.
//!
//! An embedding application (the TIME Coin node, a test, a simulation scenario) adds its
//! own messages without touching `timed-core`:
//!
//! - a **request/response protocol** ([`ProtocolSpec`]) has a stable numeric id and its own
//!   limits; requests travel on the existing connection to a peer, and every request ends
//!   exactly once;
//! - a **gossip topic** ([`TopicSpec`]) floods messages to every peer that declared the same
//!   topic, deduplicated by message id and forwarded only after validation.
//!
//! The core's own block sync, peer exchange, tip queries, block announcements and
//! transaction gossip are declared the same way ([`builtin`]): there is no private side
//! door, so the mechanism is exercised by the protocols the node depends on.
//!
//! Both kinds are advertised in the `Hello`, so a request to a peer that lacks a protocol
//! ends at once with [`QueryError::Unsupported`](crate::QueryError::Unsupported) — no round
//! trip, no disconnect — and gossip is only sent to peers that declared the topic.
//!
//! # Ids
//!
//! Ids below [`APP_ID_MIN`] belong to the core. Application ids start at [`APP_ID_MIN`] and
//! are never reused for a different meaning: a changed request or response shape is a new
//! id (`masternodes/1` → `masternodes/2`), and a node may declare both while peers upgrade.
//!
//! # Adding a protocol
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use timed_core::protocol::{Protocol, ProtocolId, ProtocolSpec};
//! use timed_core::{Config, Network, NodeId};
//!
//! /// "Which masternodes do you know?"
//! struct Masternodes;
//!
//! #[derive(Serialize, Deserialize)]
//! struct MasternodesRequest { max: u16 }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct MasternodesResponse { nodes: Vec<[u8; 32]> }
//!
//! impl Protocol for Masternodes {
//!     const SPEC: ProtocolSpec = ProtocolSpec::new(ProtocolId(1000), "timecoin/masternodes/1");
//!     type Request = MasternodesRequest;
//!     type Response = MasternodesResponse;
//! }
//!
//! let mut config = Config::new(Network::Devnet, NodeId([1; 32]), 1);
//! config.protocols.push(Masternodes::SPEC);
//! assert!(config.validate().is_ok());
//!
//! // Typed on both ends; bytes on the wire.
//! let bytes = Masternodes::encode_request(&MasternodesRequest { max: 10 });
//! assert_eq!(Masternodes::decode_request(&bytes).unwrap().max, 10);
//! ```
//!
//! The machine then surfaces a peer's request as
//! [`NodeEvent::InboundRequest`](crate::NodeEvent::InboundRequest), answered with
//! [`PeerMachine::respond`](crate::PeerMachine::respond), and ends our own
//! [`PeerMachine::request`](crate::PeerMachine::request) with exactly one
//! [`NodeEvent::RequestDone`](crate::NodeEvent::RequestDone).

pub mod builtin;
mod registry;

pub(crate) use registry::{Registry, Served};

use crate::id::ConnId;
use crate::time::Duration;
use alloc::vec::Vec;
use core::fmt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The first id an application may use, for protocols and topics alike.
pub const APP_ID_MIN: u32 = 1000;
/// Most protocols and topics a peer may advertise; more are ignored (and never trusted).
pub const MAX_ADVERTISED: usize = 256;

/// A request/response protocol's wire id.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize, Default,
)]
pub struct ProtocolId(pub u32);

/// A gossip topic's wire id.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize, Default,
)]
pub struct TopicId(pub u32);

impl fmt::Display for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol {}", self.0)
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic {}", self.0)
    }
}

/// A request/response protocol: its id, a name for people, and its limits.
///
/// Both ends of a connection run the same spec (it is part of the protocol's definition);
/// the responder's limits are also advertised in its `Hello`, so a requester never sends
/// what the responder would refuse.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProtocolSpec {
    /// The wire id; an application's ids start at [`APP_ID_MIN`].
    pub id: ProtocolId,
    /// For logs, metrics labels and `/peers`; stable, lowercase, `/`-separated.
    pub name: &'static str,
    /// Largest request payload sent or accepted. Default 64 KiB.
    pub max_request_bytes: u32,
    /// Largest response payload sent or accepted. Default 1 MiB.
    pub max_response_bytes: u32,
    /// Our requests in flight to one peer on this protocol. Default 16.
    pub max_outbound_in_flight: u16,
    /// A peer's requests we hold unanswered at once on this protocol; more are refused with
    /// `TooManyRequests`. Default 16.
    pub max_inbound_in_flight: u16,
    /// How long a request may wait for its response. The responder refuses a request its
    /// application has not answered after three quarters of this, so the refusal reaches the
    /// requester before its own timeout. Default 10 s.
    pub timeout: Duration,
}

impl ProtocolSpec {
    /// A spec with the default limits.
    pub const fn new(id: ProtocolId, name: &'static str) -> Self {
        ProtocolSpec {
            id,
            name,
            max_request_bytes: 64 * 1024,
            max_response_bytes: 1024 * 1024,
            max_outbound_in_flight: 16,
            max_inbound_in_flight: 16,
            timeout: Duration::from_secs(10),
        }
    }

    /// This spec with `max_request_bytes` set to `n`.
    pub const fn with_max_request_bytes(mut self, n: u32) -> Self {
        self.max_request_bytes = n;
        self
    }
    /// This spec with `max_response_bytes` set to `n`.
    pub const fn with_max_response_bytes(mut self, n: u32) -> Self {
        self.max_response_bytes = n;
        self
    }
    /// This spec with `max_outbound_in_flight` and `max_inbound_in_flight` set.
    pub const fn with_in_flight(mut self, outbound: u16, inbound: u16) -> Self {
        self.max_outbound_in_flight = outbound;
        self.max_inbound_in_flight = inbound;
        self
    }
    /// This spec with `timeout` set to `t`.
    pub const fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// How long the responder waits for its application before refusing: three quarters of
    /// the timeout, so the refusal arrives before the requester gives up.
    pub(crate) fn answer_within(&self) -> Duration {
        Duration::from_micros(self.timeout.as_micros() / 4 * 3)
    }

    pub(crate) fn advert(&self) -> ProtocolAd {
        ProtocolAd {
            id: self.id,
            max_request_bytes: self.max_request_bytes,
            max_in_flight: self.max_inbound_in_flight,
        }
    }
}

/// A gossip topic: its id, a name, and its limits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TopicSpec {
    /// The wire id; an application's ids start at [`APP_ID_MIN`].
    pub id: TopicId,
    /// For logs, metrics labels and `/peers`; stable, lowercase, `/`-separated.
    pub name: &'static str,
    /// Largest message accepted or published. Default 64 KiB.
    pub max_message_bytes: u32,
    /// Messages accepted from one peer per second, on average. Default 100.
    pub rate_per_sec: u32,
    /// Messages one peer may send in a burst above the rate. Default 200.
    pub burst: u32,
    /// Message ids remembered for deduplication. Default 16 384.
    pub seen_capacity: usize,
    /// Whether the application validates each message before it is forwarded
    /// ([`NodeEvent::GossipReceived`](crate::NodeEvent::GossipReceived) →
    /// [`PeerMachine::validate`](crate::PeerMachine::validate)). When `false`, every message
    /// that passes the size, rate and duplicate checks is forwarded at once and still
    /// reported. Default `true`.
    pub validate: bool,
    /// Messages waiting for the application's verdict at once; past this, the oldest is
    /// dropped (as `Ignore`). Default 1 024.
    pub max_pending: usize,
    /// A message not validated within this is dropped (as `Ignore`). Default 10 s.
    pub validation_timeout: Duration,
}

impl TopicSpec {
    /// A spec with the default limits.
    pub const fn new(id: TopicId, name: &'static str) -> Self {
        TopicSpec {
            id,
            name,
            max_message_bytes: 64 * 1024,
            rate_per_sec: 100,
            burst: 200,
            seen_capacity: 16_384,
            validate: true,
            max_pending: 1024,
            validation_timeout: Duration::from_secs(10),
        }
    }
    /// This spec with `max_message_bytes` set to `n`.
    pub const fn with_max_message_bytes(mut self, n: u32) -> Self {
        self.max_message_bytes = n;
        self
    }
    /// This spec with `rate_per_sec` and `burst` set.
    pub const fn with_rate(mut self, per_sec: u32, burst: u32) -> Self {
        self.rate_per_sec = per_sec;
        self.burst = burst;
        self
    }
    /// This spec with `validate` off: messages are forwarded without waiting for a verdict.
    pub const fn without_validation(mut self) -> Self {
        self.validate = false;
        self
    }

    pub(crate) fn advert(&self) -> TopicAd {
        TopicAd {
            id: self.id,
            max_message_bytes: self.max_message_bytes,
        }
    }
}

/// A protocol as a peer advertises it in its `Hello`: what it will accept from us.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ProtocolAd {
    /// The protocol.
    pub id: ProtocolId,
    /// Largest request payload the peer accepts (its `max_request_bytes`).
    pub max_request_bytes: u32,
    /// Our requests the peer holds at once (its `max_inbound_in_flight`).
    pub max_in_flight: u16,
}

/// A topic as a peer advertises it in its `Hello`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TopicAd {
    /// The topic.
    pub id: TopicId,
    /// Largest message the peer accepts; larger ones are not forwarded to it.
    pub max_message_bytes: u32,
}

/// A typed request/response protocol over serde + postcard, so application code never
/// touches bytes. The untyped API ([`PeerMachine::request`](crate::PeerMachine::request))
/// is underneath for other codecs.
pub trait Protocol {
    /// The protocol's id, name and limits; declare it in `Config::protocols`.
    const SPEC: ProtocolSpec;
    /// What a requester sends.
    type Request: Serialize + DeserializeOwned;
    /// What a responder answers.
    type Response: Serialize + DeserializeOwned;

    /// The request's bytes on the wire (postcard by default).
    fn encode_request(req: &Self::Request) -> Vec<u8> {
        encode(req)
    }
    /// A request from its bytes (postcard by default).
    fn decode_request(bytes: &[u8]) -> Result<Self::Request, DecodeError> {
        decode(bytes)
    }
    /// The response's bytes on the wire (postcard by default).
    fn encode_response(resp: &Self::Response) -> Vec<u8> {
        encode(resp)
    }
    /// A response from its bytes (postcard by default).
    fn decode_response(bytes: &[u8]) -> Result<Self::Response, DecodeError> {
        decode(bytes)
    }
}

/// A typed gossip topic over serde + postcard.
pub trait Topic {
    /// The topic's id, name and limits; declare it in `Config::topics`.
    const SPEC: TopicSpec;
    /// What is published on the topic.
    type Message: Serialize + DeserializeOwned;

    /// The message's bytes on the wire (postcard by default).
    fn encode(msg: &Self::Message) -> Vec<u8> {
        encode(msg)
    }
    /// A message from its bytes (postcard by default).
    fn decode(bytes: &[u8]) -> Result<Self::Message, DecodeError> {
        decode(bytes)
    }
}

/// Bytes that do not decode as the protocol's type: the peer's fault. Answer such a request
/// with [`RefuseReason::BadRequest`](crate::wire::RefuseReason::BadRequest).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DecodeError;

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("payload does not decode as the protocol's message type")
    }
}

pub(crate) fn encode<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    crate::wire::message::ser(v, Vec::new())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    postcard::from_bytes(bytes).map_err(|_| DecodeError)
}

/// A peer's request waiting for the application's answer: pass it to
/// [`PeerMachine::respond`](crate::PeerMachine::respond). It names one request on one
/// connection; the answer can only ever leave on that connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct InboundId {
    pub(crate) conn: ConnId,
    pub(crate) id: u64,
}

impl InboundId {
    /// The connection the request arrived on (and its answer leaves on).
    pub fn conn(&self) -> ConnId {
        self.conn
    }
}

/// A gossip message waiting for the application's verdict: pass it to
/// [`PeerMachine::validate`](crate::PeerMachine::validate).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct GossipId {
    pub(crate) topic: TopicId,
    pub(crate) seq: u64,
}

impl GossipId {
    /// The topic the message arrived on.
    pub fn topic(&self) -> TopicId {
        self.topic
    }
}

/// A gossip message's identity for deduplication: sha256 of its topic and payload.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of `payload` on `topic`.
    pub fn of(topic: TopicId, payload: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(topic.0.to_le_bytes());
        h.update(payload);
        MessageId(h.finalize().into())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The application's verdict on a gossip message (as gossipsub's).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Valid: forward it to every other peer on the topic.
    Accept,
    /// Invalid: drop it, and disconnect and ban the peer that sent it.
    Reject,
    /// Not worth forwarding (stale, already applied), but not the sender's fault.
    Ignore,
}

/// A local call about an inbound request or a gossip message that cannot be carried out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HandleError {
    /// The request was already answered or refused (its deadline passed, or its
    /// connection closed), or the message was already judged or expired.
    Unknown,
    /// The response is over the protocol's `max_response_bytes`; the request was refused
    /// with `TooLarge` instead.
    TooLarge,
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandleError::Unknown => {
                "no such request or message is waiting (answered, expired, or its peer left)"
            }
            HandleError::TooLarge => {
                "the response exceeds the protocol's max_response_bytes; the peer was refused"
            }
        })
    }
}

/// Why a publish did not go out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PublishError {
    /// The topic is not declared in `Config::topics`.
    UnknownTopic,
    /// Over the topic's `max_message_bytes`.
    TooLarge,
    /// The same message was already published or received.
    Duplicate,
    /// The machine is shutting down or stopped.
    ShuttingDown,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishError::UnknownTopic => "the topic is not declared in Config::topics",
            PublishError::TooLarge => "the message exceeds the topic's max_message_bytes",
            PublishError::Duplicate => "the same message was already seen on this topic",
            PublishError::ShuttingDown => "the node is shutting down",
        })
    }
}
