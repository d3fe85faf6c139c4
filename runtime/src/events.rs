//! A node's events, to every subscriber, bounded per subscriber.

use thiserror::Error;
use timed_core::NodeEvent;
use tokio::sync::broadcast;

/// Why [`Events::recv`] returned no event.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RecvError {
    /// This receiver fell behind by more than `RuntimeOptions::event_capacity` events and
    /// missed this many (the oldest); the next `recv` continues after the gap.
    #[error("missed {0} events")]
    Lagged(u64),
    /// The node has stopped and every event it sent has been received.
    #[error("the node has stopped")]
    Closed,
}

/// A subscription to a node's events, from [`NodeHandle::subscribe`](crate::NodeHandle::subscribe)
/// or [`spawn_with_events`](crate::spawn_with_events). The driver never waits for a
/// subscriber: one that falls behind is told by how much ([`RecvError::Lagged`]).
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<NodeEvent>,
}

impl Events {
    pub(crate) fn new(rx: broadcast::Receiver<NodeEvent>) -> Self {
        Events { rx }
    }

    /// A subscription that is already over (the node had stopped).
    pub(crate) fn closed() -> Self {
        let (tx, rx) = broadcast::channel(1);
        drop(tx);
        Events { rx }
    }

    /// The next event, in the order the machine emitted them.
    pub async fn recv(&mut self) -> Result<NodeEvent, RecvError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// The next event if one is already waiting.
    pub fn try_recv(&mut self) -> Option<Result<NodeEvent, RecvError>> {
        match self.rx.try_recv() {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(broadcast::error::TryRecvError::Closed) => Some(Err(RecvError::Closed)),
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }
}
