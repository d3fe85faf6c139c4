//! The event queue: ordered by (virtual time, sequence number); a prefetch window, the
//! current millisecond's events and a calendar of one-millisecond slots behind them.
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
/// children are adjacent (two cache lines), so a pop touches fewer lines for about the same
/// number of comparisons.
const ARITY: usize = 4;

#[inline(always)]
fn min2(i: usize, ki: u128, j: usize, kj: u128) -> (usize, u128) {
    if kj < ki {
        (j, kj)
    } else {
        (i, ki)
    }
}

/// Events kept out of the heap, in order, ahead of everything else: the next `AHEAD` events
/// are known before they run, so the engine can prefetch what they will touch (see
/// `Sim::warm`). At 10 000 nodes every event lands on memory no recent event touched, and a
/// miss costs hundreds of nanoseconds; fetched several events early, those misses overlap.
pub const AHEAD: usize = 6;

/// Width of a calendar slot (see [`Queue`]): about one slot per simulated delivery latency
/// step, so the heap beside the run stays tiny.
const SLOT_WIDTH: Micros = crate::time::MS;
/// Slots in the calendar ring (65 s: a ping interval fits): events further ahead wait in the
/// overflow heap.
const SLOTS: u64 = 1 << 16;

/// The pending events, popped in `(time, sequence)` order.
///
/// Three tiers, so that the structure searched on every pop stays small and in cache:
/// - `ahead`: the next [`AHEAD`] events, sorted (a prefetch window, see above);
/// - every other event due before the horizon: the last slot poured, as a sorted `run`, and
///   `near`, a 4-ary heap of what was pushed for before the horizon since;
/// - a calendar of one-millisecond slots from the horizon on (unsorted vectors, O(1) append), and an
///   `overflow` heap beyond the ring.
///
/// A simulated node mostly schedules its next ping tick tens of seconds ahead and its
/// deliveries milliseconds ahead; with one heap, 10 000 nodes' ping ticks made every pop sift
/// through ~10⁵ entries (ticks and the deliveries of a ping burst) that the rest of the event
/// had pushed out of cache. Now a slot is sorted once when the horizon reaches it, and the
/// heap only holds what is scheduled within the current millisecond.
///
/// Invariants: `ahead` is sorted and orders before every other entry, and is full whenever
/// anything else is pending; `run` is sorted latest first; every entry of `run` and `near` is
/// due before the horizon, every calendar
/// and overflow entry at or after it; a calendar entry for slot `k` sits in
/// `slots[k % SLOTS]` and only if `k < horizon_slot + SLOTS`. The pop order is exactly that of
/// one heap over `(time, sequence)`.
#[derive(Debug)]
pub struct Queue {
    ahead: [Entry; AHEAD],
    ahead_len: usize,
    /// The last slot poured, sorted latest first (so the earliest pops off the end).
    run: Vec<Entry>,
    /// Events pushed, since that pour, for before the horizon.
    near: Heap,
    /// First slot not yet poured.
    horizon_slot: u64,
    slots: Vec<Vec<Entry>>,
    /// One bit per slot of the ring, set while it holds entries: the horizon jumps over empty
    /// slots a word at a time (a quiet half hour is 1.8 M one-millisecond slots).
    occupied: Vec<u64>,
    /// Entries in `slots`.
    in_slots: usize,
    overflow: Heap,
    seq: u64,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            ahead: [Entry {
                key: 0,
                ev: Ev::Liveness,
            }; AHEAD],
            ahead_len: 0,
            run: Vec::new(),
            near: Heap::default(),
            horizon_slot: 0,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: vec![0; (SLOTS / 64) as usize],
            in_slots: 0,
            overflow: Heap::default(),
            seq: 0,
        }
    }
}

impl Queue {
    #[inline]
    pub fn push(&mut self, at: Micros, ev: Ev) {
        self.seq += 1;
        let e = Entry {
            key: ((at as u128) << 64) | self.seq as u128,
            ev,
        };
        let n = self.ahead_len;
        if n < AHEAD {
            // Nothing else is pending: the window takes it.
            return self.insert_ahead(e);
        }
        let last = self.ahead[n - 1];
        if e.key < last.key {
            // Earlier than the window's last: it joins the window, which hands its last
            // entry (still ahead of everything else) to the tiers behind.
            self.ahead_len -= 1;
            self.insert_ahead(e);
            self.push_behind(last);
        } else {
            self.push_behind(e);
        }
    }

    /// Inserts into the window, which has room, keeping it sorted.
    #[inline]
    fn insert_ahead(&mut self, e: Entry) {
        let mut i = self.ahead_len;
        while i > 0 && self.ahead[i - 1].key > e.key {
            self.ahead[i] = self.ahead[i - 1];
            i -= 1;
        }
        self.ahead[i] = e;
        self.ahead_len += 1;
    }

    /// Files an entry behind the window: in the heap if due before the horizon, else in its
    /// calendar slot, else in the overflow.
    #[inline]
    fn push_behind(&mut self, e: Entry) {
        let slot = e.at() / SLOT_WIDTH;
        if slot < self.horizon_slot {
            self.near.push(e);
        } else if slot < self.horizon_slot + SLOTS {
            self.file_in_ring(slot, e);
        } else {
            self.overflow.push(e);
        }
    }

    #[inline]
    fn file_in_ring(&mut self, slot: u64, e: Entry) {
        let i = (slot % SLOTS) as usize;
        self.slots[i].push(e);
        self.occupied[i / 64] |= 1 << (i % 64);
        self.in_slots += 1;
    }

    /// The first occupied slot at or after the horizon (the ring holds some entry).
    fn next_occupied(&self) -> u64 {
        let start = (self.horizon_slot % SLOTS) as usize;
        let words = self.occupied.len();
        // The start word without the bits before `start`, then the others in ring order,
        // then the start word's low bits (a wrap-around).
        let first = self.occupied[start / 64] & (!0u64 << (start % 64));
        let found = if first != 0 {
            Some((start / 64) * 64 + first.trailing_zeros() as usize)
        } else {
            (1..=words).find_map(|step| {
                let w = (start / 64 + step) % words;
                let bits = self.occupied[w];
                (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
            })
        };
        let Some(i) = found else {
            return self.horizon_slot;
        };
        let distance = (i + SLOTS as usize - start) % SLOTS as usize;
        self.horizon_slot + distance as u64
    }

    /// The earliest entry behind the window.
    #[inline]
    fn pop_behind(&mut self) -> Option<Entry> {
        while self.run.is_empty() && self.near.is_empty() {
            if self.in_slots == 0 {
                // Skip the empty stretch up to the overflow's first entry (if any).
                let first = self.overflow.peek()?;
                self.horizon_slot = self.horizon_slot.max(first.at() / SLOT_WIDTH);
            } else {
                self.horizon_slot = self.next_occupied();
            }
            self.pour_next_slot();
        }
        match (self.run.last(), self.near.peek()) {
            (Some(r), Some(h)) if h.key < r.key => self.near.pop(),
            (Some(_), _) => self.run.pop(),
            (None, _) => self.near.pop(),
        }
    }

    /// Makes the slot at the horizon the sorted run (the run and the heap are empty) and
    /// advances the horizon by one slot, filing the overflow entries the ring now reaches.
    ///
    /// Sorting a whole slot at once reads and writes it in order, in cache; pushing its
    /// entries one by one into a heap cost a walk through cold heap levels per entry, and a
    /// simulation whose nodes all booted together has thousands of ping ticks in one second.
    fn pour_next_slot(&mut self) {
        let k = self.horizon_slot;
        let i = (k % SLOTS) as usize;
        // The run is empty: swap its capacity into the ring for the slot's next turn (unless
        // a burst made it large: a ring of mostly idle slots should not each hold one).
        std::mem::swap(&mut self.run, &mut self.slots[i]);
        self.occupied[i / 64] &= !(1 << (i % 64));
        if self.slots[i].capacity() > 256 {
            self.slots[i] = Vec::new();
        }
        self.in_slots -= self.run.len();
        self.run.sort_unstable_by_key(|e| std::cmp::Reverse(e.key));
        self.horizon_slot = k + 1;
        let reach = self.horizon_slot + SLOTS;
        while let Some(e) = self.overflow.peek() {
            let slot = e.at() / SLOT_WIDTH;
            if slot >= reach {
                break;
            }
            self.overflow.pop();
            if slot < self.horizon_slot {
                self.near.push(e);
            } else {
                self.file_in_ring(slot, e);
            }
        }
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Micros, Ev)> {
        if self.ahead_len == 0 {
            return None;
        }
        let top = self.ahead[0];
        self.ahead.copy_within(1..self.ahead_len, 0);
        self.ahead_len -= 1;
        if let Some(next) = self.pop_behind() {
            self.ahead[self.ahead_len] = next;
            self.ahead_len += 1;
        }
        Some((top.at(), top.ev))
    }

    /// The `k`-th event after the next one to pop (0 is the next), if it is in the window.
    #[inline]
    pub fn lookahead(&self, k: usize) -> Option<Ev> {
        self.ahead[..self.ahead_len].get(k).map(|e| e.ev)
    }

    #[inline]
    pub fn peek_time(&self) -> Option<Micros> {
        (self.ahead_len > 0).then(|| self.ahead[0].at())
    }

    pub fn len(&self) -> usize {
        self.ahead_len + self.run.len() + self.near.len() + self.in_slots + self.overflow.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ahead_len == 0
    }
}

impl Entry {
    #[inline]
    fn at(&self) -> Micros {
        (self.key >> 64) as Micros
    }
}

/// A min-heap on `key`, with hole-based sifting (each level moves one entry, no swaps).
#[derive(Debug, Default)]
struct Heap {
    v: Vec<Entry>,
}

impl Heap {
    fn len(&self) -> usize {
        self.v.len()
    }

    fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    fn peek(&self) -> Option<Entry> {
        self.v.first().copied()
    }

    #[inline]
    fn push(&mut self, e: Entry) {
        let mut i = self.v.len();
        self.v.push(e);
        while i > 0 {
            let parent = (i - 1) / ARITY;
            let p = self.v[parent];
            if p.key <= e.key {
                break;
            }
            self.v[i] = p;
            i = parent;
        }
        self.v[i] = e;
    }

    #[inline]
    fn pop(&mut self) -> Option<Entry> {
        let last = self.v.pop()?;
        let Some(&top) = self.v.first() else {
            return Some(last);
        };
        // Sift `last` down from the root.
        let len = self.v.len();
        let mut i = 0;
        loop {
            let first = ARITY * i + 1;
            if first >= len {
                break;
            }
            let (best, best_key) = if let Some(ch) = self.v.get(first..first + ARITY) {
                // All four children: a tournament (keys are unique, so no ties to break).
                let (a, ka) = min2(0, ch[0].key, 1, ch[1].key);
                let (b, kb) = min2(2, ch[2].key, 3, ch[3].key);
                let (m, km) = min2(a, ka, b, kb);
                (first + m, km)
            } else {
                let mut best = first;
                let mut best_key = self.v[first].key;
                for c in first + 1..len {
                    let k = self.v[c].key;
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
            self.v[i] = self.v[best];
            i = best;
        }
        self.v[i] = last;
        Some(top)
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

    /// Delays within the current slot, across calendar slots, and beyond the ring (the
    /// overflow), mixed; pushes outnumber pops, then everything drains.
    #[test]
    fn matches_a_sorted_reference_under_random_pushes_and_pops() {
        let mut rng = crate::rng::Rng::derive(7, "queue-test");
        let mut q = Queue::default();
        let mut reference = std::collections::BTreeMap::new();
        let mut seq = 0u64;
        let mut now = 0;
        let ring = SLOTS * SLOT_WIDTH;
        for round in 0..80_000u32 {
            let filling = round < 50_000;
            if filling && (rng.below(3) > 0 || reference.is_empty()) {
                let delay = match rng.below(10) {
                    0..=5 => rng.below(50),
                    6 | 7 => rng.below(5 * SLOT_WIDTH),
                    8 => rng.below(ring),
                    _ => ring + rng.below(3 * ring),
                };
                let at = now + delay;
                seq += 1;
                let ev = Ev::Query { node: round };
                q.push(at, ev);
                reference.insert((at, seq), ev);
            } else if let Some(((at, _), ev)) = reference.first_key_value().map(|(k, v)| (*k, *v)) {
                now = at;
                assert_eq!(q.peek_time(), Some(at));
                let window: Vec<Ev> = (0..AHEAD).map_while(|k| q.lookahead(k)).collect();
                let expected: Vec<Ev> = reference.values().take(AHEAD).copied().collect();
                assert_eq!(window, expected, "the window is the next events, in order");
                assert_eq!(q.pop(), Some((at, ev)));
                reference.pop_first();
            } else {
                assert_eq!(q.pop(), None);
                assert!(q.is_empty());
            }
            assert_eq!(q.len(), reference.len());
        }
        assert!(reference.is_empty(), "the test drains the queue");
    }
}
