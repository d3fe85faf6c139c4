//! A connection's send side: two queues (control frames always before bulk ones) in front
//! of a transport window, and the flow-control decision after every change.
//!
//! The data lives in [`Conn`], where its fields sit on the cache lines a frame touches (see
//! the layout there); this is the only code that reads or writes them. The machine asks
//! for frames to hand over and for the [`Flow`] decision, and turns them into actions.

use super::conn::{Conn, ConnState, Frame};
use crate::wire::Payload;
use alloc::vec::Vec;

/// What the send queue asks of the machine after a change.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Flow {
    /// Nothing to do.
    Steady,
    /// More than half the bound is unsent: stop reading this peer (its requests are what
    /// fill our queue) until it drains.
    Pause,
    /// Down to a quarter of the bound: read again.
    Resume,
    /// Over the bound: the peer does not read. Drop it.
    Overflow,
}

impl Conn {
    /// Bytes queued in the machine plus bytes in the transport not yet written.
    pub fn unsent_bytes(&self) -> usize {
        self.queued + self.in_transport
    }

    /// Whether a control frame can go to the transport at once: nothing queued ahead, room
    /// in the window, the connection up. Then the caller hands it over and counts it with
    /// [`sent_directly`](Self::sent_directly); otherwise it [`push_control`](Self::push_control)s.
    #[inline]
    pub fn can_skip_queue(&self, window: usize) -> bool {
        self.control.is_empty()
            && self.bulk.is_empty()
            && self.in_transport < window
            && self.state != ConnState::Dialing
    }

    /// A frame of `len` bytes went to the transport without queueing.
    #[inline]
    pub fn sent_directly(&mut self, len: usize) {
        self.in_transport += len;
    }

    /// A control frame (ping, pong), after the control frames queued before it and before
    /// every bulk frame.
    pub fn push_control(&mut self, frame: Vec<u8>) {
        self.queued += frame.len();
        self.control.push_back(frame);
    }

    /// A bulk frame (responses, requests, gossip), after every control frame.
    pub fn push_bulk(&mut self, bytes: Payload, is_response: bool) {
        self.queued += bytes.len();
        if is_response {
            self.responses_queued += 1;
        }
        self.bulk.push_back(Frame { bytes, is_response });
    }

    /// The transport wrote `bytes` of what it was handed.
    pub fn written(&mut self, bytes: usize) {
        self.in_transport = self.in_transport.saturating_sub(bytes);
    }

    /// Whether a flush can be skipped: nothing queued, reading not paused, and the bytes in
    /// the transport within half of `max_queue` (so [`flow`](Self::flow) would say
    /// `Steady`). The usual `Written` ends here.
    pub fn idle_within(&self, max_queue: usize) -> bool {
        self.control.is_empty()
            && self.bulk.is_empty()
            && !self.read_paused
            && self.in_transport <= max_queue / 2
    }

    /// The next frame for the transport while the window has room (control first), counted
    /// in flight. `None` while dialing: nothing is sent before the connection is up.
    pub fn next_for_transport(&mut self, window: usize) -> Option<Payload> {
        if self.state == ConnState::Dialing || self.in_transport >= window {
            return None;
        }
        let bytes = if let Some(b) = self.control.pop_front() {
            Payload::Owned(b)
        } else {
            let f = self.bulk.pop_front()?;
            if f.is_response {
                self.responses_queued -= 1;
            }
            f.bytes
        };
        self.queued -= bytes.len();
        self.in_transport += bytes.len();
        Some(bytes)
    }

    /// The flow-control decision for a queue bound of `max_queue` bytes, with hysteresis
    /// (pause above ½, resume at ¼); records the pause state it asks for.
    pub fn flow(&mut self, max_queue: usize) -> Flow {
        let unsent = self.unsent_bytes();
        if unsent > max_queue {
            Flow::Overflow
        } else if !self.read_paused && unsent > max_queue / 2 {
            self.read_paused = true;
            Flow::Pause
        } else if self.read_paused && unsent <= max_queue / 4 {
            self.read_paused = false;
            Flow::Resume
        } else {
            Flow::Steady
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::io::Direction;
    use crate::time::Instant;
    use alloc::vec;

    fn conn(state: ConnState) -> Conn {
        let addr = core::net::SocketAddr::from(([127, 0, 0, 1], 7000));
        Conn::new(Direction::Outbound, addr, state, Instant::ZERO, 1 << 20)
    }

    #[test]
    fn a_control_frame_skips_an_empty_queue_and_waits_behind_a_full_one() {
        let mut c = conn(ConnState::Established);
        assert!(c.can_skip_queue(100));
        c.sent_directly(10);
        assert_eq!((c.in_transport, c.queued), (10, 0));
        assert!(!c.can_skip_queue(10), "window full");
        c.push_bulk(Payload::Owned(vec![2; 10]), false);
        assert!(!c.can_skip_queue(100), "bulk is queued ahead");
        c.push_control(vec![3; 10]);
        assert_eq!(c.unsent_bytes(), 30);
    }

    #[test]
    fn control_drains_before_bulk_and_only_while_the_window_has_room() {
        let mut c = conn(ConnState::Established);
        c.push_bulk(Payload::Owned(vec![2; 40]), true);
        c.push_control(vec![1; 40]);
        assert_eq!(
            c.next_for_transport(50).map(|p| p[0]),
            Some(1),
            "control first"
        );
        assert_eq!(c.next_for_transport(50).map(|p| p[0]), Some(2));
        assert_eq!(c.responses_queued, 0, "the response reached the transport");
        assert_eq!(c.in_transport, 80);
        c.push_bulk(Payload::Owned(vec![4; 10]), false);
        assert_eq!(c.next_for_transport(50), None, "window full");
        c.written(80);
        assert!(c.next_for_transport(50).is_some());
    }

    #[test]
    fn nothing_leaves_before_the_dial_completes() {
        let mut c = conn(ConnState::Dialing);
        assert!(!c.can_skip_queue(100));
        c.push_control(vec![1; 10]);
        assert_eq!(c.next_for_transport(100), None);
        c.state = ConnState::Handshaking;
        assert_eq!(c.next_for_transport(100).map(|p| p.len()), Some(10));
    }

    #[test]
    fn flow_pauses_above_half_resumes_at_a_quarter_and_overflows_past_the_bound() {
        let mut c = conn(ConnState::Established);
        c.push_bulk(Payload::Owned(vec![0; 60]), false);
        assert_eq!(c.flow(100), Flow::Pause);
        assert_eq!(c.flow(100), Flow::Steady, "already paused");
        let f = c.next_for_transport(1000).expect("a frame");
        c.written(f.len() - 20);
        assert_eq!(c.flow(100), Flow::Resume, "20 bytes unsent: at a quarter");
        c.push_bulk(Payload::Owned(vec![0; 90]), false);
        assert_eq!(c.flow(100), Flow::Overflow);
    }

    #[test]
    fn idle_within_is_exactly_when_a_flush_would_do_nothing() {
        let mut c = conn(ConnState::Established);
        assert!(c.idle_within(100));
        c.in_transport = 51;
        assert!(!c.idle_within(100), "past half: flow must be checked");
        c.in_transport = 0;
        c.push_bulk(Payload::Owned(vec![0; 1]), false);
        assert!(!c.idle_within(100));
    }
}
