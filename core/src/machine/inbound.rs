//! Peers' requests to us, on any protocol.
//!
//! Each request gets exactly one answer on the connection it arrived on: the response, or a
//! refusal with a reason. A protocol we do not run is refused `Unsupported` (never a
//! disconnect: a newer peer may try one before we have it), a payload over the protocol's
//! limit `TooLarge`, more than its inbound in-flight limit `TooManyRequests`. Built-in
//! protocols are served at once by the chain layer; the application's are handed over as
//! [`NodeEvent::InboundRequest`] and refused `Unanswered` if the application has not
//! answered by the protocol's deadline, so nothing ever hangs on either side.

use super::conn::InReq;
use super::io::{Action, NodeEvent};
use super::timer::Timer;
use super::PeerMachine;
use crate::id::ConnId;
use crate::protocol::{builtin, HandleError, InboundId, ProtocolId, ProtocolSpec, Served};
use crate::store::Store;
use crate::time::Instant;
use crate::wire::{MessageKind, RefuseReason};
use alloc::vec::Vec;

impl<S: Store> PeerMachine<S> {
    pub(crate) fn on_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: u64,
        protocol: ProtocolId,
        payload: &[u8],
    ) {
        let Some((spec, served)) = self.registry.protocol(protocol) else {
            self.counters.unknown_kinds += 1;
            return self.refuse(conn, protocol, id, RefuseReason::Unsupported);
        };
        let spec = *spec;
        self.app.count_in(protocol, payload.len());
        if payload.len() > spec.max_request_bytes as usize {
            return self.refuse(conn, protocol, id, RefuseReason::TooLarge);
        }
        match served {
            Served::Core => {
                let Some(body) = builtin::decode_request(protocol, payload) else {
                    return self.refuse(conn, protocol, id, RefuseReason::BadRequest);
                };
                match self.serve_request(now, conn, body) {
                    Ok(resp) => {
                        let bytes = builtin::encode_response(&resp);
                        self.send_response(conn, protocol, id, Ok(&bytes));
                    }
                    Err(r) => self.refuse(conn, protocol, id, r),
                }
            }
            Served::App => self.hand_to_app(now, conn, id, &spec, payload),
        }
    }

    /// A request on an application protocol: held (within the protocol's inbound cap) and
    /// surfaced as [`NodeEvent::InboundRequest`], with a deadline after which the machine
    /// refuses it `Unanswered` itself.
    fn hand_to_app(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: u64,
        spec: &ProtocolSpec,
        payload: &[u8],
    ) {
        let protocol = spec.id;
        let deadline = now + spec.answer_within();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let waiting = c
            .in_reqs
            .values()
            .filter(|r| r.protocol == protocol)
            .count();
        if waiting >= usize::from(spec.max_inbound_in_flight) || c.in_reqs.contains_key(&id) {
            return self.refuse(conn, protocol, id, RefuseReason::TooManyRequests);
        }
        let Some(peer) = c.node_id() else {
            return;
        };
        c.in_reqs.insert(id, InReq { protocol, deadline });
        let handle = InboundId { conn, id };
        if self.app.await_answer(protocol, handle, deadline) {
            self.timers.set(Timer::Answer(protocol), deadline);
        }
        self.actions
            .push_back(Action::Notify(NodeEvent::InboundRequest {
                id: handle,
                peer,
                protocol,
                payload: payload.to_vec(),
            }));
    }

    /// Answers a peer's request on an application protocol: `Ok(response bytes)` or a
    /// refusal. The answer leaves on the connection the request came in on.
    pub fn respond(
        &mut self,
        now: Instant,
        id: InboundId,
        result: Result<Vec<u8>, RefuseReason>,
    ) -> Result<(), HandleError> {
        self.now = now;
        let Some(req) = self
            .conns
            .get_mut(&id.conn)
            .filter(|c| !c.closing)
            .and_then(|c| c.in_reqs.remove(&id.id))
        else {
            return Err(HandleError::Unknown);
        };
        let max = self
            .registry
            .protocol(req.protocol)
            .map_or(0, |(s, _)| s.max_response_bytes as usize);
        let out = match &result {
            Ok(bytes) if bytes.len() > max => {
                self.refuse(id.conn, req.protocol, id.id, RefuseReason::TooLarge);
                Err(HandleError::TooLarge)
            }
            Ok(bytes) => {
                self.send_response(id.conn, req.protocol, id.id, Ok(bytes));
                Ok(())
            }
            Err(r) => {
                self.refuse(id.conn, req.protocol, id.id, *r);
                Ok(())
            }
        };
        self.trim_answer_queue(req.protocol);
        out
    }

    /// The answer deadline of a protocol's oldest waiting request passed: refuse every
    /// request that is now due, and arm the timer for the next.
    pub(crate) fn on_answer_deadline(&mut self, now: Instant, protocol: ProtocolId) {
        while let Some(id) = self.app.pop_due_answer(protocol, now) {
            let Some(c) = self.conns.get_mut(&id.conn) else {
                continue;
            };
            // The entry may be an earlier request under the same id, already answered: the
            // request now waiting under it is due only at its own deadline.
            if c.in_reqs.get(&id.id).is_some_and(|r| r.deadline <= now) {
                c.in_reqs.remove(&id.id);
                self.refuse(id.conn, protocol, id.id, RefuseReason::Unanswered);
            }
        }
        self.trim_answer_queue(protocol);
    }

    fn trim_answer_queue(&mut self, protocol: ProtocolId) {
        let conns = &self.conns;
        self.app.trim_answers(protocol, |id| {
            conns
                .get(&id.conn)
                .is_some_and(|c| c.in_reqs.contains_key(&id.id))
        });
        match self.app.next_answer_deadline(protocol) {
            Some(at) => self.timers.set(Timer::Answer(protocol), at),
            None => self.timers.cancel(Timer::Answer(protocol)),
        }
    }

    fn refuse(&mut self, conn: ConnId, protocol: ProtocolId, id: u64, reason: RefuseReason) {
        self.app.count_refused(protocol, reason.as_str());
        self.send_response(conn, protocol, id, Err(reason));
    }

    /// Queues a response frame. Responses count against the peer's requests in flight
    /// until they reach the transport (see `Conn::responses_queued`).
    pub(crate) fn send_response(
        &mut self,
        conn: ConnId,
        protocol: ProtocolId,
        id: u64,
        result: Result<&[u8], RefuseReason>,
    ) {
        let mut frame = self.frame_buf();
        let at = crate::wire::message::begin_frame(&mut frame, MessageKind::Response);
        crate::wire::message::push_varint(id, &mut frame);
        match result {
            Ok(bytes) => {
                frame.push(0);
                frame.extend_from_slice(bytes);
            }
            Err(r) => crate::wire::message::push_varint(u64::from(r.code()), &mut frame),
        }
        crate::wire::message::end_frame(&mut frame, at);
        self.app.count_response_bytes(protocol, frame.len(), 0);
        self.send_frame(conn, frame.into(), true);
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::{builtin, ProtocolId, ProtocolSpec};
    use crate::wire::{Decoded, Hello, Message, RefuseReason, MAGIC, PROTOCOL_VERSION};
    use crate::{Action, Config, Duration, Input, Instant, MemStore, Network, NodeEvent, NodeId};
    use crate::{InboundId, PeerMachine};
    use alloc::vec;
    use alloc::vec::Vec;

    /// A request id the peer reuses once its answer went out is a new request: it is refused
    /// at its own deadline, not at the earlier request's (whose entry is still queued behind
    /// an older unanswered one). Found while modelling `inbound_waiting()` for the
    /// `machine_bytes` fuzz target.
    #[test]
    fn a_reused_request_id_is_refused_at_its_own_deadline() {
        let app = ProtocolId(1000);
        let mut cfg = Config::new(Network::Devnet, NodeId([1; 32]), 1);
        cfg.protocols.push(
            ProtocolSpec::new(app, "test/1")
                .with_in_flight(4, 4)
                .with_timeout(Duration::from_secs(4)),
        );
        let (protocols, topics) = builtin::adverts(&cfg);
        let t0 = Instant::ZERO;
        let mut m = PeerMachine::new(cfg, MemStore::new(Network::Devnet), t0).unwrap();
        let conn = m.accept(t0, "10.1.2.3:5000".parse().unwrap()).unwrap();
        let g = Network::Devnet.genesis_hash();
        let hello = Message::Hello(Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            min_version: PROTOCOL_VERSION,
            network: Network::Devnet.id(),
            genesis: g,
            node_id: NodeId([2; 32]),
            boot: 7,
            listen_port: None,
            best_height: 0,
            best_hash: g,
            user_agent: "test".into(),
            protocols,
            topics,
        });
        let request = |id| Message::Request {
            id,
            protocol: app,
            payload: vec![],
        };
        // Feeds `msgs`; returns the requests handed over and the refusals sent.
        let feed = |m: &mut PeerMachine<MemStore>, now, msgs: &[Message]| {
            for msg in msgs {
                let data = msg.to_frame();
                m.handle(now, Input::BytesIn { conn, data: &data });
            }
            let (mut handed, mut refused): (Vec<InboundId>, Vec<u64>) = (vec![], vec![]);
            while let Some(a) = m.poll_action() {
                match a {
                    Action::Notify(NodeEvent::InboundRequest { id, .. }) => handed.push(id),
                    Action::Send { data, .. } => {
                        if let Ok(Decoded::Known(Message::Response {
                            id,
                            result: Err(RefuseReason::Unanswered),
                        })) = Message::decode(&data[4..])
                        {
                            refused.push(id);
                        }
                    }
                    _ => {}
                }
            }
            (handed, refused)
        };
        feed(&mut m, t0, &[hello]);
        let (handed, _) = feed(&mut m, t0, &[request(1), request(7)]);
        m.respond(t0, handed[1], Ok(vec![1])).unwrap();
        let t1 = t0 + Duration::from_secs(1);
        let (again, _) = feed(&mut m, t1, &[request(7)]);
        assert_eq!(again.len(), 1);
        // At 3 s (request 1's deadline) only request 1 is refused.
        let t3 = t0 + Duration::from_secs(3);
        m.handle_timeout(t3);
        assert_eq!(feed(&mut m, t3, &[]).1, vec![1]);
        assert_eq!(m.inbound_waiting(), 1);
        // At 4 s the second request 7 is.
        let t4 = t0 + Duration::from_secs(4);
        m.handle_timeout(t4);
        assert_eq!(feed(&mut m, t4, &[]).1, vec![7]);
        assert_eq!(m.inbound_waiting(), 0);
    }
}
