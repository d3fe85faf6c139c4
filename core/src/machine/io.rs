//! What goes into the machine ([`Input`]) and what comes out ([`Action`], [`NodeEvent`]).

use crate::chain::{BlockHash, TxId};
use crate::id::{ConnId, NodeId, QueryId};
use crate::protocol::{GossipId, InboundId, ProtocolId, TopicId};
use crate::wire::{GoodbyeReason, RefuseReason, ResponseBody};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

/// An event from the transport about one connection.
#[derive(Debug)]
pub enum Input<'a> {
    /// The TCP connect for a [`Action::Dial`] succeeded.
    Connected {
        /// The connection named in the `Dial`.
        conn: ConnId,
    },
    /// The TCP connect for a [`Action::Dial`] failed (refused, unreachable, timed out).
    DialFailed {
        /// The connection named in the `Dial`.
        conn: ConnId,
    },
    /// Bytes read from the socket, in order. Any chunking is fine.
    BytesIn {
        /// The connection the bytes arrived on.
        conn: ConnId,
        /// The bytes, as read; the machine copies what it keeps.
        data: &'a [u8],
    },
    /// The transport finished writing `bytes` bytes of earlier [`Action::Send`]s on `conn`.
    /// The machine keeps at most `Config::transport_window` bytes outstanding.
    Written {
        /// The connection written to.
        conn: ConnId,
        /// Bytes newly written since the last `Written` for `conn` (not a running total).
        bytes: usize,
    },
    /// The connection ended without the machine asking.
    Closed {
        /// The connection that ended.
        conn: ConnId,
        /// How it ended.
        kind: CloseKind,
    },
}

/// How a connection ended on the transport side.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CloseKind {
    /// Orderly close (FIN / EOF).
    Fin,
    /// Reset by the peer or the network.
    Reset,
    /// A local I/O error.
    Error,
}

impl CloseKind {
    /// A stable snake_case name, for logs, metrics labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseKind::Fin => "closed",
            CloseKind::Reset => "reset",
            CloseKind::Error => "io_error",
        }
    }
}

/// Which side opened a connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Direction {
    /// The peer connected to us ([`PeerMachine::accept`](crate::PeerMachine::accept)).
    Inbound,
    /// We dialled the peer ([`Action::Dial`]).
    Outbound,
}

impl Direction {
    /// A stable lowercase name, for logs, metrics labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Something the driver must do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Write `data` to `conn`, after everything sent before on it. Report progress with
    /// [`Input::Written`].
    Send {
        /// The connection to write to.
        conn: ConnId,
        /// Encoded frame bytes (length prefix included), to write exactly as they are.
        data: crate::wire::Payload,
    },
    /// Flush what was sent on `conn`, then close it. The machine has forgotten `conn`; later
    /// inputs for it are ignored.
    Close {
        /// The connection to close.
        conn: ConnId,
    },
    /// Open a TCP connection to `addr` and report [`Input::Connected`] or
    /// [`Input::DialFailed`] for `conn`.
    Dial {
        /// The id the machine gave the new connection; report its outcome with it.
        conn: ConnId,
        /// The address to connect to.
        addr: SocketAddr,
    },
    /// Stop reading from `conn` until [`Action::ResumeRead`]: its peer is sending requests
    /// faster than it reads our answers.
    PauseRead {
        /// The connection to stop reading from.
        conn: ConnId,
    },
    /// Read from `conn` again after an [`Action::PauseRead`]: its peer has caught up on
    /// our answers.
    ResumeRead {
        /// The connection to read from again.
        conn: ConnId,
    },
    /// Something the application may want to know.
    Notify(NodeEvent),
}

/// Why a peer's connection ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DownReason {
    /// We closed it, telling the peer why.
    GoodbyeSent(GoodbyeReason),
    /// The peer closed it, telling us why.
    GoodbyeReceived(GoodbyeReason),
    /// The transport closed it without a goodbye.
    Closed(CloseKind),
    /// A new connection from the same node took over (the peer restarted).
    Replaced,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::GoodbyeSent(r) => write!(f, "we said goodbye: {r}"),
            DownReason::GoodbyeReceived(r) => write!(f, "peer said goodbye: {r}"),
            DownReason::Closed(k) => write!(f, "connection {}", k.as_str()),
            DownReason::Replaced => f.write_str("replaced by a newer connection"),
        }
    }
}

/// How a query ended, when it did not end with a response.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum QueryError {
    /// No response within `Config::query_timeout`.
    Timeout,
    /// The connection to the peer ended before the response.
    PeerGone,
    /// The peer refused to serve it.
    Refused(RefuseReason),
    /// We are not connected to that node.
    UnknownPeer,
    /// `Config::max_requests_in_flight` requests to that peer are already waiting.
    TooManyInFlight,
    /// The machine is shutting down or stopped.
    ShuttingDown,
    /// The peer did not advertise the protocol: it does not run it. Ends at once, with
    /// nothing sent.
    Unsupported,
    /// The request is over the protocol's `max_request_bytes` (ours or the peer's), or the
    /// response was over its `max_response_bytes`.
    TooLarge,
    /// The protocol is not declared in our own `Config::protocols`.
    UnknownProtocol,
    /// The response did not decode as the protocol's response (the peer is disconnected).
    BadResponse,
}

impl QueryError {
    /// A stable snake_case name, for logs, metrics labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            QueryError::Timeout => "timeout",
            QueryError::PeerGone => "peer_gone",
            QueryError::Refused(_) => "refused",
            QueryError::UnknownPeer => "unknown_peer",
            QueryError::TooManyInFlight => "over_cap",
            QueryError::ShuttingDown => "shutting_down",
            QueryError::Unsupported => "unsupported",
            QueryError::TooLarge => "too_large",
            QueryError::UnknownProtocol => "unknown_protocol",
            QueryError::BadResponse => "bad_response",
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Timeout => f.write_str("no response within the query timeout"),
            QueryError::PeerGone => f.write_str("the peer disconnected before answering"),
            QueryError::Refused(r) => write!(f, "the peer refused the request: {r}"),
            QueryError::UnknownPeer => f.write_str("not connected to that peer"),
            QueryError::TooManyInFlight => {
                f.write_str("too many requests already in flight to that peer")
            }
            QueryError::ShuttingDown => f.write_str("the node is shutting down"),
            QueryError::Unsupported => f.write_str("the peer does not run this protocol"),
            QueryError::TooLarge => {
                f.write_str("the request or its response exceeds the protocol's size limit")
            }
            QueryError::UnknownProtocol => f.write_str(
                "this node does not declare that protocol (add it to Config::protocols)",
            ),
            QueryError::BadResponse => f.write_str("the peer's response did not decode"),
        }
    }
}

/// Why an inbound connection was refused at accept time. The driver just drops the socket.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refused {
    /// `Config::max_connections` connections are open already.
    TooManyConnections,
    /// `Config::max_inbound_per_ip` inbound connections from this IP are open already.
    TooManyFromIp,
    /// The remote IP is banned for misbehaviour.
    Banned,
    /// The machine is shutting down or stopped.
    ShuttingDown,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::TooManyConnections => "connection limit reached",
            Refused::TooManyFromIp => "per-IP inbound limit reached",
            Refused::Banned => "address is banned",
            Refused::ShuttingDown => "shutting down",
        })
    }
}

/// Why a local transaction was not accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxError {
    /// The transaction is over `Limits::max_tx_bytes`.
    TooLarge,
    /// The transaction is already in the mempool or was seen before.
    Duplicate,
    /// The mempool has no room for it.
    MempoolFull,
    /// The machine is shutting down or stopped.
    ShuttingDown,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TxError::TooLarge => "transaction exceeds the size limit",
            TxError::Duplicate => "transaction already known",
            TxError::MempoolFull => "mempool is full",
            TxError::ShuttingDown => "the node is shutting down",
        })
    }
}

/// Misbehaviour that disconnects and bans a peer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Misbehaviour {
    /// Undecodable frame, oversized frame, message before `Hello`, second `Hello`, …
    Protocol,
    /// A response to a request id we never sent.
    UnsolicitedResponse,
    /// More requests in flight than allowed.
    RequestFlood,
    /// A block failing structural validation.
    InvalidBlock,
    /// A transaction the chain layer cannot accept. (An oversized one is `InvalidGossip`:
    /// the transaction topic's size limit catches it first.)
    InvalidTx,
    /// A response that does not match what was asked.
    BadResponse,
    /// A gossip message over its topic's size limit, or one the application rejected.
    InvalidGossip,
}

impl Misbehaviour {
    /// A stable snake_case name, for logs, metrics labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Misbehaviour::Protocol => "protocol",
            Misbehaviour::UnsolicitedResponse => "unsolicited_response",
            Misbehaviour::RequestFlood => "request_flood",
            Misbehaviour::InvalidBlock => "invalid_block",
            Misbehaviour::InvalidTx => "invalid_tx",
            Misbehaviour::BadResponse => "bad_response",
            Misbehaviour::InvalidGossip => "invalid_gossip",
        }
    }
}

/// What happened, for the application, the API and the simulator.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NodeEvent {
    /// A handshake completed and this node is now a peer.
    PeerUp {
        /// The peer's node id, from its `Hello`.
        peer: NodeId,
        /// The connection the peer is on.
        conn: ConnId,
        /// Which side opened the connection.
        direction: Direction,
        /// The remote address of the connection.
        addr: SocketAddr,
    },
    /// A peer's connection moved to another connection without the peer ever going down
    /// (simultaneous open resolved, or a duplicate goodbye adopted the other connection).
    PeerMoved {
        /// The peer that moved.
        peer: NodeId,
        /// The connection it was on, now closed or closing.
        from: ConnId,
        /// The connection it is on now.
        to: ConnId,
    },
    /// A peer is gone.
    PeerDown {
        /// The peer that went down.
        peer: NodeId,
        /// The connection it was on.
        conn: ConnId,
        /// Why the connection ended.
        reason: DownReason,
    },
    /// A connection was closed before (or instead of) becoming a peer: failed handshake,
    /// duplicate refused, dial failed.
    ConnFailed {
        /// The connection that closed.
        conn: ConnId,
        /// Its remote address.
        addr: SocketAddr,
        /// Why it ended.
        reason: DownReason,
    },
    /// An application query ended. Exactly one per [`QueryId`].
    QueryDone {
        /// The query that ended.
        id: QueryId,
        /// The peer's answer, or why there is none.
        result: Result<ResponseBody, QueryError>,
    },
    /// A [`PeerMachine::request`](crate::PeerMachine::request) ended. Exactly one per
    /// [`QueryId`] it returned.
    RequestDone {
        /// The request that ended, as `request` returned it.
        id: QueryId,
        /// The protocol it was sent on.
        protocol: ProtocolId,
        /// The peer's response bytes, or why there are none.
        result: Result<Vec<u8>, QueryError>,
    },
    /// A peer asks something on one of the application's protocols. Answer with
    /// [`PeerMachine::respond`](crate::PeerMachine::respond) before the protocol's
    /// deadline (three quarters of its timeout); past it the machine refuses it with
    /// `Unanswered`.
    InboundRequest {
        /// Pass it to `respond` to answer this request.
        id: InboundId,
        /// The peer asking.
        peer: NodeId,
        /// The protocol asked on.
        protocol: ProtocolId,
        /// The request bytes, at most the protocol's `max_request_bytes`.
        payload: Vec<u8>,
    },
    /// A new message on one of the application's topics. When the topic validates
    /// (`TopicSpec::validate`), it is forwarded only once
    /// [`PeerMachine::validate`](crate::PeerMachine::validate) accepts it; otherwise it was
    /// forwarded already and `id` needs no verdict.
    GossipReceived {
        /// Pass it to `validate` with the verdict, when the topic validates.
        id: GossipId,
        /// The topic the message is on.
        topic: TopicId,
        /// The peer it arrived from (not necessarily its author).
        from: NodeId,
        /// The message bytes, at most the topic's size limit.
        payload: Vec<u8>,
    },
    /// Blocks `from..=to` were applied; `to` is the new tip.
    BlocksApplied {
        /// Height of the first block applied.
        from: u64,
        /// Height of the last block applied: the new tip height.
        to: u64,
        /// Hash of the new tip.
        tip: BlockHash,
    },
    /// The chain switched branch: blocks above `fork` were replaced, the new tip is `to`.
    Reorg {
        /// Height of the last block both branches share.
        fork: u64,
        /// Height of the tip before the switch.
        old_tip: u64,
        /// Height of the new tip.
        to: u64,
    },
    /// A transaction entered the mempool.
    TxAccepted {
        /// The transaction's id.
        id: TxId,
    },
    /// A peer closed a connection with a `Goodbye`, saying why. Followed by the
    /// `PeerDown` / `ConnFailed` / `PeerMoved` that the close causes.
    GoodbyeReceived {
        /// The connection the goodbye arrived on.
        conn: ConnId,
        /// The peer's node id, if its `Hello` had arrived.
        peer: Option<NodeId>,
        /// The peer's reason.
        reason: GoodbyeReason,
        /// The peer's free text, cut to 512 bytes.
        detail: String,
    },
    /// A peer misbehaved and was disconnected and banned.
    Misbehaved {
        /// The peer's node id, if its `Hello` had arrived (the id is banned too).
        peer: Option<NodeId>,
        /// The connection's remote address (its IP is banned).
        addr: SocketAddr,
        /// What it did.
        what: Misbehaviour,
        /// What exactly, for the operator; also sent to the peer in the goodbye.
        detail: String,
    },
    /// The store failed; the machine has stopped. Restart after fixing the cause.
    Fatal {
        /// What the machine was doing, and the store's error.
        error: crate::store::StoreFailure,
    },
}
