//! Event fan-out: every [`NodeEvent`] to every subscriber, bounded per subscriber.
//!
//! tokio has `broadcast`; the `futures` crate does not, so this is a small one over
//! `futures::channel::mpsc`: one bounded channel per subscriber. A subscriber whose channel is
//! full misses events; it then receives [`RecvError::Lagged`] with the number missed, at the
//! exact place of the gap, before the next event it does get. The driver never waits for a
//! subscriber.

use futures::channel::mpsc;
use futures::StreamExt;
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;
use timed_core::NodeEvent;

/// Why [`Events::recv`] returned no event.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RecvError {
    /// This receiver fell behind by more than `RuntimeOptions::event_capacity` events and
    /// missed this many; the next `recv` continues after the gap.
    #[error("missed {0} events")]
    Lagged(u64),
    /// The node has stopped; no more events will come.
    #[error("the node has stopped")]
    Closed,
}

enum Item {
    Event(NodeEvent),
    Lagged(u64),
}

/// A subscription to a node's events, from [`NodeHandle::subscribe`](crate::NodeHandle::subscribe).
pub struct Events {
    rx: mpsc::Receiver<Item>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// The next event, in the order the machine emitted them.
    pub async fn recv(&mut self) -> Result<NodeEvent, RecvError> {
        match self.rx.next().await {
            Some(Item::Event(e)) => Ok(e),
            Some(Item::Lagged(n)) => Err(RecvError::Lagged(n)),
            None => Err(RecvError::Closed),
        }
    }

    /// The next event if one is already waiting.
    pub fn try_recv(&mut self) -> Option<Result<NodeEvent, RecvError>> {
        match self.rx.try_recv() {
            Ok(Item::Event(e)) => Some(Ok(e)),
            Ok(Item::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(mpsc::TryRecvError::Closed) => Some(Err(RecvError::Closed)),
            Err(mpsc::TryRecvError::Empty) => None,
        }
    }
}

struct Sub {
    tx: mpsc::Sender<Item>,
    missed: u64,
}

#[derive(Default)]
struct Inner {
    subs: Vec<Sub>,
    closed: bool,
}

/// The sending side, shared by the driver (publishes) and the handles (subscribe).
#[derive(Clone)]
pub(crate) struct Fanout {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Fanout {
    pub(crate) fn new(capacity: usize) -> Self {
        Fanout {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the list inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn subscribe(&self) -> Events {
        // `mpsc::channel(n)` holds n + 1 (one slot per sender): n - 1 gives exactly `capacity`.
        let (tx, rx) = mpsc::channel(self.capacity - 1);
        let mut inner = self.lock();
        if !inner.closed {
            inner.subs.push(Sub { tx, missed: 0 });
        }
        Events { rx }
    }

    /// Delivers `event` to every live subscriber without waiting; forgets dropped ones.
    pub(crate) fn publish(&self, event: &NodeEvent) {
        let mut inner = self.lock();
        inner.subs.retain_mut(|sub| {
            if sub.missed > 0 {
                match sub.tx.try_send(Item::Lagged(sub.missed)) {
                    Ok(()) => sub.missed = 0,
                    Err(e) if e.is_full() => {
                        sub.missed += 1;
                        return true;
                    }
                    Err(_) => return false,
                }
            }
            match sub.tx.try_send(Item::Event(event.clone())) {
                Ok(()) => true,
                Err(e) if e.is_full() => {
                    sub.missed += 1;
                    true
                }
                Err(_) => false,
            }
        });
    }

    /// The node stopped: every subscription ends after the events already queued.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.subs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> NodeEvent {
        NodeEvent::Reorg {
            fork: n,
            old_tip: n,
            to: n,
        }
    }

    /// A full subscriber misses the newest events and is told how many, exactly where the
    /// gap is; it recovers once it reads; a dropped subscriber is forgotten; closing ends
    /// every subscription after what was queued.
    #[test]
    fn lagging_subscriber_sees_the_gap_in_place() {
        let fan = Fanout::new(2);
        let mut slow = fan.subscribe();
        let dropped = fan.subscribe();
        drop(dropped);
        for n in 1..=5 {
            fan.publish(&ev(n));
        }
        assert_eq!(fan.lock().subs.len(), 1);
        assert_eq!(slow.try_recv(), Some(Ok(ev(1))));
        assert_eq!(slow.try_recv(), Some(Ok(ev(2))));
        assert_eq!(slow.try_recv(), None);
        fan.publish(&ev(6));
        assert_eq!(slow.try_recv(), Some(Err(RecvError::Lagged(3))));
        assert_eq!(slow.try_recv(), Some(Ok(ev(6))));
        fan.publish(&ev(7));
        fan.close();
        assert_eq!(slow.try_recv(), Some(Ok(ev(7))));
        assert_eq!(slow.try_recv(), Some(Err(RecvError::Closed)));
        let mut late = fan.subscribe();
        assert_eq!(late.try_recv(), Some(Err(RecvError::Closed)));
    }
}
