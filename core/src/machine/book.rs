//! The address book in memory: the entries, and how many of them are failing.
//!
//! The count exists for one hot path. A full book takes a hearsay address (one from a
//! `Peers` response) only by evicting an entry that is failing; with nothing failing, which
//! is the normal state of a healthy network, the answer is known without scanning the book.
//! Without it, every address of every `Peers` response scanned all `addr_book_max` entries.

use crate::store::AddrEntry;
use crate::wire::PeerAddr;
use alloc::collections::{btree_map, BTreeMap};

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
