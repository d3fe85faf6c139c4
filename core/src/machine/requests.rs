//! One connection's table of our requests in flight: their ids, and the ids of requests that
//! timed out recently, so that a late response is dropped quietly instead of being taken
//! for an unsolicited one (which is misbehaviour).

use super::query::OutReq;
use crate::protocol::ProtocolId;
use alloc::collections::BTreeMap;

/// Timed-out request ids remembered per connection.
pub(crate) const EXPIRED_SLOTS: usize = 64;

#[derive(Debug)]
pub(crate) struct OutRequests {
    /// The next id; ids start at 1 and never repeat on a connection (0 marks an empty
    /// `expired` slot).
    next_id: u64,
    in_flight: BTreeMap<u64, OutReq>,
    /// A ring of the last [`EXPIRED_SLOTS`] ids that timed out.
    expired: [u64; EXPIRED_SLOTS],
    expired_slot: usize,
}

impl Default for OutRequests {
    fn default() -> Self {
        OutRequests {
            next_id: 1,
            in_flight: BTreeMap::new(),
            expired: [0; EXPIRED_SLOTS],
            expired_slot: 0,
        }
    }
}

impl OutRequests {
    /// Requests in flight, on every protocol.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests in flight on `protocol`.
    pub fn on(&self, protocol: ProtocolId) -> usize {
        self.in_flight
            .values()
            .filter(|r| r.protocol == protocol)
            .count()
    }

    /// Takes the next id for a request about to be sent.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn insert(&mut self, id: u64, req: OutReq) {
        self.in_flight.insert(id, req);
    }

    /// The request a response with `id` answers, if it is still in flight.
    pub fn take(&mut self, id: u64) -> Option<OutReq> {
        self.in_flight.remove(&id)
    }

    /// The request `id` timed out: out of the table, its id remembered.
    pub fn expire(&mut self, id: u64) -> Option<OutReq> {
        let req = self.in_flight.remove(&id)?;
        self.expired[self.expired_slot] = id;
        self.expired_slot = (self.expired_slot + 1) % EXPIRED_SLOTS;
        Some(req)
    }

    /// Whether `id` is one of the last [`EXPIRED_SLOTS`] requests that timed out.
    pub fn was_expired(&self, id: u64) -> bool {
        id != 0 && self.expired.contains(&id)
    }

    /// Every request in flight, in id order, leaving the table empty (the connection is
    /// going away, or its requests move to another one).
    pub fn take_all(&mut self) -> BTreeMap<u64, OutReq> {
        core::mem::take(&mut self.in_flight)
    }

    /// Whether a request in flight came from `origin`.
    #[cfg(test)]
    fn has(&self, origin: super::query::Origin) -> bool {
        self.in_flight.values().any(|r| r.origin == origin)
    }
}

#[cfg(test)]
mod tests {
    use super::super::query::Origin;
    use super::*;
    use crate::id::QueryId;
    use crate::time::Instant;
    use alloc::vec::Vec;

    fn req(protocol: u32, q: u64) -> OutReq {
        OutReq {
            origin: Origin::Query(QueryId::new(q)),
            protocol: ProtocolId(protocol),
            payload: Vec::new(),
            deadline: Instant::ZERO,
        }
    }

    #[test]
    fn ids_start_at_one_and_never_repeat() {
        let mut t = OutRequests::default();
        let ids: Vec<u64> = (0..3).map(|_| t.next_id()).collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn counts_per_protocol_and_answers_each_id_once() {
        let mut t = OutRequests::default();
        for (p, q) in [(1, 1), (1, 2), (2, 3)] {
            let id = t.next_id();
            t.insert(id, req(p, q));
        }
        assert_eq!(
            (t.len(), t.on(ProtocolId(1)), t.on(ProtocolId(2))),
            (3, 2, 1)
        );
        assert!(t.take(2).is_some());
        assert!(
            t.take(2).is_none(),
            "a second response to the same id finds nothing"
        );
        assert!(t.has(Origin::Query(QueryId::new(1))));
        assert_eq!(t.take_all().len(), 2);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_timed_out_id_is_remembered_among_the_last_sixty_four() {
        let mut t = OutRequests::default();
        let first = t.next_id();
        t.insert(first, req(1, 1));
        assert!(t.expire(first).is_some());
        assert!(t.was_expired(first) && !t.was_expired(0));
        for _ in 0..EXPIRED_SLOTS {
            let id = t.next_id();
            t.insert(id, req(1, 1));
            t.expire(id);
        }
        assert!(!t.was_expired(first), "pushed out of the ring");
        assert!(t.expire(first).is_none(), "not in flight any more");
    }
}
