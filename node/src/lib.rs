//! # timed-node
//!
//! The `timed` binary's parts: command line and config file ([`cli`]), running a node
//! ([`run`]), the HTTP API ([`api`], [`metrics`]), `timed status` ([`status_cmd`]),
//! `timed devnet` ([`devnet`]), and a tiny HTTP client ([`http`]) used by those and by tests.

pub mod api;
pub mod cli;
pub mod devnet;
pub mod duration;
pub mod http;
pub mod info;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod run;
pub mod status_cmd;
pub mod store;
