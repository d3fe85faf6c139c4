//! # timed-core
//!
//! The sans-IO protocol core of the `timed` node. See [`PeerMachine`] for the contract and
//! the driving loop.
//!
//! This crate is `#![no_std]` + `alloc`: no sockets, no clock, no threads, no OS randomness.
//! A machine's output is a pure function of its [`Config`] (including the RNG seed) and the
//! sequence of calls made on it, each carrying `now`. That is what lets the simulator replay
//! a whole network from a seed and the fuzzer drive it directly.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

extern crate alloc;

pub mod chain;
pub mod config;
pub mod id;
pub mod machine;
pub mod protocol;
pub mod rng;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod wire;

pub use chain::{
    Block, BlockHash, ChainRules, ChainTip, DevnetRules, Header, Network, Rules, Tx, TxId,
};
pub use config::{Config, ConfigError};
pub use id::{ConnId, NodeId, QueryId};
#[cfg(feature = "sim")]
pub use machine::hot::Hop;
pub use machine::{
    Action, CloseKind, CloseReason, Counters, Direction, DownReason, Input, Label, Misbehaviour,
    NodeEvent, PeerMachine, PeerStatus, ProtocolStats, QueryError, QueryOutcome, Refused, Status,
    Tally, TopicStats, TxError,
};
pub use protocol::{
    GossipId, HandleError, InboundId, MessageId, Protocol, ProtocolId, ProtocolSpec, PublishError,
    Topic, TopicId, TopicSpec, Verdict,
};
pub use store::{AddrEntry, MemStore, Store, StoreFailure, StoreOp};
pub use time::{Duration, Instant};
pub use wire::{GoodbyeReason, PeerAddr, RefuseReason, RequestBody, ResponseBody};
