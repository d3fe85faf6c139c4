//! The address book in memory: the entries and how many of them are failing, which node
//! listens where, and which addresses wait out a backoff. It decides (what to keep, what to
//! evict, what to dial); the machine persists what changed and dials.
//!
//! The count exists for one hot path. A full book takes a hearsay address (one from a
//! `Peers` response) only by evicting an entry that is failing; with nothing failing, which
//! is the normal state of a healthy network, the answer is known without scanning the book.
//! Without it, every address of every `Peers` response scanned all `addr_book_max` entries.

use crate::id::NodeId;
use crate::store::AddrEntry;
use crate::time::Instant;
use crate::wire::PeerAddr;
use alloc::collections::{btree_map, BTreeMap};
use alloc::vec::Vec;
use core::net::SocketAddr;

/// Dial failures after which an address leaves the book.
pub(crate) const MAX_ADDR_FAILURES: u32 = 8;

/// What a change did to the book, for the machine to persist.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Change {
    /// Nothing changed (hearsay about a known address, or no room for a new one).
    None,
    /// `put` is new or updated; `evicted` left to make room for it.
    Put {
        put: AddrEntry,
        evicted: Option<PeerAddr>,
    },
    /// The address failed too often and left the book.
    Evicted(PeerAddr),
}

/// The address book with everything peer exchange needs to pick whom to dial.
#[derive(Debug)]
pub(crate) struct AddrBook {
    entries: Book,
    /// Which node a listening address belongs to, when known: keeps peer exchange from
    /// dialing peers we already have. Bounded like the entries.
    node_at: BTreeMap<SocketAddr, NodeId>,
    /// Addresses not to dial before the given instant: backoff after a failed attempt or a
    /// lost peer, so a peer that just said goodbye is not redialed at once.
    retry_at: BTreeMap<SocketAddr, Instant>,
    max: usize,
}

impl AddrBook {
    pub fn new(max: usize) -> Self {
        AddrBook {
            entries: Book::default(),
            node_at: BTreeMap::new(),
            retry_at: BTreeMap::new(),
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, by address.
    pub fn entries(&self) -> btree_map::Values<'_, PeerAddr, AddrEntry> {
        self.entries.values()
    }

    /// Loads persisted entries at start (up to the bound).
    pub fn load(&mut self, list: Vec<AddrEntry>) {
        for e in list.into_iter().take(self.max) {
            self.entries.put(e);
        }
    }

    /// The addresses `node` is known to listen at.
    pub fn addrs_of(&self, node: NodeId) -> Vec<SocketAddr> {
        self.node_at
            .iter()
            .filter(|(_, n)| **n == node)
            .map(|(a, _)| *a)
            .collect()
    }

    /// Consecutive failed dials of `addr` (0 if unknown).
    pub fn failures(&self, addr: SocketAddr) -> u32 {
        self.entries
            .get(&PeerAddr::from(addr))
            .map_or(0, |e| e.failures)
    }

    /// Learns an address: `seen` when a handshake with it just succeeded (then it is kept
    /// as good, and may evict the worst entry of a full book), otherwise hearsay (kept only
    /// while there is room, or in place of a failing entry). `node`: who listens there.
    pub fn learn(
        &mut self,
        addr: SocketAddr,
        node: Option<NodeId>,
        seen: bool,
        now: Instant,
    ) -> Change {
        if let Some(n) = node {
            if self.node_at.len() >= self.max && !self.node_at.contains_key(&addr) {
                self.node_at.pop_first();
            }
            self.node_at.insert(addr, n);
        }
        let key = PeerAddr::from(addr);
        let full = self.entries.len() >= self.max;
        if !seen && full && !self.entries.any_failing() {
            // Hearsay into a full, healthy book changes nothing whether or not the address
            // is known (a known one keeps its entry as it is): decided without a lookup,
            // for every address of every `Peers` response once the book has filled.
            return Change::None;
        }
        let before = self.entries.get(&key).copied();
        let mut evicted = None;
        if before.is_none() && full {
            // A hearsay address does not evict a known one unless that one is failing.
            if !seen && !self.entries.any_failing() {
                return Change::None;
            }
            let Some(worst) = self.entries.worst().map(|e| e.addr) else {
                return Change::None;
            };
            self.entries.remove(&worst);
            evicted = Some(worst);
        }
        let mut entry = before.unwrap_or(AddrEntry {
            addr: key,
            failures: 0,
            last_seen: None,
        });
        if seen {
            entry.failures = 0;
            entry.last_seen = Some(now.as_micros());
        }
        self.entries.put(entry);
        if before == Some(entry) {
            // Hearsay about an address we already know: nothing to persist.
            return Change::None;
        }
        Change::Put {
            put: entry,
            evicted,
        }
    }

    /// An outbound attempt to `addr` failed: one more failure, or out of the book after
    /// [`MAX_ADDR_FAILURES`].
    pub fn dial_failed(&mut self, addr: SocketAddr) -> Change {
        let key = PeerAddr::from(addr);
        let Some(mut entry) = self.entries.get(&key).copied() else {
            return Change::None;
        };
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= MAX_ADDR_FAILURES {
            self.entries.remove(&key);
            return Change::Evicted(key);
        }
        self.entries.put(entry);
        Change::Put {
            put: entry,
            evicted: None,
        }
    }

    /// Holds back dials to `addr` until `at` (a later hold already set wins).
    pub fn hold_until(&mut self, addr: SocketAddr, at: Instant) {
        let e = self.retry_at.entry(addr).or_insert(at);
        *e = (*e).max(at);
    }

    /// Addresses to dial now, fewest failures first as `(failures, addr)`: not held back,
    /// not refused by `skip`, and not a node in `connected`. Forgets holds that are over.
    pub fn dial_candidates(
        &mut self,
        now: Instant,
        connected: impl Fn(&NodeId) -> bool,
        skip: impl Fn(&SocketAddr) -> bool,
    ) -> Vec<(u32, SocketAddr)> {
        self.retry_at.retain(|_, at| *at > now);
        self.entries
            .values()
            .map(|e| (e.failures, SocketAddr::from(e.addr)))
            .filter(|(_, a)| !skip(a) && !self.retry_at.contains_key(a))
            .filter(|(_, a)| self.node_at.get(a).is_none_or(|n| !connected(n)))
            .collect()
    }

    /// When the earliest hold ends, if any address is held back.
    pub fn next_release(&self) -> Option<Instant> {
        self.retry_at.values().min().copied()
    }
}

/// The entries, with a count of the failing ones.
#[derive(Debug, Default)]
pub(crate) struct Book {
    entries: BTreeMap<PeerAddr, AddrEntry>,
    /// Entries with `failures > 0`.
    failing: usize,
}

impl Book {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, addr: &PeerAddr) -> Option<&AddrEntry> {
        self.entries.get(addr)
    }

    pub fn values(&self) -> btree_map::Values<'_, PeerAddr, AddrEntry> {
        self.entries.values()
    }

    /// Whether any entry has failed at least once.
    pub fn any_failing(&self) -> bool {
        self.failing > 0
    }

    /// Inserts or replaces the entry for `e.addr`; returns the old one.
    pub fn put(&mut self, e: AddrEntry) -> Option<AddrEntry> {
        let old = self.entries.insert(e.addr, e);
        self.failing += usize::from(e.failures > 0);
        if let Some(o) = old {
            self.failing -= usize::from(o.failures > 0);
        }
        old
    }

    pub fn remove(&mut self, addr: &PeerAddr) -> Option<AddrEntry> {
        let old = self.entries.remove(addr)?;
        self.failing -= usize::from(old.failures > 0);
        Some(old)
    }

    /// The entry to evict first: most failures, then never seen.
    pub fn worst(&self) -> Option<&AddrEntry> {
        self.entries
            .values()
            .max_by_key(|e| (e.failures, e.last_seen.is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddr};

    fn entry(port: u16, failures: u32) -> AddrEntry {
        AddrEntry {
            addr: PeerAddr::from(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            failures,
            last_seen: None,
        }
    }

    fn sock(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    #[test]
    fn a_full_healthy_book_ignores_hearsay_but_takes_a_seen_address() {
        let mut b = AddrBook::new(2);
        let t = Instant(1_000_000);
        assert!(matches!(
            b.learn(sock(1), None, false, t),
            Change::Put { .. }
        ));
        assert!(matches!(
            b.learn(sock(2), None, false, t),
            Change::Put { .. }
        ));
        assert_eq!(
            b.learn(sock(3), None, false, t),
            Change::None,
            "hearsay, no room"
        );
        assert_eq!(
            b.learn(sock(1), None, false, t),
            Change::None,
            "known: unchanged"
        );
        match b.learn(sock(3), None, true, t) {
            Change::Put { put, evicted } => {
                assert_eq!(put.addr, PeerAddr::from(sock(3)));
                assert_eq!(put.last_seen, Some(t.as_micros()));
                assert!(evicted.is_some(), "a seen address makes room");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn hearsay_replaces_a_failing_entry_and_failures_evict_at_the_limit() {
        let mut b = AddrBook::new(1);
        let t = Instant::ZERO;
        b.learn(sock(1), None, false, t);
        assert!(matches!(b.dial_failed(sock(1)), Change::Put { .. }));
        assert_eq!(b.failures(sock(1)), 1);
        match b.learn(sock(2), None, false, t) {
            Change::Put { evicted, .. } => assert_eq!(evicted, Some(PeerAddr::from(sock(1)))),
            other => panic!("{other:?}"),
        }
        for _ in 1..MAX_ADDR_FAILURES {
            assert!(matches!(b.dial_failed(sock(2)), Change::Put { .. }));
        }
        assert_eq!(
            b.dial_failed(sock(2)),
            Change::Evicted(PeerAddr::from(sock(2)))
        );
        assert_eq!(b.len(), 0);
        assert_eq!(b.dial_failed(sock(2)), Change::None, "unknown now");
    }

    #[test]
    fn candidates_skip_held_back_addresses_and_connected_nodes() {
        let mut b = AddrBook::new(10);
        let t = Instant::ZERO;
        for p in 1..=3 {
            b.learn(sock(p), Some(NodeId([p as u8; 32])), false, t);
        }
        b.hold_until(sock(1), Instant(5_000_000));
        let connected = |n: &NodeId| *n == NodeId([2; 32]);
        let c = b.dial_candidates(t, connected, |_| false);
        assert_eq!(c, alloc::vec![(0, sock(3))]);
        assert_eq!(b.next_release(), Some(Instant(5_000_000)));
        let later = b.dial_candidates(Instant(5_000_000), connected, |_| false);
        assert_eq!(
            later,
            alloc::vec![(0, sock(1)), (0, sock(3))],
            "the hold is over"
        );
        assert_eq!(b.next_release(), None);
    }

    #[test]
    fn failing_count_follows_every_put_and_remove() {
        let mut b = Book::default();
        b.put(entry(1, 0));
        assert!(!b.any_failing());
        b.put(entry(1, 2));
        assert!(b.any_failing());
        b.put(entry(2, 1));
        b.put(entry(1, 0));
        assert!(b.any_failing(), "entry 2 still fails");
        assert_eq!(b.worst().map(|e| e.addr), Some(entry(2, 1).addr));
        b.remove(&entry(2, 0).addr);
        assert!(!b.any_failing());
        assert_eq!(b.remove(&entry(9, 0).addr), None);
        assert_eq!(b.len(), 1);
    }
}
