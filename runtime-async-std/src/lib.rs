//! # timed-async-std
//!
//! Drives a [`PeerMachine`](timed_core::PeerMachine) on async-std's executor. async-std runs
//! on `async-io`, so the sockets and timers are `timed-smol`'s ([`timed_smol::AsyncIo`]); this
//! crate adds only where tasks run. The node, its handle and its driver are
//! `timed-runtime`'s, re-exported here.
//!
//! ## async-std is discontinued
//!
//! async-std is no longer maintained upstream (**RUSTSEC-2025-0052**); its authors point to
//! smol. This crate is kept for applications still on async-std, as long as it costs nothing:
//! it is one spawn function. Moving to smol is a change of crate name (`timed-smol`), nothing
//! else: same options, same handle, same behaviour (both run the shared conformance suite).

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub use timed_runtime::{
    unix_time_now, Clock, Events, Exit, GossipMessage, Incoming, Node, NodeHandle, NodeStopped,
    RecvError, RuntimeOptions, StartError,
};

use std::future::Future;
use timed_core::{Config, Store};
use timed_smol::{AsyncIo, Spawn};

/// async-std's executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdSpawn;

impl Spawn for AsyncStdSpawn {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Dropping async-std's `JoinHandle` detaches the task.
        drop(async_std::task::spawn(task));
    }
}

/// async-std, as [`timed_runtime`] drives it.
pub type AsyncStd = AsyncIo<AsyncStdSpawn>;

/// Starts a node on async-std's executor (see [`timed_runtime::spawn`]).
pub async fn spawn<S>(config: Config, store: S, opts: RuntimeOptions) -> Result<Node<S>, StartError>
where
    S: Store + Send + 'static,
{
    timed_runtime::spawn(AsyncStd::default(), config, store, opts).await
}

/// [`spawn`], with a subscription that sees every event from the first one.
pub async fn spawn_with_events<S>(
    config: Config,
    store: S,
    opts: RuntimeOptions,
) -> Result<(Node<S>, Events), StartError>
where
    S: Store + Send + 'static,
{
    timed_runtime::spawn_with_events(AsyncStd::default(), config, store, opts).await
}
