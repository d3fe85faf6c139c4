//! Prefetching for the events in the queue's window (see [`prefetch`](super::prefetch)).
//!
//! An event reaches its memory through a chain of pointers: the connection names the node,
//! the node holds the model, the model's tables hold the connection state. A line can only be
//! asked for once the line that points to it has arrived, so each event is warmed in stages
//! as it moves up the window: the furthest events get the lines their number alone locates,
//! nearer ones the lines behind one more pointer, and so on. Each stage reads only lines the
//! previous stage asked for, one event earlier.
//!
//! Nothing here changes state, and the run does not depend on it: the same seed gives the same
//! trace hash with or without it.

use super::prefetch;
use super::queue::{Ev, AHEAD};
use super::Sim;
use crate::model::{Hop, NodeModel};

/// Stage of an event `k` places from the front of the window (0 runs next).
#[derive(Clone, Copy)]
enum Stage {
    /// The engine's connection or node slot: located by the event alone.
    Engine,
    /// The node the event is for, and its model's hot fields.
    Node,
    /// The model's tables.
    Tables,
    /// The model's connection state.
    Conn,
}

/// Events between two stages: time for the lines one stage asked for to arrive before the
/// next stage reads them.
const SPACING: usize = match option_env!("WARM_SPACING") {
    Some(_) => 2,
    None => 1,
};

fn stage(k: usize) -> Option<Stage> {
    let from_far_end = AHEAD - 1 - k;
    if from_far_end % SPACING != 0 {
        return None;
    }
    match from_far_end / SPACING {
        0 => Some(Stage::Engine),
        1 => Some(Stage::Node),
        2 => Some(Stage::Tables),
        3 => Some(Stage::Conn),
        _ => None,
    }
}

impl<M: NodeModel> Sim<M> {
    /// Asks for the memory of the events in the window, each as far as its stage allows.
    pub(super) fn warm(&self) {
        for k in 0..AHEAD {
            let Some(ev) = self.queue.lookahead(k) else {
                break;
            };
            if let Some(s) = stage(k) {
                self.warm_event(ev, s);
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
                let end = &c.ends[r];
                if let Stage::Node = s {
                    prefetch::line(c.pipes[d].buf.ends().0);
                    prefetch::line(c.pipes[r].buf.ends().1);
                }
                (end.node, Some(end.mconn))
            }
            Ev::Timer { node, .. } => (node, None),
            _ => return,
        };
        let Some(slot) = self.nodes.get(node as usize) else {
            return;
        };
        let out = &mut |p: *const u8, n: usize| prefetch::lines(p, n);
        match s {
            Stage::Engine => {
                prefetch::line(&slot.timer_at);
                prefetch::line(&slot.inc);
            }
            Stage::Node => {
                prefetch::line(&slot.timer_at);
                prefetch::line(&slot.inc);
                if let Some(m) = slot.model.as_ref() {
                    m.hot_lines(mconn, Hop::Model, out);
                }
            }
            Stage::Tables => {
                if let Some(mc) = mconn {
                    prefetch::line(slot.conns.slot_ptr(mc));
                }
                if let Some(m) = slot.model.as_ref() {
                    m.hot_lines(mconn, Hop::Tables, out);
                }
            }
            Stage::Conn => {
                if let Some(m) = slot.model.as_ref() {
                    m.hot_lines(mconn, Hop::Conn, out);
                }
            }
        }
    }
}
