//! Where the machine's hot state lives, for drivers that prefetch it.
//!
//! A driver that runs thousands of machines in one thread (the simulator) hands each event to
//! a machine whose memory has long left the cache, and pays a full memory latency for every
//! line the event touches, one after the other, because each pointer must be loaded before
//! the next can be followed. If it knows the next events in advance it can ask for those lines
//! early, a few events ahead, so that their misses overlap. This module says which lines, in
//! the order they can be found: [`Hop::Machine`] needs nothing, [`Hop::Tables`] reads only
//! what `Machine` named, [`Hop::Conn`] reads only what `Tables` named.
//!
//! Nothing here changes the machine or is needed for correctness: the addresses are only
//! hints, and a driver that ignores them loses nothing but time.

use super::conn::Conn;
use super::conn_map::ConnMap;
use super::PeerMachine;
use crate::id::ConnId;
use crate::store::Store;
use alloc::boxed::Box;
use core::mem::offset_of;

/// How far into the machine's pointers a [`PeerMachine::hot_lines`] call may look.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hop {
    /// The machine's own hot fields (a few cache lines at its start).
    Machine,
    /// The storage of its tables: connection index, action queue, spare buffers, and for a
    /// timer the timer index. Reads the machine's hot fields.
    Tables,
    /// The hot lines of one connection's state, or of every connection's if none is named
    /// (a timer: the ping tick visits them all). Reads the tables.
    Conn,
}

/// Lines of a connection's state worth fetching: those a ping, a pong or a `Written` touches
/// (see the layout of `Conn`).
const CONN_HOT_BYTES: usize = 320;
/// Connections whose state a timer event prefetches, at most.
const TIMER_CONNS_MAX: usize = 32;

impl<V> ConnMap<V> {
    /// The storage of the key and value vectors: `(address, bytes)`.
    pub(super) fn storage(&self, out: &mut impl FnMut(*const u8, usize)) {
        let (keys, vals) = self.raw();
        out(keys.as_ptr().cast(), size_of_val(keys));
        out(vals.as_ptr().cast(), size_of_val(vals));
    }
}

impl ConnMap<Box<Conn>> {
    fn conn_lines(&self, conn: Option<ConnId>, out: &mut impl FnMut(*const u8, usize)) {
        match conn {
            Some(id) => {
                if let Some(c) = self.get(&id) {
                    out((&**c as *const Conn).cast(), CONN_HOT_BYTES);
                }
            }
            None => {
                for c in self.values().take(TIMER_CONNS_MAX) {
                    out((&**c as *const Conn).cast(), CONN_HOT_BYTES);
                }
            }
        }
    }
}

impl<S: Store> PeerMachine<S> {
    /// Bytes at the start of a `PeerMachine` that every input touches: its hot fields (the
    /// struct is laid out hot-first). What [`Hop::Machine`] names, for drivers that locate a
    /// machine without reading anything.
    pub const HOT_BYTES: usize = offset_of!(PeerMachine<S>, cfg);

    /// Calls `out(address, bytes)` for each run of memory an input for `conn` (or a timer, if
    /// `None`) will touch first, as far as `hop` allows. See the [module docs](self): a hint for
    /// drivers that prefetch, with no effect on the machine.
    pub fn hot_lines(&self, conn: Option<ConnId>, hop: Hop, mut out: impl FnMut(*const u8, usize)) {
        match hop {
            Hop::Machine => out((self as *const Self).cast(), Self::HOT_BYTES),
            Hop::Tables => {
                self.conns.storage(&mut out);
                if conn.is_none() {
                    // Only a timer walks the timer tables; a frame in or out does not touch
                    // them (arming happens on the ping tick), and every line named for nothing
                    // takes a slot from the misses that matter.
                    self.timers.storage(&mut out);
                }
                let (front, back) = self.actions.as_slices();
                out(front.as_ptr().cast(), size_of_val(front).max(1));
                out(back.as_ptr().cast(), size_of_val(back));
                if let Some(buf) = self.spare.last() {
                    out(buf.as_ptr(), 1);
                }
                out(
                    self.spare.as_ptr().cast(),
                    size_of_val(self.spare.as_slice()),
                );
            }
            Hop::Conn => self.conns.conn_lines(conn, &mut out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Network;
    use crate::config::Config;
    use crate::id::NodeId;
    use crate::machine::Input;
    use crate::store::MemStore;
    use crate::time::Instant;
    use alloc::vec::Vec;
    use core::mem::size_of;

    fn inside(p: *const u8, base: *const u8, len: usize) -> bool {
        let (p, base) = (p as usize, base as usize);
        p >= base && p < base + len
    }

    #[test]
    fn the_lines_named_are_the_machine_and_its_connection() {
        let now = Instant::ZERO;
        let cfg = Config::new(Network::Devnet, NodeId([1; 32]), 7);
        let mut m = PeerMachine::new(cfg, MemStore::new(Network::Devnet), now).expect("config");
        let conn = m
            .accept(now, "127.0.0.1:9000".parse().expect("literal"))
            .expect("accepted");
        m.handle(now, Input::Connected { conn });

        let mut runs: Vec<(*const u8, usize)> = Vec::new();
        m.hot_lines(Some(conn), Hop::Machine, |p, n| runs.push((p, n)));
        let me = (&m as *const PeerMachine<MemStore>).cast::<u8>();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].0, me);
        assert!(runs[0].1 > 0 && runs[0].1 < size_of::<PeerMachine<MemStore>>());

        runs.clear();
        m.hot_lines(Some(conn), Hop::Conn, |p, n| runs.push((p, n)));
        let c: *const Conn = &**m.conns.get(&conn).expect("the connection");
        assert_eq!(runs, [(c.cast::<u8>(), CONN_HOT_BYTES)]);
        assert!(CONN_HOT_BYTES <= size_of::<Conn>());

        runs.clear();
        m.hot_lines(None, Hop::Conn, |p, n| runs.push((p, n)));
        assert_eq!(runs.len(), 1, "a timer names every connection");

        runs.clear();
        m.hot_lines(Some(ConnId::new(999)), Hop::Conn, |p, n| runs.push((p, n)));
        assert!(runs.is_empty(), "an unknown connection names nothing");

        runs.clear();
        m.hot_lines(Some(conn), Hop::Tables, |p, n| runs.push((p, n)));
        let (keys, _) = m.conns.raw();
        assert!(runs
            .iter()
            .any(|&(p, n)| inside(keys.as_ptr().cast(), p, n.max(1))));
    }
}
