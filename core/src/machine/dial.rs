//! Whom we dial, when, and how often: dial targets with exponential backoff.
//!
//! A target is an address we want a connection to. Persistent targets (`--peer`) are
//! redialed after every loss, forever; one-off targets (`dial`) are tried once; address-book
//! targets are dialed by the chain layer to reach `target_outbound`. Reconnects happen only
//! after a loss, never to "clean up" a healthy connection. The delay starts at
//! `backoff_initial`, doubles up to `backoff_max`, gets up to +25 % jitter from the seeded RNG,
//! and resets once a connection to that target lived `backoff_reset_after`.

use super::conn::ConnState;
use super::io::{Action, Direction};
use super::timer::Timer;
use super::PeerMachine;
use crate::id::{ConnId, NodeId};
use crate::store::Store;
use crate::time::{Duration, Instant};
use core::net::SocketAddr;

#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub persistent: bool,
    /// The node this address turned out to be, once a handshake over it succeeded.
    pub node: Option<NodeId>,
    /// Our outbound connection for this target, while it exists.
    pub conn: Option<ConnId>,
    /// The delay before the next redial.
    pub backoff: Duration,
    /// Consecutive attempts that did not reach a handshake.
    pub failures: u32,
}

/// What is left to know of a connection the machine has just forgotten.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GoneConn {
    pub conn: ConnId,
    pub dir: Direction,
    pub addr: SocketAddr,
    /// The peer's node id, if its `Hello` arrived.
    pub node: Option<NodeId>,
    /// The state it was in when it ended.
    pub state: ConnState,
    /// How long it was established (zero if it never was).
    pub lived: Duration,
}

impl<S: Store> PeerMachine<S> {
    pub(crate) fn add_target(&mut self, now: Instant, addr: SocketAddr, persistent: bool) {
        if self.never_dial.contains(&addr) {
            return;
        }
        let initial = self.cfg.backoff_initial;
        let t = self.targets.entry(addr).or_insert(Target {
            persistent,
            node: None,
            conn: None,
            backoff: initial,
            failures: 0,
        });
        t.persistent |= persistent;
        if self.timers.get(Timer::Redial(addr)).is_none() {
            self.dial_now(now, addr);
        }
    }

    /// Dials `addr` unless a connection for it exists or its node is already a peer.
    pub(crate) fn dial_now(&mut self, now: Instant, addr: SocketAddr) {
        if self.stopped {
            return;
        }
        let Some(t) = self.targets.get(&addr) else {
            return;
        };
        if t.conn.is_some()
            || t.node
                .is_some_and(|n| self.peers.contains_key(&n) || self.limbo.contains_key(&n))
        {
            return;
        }
        if self.conns.len() >= self.cfg.max_connections {
            self.schedule_redial(now, addr);
            return;
        }
        let conn = self.new_conn(now, Direction::Outbound, addr, ConnState::Dialing);
        if let Some(t) = self.targets.get_mut(&addr) {
            t.conn = Some(conn);
        }
        self.counters.dials += 1;
        self.counters.conns_outbound += 1;
        self.actions.push_back(Action::Dial { conn, addr });
    }

    pub(crate) fn redial(&mut self, now: Instant, addr: SocketAddr) {
        self.dial_now(now, addr);
    }

    fn schedule_redial(&mut self, now: Instant, addr: SocketAddr) {
        let max = self.cfg.backoff_max;
        let Some(t) = self.targets.get_mut(&addr) else {
            return;
        };
        let base = t.backoff;
        t.backoff = Duration(base.0.saturating_mul(2)).min(max);
        let jitter = self.rng.below(base.0 / 4 + 1);
        self.timers
            .set(Timer::Redial(addr), now + Duration(base.0 + jitter));
    }

    /// Records which node an outbound target reached.
    pub(crate) fn target_reached(&mut self, addr: SocketAddr, node: NodeId) {
        if let Some(t) = self.targets.get_mut(&addr) {
            t.node = Some(node);
            t.failures = 0;
        }
    }

    /// Records which node listens at a target's address, learned from an inbound `Hello`,
    /// unless an outbound handshake already told us.
    pub(crate) fn target_learned(&mut self, addr: SocketAddr, node: NodeId) {
        if let Some(t) = self.targets.get_mut(&addr) {
            t.node.get_or_insert(node);
        }
    }

    /// An address turned out to be ourselves: forget it for good.
    pub(crate) fn never_dial_again(&mut self, addr: SocketAddr) {
        self.never_dial.insert(addr);
        self.targets.remove(&addr);
        self.timers.cancel(Timer::Redial(addr));
    }

    /// Bookkeeping after any connection is gone: frees its target and schedules redials for
    /// the targets that lost their peer.
    pub(crate) fn after_conn_closed(&mut self, now: Instant, gone: &GoneConn) {
        let GoneConn {
            conn,
            dir,
            addr,
            node,
            state,
            lived,
        } = *gone;
        if self.stopped {
            return;
        }
        let reset_after = self.cfg.backoff_reset_after;
        let initial = self.cfg.backoff_initial;
        if dir == Direction::Outbound {
            if let Some(t) = self.targets.get_mut(&addr) {
                if t.conn == Some(conn) {
                    t.conn = None;
                    if state == ConnState::Established && lived >= reset_after {
                        t.backoff = initial;
                    } else if state != ConnState::Established {
                        t.failures = t.failures.saturating_add(1);
                    }
                }
            }
        }
        let node_up =
            node.is_some_and(|n| self.peers.contains_key(&n) || self.limbo.contains_key(&n));
        if node_up {
            return;
        }
        // Redial every persistent target for this address or this node that has no
        // connection of its own; drop one-off targets whose attempt ended.
        let mut redial = alloc::vec::Vec::new();
        let mut forget = alloc::vec::Vec::new();
        for (a, t) in &self.targets {
            let ours = *a == addr || (node.is_some() && t.node == node);
            if !ours || t.conn.is_some() {
                continue;
            }
            if t.persistent {
                redial.push(*a);
            } else {
                // One-off and address-book targets are tried once; peer exchange picks again.
                forget.push(*a);
            }
        }
        self.book_conn_closed(addr, dir, state);
        for a in forget {
            self.targets.remove(&a);
            self.book_backoff(now, a);
        }
        for a in redial {
            if self.timers.get(Timer::Redial(a)).is_none() {
                self.schedule_redial(now, a);
            }
        }
    }
}
