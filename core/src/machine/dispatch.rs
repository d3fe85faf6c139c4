//! Bytes in → frames → messages → handlers. Everything here treats the remote as hostile:
//! any malformed or out-of-place input ends in `misbehave`, never in a panic or an `Err`.

use super::conn::ConnState;
use super::io::QueryError;
use super::io::{Action, DownReason, Misbehaviour, NodeEvent};
use super::PeerMachine;
use crate::id::ConnId;
use crate::store::Store;
use crate::time::Instant;
use crate::wire::{Decoded, FrameError, Goodbye, GoodbyeReason, Message, MessageKind, MessageRef};
use alloc::format;
use alloc::string::String;

impl<S: Store> PeerMachine<S> {
    pub(crate) fn on_bytes(&mut self, now: Instant, conn: ConnId, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state == ConnState::Dialing {
            return;
        }
        self.counters.bytes_in += data.len() as u64;
        let Some(mut decoder) = c.decoder.take() else {
            return;
        };
        let mut rest = data;
        if decoder.buffered() == 0 {
            // Nothing carried over from an earlier read: whole frames are read in place, and
            // only a trailing partial one is copied into the decoder below.
            loop {
                match decoder.split(rest) {
                    Ok(Some((payload, tail))) => {
                        rest = tail;
                        if !self.on_frame(now, conn, payload) {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.frame_error(now, conn, e),
                }
            }
        }
        decoder.push(rest);
        loop {
            match decoder.next_frame() {
                Ok(Some(payload)) => {
                    if !self.on_frame(now, conn, payload) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => return self.frame_error(now, conn, e),
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.decoder = Some(decoder);
        }
    }

    /// One whole frame from `conn`. Returns whether the connection is still there to read
    /// more from.
    fn on_frame(&mut self, now: Instant, conn: ConnId, payload: &[u8]) -> bool {
        // Only a whole frame proves the peer alive: a trickle of bytes that never completes
        // one (slowloris, or a desynchronised stream) must not.
        let handshaking = match self.conns.get_mut(&conn) {
            Some(c) => {
                c.last_recv = now;
                c.state == ConnState::Handshaking
            }
            None => false,
        };
        self.counters.frames_in += 1;
        self.on_payload(now, conn, payload, handshaking);
        self.conns.contains_key(&conn)
    }

    fn frame_error(&mut self, now: Instant, conn: ConnId, e: FrameError) {
        let FrameError::TooLarge { declared, max } = e;
        let detail = format!("frame of {declared} bytes exceeds the {max}-byte limit");
        self.misbehave(now, conn, Misbehaviour::Protocol, &detail);
    }

    fn on_payload(&mut self, now: Instant, conn: ConnId, payload: &[u8], handshaking: bool) {
        if handshaking {
            // Before the handshake only `Hello` and `Goodbye` are allowed: anything else is
            // refused on its kind, before its body is decoded.
            match MessageRef::peek_kind(payload) {
                Some(Ok(MessageKind::Hello | MessageKind::Goodbye)) | None => {}
                Some(Ok(k)) => {
                    let detail = format!("{} before Hello", k.as_str());
                    return self.misbehave(now, conn, Misbehaviour::Protocol, &detail);
                }
                Some(Err(_)) => {
                    let detail = "message of an unknown kind before Hello";
                    return self.misbehave(now, conn, Misbehaviour::Protocol, detail);
                }
            }
        }
        match MessageRef::decode(payload) {
            Err(e) => self.misbehave(now, conn, Misbehaviour::Protocol, &format!("{e}")),
            Ok(Decoded::UnknownKind(_)) => self.counters.unknown_kinds += 1,
            Ok(Decoded::OldHello {
                version,
                min_version,
            }) => self.on_old_hello(now, conn, version, min_version),
            Ok(Decoded::Known(msg)) => self.on_message(now, conn, msg),
        }
    }

    fn on_message(&mut self, now: Instant, conn: ConnId, msg: MessageRef<'_>) {
        let Some(state) = self.conns.get(&conn).map(|c| c.state) else {
            return;
        };
        if let MessageRef::Goodbye(g) = msg {
            return self.on_goodbye(now, conn, g);
        }
        if state == ConnState::Handshaking {
            return match msg {
                MessageRef::Hello(h) => self.on_hello(now, conn, *h),
                other => {
                    let detail = format!("{} before Hello", other.kind().as_str());
                    self.misbehave(now, conn, Misbehaviour::Protocol, &detail)
                }
            };
        }
        let established = state == ConnState::Established;
        match msg {
            MessageRef::Hello(_) => {
                self.misbehave(now, conn, Misbehaviour::Protocol, "second Hello")
            }
            MessageRef::Goodbye(_) => {}
            MessageRef::Ping { nonce } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.ping_received(now);
                }
                self.send_msg(conn, &Message::Pong { nonce })
            }
            MessageRef::Pong { nonce } => self.on_pong(now, conn, nonce),
            MessageRef::Request {
                id,
                protocol,
                payload,
            } => {
                let over = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.responses_queued >= self.cfg.max_requests_in_flight);
                if over {
                    return self.misbehave(
                        now,
                        conn,
                        Misbehaviour::RequestFlood,
                        "more requests in flight than allowed",
                    );
                }
                self.on_request(now, conn, id, protocol, payload);
            }
            MessageRef::Response { id, result } => self.on_response(now, conn, id, result),
            MessageRef::Gossip { topic, payload } if established => {
                self.on_gossip(now, conn, topic, payload)
            }
            // Gossip on a connection still contesting a duplicate is dropped: the peer's live
            // connection carries the same gossip.
            MessageRef::Gossip { .. } => {}
        }
    }

    /// The peer is leaving and says why: reported (the detail cut to 512 bytes), closed.
    fn on_goodbye(&mut self, now: Instant, conn: ConnId, g: Goodbye) {
        self.counters
            .goodbyes_received
            .bump(super::status::fold_goodbye(g.reason));
        let peer = self.conns.get(&conn).and_then(|c| c.node_id());
        let mut detail = g.detail;
        if detail.len() > 512 {
            let mut cut = 512;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        self.actions
            .push_back(Action::Notify(NodeEvent::GoodbyeReceived {
                conn,
                peer,
                reason: g.reason,
                detail,
            }));
        self.actions.push_back(Action::Close { conn });
        self.drop_conn(now, conn, DownReason::GoodbyeReceived(g.reason));
    }

    /// A pong: a probe's answer, or the RTT of one of our pings (an unknown nonce is ignored).
    fn on_pong(&mut self, now: Instant, conn: ConnId, nonce: u64) {
        if self.probe_answered(now, conn, nonce) {
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(sent) = c.take_ping(nonce) {
            let rtt = now - sent;
            c.rtt = Some(rtt);
            c.pongs_received += 1;
            self.counters.pongs_received += 1;
            self.counters.record_rtt(rtt);
        }
    }

    fn on_response(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: u64,
        result: Result<&[u8], crate::wire::RefuseReason>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match c.out_reqs.take(id) {
            Some(req) => {
                self.timers.cancel(super::timer::Timer::Request(conn, id));
                let bytes = result.map_or(0, <[u8]>::len);
                self.app.count_response_bytes(req.protocol, 0, bytes);
                match result {
                    Ok(payload) => self.end_request_with(now, conn, req, payload),
                    Err(r) => self.end_request(now, conn, req, QueryError::Refused(r)),
                }
            }
            None if c.out_reqs.was_expired(id) => {}
            None => self.misbehave(
                now,
                conn,
                Misbehaviour::UnsolicitedResponse,
                &format!("response to unknown request id {id}"),
            ),
        }
    }

    /// Disconnects and bans a peer that broke the protocol.
    pub(crate) fn misbehave(
        &mut self,
        now: Instant,
        conn: ConnId,
        what: Misbehaviour,
        detail: &str,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (node, addr) = (c.node_id(), c.addr);
        if what == Misbehaviour::Protocol {
            self.counters.protocol_errors += 1;
        }
        self.counters.misbehaviour.bump(what);
        self.bans.ban(node, addr.ip(), now + self.cfg.ban_duration);
        self.actions
            .push_back(Action::Notify(NodeEvent::Misbehaved {
                peer: node,
                addr,
                what,
                detail: String::from(detail),
            }));
        let reason = match what {
            Misbehaviour::InvalidBlock => GoodbyeReason::InvalidBlock,
            _ => GoodbyeReason::ProtocolError,
        };
        self.close_with_goodbye(now, conn, reason, detail);
    }
}
