//! The event queue: a binary heap ordered by (virtual time, sequence number).
//!
//! The sequence number makes the order total and insertion-stable, so two events at the same
//! instant always run in the order they were scheduled: that is what makes a run a function
//! of its seed. Events are small `Copy` values; pushing allocates only when the heap grows.

use crate::time::Micros;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Everything that can happen, addressed by index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ev {
    /// The front item of one direction of a connection is due.
    Pipe { conn: u32, dir: u8 },
    /// A node's `poll_timeout` is due (`gen` invalidates superseded timers).
    Timer { node: u32, gen: u32 },
    /// A SYN reaches the dialed address.
    Syn { conn: u32 },
    /// The fault plan's entry `idx`.
    Fault { idx: u32 },
    /// A pair has held more than one connection since `stamp`; check it is settled.
    PairCheck { pair: u32, stamp: u32 },
    /// A node starts its next application query.
    Query { node: u32 },
    /// All faults healed some time ago: everyone must be connected.
    Liveness,
}

/// A queued event. `key` is `(at << 64) | seq`: one integer comparison orders by time, then
/// by insertion.
#[derive(Debug)]
struct Entry {
    key: u128,
    ev: Ev,
}

impl PartialEq for Entry {
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
    // Reversed (BinaryHeap is a max-heap, we pop the earliest); spelled out so the heap's
    // sifting compiles to one integer comparison.
    #[inline]
    fn lt(&self, o: &Self) -> bool {
        self.key > o.key
    }
    #[inline]
    fn le(&self, o: &Self) -> bool {
        self.key >= o.key
    }
    #[inline]
    fn gt(&self, o: &Self) -> bool {
        self.key < o.key
    }
    #[inline]
    fn ge(&self, o: &Self) -> bool {
        self.key <= o.key
    }
}
impl Ord for Entry {
    #[inline]
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.cmp(&self.key)
    }
}

#[derive(Debug, Default)]
pub struct Queue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl Queue {
    #[inline]
    pub fn push(&mut self, at: Micros, ev: Ev) {
        self.seq += 1;
        self.heap.push(Entry {
            key: ((at as u128) << 64) | self.seq as u128,
            ev,
        });
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Micros, Ev)> {
        self.heap.pop().map(|e| ((e.key >> 64) as Micros, e.ev))
    }

    #[inline]
    pub fn peek_time(&self) -> Option<Micros> {
        self.heap.peek().map(|e| (e.key >> 64) as Micros)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_insertion_order() {
        let mut q = Queue::default();
        q.push(5, Ev::Liveness);
        q.push(1, Ev::Query { node: 1 });
        q.push(1, Ev::Query { node: 2 });
        q.push(0, Ev::Query { node: 3 });
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (0, Ev::Query { node: 3 }),
                (1, Ev::Query { node: 1 }),
                (1, Ev::Query { node: 2 }),
                (5, Ev::Liveness)
            ]
        );
    }

    #[test]
    fn matches_a_sorted_reference_under_random_pushes_and_pops() {
        let mut rng = crate::rng::Rng::derive(7, "queue-test");
        let mut q = Queue::default();
        let mut reference = std::collections::BTreeMap::new();
        let mut seq = 0u64;
        let mut now = 0;
        for round in 0..20_000u32 {
            if rng.below(3) > 0 || reference.is_empty() {
                let at = now + rng.below(50);
                seq += 1;
                let ev = Ev::Query { node: round };
                q.push(at, ev);
                reference.insert((at, seq), ev);
            } else {
                let ((at, _), ev) = reference.pop_first().unwrap();
                now = at;
                assert_eq!(q.peek_time(), Some(at));
                assert_eq!(q.pop(), Some((at, ev)));
            }
            assert_eq!(q.len(), reference.len());
        }
    }
}
