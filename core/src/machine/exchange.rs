//! Peer exchange and the address book in use: learning addresses, evicting failing ones,
//! backoff per address, and keeping outbound connections topped up.

use super::book::Change;
use super::conn::ConnState;
use super::io::Direction;
use super::query::ChainReq;
use super::timer::Timer;
use super::PeerMachine;
use crate::id::NodeId;
use crate::store::{Store, StoreOp};
use crate::time::{Duration, Instant};
use crate::wire::RequestBody;
use alloc::vec::Vec;
use core::net::SocketAddr;

impl<S: Store> PeerMachine<S> {
    /// Holds back dials to a book address: `backoff_initial` doubled per recorded failure,
    /// up to `backoff_max`, with up to +25 % jitter.
    pub(crate) fn book_backoff(&mut self, now: Instant, addr: SocketAddr) {
        let failures = self.chain.book.failures(addr);
        let base = self
            .cfg
            .backoff_initial
            .saturating_mul(1u64 << failures.min(16))
            .min(self.cfg.backoff_max);
        let jitter = self.rng.below(base.as_micros() / 4 + 1);
        let at = now + Duration::from_micros(base.as_micros() + jitter);
        self.chain.book.hold_until(addr, at);
    }

    // ---- peer exchange --------------------------------------------------------------------

    pub(crate) fn peer_exchange_tick(&mut self, now: Instant) {
        self.timers
            .set(Timer::PeerExchange, now + self.cfg.peer_exchange_interval);
        // One peer per interval, picked at random: every peer already told us its tip in its
        // `Hello` and announces new blocks, and every peer we dial is asked for addresses when it
        // comes up, so this poll is only the safety net for lost announcements and a stale
        // book. Polling every peer each time cost O(peers²) messages across the network for
        // no added information.
        if !self.peers.is_empty() {
            let pick = (self.rng.next_u64() % self.peers.len() as u64) as usize;
            if let Some(&conn) = self.peers.values().nth(pick) {
                self.ask_chain(now, conn, ChainReq::Peers, RequestBody::Peers);
                self.ask_chain(now, conn, ChainReq::Tip, RequestBody::Tip);
            }
        }
        self.top_up_outbound(now);
    }

    /// Adds an address to the book (bounded: see [`AddrBook::learn`]) and persists what
    /// changed.
    pub(super) fn learn_addr(&mut self, addr: SocketAddr, node: Option<NodeId>, seen: bool) {
        if addr.port() == 0 || addr.ip().is_unspecified() || self.never_dial.contains(&addr) {
            return;
        }
        let change = self.chain.book.learn(addr, node, seen, self.now);
        self.persist(change);
    }

    /// An outbound attempt to `addr` ended before the handshake: one more failure for it.
    pub(crate) fn book_conn_closed(&mut self, addr: SocketAddr, dir: Direction, state: ConnState) {
        if dir != Direction::Outbound || state == ConnState::Established {
            return;
        }
        let change = self.chain.book.dial_failed(addr);
        self.persist(change);
    }

    /// Writes a book change to the store (a failure stops the machine).
    fn persist(&mut self, change: Change) {
        let (put, removed) = match change {
            Change::None => return,
            Change::Put { put, evicted } => (Some(put), evicted),
            Change::Evicted(addr) => (None, Some(addr)),
        };
        let mut result = Ok(());
        if let Some(addr) = removed {
            result = self.store.remove_addr(addr);
        }
        if let (Ok(()), Some(entry)) = (&result, put) {
            result = self.store.put_addr(entry);
        }
        if let Err(err) = result {
            let now = self.now;
            self.fatal(now, StoreOp::WriteAddrs, err);
        }
    }

    /// Dials addresses from the book until `target_outbound` outbound connections exist or
    /// are being made.
    pub(crate) fn top_up_outbound(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        let outbound = self
            .conns
            .values()
            .filter(|c| c.dir == Direction::Outbound)
            .count();
        let mut want = self.cfg.target_outbound.saturating_sub(outbound);
        if want == 0 {
            return;
        }
        let (peers, targets, never) = (&self.peers, &self.targets, &self.never_dial);
        let mut candidates = self.chain.book.dial_candidates(
            now,
            |n| peers.contains_key(n),
            |a| targets.contains_key(a) || never.contains(a),
        );
        // Fewest failures first; the seeded RNG breaks ties so nodes spread their dials.
        let mut keyed: Vec<(u32, u64, SocketAddr)> = candidates
            .drain(..)
            .map(|(f, a)| (f, self.rng.next_u64(), a))
            .collect();
        keyed.sort();
        for (_, _, addr) in keyed {
            if want == 0 {
                break;
            }
            self.add_target(now, addr, false);
            want -= 1;
        }
        // Still short, and some addresses are only waiting out their backoff: come back then.
        if want > 0 {
            if let Some(next) = self.chain.book.next_release() {
                self.timers.set(Timer::TopUp, next);
            }
        }
    }

    /// Redials the persistent targets that reached `node`.
    pub(crate) fn redial_node(&mut self, now: Instant, node: NodeId) {
        let addrs: Vec<SocketAddr> = self
            .targets
            .iter()
            .filter(|(_, t)| t.node == Some(node) && t.conn.is_none())
            .map(|(a, _)| *a)
            .collect();
        for a in addrs {
            self.dial_now(now, a);
        }
    }
}
