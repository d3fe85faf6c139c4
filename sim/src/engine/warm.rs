//! Prefetching for the events in the queue's window (see [`prefetch`](super::prefetch)).
//!
//! An event reaches its memory through a chain of pointers: the connection names the node,
//! the node holds the model, the model's tables hold the connection state. A line can only be
//! read once it has arrived, so each event is warmed in stages as it moves up the window: the
//! furthest events get the lines their number alone locates, nearer ones the lines behind one
//! more pointer, and so on. Each stage reads only lines an earlier stage asked for, at least
//! one event earlier; where an address can be computed instead of loaded (a field of a node
//! slot), it is.
//!
//! Nothing here changes state, and the run does not depend on it: the same seed gives the same
//! trace hash with or without it.

use super::prefetch;
use super::queue::{Ev, AHEAD};
use super::Sim;
use crate::model::{Hop, NodeModel};

/// Stage of an event, by its distance from the far end of the window.
#[derive(Clone, Copy)]
enum Stage {
    /// The engine's connection (a delivery): located by the event. A timer has nothing here
    /// its node stage cannot compute directly.
    Engine,
    /// The receiving node's slot and its model's hot fields (addresses computed, not read:
    /// the model's are its first `NodeModel::HOT_BYTES`).
    Node,
    /// The model's tables (reads its hot fields).
    Tables,
    /// The model's connection state (reads its tables).
    Conn,
}

const STAGES: [Stage; 4] = [Stage::Engine, Stage::Node, Stage::Tables, Stage::Conn];

/// Ping checks (see `Sim::check_deadlines`) prefetched ahead: each one reads its
/// connection's end, by then long out of cache.
const CHECKS_AHEAD: usize = 2;

impl<M: NodeModel> Sim<M> {
    /// Asks for the memory of the events in the window, each as far as its stage allows, and
    /// for the ends the next ping checks will read.
    pub(super) fn warm(&self) {
        for (k, stage) in STAGES.iter().enumerate() {
            if let Some(ev) = self.queue.lookahead(AHEAD - 1 - k) {
                self.warm_event(ev, *stage);
            }
        }
        for &(_, c, e, _) in self.ping_checks.iter().take(CHECKS_AHEAD) {
            if let Some(conn) = self.conns.get(c as usize) {
                prefetch::line(&conn.ends[e as usize & 1].state);
            }
        }
    }

    fn warm_event(&self, ev: Ev, s: Stage) {
        let (node, mconn) = match ev {
            Ev::Pipe { conn, dir } => {
                let Some(c) = self.conns.get(conn as usize) else {
                    return;
                };
                if let Stage::Engine = s {
                    // Both ends and both pipes: a delivery reads one pipe and its receiving
                    // end, and the answer goes out on the other pipe.
                    return prefetch::object(c);
                }
                let d = dir as usize & 1;
                let r = 1 - d;
                if let Stage::Node = s {
                    prefetch::line(c.pipes[d].buf.ends().0);
                    prefetch::line(c.pipes[r].buf.ends().1);
                }
                let end = &c.ends[r];
                (end.node, Some(end.mconn))
            }
            Ev::Timer { node, .. } => (node, None),
            _ => return,
        };
        let Some(slot) = self.nodes.get(node as usize) else {
            return;
        };
        match s {
            Stage::Engine => {}
            Stage::Node => {
                prefetch::line(&slot.timer_at);
                prefetch::line(&slot.inc);
                prefetch::line(&slot.conns);
                prefetch::lines(&slot.model, M::HOT_BYTES);
            }
            Stage::Tables => {
                if let Some(mc) = mconn {
                    prefetch::line(slot.conns.slot_ptr(mc));
                }
                if let Some(m) = slot.model.as_ref() {
                    m.hot_lines(mconn, Hop::Tables, &mut |p, n| prefetch::lines(p, n));
                }
            }
            Stage::Conn => {
                if let Some(m) = slot.model.as_ref() {
                    m.hot_lines(mconn, Hop::Conn, &mut |p, n| prefetch::lines(p, n));
                }
            }
        }
    }
}
