//! Gossip topics: publish, deduplicate, validate, forward.
//!
//! A message on a topic is checked in this order, cheapest first: the topic is one we take
//! part in (else it is counted and dropped: the peer saw our `Hello`), the payload is
//! within the topic's size limit (else the sender misbehaved: it saw our limit too), the
//! sender is within its rate (else the message is dropped and counted), and the message id
//! is new (else it is a duplicate). Only then is it validated — by the chain layer for the
//! built-in topics, by the application for its own ([`Verdict`]) — and forwarded to every
//! other peer on the topic once accepted. A rejected message bans its sender.

use super::app::Pending;
use super::io::{Action, Misbehaviour, NodeEvent};
use super::timer::Timer;
use super::PeerMachine;
use crate::id::{ConnId, NodeId};
use crate::protocol::{
    builtin, GossipId, HandleError, MessageId, PublishError, Served, TopicId, Verdict,
};
use crate::store::Store;
use crate::time::Instant;
use crate::wire::{MessageRef, Payload};
use alloc::vec::Vec;

impl<S: Store> PeerMachine<S> {
    /// Publishes `payload` on `topic` to every peer that takes part in it.
    pub fn publish(
        &mut self,
        now: Instant,
        topic: TopicId,
        payload: Vec<u8>,
    ) -> Result<MessageId, PublishError> {
        self.now = now;
        if self.stopped {
            return Err(PublishError::ShuttingDown);
        }
        self.publish_from(topic, &payload, None)
    }

    /// Publishes (or forwards) `payload`: remembers its id, sends it to every peer on the
    /// topic but `except`.
    pub(crate) fn publish_from(
        &mut self,
        topic: TopicId,
        payload: &[u8],
        except: Option<NodeId>,
    ) -> Result<MessageId, PublishError> {
        let Some((spec, _)) = self.registry.topic(topic) else {
            return Err(PublishError::UnknownTopic);
        };
        if payload.len() > spec.max_message_bytes as usize {
            return Err(PublishError::TooLarge);
        }
        let id = MessageId::of(topic, payload);
        let Some(t) = self.app.topic_mut(topic) else {
            return Err(PublishError::UnknownTopic);
        };
        let fresh = t.seen.insert(id);
        if except.is_none() {
            if !fresh {
                return Err(PublishError::Duplicate);
            }
            t.stats.published += 1;
        }
        self.fan_out(topic, payload, except);
        Ok(id)
    }

    /// Sends one gossip frame to every established peer on `topic` but `except`, encoded
    /// once.
    fn fan_out(&mut self, topic: TopicId, payload: &[u8], except: Option<NodeId>) {
        let targets: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(n, _)| Some(**n) != except)
            .map(|(_, c)| *c)
            .filter(|c| {
                self.conns
                    .get(c)
                    .and_then(|c| c.remote.as_ref())
                    .and_then(|r| r.topic(topic))
                    .is_some_and(|ad| payload.len() <= ad.max_message_bytes as usize)
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let mut frame = Vec::new();
        MessageRef::Gossip { topic, payload }.encode_frame(&mut frame);
        if let Some(t) = self.app.topic_mut(topic) {
            t.stats.sent += targets.len() as u64;
        }
        // One encoding, shared by every peer's queue (and by the driver writing it).
        let frame = Payload::Shared(frame.into());
        for conn in targets {
            self.send_frame(conn, frame.clone(), false);
        }
    }

    pub(crate) fn on_gossip(&mut self, now: Instant, conn: ConnId, topic: TopicId, payload: &[u8]) {
        let Some((spec, served)) = self.registry.topic(topic) else {
            self.counters.unknown_kinds += 1;
            return;
        };
        let spec = *spec;
        if payload.len() > spec.max_message_bytes as usize {
            return self.misbehave(
                now,
                conn,
                Misbehaviour::InvalidGossip,
                "gossip message over the topic's max_message_bytes",
            );
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(from) = c.node_id() else {
            return;
        };
        let in_rate = c.take_token(topic, spec.rate_per_sec, spec.burst, now);
        let Some(t) = self.app.topic_mut(topic) else {
            return;
        };
        if !in_rate {
            t.stats.rate_limited += 1;
            return;
        }
        let id = MessageId::of(topic, payload);
        if !t.seen.insert(id) {
            t.stats.duplicates += 1;
            if topic == builtin::BLOCK_TOPIC {
                // A relayed block still tells us the sender has it.
                self.note_announced_height(from, payload);
            }
            return;
        }
        t.stats.received += 1;
        match served {
            Served::Core => {
                let verdict = self.chain_gossip(now, conn, topic, payload);
                self.apply_verdict(now, topic, conn, from, payload, verdict);
            }
            Served::App if !spec.validate => {
                let gid = self.app.next_gossip_id(topic);
                self.apply_verdict(now, topic, conn, from, payload, Verdict::Accept);
                self.actions
                    .push_back(Action::Notify(NodeEvent::GossipReceived {
                        id: gid,
                        topic,
                        from,
                        payload: payload.to_vec(),
                    }));
            }
            Served::App => self.await_verdict(now, conn, from, topic, payload, &spec),
        }
    }

    fn await_verdict(
        &mut self,
        now: Instant,
        conn: ConnId,
        from: NodeId,
        topic: TopicId,
        payload: &[u8],
        spec: &crate::protocol::TopicSpec,
    ) {
        let gid = self.app.next_gossip_id(topic);
        let Some(t) = self.app.topic_mut(topic) else {
            return;
        };
        if t.pending.len() >= spec.max_pending {
            t.pending.pop_front();
            t.stats.expired += 1;
        }
        let deadline = now + spec.validation_timeout;
        let first = t.pending.is_empty();
        t.pending.push_back(Pending {
            seq: gid.seq,
            from,
            conn,
            payload: payload.to_vec(),
            deadline,
        });
        if first {
            self.timers.set(Timer::Validation(topic), deadline);
        }
        self.actions
            .push_back(Action::Notify(NodeEvent::GossipReceived {
                id: gid,
                topic,
                from,
                payload: payload.to_vec(),
            }));
    }

    /// The application's verdict on a message from
    /// [`NodeEvent::GossipReceived`]: `Accept` forwards it to every other peer on the topic,
    /// `Reject` bans its sender, `Ignore` drops it.
    pub fn validate(
        &mut self,
        now: Instant,
        id: GossipId,
        verdict: Verdict,
    ) -> Result<(), HandleError> {
        self.now = now;
        let Some(t) = self.app.topic_mut(id.topic) else {
            return Err(HandleError::Unknown);
        };
        let Some(i) = t.pending.iter().position(|p| p.seq == id.seq) else {
            return Err(HandleError::Unknown);
        };
        let Some(p) = t.pending.remove(i) else {
            return Err(HandleError::Unknown);
        };
        self.apply_verdict(now, id.topic, p.conn, p.from, &p.payload, verdict);
        self.arm_validation(id.topic);
        Ok(())
    }

    fn apply_verdict(
        &mut self,
        now: Instant,
        topic: TopicId,
        conn: ConnId,
        from: NodeId,
        payload: &[u8],
        verdict: Verdict,
    ) {
        if let Some(t) = self.app.topic_mut(topic) {
            match verdict {
                Verdict::Accept => t.stats.accepted += 1,
                Verdict::Reject => t.stats.rejected += 1,
                Verdict::Ignore => t.stats.ignored += 1,
            }
        }
        match verdict {
            Verdict::Accept => {
                let _ = self.publish_from(topic, payload, Some(from));
            }
            Verdict::Reject => {
                // Only if the message's connection is still the sender's: a verdict that
                // comes after the peer moved or left bans nobody new.
                if self.peers.get(&from) == Some(&conn) {
                    self.misbehave(
                        now,
                        conn,
                        Misbehaviour::InvalidGossip,
                        "gossip message rejected by validation",
                    );
                }
            }
            Verdict::Ignore => {}
        }
    }

    /// The validation deadline of a topic's oldest pending message passed.
    pub(crate) fn on_validation_deadline(&mut self, now: Instant, topic: TopicId) {
        if let Some(t) = self.app.topic_mut(topic) {
            while t.pending.front().is_some_and(|p| p.deadline <= now) {
                t.pending.pop_front();
                t.stats.expired += 1;
            }
        }
        self.arm_validation(topic);
    }

    fn arm_validation(&mut self, topic: TopicId) {
        let next = self
            .app
            .topic_mut(topic)
            .and_then(|t| t.pending.front().map(|p| p.deadline));
        match next {
            Some(at) => self.timers.set(Timer::Validation(topic), at),
            None => self.timers.cancel(Timer::Validation(topic)),
        }
    }
}
