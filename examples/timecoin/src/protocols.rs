//! The TIME Coin node's protocols as timed declarations.
//!
//! Ids are stable and never reused: a changed message shape is a new id. Limits are part of
//! the protocol: both ends run the same spec, and each end's inbound limits are advertised
//! in its `Hello`.

use serde::{Deserialize, Serialize};
use timed_core::protocol::{Protocol, ProtocolId, ProtocolSpec, Topic, TopicId, TopicSpec};
use timed_core::{Config, Duration};

/// A masternode as the list carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Masternode {
    pub id: [u8; 32],
    pub collateral: u64,
    pub address: String,
}

/// `GetMasternodes`: the peer's masternode list, up to `max` entries.
pub struct Masternodes;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMasternodes {
    pub max: u16,
}

impl Protocol for Masternodes {
    const SPEC: ProtocolSpec = ProtocolSpec::new(ProtocolId(1000), "timecoin/masternodes/1")
        .with_max_request_bytes(16)
        .with_max_response_bytes(256 * 1024)
        .with_in_flight(2, 4)
        .with_timeout(Duration::from_secs(10));
    type Request = GetMasternodes;
    type Response = Vec<Masternode>;
}

/// `GetPendingTransactions`: the peer's pending transactions we do not have yet. We send
/// the ids we hold (bounded) and get the rest back.
pub struct PendingTransactions;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPending {
    pub have: Vec<[u8; 32]>,
    pub max: u16,
}

impl Protocol for PendingTransactions {
    const SPEC: ProtocolSpec = ProtocolSpec::new(ProtocolId(1001), "timecoin/pending-txs/1")
        .with_max_request_bytes(64 * 1024)
        .with_max_response_bytes(1024 * 1024)
        .with_in_flight(2, 4)
        .with_timeout(Duration::from_secs(10));
    type Request = GetPending;
    type Response = Vec<Vec<u8>>;
}

/// `UTXOStateResponse`: the hash of the peer's UTXO set at a height, if it has one.
pub struct UtxoStateHash;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtxoState {
    pub height: u64,
    pub hash: [u8; 32],
    pub utxos: u64,
}

impl Protocol for UtxoStateHash {
    const SPEC: ProtocolSpec = ProtocolSpec::new(ProtocolId(1002), "timecoin/utxo-state/1")
        .with_max_request_bytes(16)
        .with_max_response_bytes(128)
        .with_in_flight(4, 8)
        .with_timeout(Duration::from_secs(5));
    type Request = u64;
    type Response = Option<UtxoState>;
}

/// A BFT consensus vote, gossiped to every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub height: u64,
    pub block: [u8; 32],
    pub voter: [u8; 32],
}

pub struct Votes;

impl Topic for Votes {
    const SPEC: TopicSpec = TopicSpec::new(TopicId(1000), "timecoin/votes/1")
        .with_max_message_bytes(256)
        .with_rate(50, 100);
    type Message = Vote;
}

/// Declares every TIME Coin protocol and topic on `config`.
pub fn declare(config: &mut Config) {
    config.protocols.extend([
        Masternodes::SPEC,
        PendingTransactions::SPEC,
        UtxoStateHash::SPEC,
    ]);
    config.topics.push(Votes::SPEC);
}
