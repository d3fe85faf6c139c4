//! Timers are data: an enum of kinds and a deadline table.
//!
//! The machine never asks the driver to set a timer; the driver asks the machine for its
//! earliest deadline ([`PeerMachine::poll_timeout`](crate::PeerMachine::poll_timeout)) and
//! calls `handle_timeout` when it passes. Each timer kind is armed at most once at a time;
//! re-arming moves its deadline.

use super::conn_map::ConnMap;
use crate::id::{ConnId, NodeId};
use crate::protocol::{ProtocolId, TopicId};
use crate::time::Instant;
use alloc::collections::{btree_map, BTreeMap, BinaryHeap};
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};
use core::net::SocketAddr;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) enum Timer {
    /// Connect + `Hello` must complete by then.
    Handshake(ConnId),
    /// Time to send the next ping.
    Ping(ConnId),
    /// Checks whether anything arrived within the ping timeout. Armed lazily: when it fires
    /// early because frames arrived since, it is re-armed from the last frame.
    Idle(ConnId),
    /// A connection being probed because another one claims its node id.
    Probe(ConnId),
    /// An outstanding request's deadline.
    Request(ConnId, u64),
    /// Next attempt to dial an address.
    Redial(SocketAddr),
    /// A peer whose connection was closed as a duplicate, waiting for its other connection.
    Limbo(NodeId),
    /// Periodic work of the chain layer: sync progress and stall checks.
    Sync,
    /// Ask peers for addresses; top up outbound connections.
    PeerExchange,
    /// Produce a block (devnet).
    Produce,
    /// Dial more addresses from the book, once their backoff allows.
    TopUp,
    /// The oldest request of an application protocol still unanswered is due.
    Answer(ProtocolId),
    /// The oldest message of a topic still awaiting its verdict is due.
    Validation(TopicId),
}

/// The deadline table: where each armed timer is due, and min-heaps of `(deadline, timer)`
/// entries with lazy deletion ([`LazyHeap`], one per kind of entry).
///
/// The four per-connection timers live in one small array per connection (keyed by the cheap
/// `ConnId`), so arming and firing them never inserts into or removes from a tree; the rarer
/// timers live in a map. A connection's array stays in the table until
/// [`cancel_conn`](Self::cancel_conn), even while all four are disarmed: the ping tick fires
/// and re-arms on every interval, and dropping and re-adding the array each time was most of
/// the cost of a tick.
///
/// Per-connection timers have a heap of their own with compact entries (no `Timer` enum to
/// move or compare while sifting): they are nearly all the heap traffic. Both heaps order by
/// `(deadline, timer)`, and every per-connection kind sorts before every other kind (it comes
/// first in `Timer`), so on equal deadlines the per-connection heap goes first: together
/// they fire in exactly the order of one sorted set of live entries.
///
/// Re-arming or cancelling a timer leaves its old heap entry in place; an entry is live only
/// while the table still holds its exact `(deadline, generation)`. Each heap's top is kept
/// live at all times, so [`next_deadline`](Self::next_deadline) is two peeks.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    /// `Handshake`, `Ping`, `Idle`, `Probe` of each connection; generation 0 means unarmed.
    per_conn: ConnMap<[(Instant, u64); 4]>,
    /// Every other timer.
    other: BTreeMap<Timer, (Instant, u64)>,
    conn_heap: LazyHeap<ConnEntry>,
    other_heap: LazyHeap<Entry>,
    /// Generation of the last arming; makes every heap entry unique. Never 0.
    gen: u64,
}

impl TimerTable {
    #[cfg(feature = "sim")]
    /// The storage every connection timer operation touches: the per-connection table and
    /// the connection heap, as `(address, bytes)` (for [`hot`](super::hot)).
    pub fn storage(&self, out: &mut impl FnMut(*const u8, usize)) {
        self.per_conn.storage(out);
        let heap = self.conn_heap.heap.as_slice();
        out(heap.as_ptr().cast(), core::mem::size_of_val(heap).min(256));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Entry {
    at: Instant,
    timer: Timer,
    gen: u64,
}

impl Ord for Entry {
    /// `(at, timer, gen)`, with the common case (different deadlines) decided inline.
    #[inline]
    fn cmp(&self, o: &Self) -> Ordering {
        match self.at.cmp(&o.at) {
            Ordering::Equal => (self.timer, self.gen).cmp(&(o.timer, o.gen)),
            ord => ord,
        }
    }
}

impl PartialOrd for Entry {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// A per-connection timer's heap entry. `(slot, conn)` orders exactly as the `Timer` it
/// stands for: the slot is the variant's position in `Timer`, the connection its payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct ConnEntry {
    at: Instant,
    slot: u8,
    conn: ConnId,
    gen: u64,
}

impl Ord for ConnEntry {
    /// `(at, slot, conn, gen)`, with the common case (different deadlines) decided first.
    #[inline]
    fn cmp(&self, o: &Self) -> Ordering {
        match self.at.cmp(&o.at) {
            Ordering::Equal => (self.slot, self.conn, self.gen).cmp(&(o.slot, o.conn, o.gen)),
            ord => ord,
        }
    }
}

impl PartialOrd for ConnEntry {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// A heap entry's deadline.
trait Deadline: Ord + Copy {
    fn at(&self) -> Instant;
}

impl Deadline for Entry {
    #[inline]
    fn at(&self) -> Instant {
        self.at
    }
}

impl Deadline for ConnEntry {
    #[inline]
    fn at(&self) -> Instant {
        self.at
    }
}

/// A min-heap of timer entries with lazy deletion. An entry is live only while the table
/// still holds its exact `(deadline, generation)`; the caller says which are (`is_live`).
/// The top is kept live at all times, and its deadline is kept beside the heap: the driver
/// asks for the next deadline after every call, and reading it from here spares a cache miss
/// on the heap's storage.
#[derive(Debug)]
struct LazyHeap<E> {
    heap: BinaryHeap<Reverse<E>>,
    /// Live entries.
    armed: usize,
    /// The top's deadline.
    next: Option<Instant>,
}

impl<E> Default for LazyHeap<E> {
    fn default() -> Self {
        LazyHeap {
            heap: BinaryHeap::new(),
            armed: 0,
            next: None,
        }
    }
}

impl<E: Deadline> LazyHeap<E> {
    /// A new live entry (when it re-arms a timer, the caller then invalidates the old one).
    #[inline]
    fn push(&mut self, e: E) {
        self.heap.push(Reverse(e));
    }

    #[inline]
    fn top(&self) -> Option<E> {
        self.heap.peek().map(|&Reverse(e)| e)
    }

    /// The top fired: drop it and restore a live top.
    fn pop_fired(&mut self, is_live: impl Fn(&E) -> bool) {
        self.heap.pop();
        self.armed -= 1;
        self.drop_stale(is_live);
        self.changed();
    }

    /// `old` is no longer live: restore the live-top invariant, and rebuild from `live` when
    /// dead entries outnumber live ones (so re-arming forever never grows the heap).
    fn invalidated(
        &mut self,
        old: E,
        is_live: impl Fn(&E) -> bool,
        live: impl FnOnce(usize) -> Vec<E>,
    ) {
        if self.heap.peek().is_some_and(|Reverse(top)| *top == old) {
            self.heap.pop();
            self.drop_stale(is_live);
        }
        if self.heap.len() > 2 * self.armed + 64 {
            let entries = live(self.armed);
            self.heap = entries.into_iter().map(Reverse).collect();
        }
    }

    fn drop_stale(&mut self, is_live: impl Fn(&E) -> bool) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if is_live(top) {
                return;
            }
            self.heap.pop();
        }
    }

    #[inline]
    fn changed(&mut self) {
        self.next = self.heap.peek().map(|Reverse(e)| e.at());
    }
}

const UNARMED: (Instant, u64) = (Instant(0), 0);

/// The connection and array slot of a per-connection timer.
#[inline]
fn conn_slot(timer: Timer) -> Option<(ConnId, usize)> {
    match timer {
        Timer::Handshake(c) => Some((c, 0)),
        Timer::Ping(c) => Some((c, 1)),
        Timer::Idle(c) => Some((c, 2)),
        Timer::Probe(c) => Some((c, 3)),
        _ => None,
    }
}

/// The inverse of [`conn_slot`].
#[inline]
fn conn_timer(conn: ConnId, slot: usize) -> Timer {
    match slot {
        0 => Timer::Handshake(conn),
        1 => Timer::Ping(conn),
        2 => Timer::Idle(conn),
        _ => Timer::Probe(conn),
    }
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        match conn_slot(timer) {
            Some((conn, i)) => self.set_conn(conn, i, at),
            None => self.set_other(timer, at),
        }
    }

    /// Arms slot `i` of `conn`'s four timers.
    fn set_conn(&mut self, conn: ConnId, i: usize, at: Instant) {
        let gen = self.gen + 1;
        let slots = self.per_conn.get_or_insert_with(conn, || [UNARMED; 4]);
        let old = slots[i];
        if old.1 != 0 && old.0 == at {
            // Same deadline: the live heap entry stays valid.
            return;
        }
        slots[i] = (at, gen);
        self.gen = gen;
        let slot = i as u8;
        self.conn_heap.push(ConnEntry {
            at,
            slot,
            conn,
            gen,
        });
        if old.1 == 0 {
            self.conn_heap.armed += 1;
        } else {
            self.conn_invalidated(ConnEntry {
                at: old.0,
                slot,
                conn,
                gen: old.1,
            });
        }
        self.conn_heap.changed();
    }

    /// Arms a timer that is not one connection's four.
    fn set_other(&mut self, timer: Timer, at: Instant) {
        let gen = self.gen + 1;
        let old = match self.other.entry(timer) {
            btree_map::Entry::Occupied(mut e) => {
                let old = *e.get();
                if old.0 == at {
                    return;
                }
                e.insert((at, gen));
                old
            }
            btree_map::Entry::Vacant(e) => {
                e.insert((at, gen));
                UNARMED
            }
        };
        self.gen = gen;
        self.other_heap.push(Entry { at, timer, gen });
        if old.1 == 0 {
            self.other_heap.armed += 1;
        } else {
            self.other_invalidated(Entry {
                at: old.0,
                timer,
                gen: old.1,
            });
        }
        self.other_heap.changed();
    }

    pub fn cancel(&mut self, timer: Timer) {
        match conn_slot(timer) {
            Some((conn, i)) => {
                let Some(slots) = self.per_conn.get_mut(&conn) else {
                    return;
                };
                let (at, gen) = core::mem::replace(&mut slots[i], UNARMED);
                if gen != 0 {
                    self.conn_heap.armed -= 1;
                    let slot = i as u8;
                    self.conn_invalidated(ConnEntry {
                        at,
                        slot,
                        conn,
                        gen,
                    });
                    self.conn_heap.changed();
                }
            }
            None => {
                if let Some((at, gen)) = self.other.remove(&timer) {
                    self.other_heap.armed -= 1;
                    self.other_invalidated(Entry { at, timer, gen });
                    self.other_heap.changed();
                }
            }
        }
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.live(timer).map(|(at, _)| at)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.conn_heap.next, self.other_heap.next) {
            (Some(c), Some(o)) => Some(c.min(o)),
            (c, o) => c.or(o),
        }
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let other_at = self.other_heap.next;
        match self.conn_heap.top() {
            // On equal deadlines the per-connection timer sorts first (see the type's doc).
            Some(top) if other_at.is_none_or(|o| top.at <= o) => {
                if top.at > now {
                    return None;
                }
                if let Some(slots) = self.per_conn.get_mut(&top.conn) {
                    slots[top.slot as usize] = UNARMED;
                }
                let per_conn = &self.per_conn;
                self.conn_heap.pop_fired(|e| conn_live(per_conn, e));
                Some(conn_timer(top.conn, top.slot as usize))
            }
            _ => {
                let top = self.other_heap.top()?;
                if top.at > now {
                    return None;
                }
                self.other.remove(&top.timer);
                let other = &self.other;
                self.other_heap.pop_fired(|e| other_live(other, e));
                Some(top.timer)
            }
        }
    }

    /// Cancels every timer belonging to `conn`, and forgets the connection.
    pub fn cancel_conn(&mut self, conn: ConnId) {
        let Some(slots) = self.per_conn.remove(&conn) else {
            return;
        };
        for (i, &(at, gen)) in slots.iter().enumerate() {
            if gen != 0 {
                self.conn_heap.armed -= 1;
                let slot = i as u8;
                self.conn_invalidated(ConnEntry {
                    at,
                    slot,
                    conn,
                    gen,
                });
            }
        }
        self.conn_heap.changed();
    }

    pub fn len(&self) -> usize {
        self.conn_heap.armed + self.other_heap.armed
    }

    /// The `(deadline, generation)` of an armed timer.
    #[inline]
    fn live(&self, timer: Timer) -> Option<(Instant, u64)> {
        match conn_slot(timer) {
            Some((conn, i)) => self.per_conn.get(&conn).map(|s| s[i]).filter(|s| s.1 != 0),
            None => self.other.get(&timer).copied(),
        }
    }

    fn conn_invalidated(&mut self, old: ConnEntry) {
        let per_conn = &self.per_conn;
        let live = |armed: usize| {
            let mut live = Vec::with_capacity(armed);
            for (&conn, slots) in per_conn.iter() {
                for (i, &(at, gen)) in slots.iter().enumerate() {
                    if gen != 0 {
                        let slot = i as u8;
                        live.push(ConnEntry {
                            at,
                            slot,
                            conn,
                            gen,
                        });
                    }
                }
            }
            live
        };
        self.conn_heap
            .invalidated(old, |e| conn_live(per_conn, e), live);
    }

    fn other_invalidated(&mut self, old: Entry) {
        let other = &self.other;
        let live = |_| {
            other
                .iter()
                .map(|(&timer, &(at, gen))| Entry { at, timer, gen })
                .collect()
        };
        self.other_heap
            .invalidated(old, |e| other_live(other, e), live);
    }
}

#[inline]
fn conn_live(per_conn: &ConnMap<[(Instant, u64); 4]>, e: &ConnEntry) -> bool {
    per_conn.get(&e.conn).map(|s| s[e.slot as usize]) == Some((e.at, e.gen))
}

#[inline]
fn other_live(other: &BTreeMap<Timer, (Instant, u64)>, e: &Entry) -> bool {
    other.get(&e.timer) == Some(&(e.at, e.gen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    /// The table against the obvious model (a sorted set of live entries), over a long
    /// pseudo-random sequence of sets, cancels and pops.
    #[test]
    fn fires_in_the_same_order_as_a_sorted_set() {
        let mut t = TimerTable::default();
        let mut model: BTreeMap<Timer, Instant> = BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = 0u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let timer = match x % 5 {
                0 => Timer::Ping(ConnId::new(x >> 8 & 15)),
                1 => Timer::Idle(ConnId::new(x >> 8 & 15)),
                2 => Timer::Request(ConnId::new(x >> 8 & 3), x >> 12 & 7),
                3 => Timer::Handshake(ConnId::new(x >> 8 & 15)),
                _ => Timer::Sync,
            };
            match x >> 20 & 7 {
                0..=3 => {
                    let at = Instant(now + (x >> 24 & 63));
                    t.set(timer, at);
                    model.insert(timer, at);
                }
                4 if x >> 30 & 7 == 0 => {
                    let conn = ConnId::new(x >> 8 & 15);
                    t.cancel_conn(conn);
                    model.retain(|k, _| conn_slot(*k).is_none_or(|(c, _)| c != conn));
                }
                4 => {
                    t.cancel(timer);
                    model.remove(&timer);
                }
                _ => {
                    now += x >> 24 & 7;
                    let mut fired = Vec::new();
                    while let Some(f) = t.pop_due(Instant(now)) {
                        fired.push(f);
                    }
                    let sorted: BTreeSet<(Instant, Timer)> =
                        model.iter().map(|(&k, &v)| (v, k)).collect();
                    let want: Vec<Timer> = sorted
                        .iter()
                        .take_while(|(at, _)| *at <= Instant(now))
                        .map(|&(_, k)| k)
                        .collect();
                    for k in &want {
                        model.remove(k);
                    }
                    assert_eq!(fired, want);
                }
            }
            assert_eq!(t.len(), model.len());
            assert_eq!(
                t.next_deadline(),
                model.values().min().copied(),
                "next deadline"
            );
        }
    }
}
