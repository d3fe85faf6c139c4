//! Bounded send queues, read backpressure, control-frame priority and liveness by any frame.

mod common;

use common::*;
use timed_core::wire::Message;
use timed_core::{Action, CloseReason, Config, GoodbyeReason, Input, MemStore, Network};

/// Small queues so a handful of block responses fill them.
fn tight_config() -> Config {
    let mut c = config(1, "127.0.0.1:7000", &[]);
    c.limits.max_block_bytes = 32 * 1024;
    c.max_response_bytes = 64 * 1024;
    c.max_send_queue = 256 * 1024;
    c.transport_window = 16 * 1024;
    c
}

fn chain_of(n: u64) -> MemStore {
    let mut s = MemStore::new(Network::Devnet);
    s.extend_empty(n);
    s
}

#[test]
fn a_peer_that_does_not_read_is_paused_then_dropped_as_a_slow_reader() {
    let mut s = Script::with(tight_config(), chain_of(3_000), 0);
    let _ = s.outputs();
    s.reading = false; // from now on nothing we are sent is ever written out
    let mut paused = false;
    let mut closed = false;
    for i in 0..40u64 {
        s.send(blocks_request(i + 1, 1 + i * 10, 1000));
        while let Some(a) = s.m.poll_action() {
            match a {
                Action::PauseRead { conn } if conn == s.conn => paused = true,
                Action::Close { conn } if conn == s.conn => closed = true,
                _ => {}
            }
        }
        if closed {
            break;
        }
        let queued = s.m.send_queue_len(s.conn).expect("still open");
        assert!(queued <= 256 * 1024 + 70 * 1024, "queue bounded: {queued}");
    }
    assert!(paused, "reading was paused before the queue overflowed");
    assert!(closed, "the slow reader was dropped");
    assert_eq!(
        s.m.status()
            .counters
            .conns_closed
            .get(CloseReason::Goodbye(GoodbyeReason::SlowReader)),
        1
    );
}

#[test]
fn reading_resumes_once_the_peer_catches_up() {
    let mut s = Script::with(tight_config(), chain_of(3_000), 0);
    let _ = s.outputs();
    let mut unwritten = 0usize;
    let mut paused = false;
    for i in 0..3u64 {
        s.send(blocks_request(i + 1, 1 + i * 700, 700));
        while let Some(a) = s.m.poll_action() {
            match a {
                Action::Send { data, .. } => unwritten += data.len(),
                Action::PauseRead { .. } => paused = true,
                _ => {}
            }
        }
    }
    assert!(paused);
    // The transport drains: everything handed over is reported written, repeatedly.
    let mut resumed = false;
    for _ in 0..100 {
        let n = std::mem::take(&mut unwritten);
        s.m.handle(
            s.now,
            Input::Written {
                conn: s.conn,
                bytes: n,
            },
        );
        while let Some(a) = s.m.poll_action() {
            match a {
                Action::Send { data, .. } => unwritten += data.len(),
                Action::ResumeRead { .. } => resumed = true,
                _ => {}
            }
        }
        if unwritten == 0 {
            break;
        }
    }
    assert!(resumed);
    assert_eq!(s.m.send_queue_len(s.conn), Some(0));
}

#[test]
fn a_pong_overtakes_bulk_frames_the_machine_still_holds() {
    let mut s = Script::with(tight_config(), chain_of(3_000), 0);
    let _ = s.outputs();
    s.reading = false;
    // Two large responses: the first fills the transport window, the rest waits in the machine.
    s.send(blocks_request(1, 1, 700));
    s.send(blocks_request(2, 701, 700));
    let _ = s.outputs();
    s.send(Message::Ping { nonce: 77 });
    let (msgs, _, _) = s.outputs();
    assert!(msgs.is_empty(), "nothing leaves while the window is full");
    // One window's worth is written: the next frame handed over is the pong.
    let window = s.m.config().transport_window;
    s.m.handle(
        s.now,
        Input::Written {
            conn: s.conn,
            bytes: window * 8,
        },
    );
    let (msgs, _, _) = s.outputs();
    assert!(
        matches!(msgs.first(), Some(Message::Pong { nonce: 77 })),
        "first out: {:?}",
        msgs.first().map(|m| m.kind())
    );
}

#[test]
fn a_peer_busy_sending_us_frames_is_never_dropped_for_late_pongs() {
    let mut s = Script::new(0);
    let _ = s.outputs();
    // The peer never answers pings, but sends a request every 20 s for an hour.
    let timeout = s.m.config().ping_timeout;
    for i in 0..180u64 {
        s.now += secs(20);
        s.m.handle_timeout(s.now);
        s.send(tip_request(i + 1));
        let (_, _, closed) = s.outputs();
        assert!(!closed, "dropped after {i} rounds despite traffic");
    }
    assert_eq!(s.m.status().peers.len(), 1);
    // Then it goes quiet: dropped exactly one ping timeout after its last frame.
    let last = s.now;
    s.now = last + timed_core::Duration::from_micros(timeout.as_micros() - 1);
    s.m.handle_timeout(s.now);
    assert!(!s.outputs().2);
    s.now = last + timeout;
    s.m.handle_timeout(s.now);
    assert!(s.outputs().2, "dropped at the ping timeout");
}
