//! The event queue: a min-heap ordered by (virtual time, sequence number).
//!
//! The sequence number makes the order total and insertion-stable, so two events at the same
//! instant always run in the order they were scheduled: that is what makes a run a function
//! of its seed. Events are small `Copy` values; pushing allocates only when the heap grows.

use crate::time::Micros;

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
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u128,
    ev: Ev,
}

/// Children per heap node. A 4-ary heap is half as deep as a binary one, and a node's
/// children are adjacent (two cache lines), so a pop touches fewer lines of a large queue
/// (10,000 nodes keep ~10^5 events pending) for about the same number of comparisons.
const ARITY: usize = 4;

#[inline(always)]
fn min2(i: usize, ki: u128, j: usize, kj: u128) -> (usize, u128) {
    if kj < ki {
        (j, kj)
    } else {
        (i, ki)
    }
}

/// A min-heap on `key`, with hole-based sifting (each level moves one entry, no swaps).
#[derive(Debug, Default)]
pub struct Queue {
    heap: Vec<Entry>,
    seq: u64,
}

impl Queue {
    #[inline]
    pub fn push(&mut self, at: Micros, ev: Ev) {
        self.seq += 1;
        let e = Entry {
            key: ((at as u128) << 64) | self.seq as u128,
            ev,
        };
        let mut i = self.heap.len();
        self.heap.push(e);
        while i > 0 {
            let parent = (i - 1) / ARITY;
            let p = self.heap[parent];
            if p.key <= e.key {
                break;
            }
            self.heap[i] = p;
            i = parent;
        }
        self.heap[i] = e;
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Micros, Ev)> {
        let last = self.heap.pop()?;
        let Some(&top) = self.heap.first() else {
            return Some(((last.key >> 64) as Micros, last.ev));
        };
        // Sift `last` down from the root.
        let len = self.heap.len();
        let mut i = 0;
        loop {
            let first = ARITY * i + 1;
            if first >= len {
                break;
            }
            let (best, best_key) = if let Some(ch) = self.heap.get(first..first + ARITY) {
                // All four children: a tournament (keys are unique, so no ties to break).
                let (a, ka) = min2(0, ch[0].key, 1, ch[1].key);
                let (b, kb) = min2(2, ch[2].key, 3, ch[3].key);
                let (m, km) = min2(a, ka, b, kb);
                (first + m, km)
            } else {
                let mut best = first;
                let mut best_key = self.heap[first].key;
                for c in first + 1..len {
                    let k = self.heap[c].key;
                    if k < best_key {
                        best = c;
                        best_key = k;
                    }
                }
                (best, best_key)
            };
            if last.key <= best_key {
                break;
            }
            self.heap[i] = self.heap[best];
            i = best;
        }
        self.heap[i] = last;
        Some(((top.key >> 64) as Micros, top.ev))
    }

    #[inline]
    pub fn peek_time(&self) -> Option<Micros> {
        self.heap.first().map(|e| (e.key >> 64) as Micros)
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
