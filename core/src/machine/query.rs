//! Our requests to peers, on any protocol, over an existing connection.
//!
//! Every request carries a per-connection id; its response must carry the same id on the
//! same connection. A request ends exactly once: with its response, its timeout, the loss of
//! its connection, or a refusal. Who hears of the end depends on who asked ([`Origin`]): the
//! application through [`NodeEvent::QueryDone`] (built-in protocols, typed) or
//! [`NodeEvent::RequestDone`] (any protocol, bytes), the chain layer through its handlers.
//!
//! What the peer advertised in its `Hello` is checked before anything is sent: a protocol it
//! does not run ends the request with `Unsupported`, a payload over its limit with
//! `TooLarge`, and more requests than it accepts at once with `TooManyInFlight` — no round
//! trip is wasted and nothing the peer would refuse is put on the wire.

use super::conn::ConnState;
use super::io::{Action, NodeEvent, QueryError};
use super::timer::Timer;
use super::PeerMachine;
use crate::id::{ConnId, NodeId, QueryId};
use crate::protocol::{builtin, ProtocolId};
use crate::store::Store;
use crate::time::Instant;
use crate::wire::{MessageRef, RequestBody, ResponseBody};
use alloc::vec::Vec;

/// A request the chain layer is waiting on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ChainReq {
    /// A range for sync, starting at `from`.
    Range {
        from: u64,
    },
    /// The peer's hash at a height, during a fork search.
    ForkProbe {
        height: u64,
    },
    /// A branch range during a fork switch.
    Branch {
        from: u64,
    },
    Tip,
    Peers,
}

/// Who is waiting for a request's response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Origin {
    /// [`PeerMachine::query`]: a built-in protocol, answered as a typed [`ResponseBody`].
    Query(QueryId),
    /// [`PeerMachine::request`]: any protocol, answered as bytes.
    App(QueryId),
    Chain(ChainReq),
}

#[derive(Clone, Debug)]
pub(crate) struct OutReq {
    pub origin: Origin,
    pub protocol: ProtocolId,
    /// Kept so the request can be re-sent if dedup moves the peer to another connection.
    pub payload: Vec<u8>,
    pub deadline: Instant,
}

impl<S: Store> PeerMachine<S> {
    /// Sends a request on `protocol` to the established peer on `conn`. `Err` (and nothing
    /// sent) when the peer cannot take it; the caller ends the request with that error.
    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        origin: Origin,
        protocol: ProtocolId,
        payload: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<(), QueryError> {
        let (id, timeout) = self.admit_request(conn, protocol, payload.len())?;
        let deadline = deadline.unwrap_or(now + timeout);
        let frame = {
            let mut f = self.frame_buf();
            MessageRef::Request {
                id,
                protocol,
                payload: &payload,
            }
            .encode_frame(&mut f);
            f
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.out_reqs.insert(
                id,
                OutReq {
                    origin,
                    protocol,
                    payload,
                    deadline,
                },
            );
        }
        self.app.count_out(protocol, frame.len());
        self.timers.set(Timer::Request(conn, id), deadline);
        self.send_frame(conn, frame.into(), false);
        Ok(())
    }

    /// Checks a request of `len` bytes against our declaration of `protocol` and what the
    /// peer on `conn` advertised, and takes the connection's next request id for it. Returns
    /// the id and the protocol's timeout.
    fn admit_request(
        &mut self,
        conn: ConnId,
        protocol: ProtocolId,
        len: usize,
    ) -> Result<(u64, crate::time::Duration), QueryError> {
        let Some((spec, _)) = self.registry.protocol(protocol) else {
            return Err(QueryError::UnknownProtocol);
        };
        let spec = *spec;
        let Some(c) = self.conns.get_mut(&conn) else {
            return Err(QueryError::PeerGone);
        };
        if c.closing {
            return Err(QueryError::PeerGone);
        }
        let Some(ad) = c.remote.as_ref().and_then(|r| r.protocol(protocol)) else {
            return Err(QueryError::Unsupported);
        };
        if len > (spec.max_request_bytes as usize).min(ad.max_request_bytes as usize) {
            return Err(QueryError::TooLarge);
        }
        let in_flight = c.out_reqs.on(protocol);
        let max_out = usize::from(spec.max_outbound_in_flight).min(usize::from(ad.max_in_flight));
        if in_flight >= max_out || c.out_reqs.len() >= self.cfg.max_requests_in_flight {
            return Err(QueryError::TooManyInFlight);
        }
        Ok((c.out_reqs.next_id(), spec.timeout))
    }

    /// Ends a request that will get no response.
    pub(crate) fn end_request(&mut self, now: Instant, conn: ConnId, req: OutReq, err: QueryError) {
        self.app.count_result(req.protocol, err.as_str());
        match req.origin {
            Origin::Query(id) => self.finish_query(id, Err(err)),
            Origin::App(id) => self.finish_request(id, req.protocol, Err(err)),
            Origin::Chain(r) => self.chain_request_failed(now, conn, r, err),
        }
    }

    /// A response arrived for `req` (already removed from the connection's table).
    pub(crate) fn end_request_with(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: OutReq,
        payload: &[u8],
    ) {
        let over = self
            .registry
            .protocol(req.protocol)
            .is_some_and(|(s, _)| payload.len() > s.max_response_bytes as usize);
        if over {
            // We advertised nothing about responses, but the limit is part of the protocol
            // both ends run: a peer that ignores it is broken or hostile.
            self.end_request(now, conn, req, QueryError::TooLarge);
            return self.misbehave(
                now,
                conn,
                super::io::Misbehaviour::BadResponse,
                "response over the protocol's max_response_bytes",
            );
        }
        self.app.count_result(req.protocol, "ok");
        match req.origin {
            Origin::App(id) => self.finish_request(id, req.protocol, Ok(payload.to_vec())),
            Origin::Query(id) => match builtin::decode_response(req.protocol, payload) {
                Some(body) => self.finish_query(id, Ok(body)),
                None => {
                    self.finish_query(id, Err(QueryError::BadResponse));
                    self.misbehave(
                        now,
                        conn,
                        super::io::Misbehaviour::BadResponse,
                        "response does not decode",
                    );
                }
            },
            Origin::Chain(r) => match builtin::decode_response(req.protocol, payload) {
                Some(body) => {
                    let asked = builtin::decode_request(req.protocol, &req.payload);
                    self.chain_response(now, conn, r, asked, body)
                }
                None => {
                    self.chain_request_failed(now, conn, r, QueryError::BadResponse);
                    self.misbehave(
                        now,
                        conn,
                        super::io::Misbehaviour::BadResponse,
                        "response does not decode",
                    );
                }
            },
        }
    }

    pub(crate) fn finish_query(&mut self, id: QueryId, result: Result<ResponseBody, QueryError>) {
        self.counters
            .queries
            .bump(super::status::QueryOutcome::of(&result));
        self.actions
            .push_back(Action::Notify(NodeEvent::QueryDone { id, result }));
    }

    fn finish_request(
        &mut self,
        id: QueryId,
        protocol: ProtocolId,
        result: Result<Vec<u8>, QueryError>,
    ) {
        self.counters
            .queries
            .bump(super::status::QueryOutcome::of(&result));
        self.actions
            .push_back(Action::Notify(NodeEvent::RequestDone {
                id,
                protocol,
                result,
            }));
    }

    fn next_query_id(&mut self) -> QueryId {
        let id = QueryId::new(self.next_query);
        self.next_query += 1;
        id
    }

    /// The application's built-in query: see [`PeerMachine::query`].
    pub(crate) fn start_query(&mut self, now: Instant, peer: NodeId, body: RequestBody) -> QueryId {
        let id = self.next_query_id();
        let (protocol, payload) = builtin::encode_request(&body);
        if let Err(e) = self.start(now, peer, Origin::Query(id), protocol, payload) {
            self.app.count_result(protocol, e.as_str());
            self.finish_query(id, Err(e));
        }
        id
    }

    /// The application's request on any protocol: see [`PeerMachine::request`].
    pub(crate) fn start_request(
        &mut self,
        now: Instant,
        peer: NodeId,
        protocol: ProtocolId,
        payload: Vec<u8>,
    ) -> QueryId {
        let id = self.next_query_id();
        if let Err(e) = self.start(now, peer, Origin::App(id), protocol, payload) {
            self.app.count_result(protocol, e.as_str());
            self.finish_request(id, protocol, Err(e));
        }
        id
    }

    fn start(
        &mut self,
        now: Instant,
        peer: NodeId,
        origin: Origin,
        protocol: ProtocolId,
        payload: Vec<u8>,
    ) -> Result<(), QueryError> {
        if self.stopped {
            return Err(QueryError::ShuttingDown);
        }
        let Some(&conn) = self.peers.get(&peer) else {
            return Err(QueryError::UnknownPeer);
        };
        self.send_request(now, conn, origin, protocol, payload, None)
    }

    pub(crate) fn on_request_timeout(&mut self, now: Instant, conn: ConnId, id: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(req) = c.out_reqs.expire(id) else {
            return;
        };
        self.end_request(now, conn, req, QueryError::Timeout);
    }

    /// Moves every request in flight on `from` to `to`, re-sending it there with a new id and
    /// its original deadline. Used when a peer's connection is replaced, so that a duplicate
    /// resolved under a query does not fail it.
    pub(crate) fn migrate_requests(&mut self, now: Instant, from: ConnId, to: ConnId) {
        let Some(c) = self.conns.get_mut(&from) else {
            return;
        };
        let reqs = c.out_reqs.take_all();
        for (id, req) in reqs {
            self.timers.cancel(Timer::Request(from, id));
            self.resend(now, from, to, req);
        }
    }

    /// Re-sends `req`, first sent on `from`, on `to`; ends it if `to` cannot take it.
    pub(crate) fn resend(&mut self, now: Instant, from: ConnId, to: ConnId, req: OutReq) {
        let to_ok = matches!(
            self.conns.get(&to).map(|c| c.state),
            Some(ConnState::Established)
        );
        let resend = if to_ok {
            self.send_request(
                now,
                to,
                req.origin,
                req.protocol,
                req.payload.clone(),
                Some(req.deadline),
            )
        } else {
            Err(QueryError::PeerGone)
        };
        if let Err(e) = resend {
            self.end_request(now, from, req, e);
        }
    }

    /// Fails every request in flight on a connection that is going away.
    pub(crate) fn fail_requests(&mut self, now: Instant, conn: ConnId, err: QueryError) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let reqs = c.out_reqs.take_all();
        for (id, req) in reqs {
            self.timers.cancel(Timer::Request(conn, id));
            self.end_request(now, conn, req, err);
        }
    }
}
