//! Peer exchange and the address book in use: learning addresses, evicting failing ones,
//! backoff per address, and keeping outbound connections topped up.

use super::io::Direction;
use super::query::ChainReq;
use super::timer::Timer;
use super::PeerMachine;
use crate::id::NodeId;
use crate::store::{AddrEntry, Store, StoreOp};
use crate::time::{Duration, Instant};
use crate::wire::{PeerAddr, RequestBody};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::net::SocketAddr;

/// Dial failures after which an address leaves the book.
const MAX_ADDR_FAILURES: u32 = 8;

impl<S: Store> PeerMachine<S> {
    /// Holds back dials to a book address: `backoff_initial` doubled per recorded failure,
    /// up to `backoff_max`, with up to +25 % jitter.
    pub(crate) fn book_backoff(&mut self, now: Instant, addr: SocketAddr) {
        let failures = self
            .chain
            .book
            .get(&PeerAddr::from(addr))
            .map_or(0, |e| e.failures);
        let base = self
            .cfg
            .backoff_initial
            .saturating_mul(1u64 << failures.min(16))
            .min(self.cfg.backoff_max);
        let jitter = self.rng.below(base.as_micros() / 4 + 1);
        let at = now + Duration::from_micros(base.as_micros() + jitter);
        let e = self.chain.retry_at.entry(addr).or_insert(at);
        *e = (*e).max(at);
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

    /// Adds an address to the book (bounded: the entry with most failures goes first).
    pub(super) fn learn_addr(&mut self, addr: SocketAddr, node: Option<NodeId>, seen: bool) {
        if addr.port() == 0 || addr.ip().is_unspecified() || self.never_dial.contains(&addr) {
            return;
        }
        if let Some(n) = node {
            if self.chain.addr_node.len() >= self.cfg.addr_book_max
                && !self.chain.addr_node.contains_key(&addr)
            {
                self.chain.addr_node.pop_first();
            }
            self.chain.addr_node.insert(addr, n);
        }
        let key = PeerAddr::from(addr);
        let full = self.chain.book.len() >= self.cfg.addr_book_max;
        if !seen && full && !self.chain.book.any_failing() {
            // Hearsay into a full, healthy book changes nothing whether or not the address
            // is known (a known one keeps its entry as it is): decided without a lookup,
            // for every address of every `Peers` response once the book has filled.
            return;
        }
        let before = self.chain.book.get(&key).copied();
        if before.is_none() && full {
            // A hearsay address does not evict a known one unless that one is failing.
            if !seen && !self.chain.book.any_failing() {
                return;
            }
            match self.chain.book.worst().map(|e| e.addr) {
                Some(w) => self.evict_addr(w),
                None => return,
            }
        }
        let mut entry = before.unwrap_or(AddrEntry {
            addr: key,
            failures: 0,
            last_seen: None,
        });
        if seen {
            entry.failures = 0;
            entry.last_seen = Some(self.now.as_micros());
        }
        self.chain.book.put(entry);
        // Hearsay about an address we already know changes nothing: spare the store a write
        // (with LMDB, a transaction) for every address in every `Peers` response.
        if before == Some(entry) {
            return;
        }
        if let Err(err) = self.store.put_addr(entry) {
            let now = self.now;
            self.fatal(now, StoreOp::WriteAddrs, err);
        }
    }

    pub(super) fn evict_addr(&mut self, addr: PeerAddr) {
        self.chain.book.remove(&addr);
        if let Err(err) = self.store.remove_addr(addr) {
            let now = self.now;
            self.fatal(now, StoreOp::WriteAddrs, err);
        }
    }

    /// An outbound attempt to `addr` ended: count failures in the book.
    pub(crate) fn book_conn_closed(
        &mut self,
        _now: Instant,
        addr: SocketAddr,
        dir: Direction,
        state: super::conn::ConnState,
    ) {
        if dir != Direction::Outbound || state == super::conn::ConnState::Established {
            return;
        }
        let key = PeerAddr::from(addr);
        let Some(mut entry) = self.chain.book.get(&key).copied() else {
            return;
        };
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= MAX_ADDR_FAILURES {
            self.evict_addr(key);
        } else {
            self.chain.book.put(entry);
            if let Err(err) = self.store.put_addr(entry) {
                let now = self.now;
                self.fatal(now, StoreOp::WriteAddrs, err);
            }
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
        let connected: BTreeSet<NodeId> = self.peers.keys().copied().collect();
        self.chain.retry_at.retain(|_, at| *at > now);
        let retry_at = &self.chain.retry_at;
        let mut candidates: Vec<(u32, SocketAddr)> = self
            .chain
            .book
            .values()
            .map(|e| (e.failures, SocketAddr::from(e.addr)))
            .filter(|(_, a)| !self.targets.contains_key(a) && !self.never_dial.contains(a))
            .filter(|(_, a)| !retry_at.contains_key(a))
            .filter(|(_, a)| {
                self.chain
                    .addr_node
                    .get(a)
                    .is_none_or(|n| !connected.contains(n))
            })
            .collect();
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
            if let Some(&next) = self.chain.retry_at.values().min() {
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
