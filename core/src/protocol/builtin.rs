//! The core's own protocols and topics, declared like any application's.
//!
//! Block sync, fork probes, tip queries and peer exchange are request/response protocols;
//! block announcements and transaction relay are topics. Their limits come from the
//! [`Config`] (see [`protocols`] and [`topics`]).

use super::{ProtocolId, ProtocolSpec, TopicId, TopicSpec};
use crate::chain::{Block, BlockHash};
use crate::config::Config;
use crate::wire::{PeerAddr, RequestBody, ResponseBody};
use alloc::vec::Vec;

/// Our best height and hash. Request: nothing. Response: `(u64, BlockHash)`.
pub const TIP: ProtocolId = ProtocolId(1);
/// The hash at a height. Request: `u64`. Response: `Option<BlockHash>`.
pub const HASH_AT: ProtocolId = ProtocolId(2);
/// A block range. Request: `(from: u64, count: u32)`. Response: `Vec<Block>`.
pub const BLOCKS: ProtocolId = ProtocolId(3);
/// Addresses from the book. Request: nothing. Response: `Vec<PeerAddr>`.
pub const PEERS: ProtocolId = ProtocolId(4);

/// New blocks. Message: one `Block`.
pub const BLOCK_TOPIC: TopicId = TopicId(1);
/// Transactions. Message: one `Tx`.
pub const TX_TOPIC: TopicId = TopicId(2);

/// Room for postcard's length prefixes around a payload bounded by a config limit.
const SLACK: u32 = 1024;

/// The built-in protocols with limits derived from `cfg`.
pub fn protocols(cfg: &Config) -> [ProtocolSpec; 4] {
    let n = u16::try_from(cfg.max_requests_in_flight).unwrap_or(u16::MAX);
    let base = |id, name| {
        ProtocolSpec::new(id, name)
            .with_max_request_bytes(64)
            .with_max_response_bytes(4096)
            .with_in_flight(n, n)
            .with_timeout(cfg.query_timeout)
    };
    let blocks = u32::try_from(cfg.max_response_bytes)
        .unwrap_or(u32::MAX)
        .saturating_add(SLACK);
    let peers = (super::super::machine::MAX_ADDRS_PER_RESPONSE as u32) * 20 + 16;
    [
        base(TIP, "timed/tip/1"),
        base(HASH_AT, "timed/hash-at/1"),
        base(BLOCKS, "timed/blocks/1").with_max_response_bytes(blocks),
        base(PEERS, "timed/peers/1").with_max_response_bytes(peers),
    ]
}

/// The built-in topics with limits derived from `cfg`. They are validated by the chain
/// layer itself, synchronously.
pub fn topics(cfg: &Config) -> [TopicSpec; 2] {
    let block = u32::try_from(cfg.limits.max_block_bytes)
        .unwrap_or(u32::MAX)
        .saturating_add(SLACK);
    let tx = u32::try_from(cfg.limits.max_tx_bytes)
        .unwrap_or(u32::MAX)
        .saturating_add(16);
    [
        TopicSpec::new(BLOCK_TOPIC, "timed/blocks")
            .with_max_message_bytes(block)
            .with_rate(100, 400),
        TopicSpec::new(TX_TOPIC, "timed/txs")
            .with_max_message_bytes(tx)
            .with_rate(1000, 2000),
    ]
}

/// The protocol and payload a [`RequestBody`] travels as.
pub fn encode_request(body: &RequestBody) -> (ProtocolId, Vec<u8>) {
    match *body {
        RequestBody::Tip => (TIP, Vec::new()),
        RequestBody::HashAt { height } => (HASH_AT, super::encode(&height)),
        RequestBody::Blocks { from, count } => (BLOCKS, super::encode(&(from, count))),
        RequestBody::Peers => (PEERS, Vec::new()),
    }
}

/// A built-in request back from its protocol and payload; `None` if it does not decode.
pub fn decode_request(protocol: ProtocolId, payload: &[u8]) -> Option<RequestBody> {
    match protocol {
        TIP => Some(RequestBody::Tip),
        HASH_AT => {
            let height = postcard::from_bytes(payload).ok()?;
            Some(RequestBody::HashAt { height })
        }
        BLOCKS => {
            let (from, count) = postcard::from_bytes(payload).ok()?;
            Some(RequestBody::Blocks { from, count })
        }
        PEERS => Some(RequestBody::Peers),
        _ => None,
    }
}

/// The payload a built-in response travels as.
pub fn encode_response(body: &ResponseBody) -> Vec<u8> {
    match body {
        ResponseBody::Tip { height, hash } => super::encode(&(height, hash)),
        ResponseBody::HashAt(h) => super::encode(h),
        ResponseBody::Blocks(b) => super::encode(b),
        ResponseBody::Peers(p) => super::encode(p),
    }
}

/// A built-in response back from its protocol and payload; `None` if it does not decode.
pub fn decode_response(protocol: ProtocolId, payload: &[u8]) -> Option<ResponseBody> {
    match protocol {
        TIP => {
            let (height, hash): (u64, BlockHash) = postcard::from_bytes(payload).ok()?;
            Some(ResponseBody::Tip { height, hash })
        }
        HASH_AT => Some(ResponseBody::HashAt(postcard::from_bytes(payload).ok()?)),
        BLOCKS => Some(ResponseBody::Blocks(
            postcard::from_bytes::<Vec<Block>>(payload).ok()?,
        )),
        PEERS => Some(ResponseBody::Peers(
            postcard::from_bytes::<Vec<PeerAddr>>(payload).ok()?,
        )),
        _ => None,
    }
}

/// What a node with `cfg` advertises in its `Hello`: the built-ins and the application's
/// declarations (for tools and tests that speak the wire by hand).
pub fn adverts(cfg: &Config) -> (Vec<super::ProtocolAd>, Vec<super::TopicAd>) {
    let r = super::Registry::new(cfg);
    (r.protocol_ads().to_vec(), r.topic_ads().to_vec())
}

/// [`adverts`] of a node with the default config and no application protocols.
pub fn default_adverts() -> (Vec<super::ProtocolAd>, Vec<super::TopicAd>) {
    use crate::chain::Network;
    adverts(&Config::new(Network::Devnet, crate::id::NodeId([0; 32]), 0))
}
