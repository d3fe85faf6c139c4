//! Timers are data: an enum of kinds and a deadline table.
//!
//! The machine never asks the driver to set a timer; the driver asks the machine for its
//! earliest deadline ([`PeerMachine::poll_timeout`](crate::PeerMachine::poll_timeout)) and
//! calls `handle_timeout` when it passes. Each timer kind is armed at most once at a time;
//! re-arming moves its deadline.

use crate::id::{ConnId, NodeId};
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
}

/// The deadline table: where each armed timer is due, and a min-heap of `(deadline, timer)`
/// entries with lazy deletion.
///
/// The four per-connection timers live in one small array per connection (keyed by the cheap
/// `ConnId`), so arming and firing them never inserts into or removes from a tree; the rarer
/// timers live in a map. Re-arming or cancelling a timer leaves its old heap entry in place;
/// an entry is live only while the table still holds its exact `(deadline, generation)`. The
/// heap's top is kept live at all times, so [`next_deadline`](Self::next_deadline) is a peek.
/// Timers fire in `(deadline, timer)` order, exactly as a sorted set of live entries would
/// give them.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    /// `Handshake`, `Ping`, `Idle`, `Probe` of each connection; generation 0 means unarmed.
    per_conn: BTreeMap<ConnId, [(Instant, u64); 4]>,
    /// Every other timer.
    other: BTreeMap<Timer, (Instant, u64)>,
    heap: BinaryHeap<Reverse<Entry>>,
    /// Timers armed.
    armed: usize,
    /// Generation of the last arming; makes every heap entry unique. Never 0.
    gen: u64,
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

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        let gen = self.gen + 1;
        let old = match conn_slot(timer) {
            Some((conn, i)) => {
                let slots = self.per_conn.entry(conn).or_insert([UNARMED; 4]);
                let old = slots[i];
                if old.1 != 0 && old.0 == at {
                    // Same deadline: the live heap entry stays valid.
                    return;
                }
                slots[i] = (at, gen);
                old
            }
            None => match self.other.entry(timer) {
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
            },
        };
        self.gen = gen;
        self.heap.push(Reverse(Entry { at, timer, gen }));
        if old.1 == 0 {
            self.armed += 1;
        } else {
            self.invalidated(Entry {
                at: old.0,
                timer,
                gen: old.1,
            });
        }
    }

    pub fn cancel(&mut self, timer: Timer) {
        if let Some((at, gen)) = self.take(timer) {
            self.armed -= 1;
            self.invalidated(Entry { at, timer, gen });
        }
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.live(timer).map(|(at, _)| at)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let &Reverse(top) = self.heap.peek()?;
        if top.at > now {
            return None;
        }
        self.heap.pop();
        self.take(top.timer);
        self.armed -= 1;
        self.drop_stale_top();
        Some(top.timer)
    }

    /// Cancels every timer belonging to `conn`.
    pub fn cancel_conn(&mut self, conn: ConnId) {
        for t in [
            Timer::Handshake(conn),
            Timer::Ping(conn),
            Timer::Idle(conn),
            Timer::Probe(conn),
        ] {
            self.cancel(t);
        }
    }

    pub fn len(&self) -> usize {
        self.armed
    }

    /// The `(deadline, generation)` of an armed timer.
    #[inline]
    fn live(&self, timer: Timer) -> Option<(Instant, u64)> {
        match conn_slot(timer) {
            Some((conn, i)) => self.per_conn.get(&conn).map(|s| s[i]).filter(|s| s.1 != 0),
            None => self.other.get(&timer).copied(),
        }
    }

    /// Disarms `timer`, returning its `(deadline, generation)` if it was armed. A connection
    /// whose four timers are all disarmed leaves the table.
    fn take(&mut self, timer: Timer) -> Option<(Instant, u64)> {
        match conn_slot(timer) {
            Some((conn, i)) => {
                let btree_map::Entry::Occupied(mut e) = self.per_conn.entry(conn) else {
                    return None;
                };
                let slots = e.get_mut();
                let old = core::mem::replace(&mut slots[i], UNARMED);
                if slots.iter().all(|s| s.1 == 0) {
                    e.remove();
                }
                (old.1 != 0).then_some(old)
            }
            None => self.other.remove(&timer),
        }
    }

    /// `old` is no longer live: restore the live-top invariant, and compact the heap when
    /// dead entries outnumber live ones.
    fn invalidated(&mut self, old: Entry) {
        if self.heap.peek().is_some_and(|Reverse(top)| *top == old) {
            self.heap.pop();
            self.drop_stale_top();
        }
        if self.heap.len() > 2 * self.armed + 64 {
            let mut live = Vec::with_capacity(self.armed);
            for (&conn, slots) in &self.per_conn {
                for (i, &(at, gen)) in slots.iter().enumerate() {
                    if gen != 0 {
                        let timer = [
                            Timer::Handshake(conn),
                            Timer::Ping(conn),
                            Timer::Idle(conn),
                            Timer::Probe(conn),
                        ][i];
                        live.push(Reverse(Entry { at, timer, gen }));
                    }
                }
            }
            for (&timer, &(at, gen)) in &self.other {
                live.push(Reverse(Entry { at, timer, gen }));
            }
            self.heap = BinaryHeap::from(live);
        }
    }

    fn drop_stale_top(&mut self) {
        while let Some(&Reverse(top)) = self.heap.peek() {
            if self.live(top.timer) == Some((top.at, top.gen)) {
                return;
            }
            self.heap.pop();
        }
    }
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
                0 => Timer::Ping(ConnId(x >> 8 & 15)),
                1 => Timer::Idle(ConnId(x >> 8 & 15)),
                2 => Timer::Request(ConnId(x >> 8 & 3), x >> 12 & 7),
                3 => Timer::Handshake(ConnId(x >> 8 & 15)),
                _ => Timer::Sync,
            };
            match x >> 20 & 7 {
                0..=3 => {
                    let at = Instant(now + (x >> 24 & 63));
                    t.set(timer, at);
                    model.insert(timer, at);
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
