//! One connection per peer, by one rule.
//!
//! When a handshake completes for a node we already hold a connection to:
//!
//! - **Simultaneous open** — both `Hello`s carry the same `boot` and the two connections go in
//!   opposite directions. Both ends keep the connection *initiated by the smaller node id*
//!   and close the other with `Goodbye{Duplicate}`. Both ends evaluate the same pure function
//!   of the same facts, so they agree without a round trip; the kept connection is never
//!   closed, so the pair never ends with none; and the peer never goes down (the application
//!   sees at most a `PeerMoved`).
//! - **Anything else** — a restarted peer (new `boot`) while our old socket is half-open, a
//!   second dial in the same direction, a stranger claiming a connected node's id. The
//!   existing connection is probed with an immediate ping. If it answers, the newcomer is
//!   refused with `Goodbye{Duplicate}`; if it dies or stays silent past `probe_timeout`, the
//!   newcomer takes over. A claim alone never evicts a live connection.
//!
//! A `Goodbye{Duplicate}` received on a peer's only connection is a loss (redial with
//! backoff) — unless another connection whose handshake has not completed yet may be that
//! peer's kept one: then the peer waits in *limbo* for up to `handshake_timeout` and is
//! adopted silently if that connection turns out to be it. This closes the one race where
//! the kept connection's `Hello` arrives after the duplicate's `Goodbye`.

use super::conn::ConnState;
use super::io::{Action, Direction, DownReason, NodeEvent, QueryError};
use super::query::OutReq;
use super::timer::Timer;
use super::PeerMachine;
use crate::id::{ConnId, NodeId};
use crate::store::Store;
use crate::time::Instant;
use crate::wire::{GoodbyeReason, Message};
use alloc::vec::Vec;

/// A peer waiting in limbo: the connection that was closed, and its requests, re-sent if the
/// peer's other connection is adopted.
#[derive(Debug)]
pub(crate) struct Limbo {
    pub conn: ConnId,
    pub reqs: Vec<OutReq>,
}

impl<S: Store> PeerMachine<S> {
    /// `conn` completed its handshake with `node`: make it the peer's connection, or resolve
    /// the duplicate.
    pub(crate) fn on_peer_identified(&mut self, now: Instant, node: NodeId, conn: ConnId) {
        if let Some(&old) = self.peers.get(&node) {
            self.resolve_duplicate(now, node, old, conn);
        } else if let Some(l) = self.limbo.remove(&node) {
            self.timers.cancel(Timer::Limbo(node));
            self.establish(now, node, conn, Some(l.conn));
            for req in l.reqs {
                self.resend(now, conn, conn, req);
            }
        } else {
            self.establish(now, node, conn, None);
        }
    }

    /// Makes `conn` the one connection of `node`. `moved_from` is the connection it replaces
    /// without the peer going down.
    pub(crate) fn establish(
        &mut self,
        now: Instant,
        node: NodeId,
        conn: ConnId,
        moved_from: Option<ConnId>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.state = ConnState::Established;
        c.established_at = now;
        let (dir, addr) = (c.dir, c.addr);
        self.peers.insert(node, conn);
        self.timers.cancel(Timer::Handshake(conn));
        // First ping right away: it measures RTT without waiting a whole interval. It also
        // arms the ping tick, which keeps the idle check (see `arm_idle_check`).
        self.send_ping(now, conn);
        if dir == Direction::Outbound {
            self.target_reached(addr, node);
        } else if let Some(listen) = self.conns.get(&conn).and_then(|c| c.listen_addr()) {
            // A persistent peer that dialed us first: remember who lives at its advertised
            // address, so we do not dial it again while it is connected (each such redial
            // only makes a duplicate for the dedup rule to resolve).
            self.target_learned(listen, node);
        }
        match moved_from {
            Some(from) => {
                self.actions.push_back(Action::Notify(NodeEvent::PeerMoved {
                    peer: node,
                    from,
                    to: conn,
                }));
            }
            None => {
                if self.remember_peer(node) {
                    self.counters.reconnects += 1;
                }
                self.actions.push_back(Action::Notify(NodeEvent::PeerUp {
                    peer: node,
                    conn,
                    direction: dir,
                    addr,
                }));
                self.chain_peer_up(now, node, conn);
            }
        }
    }

    fn resolve_duplicate(&mut self, now: Instant, node: NodeId, old: ConnId, new: ConnId) {
        self.counters.duplicates_resolved += 1;
        let (Some(o), Some(n)) = (self.conns.get(&old), self.conns.get(&new)) else {
            return;
        };
        let (Some(ro), Some(rn)) = (&o.remote, &n.remote) else {
            return;
        };
        let simultaneous = ro.boot == rn.boot && o.dir != n.dir;
        if simultaneous {
            let initiated_by_us = |dir| dir == Direction::Outbound;
            let we_are_smaller = self.cfg.node_id < node;
            // Keep the connection whose initiator is the smaller node id.
            let keep_new = initiated_by_us(n.dir) == we_are_smaller;
            if keep_new {
                self.timers.cancel(Timer::Handshake(new));
                self.peers.insert(node, new);
                self.establish(now, node, new, Some(old));
                self.migrate_requests(now, old, new);
                self.close_with_goodbye(
                    now,
                    old,
                    GoodbyeReason::Duplicate,
                    "simultaneous open: keeping the connection initiated by the smaller node id",
                );
            } else {
                self.close_with_goodbye(
                    now,
                    new,
                    GoodbyeReason::Duplicate,
                    "simultaneous open: keeping the connection initiated by the smaller node id",
                );
            }
            return;
        }
        if o.probe.is_some() {
            // A probe is already deciding for another newcomer; one contest at a time.
            self.close_with_goodbye(
                now,
                new,
                GoodbyeReason::Duplicate,
                "already connected to this node",
            );
            return;
        }
        let nonce = self.next_nonce();
        if let Some(n) = self.conns.get_mut(&new) {
            n.state = ConnState::Candidate { old };
        }
        self.timers.cancel(Timer::Handshake(new));
        if let Some(o) = self.conns.get_mut(&old) {
            o.probe = Some((nonce, new));
        }
        self.timers
            .set(Timer::Probe(old), now + self.cfg.probe_timeout);
        self.send_msg(old, &Message::Ping { nonce });
    }

    /// A pong on `conn`: if it answers a probe, the existing connection is alive and the
    /// newcomer is refused. Returns true if it was a probe's pong.
    pub(crate) fn probe_answered(&mut self, now: Instant, conn: ConnId, nonce: u64) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        match c.probe {
            Some((n, candidate)) if n == nonce => {
                c.probe = None;
                self.timers.cancel(Timer::Probe(conn));
                self.close_with_goodbye(
                    now,
                    candidate,
                    GoodbyeReason::Duplicate,
                    "already connected to this node over a live connection",
                );
                true
            }
            _ => false,
        }
    }

    /// The probed connection stayed silent: it is dead, the newcomer takes over.
    pub(crate) fn probe_expired(&mut self, now: Instant, old: ConnId) {
        if self.conns.get(&old).and_then(|c| c.probe).is_some() {
            self.close_with_goodbye(
                now,
                old,
                GoodbyeReason::Unresponsive,
                "did not answer a probe; replaced by a newer connection",
            );
        }
    }

    /// The newcomer waiting on `old`'s probe, if any.
    pub(crate) fn candidate_for(&self, old: ConnId) -> Option<ConnId> {
        let (_, cand) = self.conns.get(&old)?.probe?;
        matches!(self.conns.get(&cand)?.state, ConnState::Candidate { old: o } if o == old)
            .then_some(cand)
    }

    pub(crate) fn probe_no_longer_needed(&mut self, old: ConnId) {
        if let Some(c) = self.conns.get_mut(&old) {
            c.probe = None;
            self.timers.cancel(Timer::Probe(old));
        }
    }

    /// `old` (the peer's connection) is going away while `new` waited to replace it.
    pub(crate) fn take_over(&mut self, now: Instant, node: NodeId, old: ConnId, new: ConnId) {
        let same_boot = match (
            self.conns.get(&old).and_then(|c| c.remote.as_ref()),
            self.conns.get(&new).and_then(|c| c.remote.as_ref()),
        ) {
            (Some(a), Some(b)) => a.boot == b.boot,
            _ => false,
        };
        if same_boot {
            self.establish(now, node, new, Some(old));
            self.migrate_requests(now, old, new);
        } else {
            // The peer restarted: to the application that is a real down and up.
            self.peers.remove(&node);
            self.fail_requests(now, old, QueryError::PeerGone);
            self.actions.push_back(Action::Notify(NodeEvent::PeerDown {
                peer: node,
                conn: old,
                reason: DownReason::Replaced,
            }));
            self.chain_peer_down(now, node);
            self.establish(now, node, new, None);
        }
    }

    /// Decides whether a lost peer connection waits in limbo instead of going down.
    pub(crate) fn enter_limbo(
        &mut self,
        now: Instant,
        node: NodeId,
        conn: ConnId,
        reason: DownReason,
    ) -> bool {
        if reason != DownReason::GoodbyeReceived(GoodbyeReason::Duplicate) {
            return false;
        }
        let unidentified = self.conns.iter().any(|(id, c)| {
            *id != conn && matches!(c.state, ConnState::Dialing | ConnState::Handshaking)
        });
        if !unidentified {
            return false;
        }
        let mut reqs = Vec::new();
        if let Some(c) = self.conns.get_mut(&conn) {
            for (id, req) in c.out_reqs.take_all() {
                self.timers.cancel(Timer::Request(conn, id));
                reqs.push(req);
            }
        }
        self.peers.remove(&node);
        self.limbo.insert(node, Limbo { conn, reqs });
        self.timers
            .set(Timer::Limbo(node), now + self.cfg.handshake_timeout);
        true
    }

    /// No other connection turned out to be the peer's: it is lost after all.
    pub(crate) fn limbo_expired(&mut self, now: Instant, node: NodeId) {
        let Some(l) = self.limbo.remove(&node) else {
            return;
        };
        for req in l.reqs {
            self.end_request(now, l.conn, req, QueryError::PeerGone);
        }
        let reason = DownReason::GoodbyeReceived(GoodbyeReason::Duplicate);
        self.actions.push_back(Action::Notify(NodeEvent::PeerDown {
            peer: node,
            conn: l.conn,
            reason,
        }));
        self.chain_peer_down(now, node);
        self.redial_node(now, node);
    }
}
