//! The mempool: transactions waiting for a block, bounded in count and in bytes, in the
//! order they arrived (which is the order a produced block takes them in).

use crate::chain::{Tx, TxId};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Why a transaction was not added.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Refusal {
    Duplicate,
    Full,
}

#[derive(Debug)]
pub(crate) struct Mempool {
    /// By id: the arrival sequence number and the transaction.
    txs: BTreeMap<TxId, (u64, Tx)>,
    /// Arrival order: sequence number → id. Removal by id is O(log n), not a scan.
    order: BTreeMap<u64, TxId>,
    next_seq: u64,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl Mempool {
    pub fn new(max_count: usize, max_bytes: usize) -> Self {
        Mempool {
            txs: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            max_count,
            max_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Bytes of transaction data held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `tx` if it is new and fits both bounds; a full pool refuses rather than evicts
    /// (the oldest transactions are the next block's).
    pub fn insert(&mut self, id: TxId, tx: Tx) -> Result<(), Refusal> {
        if self.txs.contains_key(&id) {
            return Err(Refusal::Duplicate);
        }
        if self.txs.len() >= self.max_count || self.bytes + tx.0.len() > self.max_bytes {
            return Err(Refusal::Full);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += tx.0.len();
        self.order.insert(seq, id);
        self.txs.insert(id, (seq, tx));
        Ok(())
    }

    /// Drops `id` (it made it into a block); false if it was not here.
    pub fn remove(&mut self, id: &TxId) -> bool {
        let Some((seq, tx)) = self.txs.remove(id) else {
            return false;
        };
        self.order.remove(&seq);
        self.bytes -= tx.0.len();
        true
    }

    /// The oldest transactions, in arrival order, while `fits(count so far, bytes so far,
    /// next tx)` holds: a block's worth.
    pub fn oldest(&self, mut fits: impl FnMut(usize, usize, &Tx) -> bool) -> Vec<Tx> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for id in self.order.values() {
            let Some((_, tx)) = self.txs.get(id) else {
                continue;
            };
            if !fits(out.len(), bytes, tx) {
                break;
            }
            bytes += tx.0.len();
            out.push(tx.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn tx(n: u8, len: usize) -> (TxId, Tx) {
        let t = Tx(vec![n; len]);
        (t.id(), t)
    }

    #[test]
    fn keeps_arrival_order_and_refuses_duplicates() {
        let mut m = Mempool::new(10, 1000);
        for n in [3, 1, 2] {
            let (id, t) = tx(n, 10);
            assert_eq!(m.insert(id, t), Ok(()));
        }
        let (id, t) = tx(1, 10);
        assert_eq!(m.insert(id, t), Err(Refusal::Duplicate));
        let firsts: Vec<u8> = m.oldest(|_, _, _| true).iter().map(|t| t.0[0]).collect();
        assert_eq!(firsts, vec![3, 1, 2]);
    }

    #[test]
    fn is_bounded_by_count_and_by_bytes() {
        let mut m = Mempool::new(2, 1000);
        assert!(m.insert(tx(1, 1).0, tx(1, 1).1).is_ok());
        assert!(m.insert(tx(2, 1).0, tx(2, 1).1).is_ok());
        assert_eq!(m.insert(tx(3, 1).0, tx(3, 1).1), Err(Refusal::Full));

        let mut m = Mempool::new(100, 100);
        assert!(m.insert(tx(1, 60).0, tx(1, 60).1).is_ok());
        assert_eq!(m.insert(tx(2, 41).0, tx(2, 41).1), Err(Refusal::Full));
        assert!(m.insert(tx(3, 40).0, tx(3, 40).1).is_ok());
        assert_eq!(m.bytes(), 100);
    }

    #[test]
    fn removal_frees_count_and_bytes_and_keeps_the_order_of_the_rest() {
        let mut m = Mempool::new(3, 30);
        let txs: Vec<_> = (1..=3).map(|n| tx(n, 10)).collect();
        for (id, t) in &txs {
            m.insert(*id, t.clone()).unwrap();
        }
        assert!(m.remove(&txs[1].0));
        assert!(!m.remove(&txs[1].0), "already gone");
        assert_eq!((m.len(), m.bytes()), (2, 20));
        m.insert(tx(4, 10).0, tx(4, 10).1).unwrap();
        let firsts: Vec<u8> = m.oldest(|_, _, _| true).iter().map(|t| t.0[0]).collect();
        assert_eq!(firsts, vec![1, 3, 4]);
    }

    #[test]
    fn oldest_stops_where_the_block_is_full() {
        let mut m = Mempool::new(10, 1000);
        for n in 1..=5 {
            m.insert(tx(n, 10).0, tx(n, 10).1).unwrap();
        }
        let block = m.oldest(|count, bytes, next| count < 3 && bytes + next.0.len() <= 25);
        assert_eq!(block.len(), 2, "the third would pass 25 bytes");
    }
}
