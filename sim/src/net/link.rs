//! One TCP connection in the simulator: two ends, and a pipe per direction.
//!
//! A pipe holds the bytes in flight (`buf`) and a queue of [`Item`]s to deliver in order:
//! data chunks (split at random boundaries), the SYN-ACK that tells the dialer it is
//! connected, and FIN / RST. Only the front item has an event in the queue at any time, so a
//! connection costs one pending event per direction however much is in flight, and order is
//! kept by construction.

use crate::model::ModelConn;
use crate::net::small_deque::SmallDeque;
use crate::net::small_vec::SmallVec;
use crate::net::wire::{FrameInfo, Kind, Reassembler};
use crate::time::Micros;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Something travelling one way on a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Item {
    Data { len: u32, due: Micros },
    SynAck { due: Micros },
    Fin { due: Micros },
    Rst { due: Micros },
}

/// Only to fill unused inline slots.
impl Default for Item {
    fn default() -> Self {
        Item::Fin { due: 0 }
    }
}

impl Item {
    pub fn due(&self) -> Micros {
        match *self {
            Item::Data { due, .. }
            | Item::SynAck { due }
            | Item::Fin { due }
            | Item::Rst { due } => due,
        }
    }
}

/// A ping or pong in flight, for the observers: it is received once `end_offset` bytes of
/// the pipe have been delivered.
#[derive(Clone, Copy, Debug)]
pub struct FrameMeta {
    pub end_offset: u64,
    pub info: FrameInfo,
}

/// Only to fill unused inline slots.
impl Default for FrameMeta {
    fn default() -> Self {
        FrameMeta {
            end_offset: 0,
            info: FrameInfo {
                kind: Kind::Other,
                nonce: None,
            },
        }
    }
}

/// Bytes in flight: a `Vec` with a read offset, so pushes and pops are `memcpy`s and the
/// storage is reused (compacted lazily) instead of reallocated.
#[derive(Debug, Default)]
pub struct ByteQueue {
    buf: Vec<u8>,
    start: usize,
}

impl ByteQueue {
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The first `n` bytes (fewer if fewer are queued).
    #[inline]
    pub fn front(&self, n: usize) -> &[u8] {
        let n = n.min(self.len());
        &self.buf[self.start..self.start + n]
    }

    /// Drops the first `n` bytes.
    /// Where the next read starts and the next push lands (prefetch hints).
    #[inline]
    pub fn ends(&self) -> (*const u8, *const u8) {
        let p = self.buf.as_ptr();
        (p.wrapping_add(self.start), p.wrapping_add(self.buf.len()))
    }

    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
    }
}

/// Fields in the order an event reads them (`repr(C)` keeps it): the flags and the inline
/// items share the first cache line, the bytes and the watched frames follow. 64-byte
/// aligned, so both pipes of a connection start a line.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct Pipe {
    /// An event for the front item is in the queue.
    pub scheduled: bool,
    /// The front item is waiting for a partition or clog to heal.
    pub stalled: bool,
    /// The front item is data waiting for the receiver to resume reading.
    pub held: bool,
    /// Latest due time handed out, so chunks never overtake each other.
    pub last_due: Micros,
    /// Kept inline up to four (one write is at most `max_chunks` items).
    pub items: SmallDeque<Item, 4>,
    pub buf: ByteQueue,
    /// The pings and pongs in `buf` (other frames are not watched on arrival).
    pub frames: SmallDeque<FrameMeta, 2>,
    /// Bytes ever put in / taken out (frame offsets are in these units).
    pub pushed: u64,
    pub delivered: u64,
}

impl Pipe {
    pub fn in_flight(&self) -> usize {
        self.buf.len()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
        self.frames.clear();
    }
}

/// State of one end, as the engine sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EndState {
    /// The accepting end before the SYN arrived.
    Pending,
    /// The model holds this connection.
    Open,
    /// The model let go of it (closed it, or was told it closed), or its process died.
    Closed,
}

/// Fields in the order events read them (`repr(C)` keeps it): who owns the end, its state
/// and its send queue share the first cache line; the address (read at connect time only)
/// comes last. 64-byte aligned (its size is three lines), so each end starts a line.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct End {
    pub node: u32,
    /// The node's incarnation (boot count) that owns this end.
    pub inc: u32,
    pub mconn: ModelConn,
    pub state: EndState,
    /// The dialer has been told `Connected` (the acceptor is connected once it exists).
    pub connected: bool,
    /// The model reports an established peer on it.
    pub established: bool,
    pub paused: bool,
    /// Close requested: a FIN follows once `sendq` is flushed.
    pub fin_pending: bool,
    /// Bytes written by the model that did not fit in the socket buffer yet.
    pub sendq: VecDeque<u8>,
    /// The writer's stream, cut into frames for filters and observers.
    pub reasm: Reassembler,
    /// Nonces of pings received on this end and not yet answered.
    pub pings_in: SmallVec<u64, 2>,
    /// Pings this end sent and has not seen answered: (nonce, sent at).
    pub pings_out: SmallVec<(u64, Micros), 2>,
    /// Address of this end as the other side sees it.
    pub addr: SocketAddr,
}

impl End {
    pub fn new(node: u32, inc: u32, mconn: ModelConn, state: EndState, addr: SocketAddr) -> Self {
        End {
            node,
            inc,
            mconn,
            state,
            connected: false,
            established: false,
            paused: false,
            fin_pending: false,
            sendq: VecDeque::new(),
            reasm: Reassembler::default(),
            pings_in: SmallVec::default(),
            pings_out: SmallVec::default(),
            addr,
        }
    }

    pub fn is_open(&self) -> bool {
        self.state == EndState::Open
    }
}

/// One connection: `ends[0]` dialed, `ends[1]` accepted; `pipes[d]` carries `ends[d]`'s bytes
/// to `ends[1 - d]`.
///
/// Laid out for the cache (`repr(C)`; the ends are 64-byte aligned): a first line with the
/// flags every event reads and a few timestamps, then the ends and the pipes, each starting a
/// line, then what only the report reads.
#[derive(Debug)]
#[repr(C)]
pub struct Conn {
    /// The network ate the connection: nothing is delivered any more, nobody is told.
    pub blackhole: bool,
    /// Established at one end / at both ends, and when.
    pub live: bool,
    pub both_up: bool,
    /// A node moved its peer off this connection to another one of the same pair.
    pub superseded: bool,
    /// Index of the node pair (set once the acceptor is known).
    pub pair: Option<u32>,
    pub base_latency: Micros,
    pub created: Micros,
    pub first_live_at: Option<Micros>,
    pub both_up_at: Option<Micros>,
    pub ends: [End; 2],
    pub pipes: [Pipe; 2],
    /// Intervals when the connection was established at both ends.
    pub up_spans: Vec<(Micros, Micros)>,
    pub closed_at: Option<Micros>,
    pub close_reason: &'static str,
}

impl Conn {
    pub fn fully_closed(&self) -> bool {
        self.ends.iter().all(|e| e.state != EndState::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The layout the hot paths were arranged for (see `Conn`).
    #[test]
    fn ends_and_pipes_start_cache_lines() {
        assert_eq!(offset_of!(Conn, ends), 64);
        assert_eq!(size_of::<End>(), 192);
        assert_eq!(offset_of!(Conn, pipes) % 64, 0);
        assert_eq!(size_of::<Pipe>() % 64, 0);
    }
}
