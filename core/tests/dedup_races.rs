//! The one race of the dedup rule that a uniform-latency network never shows: the kept
//! connection's `Hello` arriving after the duplicate's `Goodbye`. Driven by hand so the
//! order of deliveries is exact.

mod common;

use common::*;
use std::collections::VecDeque;
use timed_core::wire::{Decoded, FrameDecoder, GoodbyeReason, Message};
use timed_core::{Action, ConnId, Input, Instant, MemStore, NodeEvent, PeerMachine};

/// Frames a machine sent, per connection, not yet delivered.
#[derive(Default)]
struct Outbox {
    frames: Vec<(ConnId, Vec<u8>)>,
    dials: Vec<ConnId>,
    closed: Vec<ConnId>,
    events: Vec<NodeEvent>,
}

fn pump(m: &mut PeerMachine<MemStore>, now: Instant, out: &mut Outbox) {
    while let Some(a) = m.poll_action() {
        match a {
            Action::Send { conn, data } => {
                m.handle(
                    now,
                    Input::Written {
                        conn,
                        bytes: data.len(),
                    },
                );
                let mut d = FrameDecoder::new(u32::MAX);
                d.push(&data);
                while let Ok(Some(p)) = d.next_frame() {
                    let mut f = Vec::new();
                    timed_core::wire::encode_frame(p, &mut f);
                    out.frames.push((conn, f));
                }
            }
            Action::Dial { conn, .. } => out.dials.push(conn),
            Action::Close { conn } => out.closed.push(conn),
            Action::Notify(e) => out.events.push(e),
            _ => {}
        }
    }
}

fn take(out: &mut Outbox, conn: ConnId, pred: impl Fn(&Message) -> bool) -> Vec<u8> {
    let i = out
        .frames
        .iter()
        .position(|(c, f)| {
            *c == conn && matches!(Message::decode(&f[4..]), Ok(Decoded::Known(ref m)) if pred(m))
        })
        .expect("frame present");
    out.frames.remove(i).1
}

#[test]
fn a_duplicate_goodbye_that_overtakes_the_kept_connections_hello_does_not_flap_the_peer() {
    let now = Instant::ZERO;
    // B has the smaller id, so both ends keep the connection B initiated.
    let mut a = machine(config(9, "127.0.0.1:7000", &["127.0.0.1:7001"]), now);
    let mut b = machine(config(1, "127.0.0.1:7001", &["127.0.0.1:7000"]), now);
    let (mut oa, mut ob) = (Outbox::default(), Outbox::default());
    pump(&mut a, now, &mut oa);
    pump(&mut b, now, &mut ob);
    let (a1, b2) = (oa.dials[0], ob.dials[0]);
    // Both connects succeed: a1 ↔ b1 (A initiated), b2 ↔ a2 (B initiated).
    let b1 = b.accept(now, addr("127.0.0.1:40001")).expect("accept");
    let a2 = a.accept(now, addr("127.0.0.1:40002")).expect("accept");
    a.handle(now, Input::Connected { conn: a1 });
    b.handle(now, Input::Connected { conn: b2 });
    pump(&mut a, now, &mut oa);
    pump(&mut b, now, &mut ob);

    // B hears A's Hello on b1 (the connection A initiated) and makes it the peer's.
    let hello = take(&mut oa, a1, |m| matches!(m, Message::Hello(_)));
    b.handle(
        now,
        Input::BytesIn {
            conn: b1,
            data: &hello,
        },
    );
    pump(&mut b, now, &mut ob);
    assert_eq!(b.peer_conn(id(9)), Some(b1));

    // A hears both of B's Hellos, resolves the simultaneous open, and says Goodbye on a1.
    let h_a1 = take(&mut ob, b1, |m| matches!(m, Message::Hello(_)));
    let h_a2 = take(&mut ob, b2, |m| matches!(m, Message::Hello(_)));
    a.handle(
        now,
        Input::BytesIn {
            conn: a1,
            data: &h_a1,
        },
    );
    a.handle(
        now,
        Input::BytesIn {
            conn: a2,
            data: &h_a2,
        },
    );
    pump(&mut a, now, &mut oa);
    assert_eq!(
        a.peer_conn(id(1)),
        Some(a2),
        "A keeps the connection B initiated"
    );
    assert!(oa.closed.contains(&a1));

    // The Goodbye on a1 reaches B *before* A's Hello on b2.
    let bye = take(
        &mut oa,
        a1,
        |m| matches!(m, Message::Goodbye(g) if g.reason == GoodbyeReason::Duplicate),
    );
    b.handle(
        now,
        Input::BytesIn {
            conn: b1,
            data: &bye,
        },
    );
    pump(&mut b, now, &mut ob);
    assert_eq!(b.peer_conn(id(9)), None, "b1 is gone");
    let hello2 = take(&mut oa, a2, |m| matches!(m, Message::Hello(_)));
    let t = now + secs(1);
    b.handle(
        t,
        Input::BytesIn {
            conn: b2,
            data: &hello2,
        },
    );
    pump(&mut b, t, &mut ob);

    assert_eq!(
        b.peer_conn(id(9)),
        Some(b2),
        "B adopted the kept connection"
    );
    let downs = ob
        .events
        .iter()
        .filter(|e| matches!(e, NodeEvent::PeerDown { .. }))
        .count();
    let ups = ob
        .events
        .iter()
        .filter(|e| matches!(e, NodeEvent::PeerUp { .. }))
        .count();
    let moved = ob
        .events
        .iter()
        .filter(|e| matches!(e, NodeEvent::PeerMoved { .. }))
        .count();
    assert_eq!(
        (ups, downs, moved),
        (1, 0, 1),
        "events at B: {:?}",
        ob.events
    );
    assert_eq!(b.status().counters.reconnects, 0);
    // No redial was scheduled: B's only dial is the first one.
    let mut later = VecDeque::new();
    // (Nothing is delivered any more, so stop before the ping timeout would rightly fire.)
    for s in 1..80u64 {
        let t = now + secs(s);
        b.handle_timeout(t);
        while let Some(act) = b.poll_action() {
            if matches!(act, Action::Dial { .. }) {
                later.push_back(s);
            }
        }
    }
    assert!(later.is_empty(), "redials: {later:?}");
}

#[test]
fn a_duplicate_goodbye_with_no_other_connection_is_a_loss_and_is_redialed_with_backoff() {
    let now = Instant::ZERO;
    let mut b = machine(config(1, "127.0.0.1:7001", &["127.0.0.1:7000"]), now);
    let mut ob = Outbox::default();
    pump(&mut b, now, &mut ob);
    let b2 = ob.dials[0];
    b.handle(now, Input::Connected { conn: b2 });
    pump(&mut b, now, &mut ob);
    // A stand-in for A: Hello, then Goodbye{Duplicate} on the only connection.
    let mut a = machine(config(9, "127.0.0.1:7000", &[]), now);
    let a2 = a.accept(now, addr("127.0.0.1:40002")).expect("accept");
    let mut oa = Outbox::default();
    pump(&mut a, now, &mut oa);
    let hello = take(&mut oa, a2, |m| matches!(m, Message::Hello(_)));
    b.handle(
        now,
        Input::BytesIn {
            conn: b2,
            data: &hello,
        },
    );
    let bye = Message::Goodbye(timed_core::wire::Goodbye {
        reason: GoodbyeReason::Duplicate,
        detail: String::new(),
    });
    b.handle(
        now,
        Input::BytesIn {
            conn: b2,
            data: &bye.to_frame(),
        },
    );
    pump(&mut b, now, &mut ob);
    assert!(
        ob.events
            .iter()
            .any(|e| matches!(e, NodeEvent::PeerDown { .. })),
        "a loss: {:?}",
        ob.events
    );
    let mut dials = Vec::new();
    for ms in (0..20_000u64).step_by(10) {
        let t = now + timed_core::Duration::from_millis(ms);
        b.handle_timeout(t);
        while let Some(act) = b.poll_action() {
            if let Action::Dial { conn, .. } = act {
                dials.push(ms);
                b.handle(t, Input::DialFailed { conn });
            }
        }
    }
    assert!(dials.len() >= 3, "redialed: {dials:?}");
    assert!(dials[0] >= 1_000, "with backoff, not at once: {dials:?}");
}
