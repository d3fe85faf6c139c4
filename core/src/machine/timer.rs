//! Timers are data: an enum of kinds and a deadline table.
//!
//! The machine never asks the driver to set a timer; the driver asks the machine for its
//! earliest deadline ([`PeerMachine::poll_timeout`](crate::PeerMachine::poll_timeout)) and
//! calls `handle_timeout` when it passes. Each timer kind is armed at most once at a time;
//! re-arming moves its deadline.

use crate::id::{ConnId, NodeId};
use crate::time::Instant;
use alloc::collections::{BTreeMap, BTreeSet};
use core::net::SocketAddr;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) enum Timer {
    /// Connect + `Hello` must complete by then.
    Handshake(ConnId),
    /// Time to send the next ping.
    Ping(ConnId),
    /// Checks whether anything arrived within the ping timeout. Armed lazily: when it fires
    /// early because frames arrived since, it is re-armed from the last frame.
    Idle(ConnId),
    /// A connection being probed because another one claims its node id.
    Probe(ConnId),
    /// An outstanding request's deadline.
    Request(ConnId, u64),
    /// Next attempt to dial an address.
    Redial(SocketAddr),
    /// A peer whose connection was closed as a duplicate, waiting for its other connection.
    Limbo(NodeId),
    /// Periodic work of the chain layer: sync progress and stall checks.
    Sync,
    /// Ask peers for addresses; top up outbound connections.
    PeerExchange,
    /// Produce a block (devnet).
    Produce,
    /// Dial more addresses from the book, once their backoff allows.
    TopUp,
}

#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    by_timer: BTreeMap<Timer, Instant>,
    by_deadline: BTreeSet<(Instant, Timer)>,
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(old) = self.by_timer.insert(timer, at) {
            self.by_deadline.remove(&(old, timer));
        }
        self.by_deadline.insert((at, timer));
    }

    pub fn cancel(&mut self, timer: Timer) {
        if let Some(old) = self.by_timer.remove(&timer) {
            self.by_deadline.remove(&(old, timer));
        }
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.by_timer.get(&timer).copied()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let &(at, timer) = self.by_deadline.first()?;
        if at > now {
            return None;
        }
        self.by_deadline.remove(&(at, timer));
        self.by_timer.remove(&timer);
        Some(timer)
    }

    /// Cancels every timer belonging to `conn`.
    pub fn cancel_conn(&mut self, conn: ConnId) {
        for t in [
            Timer::Handshake(conn),
            Timer::Ping(conn),
            Timer::Idle(conn),
            Timer::Probe(conn),
        ] {
            self.cancel(t);
        }
    }

    pub fn len(&self) -> usize {
        self.by_timer.len()
    }
}
