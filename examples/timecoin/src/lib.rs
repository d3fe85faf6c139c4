//! # Embedding timed in a coin: the TIME Coin node's protocols
//!
//! The TIME Coin node speaks more than blocks: masternode lists (`GetMasternodes`), the
//! pending-transaction exchange (`GetPendingTransactions`), UTXO state hashes
//! (`UTXOStateResponse`), consensus votes, and the fork consensus check that asks every
//! peer for its hash at a height. This crate shows how each is declared on timed's core and
//! served over the connections the core already holds — one per peer, replies on the
//! connection the request came on, every request ending exactly once.
//!
//! - [`protocols`]: the declarations (ids, limits, typed messages). Copy these.
//! - [`state`]: the application's data and its sans-IO answers: one function per protocol,
//!   used unchanged by a tokio node, the simulator and tests.
//! - [`fork_check`]: the majority rule of the fork consensus check.
//! - [`service`]: the glue for a running node ([`timed_runtime::NodeHandle`]), on any
//!   runtime: tokio, smol, async-std.
//!
//! ```no_run
//! # async fn demo(config: timed_core::Config, store: timed_core::MemStore) {
//! use std::sync::{Arc, Mutex};
//! use timecoin_embed::{protocols, service, state::TimeCoinState};
//!
//! let mut config = config;
//! protocols::declare(&mut config);
//! let node = timed_tokio::spawn(config, store, Default::default()).await.unwrap();
//! let state = Arc::new(Mutex::new(TimeCoinState::default()));
//! service::spawn(&timed_tokio::Tokio::current(), node.handle(), state.clone())
//!     .await
//!     .unwrap();
//! let verdict = service::fork_consensus_check(&node.handle(), 10).await;
//! println!("{verdict:?}");
//! # }
//! ```

pub mod fork_check;
pub mod protocols;
pub mod service;
pub mod state;
