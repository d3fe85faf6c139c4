//! Requests and responses over an existing connection.
//!
//! Every request carries a per-connection id; its response must carry the same id on the
//! same connection. A request ends exactly once: with its response, its timeout, the loss of
//! its connection, or a refusal. Application queries ([`QueryId`]) are requests whose end
//! is reported as [`NodeEvent::QueryDone`]; the chain layer's own requests end in its handlers.

use super::conn::ConnState;
use super::io::{Action, NodeEvent, QueryError};
use super::sync::ChainReq;
use super::timer::Timer;
use super::PeerMachine;
use crate::id::{ConnId, NodeId, QueryId};
use crate::store::Store;
use crate::time::Instant;
use crate::wire::{Message, RequestBody, ResponseBody};

/// Who is waiting for a request's response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Origin {
    App(QueryId),
    Chain(ChainReq),
}

#[derive(Clone, Debug)]
pub(crate) struct OutReq {
    pub origin: Origin,
    pub body: RequestBody,
    pub deadline: Instant,
}

impl<S: Store> PeerMachine<S> {
    /// Sends `body` to the established peer on `conn`; `Err` if its in-flight cap is reached.
    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        origin: Origin,
        body: RequestBody,
        deadline: Option<Instant>,
    ) -> Result<(), QueryError> {
        let max = self.cfg.max_requests_in_flight;
        let Some(c) = self.conns.get_mut(&conn) else {
            return Err(QueryError::PeerGone);
        };
        if c.closing {
            return Err(QueryError::PeerGone);
        }
        if c.out_reqs.len() >= max {
            return Err(QueryError::TooManyInFlight);
        }
        let id = c.next_req_id;
        c.next_req_id += 1;
        let deadline = deadline.unwrap_or(now + self.cfg.query_timeout);
        c.out_reqs.insert(
            id,
            OutReq {
                origin,
                body: body.clone(),
                deadline,
            },
        );
        self.timers.set(Timer::Request(conn, id), deadline);
        self.send_msg(conn, &Message::Request { id, body });
        Ok(())
    }

    /// Ends a request that will get no response.
    pub(crate) fn end_request(&mut self, now: Instant, conn: ConnId, req: OutReq, err: QueryError) {
        match req.origin {
            Origin::App(id) => self.finish_query(id, Err(err)),
            Origin::Chain(r) => self.chain_request_failed(now, conn, r, err),
        }
    }

    pub(crate) fn finish_query(&mut self, id: QueryId, result: Result<ResponseBody, QueryError>) {
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.as_str(),
        };
        super::status::Counters::bump(&mut self.counters.queries, label);
        self.actions
            .push_back(Action::Notify(NodeEvent::QueryDone { id, result }));
    }

    /// The application's query: see [`PeerMachine::query`].
    pub(crate) fn start_query(&mut self, now: Instant, peer: NodeId, body: RequestBody) -> QueryId {
        let id = QueryId(self.next_query);
        self.next_query += 1;
        if self.stopped {
            self.finish_query(id, Err(QueryError::ShuttingDown));
            return id;
        }
        let Some(&conn) = self.peers.get(&peer) else {
            self.finish_query(id, Err(QueryError::UnknownPeer));
            return id;
        };
        if let Err(e) = self.send_request(now, conn, Origin::App(id), body, None) {
            self.finish_query(id, Err(e));
        }
        id
    }

    pub(crate) fn on_request_timeout(&mut self, now: Instant, conn: ConnId, id: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(req) = c.out_reqs.remove(&id) else {
            return;
        };
        c.remember_expired(id);
        self.end_request(now, conn, req, QueryError::Timeout);
    }

    /// Moves every request in flight on `from` to `to`, re-sending it there with a new id and
    /// its original deadline. Used when a peer's connection is replaced, so that a duplicate
    /// resolved under a query does not fail it.
    pub(crate) fn migrate_requests(&mut self, now: Instant, from: ConnId, to: ConnId) {
        let Some(c) = self.conns.get_mut(&from) else {
            return;
        };
        let reqs = core::mem::take(&mut c.out_reqs);
        for (id, req) in reqs {
            self.timers.cancel(Timer::Request(from, id));
            let to_ok = matches!(
                self.conns.get(&to).map(|c| c.state),
                Some(ConnState::Established)
            );
            let resend = if to_ok {
                self.send_request(now, to, req.origin, req.body.clone(), Some(req.deadline))
            } else {
                Err(QueryError::PeerGone)
            };
            if let Err(e) = resend {
                self.end_request(now, from, req, e);
            }
        }
    }

    /// Fails every request in flight on a connection that is going away.
    pub(crate) fn fail_requests(&mut self, now: Instant, conn: ConnId, err: QueryError) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let reqs = core::mem::take(&mut c.out_reqs);
        for (id, req) in reqs {
            self.timers.cancel(Timer::Request(conn, id));
            self.end_request(now, conn, req, err);
        }
    }
}
