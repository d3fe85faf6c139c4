//! The state the application protocols keep across calls: requests handed to the
//! application and their deadlines, gossip topics (seen caches, messages awaiting a
//! verdict), and per-protocol and per-topic statistics.
//!
//! Every table here is bounded: a protocol's answer queue by its inbound in-flight limit
//! times the connections, a topic's seen cache by `seen_capacity`, its pending messages by
//! `max_pending`.

use crate::id::{ConnId, NodeId};
use crate::protocol::{GossipId, InboundId, MessageId, ProtocolId, Registry, TopicId};
use crate::time::Instant;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

/// Statistics of one request/response protocol, both directions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolStats {
    /// The protocol's `ProtocolSpec::name`.
    pub name: &'static str,
    /// Requests we sent.
    pub requests_out: u64,
    /// Requests peers sent us.
    pub requests_in: u64,
    /// Frame bytes of our requests and of our responses.
    pub bytes_out: u64,
    /// Frame bytes of peers' requests and responses.
    pub bytes_in: u64,
    /// How our requests ended: `ok` or a `QueryError` label.
    pub results: BTreeMap<&'static str, u64>,
    /// Peers' requests we refused, by `RefuseReason` label.
    pub refused: BTreeMap<&'static str, u64>,
}

/// Statistics of one gossip topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicStats {
    /// The topic's `TopicSpec::name`.
    pub name: &'static str,
    /// Messages we published.
    pub published: u64,
    /// New messages received (duplicates not counted).
    pub received: u64,
    /// Messages judged `Accept` (by the application, by the core on its own topics, or at
    /// once on a topic that does not validate).
    pub accepted: u64,
    /// Messages judged `Reject`.
    pub rejected: u64,
    /// Messages judged `Ignore`.
    pub ignored: u64,
    /// Pending messages dropped unjudged: over `max_pending`, or past the validation timeout.
    pub expired: u64,
    /// Messages dropped as already seen.
    pub duplicates: u64,
    /// Dropped because the sender was over its rate.
    pub rate_limited: u64,
    /// Copies sent to peers (publish and forward).
    pub sent: u64,
}

/// A gossip message waiting for the application's verdict.
#[derive(Debug)]
pub(crate) struct Pending {
    pub seq: u64,
    pub from: NodeId,
    pub conn: ConnId,
    pub payload: Vec<u8>,
    pub deadline: Instant,
}

/// A bounded insertion-ordered set.
#[derive(Debug)]
pub(crate) struct Seen<T: Ord + Copy> {
    set: BTreeSet<T>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: Ord + Copy> Seen<T> {
    pub fn new(cap: usize) -> Self {
        Seen {
            set: BTreeSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Inserts `v`; false if it was already there. Past the capacity the oldest is forgotten.
    pub fn insert(&mut self, v: T) -> bool {
        if !self.set.insert(v) {
            return false;
        }
        self.order.push_back(v);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    pub fn contains(&self, v: &T) -> bool {
        self.set.contains(v)
    }
}

#[derive(Debug)]
pub(crate) struct TopicState {
    pub seen: Seen<MessageId>,
    /// In arrival order, which is deadline order (one timeout per topic).
    pub pending: VecDeque<Pending>,
    pub stats: TopicStats,
}

#[derive(Debug)]
pub(crate) struct AppState {
    /// Per protocol, the application's requests in arrival order, which is deadline order.
    /// Entries already answered are skipped when they reach the front.
    answers: BTreeMap<ProtocolId, VecDeque<(Instant, InboundId)>>,
    topics: BTreeMap<TopicId, TopicState>,
    protocol_stats: BTreeMap<ProtocolId, ProtocolStats>,
    next_seq: u64,
}

impl AppState {
    pub fn new(registry: &Registry) -> Self {
        AppState {
            answers: BTreeMap::new(),
            topics: registry
                .topics()
                .map(|t| {
                    let state = TopicState {
                        seen: Seen::new(t.seen_capacity),
                        pending: VecDeque::new(),
                        stats: TopicStats {
                            name: t.name,
                            ..TopicStats::default()
                        },
                    };
                    (t.id, state)
                })
                .collect(),
            protocol_stats: registry
                .protocols()
                .map(|p| {
                    let stats = ProtocolStats {
                        name: p.name,
                        ..ProtocolStats::default()
                    };
                    (p.id, stats)
                })
                .collect(),
            next_seq: 1,
        }
    }

    // ---- requests ---------------------------------------------------------------------

    /// A request handed to the application, due by `deadline`. Returns whether the queue
    /// was empty (the caller arms the protocol's answer timer).
    pub fn await_answer(&mut self, protocol: ProtocolId, id: InboundId, deadline: Instant) -> bool {
        let q = self.answers.entry(protocol).or_default();
        q.push_back((deadline, id));
        q.len() == 1
    }

    /// The front of a protocol's answer queue once its deadline passed.
    pub fn pop_due_answer(&mut self, protocol: ProtocolId, now: Instant) -> Option<InboundId> {
        let q = self.answers.get_mut(&protocol)?;
        match q.front() {
            Some(&(at, id)) if at <= now => {
                q.pop_front();
                Some(id)
            }
            _ => None,
        }
    }

    /// The deadline at the front of a protocol's answer queue.
    pub fn next_answer_deadline(&self, protocol: ProtocolId) -> Option<Instant> {
        self.answers.get(&protocol)?.front().map(|(at, _)| *at)
    }

    /// Drops answered entries from the front of a protocol's queue, so it stays bounded by
    /// the requests actually waiting.
    pub fn trim_answers(&mut self, protocol: ProtocolId, waiting: impl Fn(InboundId) -> bool) {
        if let Some(q) = self.answers.get_mut(&protocol) {
            while q.front().is_some_and(|(_, id)| !waiting(*id)) {
                q.pop_front();
            }
            if q.is_empty() {
                self.answers.remove(&protocol);
            }
        }
    }

    // ---- topics -----------------------------------------------------------------------

    pub fn topic_mut(&mut self, topic: TopicId) -> Option<&mut TopicState> {
        self.topics.get_mut(&topic)
    }

    pub fn next_gossip_id(&mut self, topic: TopicId) -> GossipId {
        let seq = self.next_seq;
        self.next_seq += 1;
        GossipId { topic, seq }
    }

    // ---- statistics -------------------------------------------------------------------

    fn protocol(&mut self, p: ProtocolId) -> Option<&mut ProtocolStats> {
        self.protocol_stats.get_mut(&p)
    }

    pub fn count_out(&mut self, p: ProtocolId, bytes: usize) {
        if let Some(s) = self.protocol(p) {
            s.requests_out += 1;
            s.bytes_out += bytes as u64;
        }
    }

    pub fn count_in(&mut self, p: ProtocolId, bytes: usize) {
        if let Some(s) = self.protocol(p) {
            s.requests_in += 1;
            s.bytes_in += bytes as u64;
        }
    }

    pub fn count_response_bytes(&mut self, p: ProtocolId, out: usize, inbound: usize) {
        if let Some(s) = self.protocol(p) {
            s.bytes_out += out as u64;
            s.bytes_in += inbound as u64;
        }
    }

    pub fn count_result(&mut self, p: ProtocolId, label: &'static str) {
        if let Some(s) = self.protocol(p) {
            *s.results.entry(label).or_insert(0) += 1;
        }
    }

    pub fn count_refused(&mut self, p: ProtocolId, label: &'static str) {
        if let Some(s) = self.protocol(p) {
            *s.refused.entry(label).or_insert(0) += 1;
        }
    }

    pub fn protocol_stats(&self) -> &BTreeMap<ProtocolId, ProtocolStats> {
        &self.protocol_stats
    }

    pub fn topic_stats(&self) -> impl Iterator<Item = (TopicId, &TopicStats)> {
        self.topics.iter().map(|(id, t)| (*id, &t.stats))
    }

    /// Messages awaiting a verdict, over all topics (for invariant checks).
    pub fn pending_len(&self) -> usize {
        self.topics.values().map(|t| t.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seen_cache_forgets_the_oldest_past_its_capacity() {
        let mut s = Seen::new(2);
        assert!(s.insert(1));
        assert!(!s.insert(1));
        assert!(s.insert(2));
        assert!(s.insert(3));
        assert!(!s.contains(&1));
        assert!(s.contains(&2) && s.contains(&3));
    }
}
