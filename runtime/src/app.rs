//! Application protocols over a running node: requests, serving, publishing, validating.
//!
//! The machine surfaces a peer's request or gossip message as an event; here each is
//! routed to the channel the application registered for its protocol or topic
//! ([`NodeHandle::serve`], [`NodeHandle::gossip`]). Nothing waits on the application
//! unboundedly: a request whose protocol has no server, or whose server's queue is full, is
//! refused at once (`Unavailable`, `TooManyRequests`); one the server never answers is
//! refused by the machine at the protocol's deadline. A message on a topic nobody listens to
//! is ignored (never forwarded unvalidated).

use crate::handle::{Command, NodeHandle, NodeStopped};
use std::collections::HashMap;
use timed_core::protocol::{Protocol, Topic};
use timed_core::{
    GossipId, InboundId, MessageId, NodeId, ProtocolId, PublishError, QueryError, RefuseReason,
    TopicId, Verdict,
};
use tokio::sync::{mpsc, oneshot};

/// A peer's request on one of the application's protocols. Answer it with
/// [`respond`](Self::respond) (or [`refuse`](Self::refuse)); dropping it unanswered leaves
/// the machine to refuse it at the protocol's deadline.
#[derive(Debug)]
pub struct Incoming {
    pub id: InboundId,
    pub peer: NodeId,
    pub protocol: ProtocolId,
    pub payload: Vec<u8>,
    cmd: mpsc::Sender<Command>,
}

impl Incoming {
    /// The payload as protocol `P`'s request; `Err` means the peer sent garbage (refuse it
    /// with `BadRequest`).
    pub fn decode<P: Protocol>(&self) -> Result<P::Request, timed_core::protocol::DecodeError> {
        P::decode_request(&self.payload)
    }

    /// Sends `response` back on the connection the request came in on.
    pub async fn respond(self, response: Vec<u8>) -> Result<(), NodeStopped> {
        let (id, cmd) = (self.id, self.cmd);
        respond(&cmd, id, Ok(response)).await
    }

    /// Sends protocol `P`'s typed `response`.
    pub async fn respond_with<P: Protocol>(
        self,
        response: &P::Response,
    ) -> Result<(), NodeStopped> {
        let bytes = P::encode_response(response);
        self.respond(bytes).await
    }

    pub async fn refuse(self, reason: RefuseReason) -> Result<(), NodeStopped> {
        let (id, cmd) = (self.id, self.cmd);
        respond(&cmd, id, Err(reason)).await
    }

    pub(crate) fn new(
        id: InboundId,
        peer: NodeId,
        protocol: ProtocolId,
        payload: Vec<u8>,
        cmd: mpsc::Sender<Command>,
    ) -> Self {
        Incoming {
            id,
            peer,
            protocol,
            payload,
            cmd,
        }
    }
}

async fn respond(
    cmd: &mpsc::Sender<Command>,
    id: InboundId,
    result: Result<Vec<u8>, RefuseReason>,
) -> Result<(), NodeStopped> {
    cmd.send(Command::Respond { id, result })
        .await
        .map_err(|_| NodeStopped)
}

/// A new message on one of the application's topics.
#[derive(Debug)]
pub struct GossipMessage {
    pub id: GossipId,
    pub topic: TopicId,
    pub from: NodeId,
    pub payload: Vec<u8>,
}

impl GossipMessage {
    pub fn decode<T: Topic>(&self) -> Result<T::Message, timed_core::protocol::DecodeError> {
        T::decode(&self.payload)
    }
}

/// Where the driver sends inbound requests and gossip, per protocol and topic.
#[derive(Default)]
pub(crate) struct Routes {
    servers: HashMap<ProtocolId, mpsc::Sender<Incoming>>,
    topics: HashMap<TopicId, mpsc::Sender<GossipMessage>>,
}

impl Routes {
    pub fn serve(&mut self, protocol: ProtocolId, tx: mpsc::Sender<Incoming>) {
        self.servers.insert(protocol, tx);
    }

    pub fn listen(&mut self, topic: TopicId, tx: mpsc::Sender<GossipMessage>) {
        self.topics.insert(topic, tx);
    }

    /// Hands a request to its server; `Err` with the refusal when nobody can take it.
    pub fn route_request(
        &mut self,
        req: Incoming,
    ) -> Result<(), (InboundId, ProtocolId, RefuseReason)> {
        let (id, protocol) = (req.id, req.protocol);
        let Some(tx) = self.servers.get(&protocol) else {
            return Err((id, protocol, RefuseReason::Unavailable));
        };
        match tx.try_send(req) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err((id, protocol, RefuseReason::TooManyRequests))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.servers.remove(&protocol);
                Err((id, protocol, RefuseReason::Unavailable))
            }
        }
    }

    /// Hands a message to its listener; `Err` when nobody can judge it (it is ignored).
    pub fn route_gossip(&mut self, msg: GossipMessage) -> Result<(), GossipId> {
        let (id, topic) = (msg.id, msg.topic);
        let Some(tx) = self.topics.get(&topic) else {
            return Err(id);
        };
        match tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(id),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.topics.remove(&topic);
                Err(id)
            }
        }
    }
}

impl NodeHandle {
    /// Sends `payload` to `peer` on `protocol` and waits for the one outcome: the response
    /// bytes, or why there are none.
    pub async fn request(
        &self,
        peer: NodeId,
        protocol: ProtocolId,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, QueryError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Request {
            peer,
            protocol,
            payload,
            reply,
        };
        if self.cmd.send(cmd).await.is_err() {
            return Err(QueryError::ShuttingDown);
        }
        rx.await.unwrap_or(Err(QueryError::ShuttingDown))
    }

    /// Protocol `P`'s typed request. A response that does not decode ends as
    /// [`QueryError::BadResponse`].
    pub async fn call<P: Protocol>(
        &self,
        peer: NodeId,
        request: &P::Request,
    ) -> Result<P::Response, QueryError> {
        let bytes = self
            .request(peer, P::SPEC.id, P::encode_request(request))
            .await?;
        P::decode_response(&bytes).map_err(|_| QueryError::BadResponse)
    }

    /// Starts receiving peers' requests on `protocol` (declared in `Config::protocols`).
    /// At most `queue` wait in the channel; more are refused `TooManyRequests`. A second
    /// call replaces the first server. Returns once the node routes the protocol here: a
    /// request read after that reaches this receiver.
    pub async fn serve(
        &self,
        protocol: ProtocolId,
        queue: usize,
    ) -> Result<mpsc::Receiver<Incoming>, NodeStopped> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let (done, routed) = oneshot::channel();
        self.cmd
            .send(Command::Serve { protocol, tx, done })
            .await
            .map_err(|_| NodeStopped)?;
        routed.await.map_err(|_| NodeStopped)?;
        Ok(rx)
    }

    /// Publishes `payload` on `topic` to every peer on it.
    pub async fn publish(
        &self,
        topic: TopicId,
        payload: Vec<u8>,
    ) -> Result<MessageId, PublishError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Publish {
            topic,
            payload,
            reply,
        };
        if self.cmd.send(cmd).await.is_err() {
            return Err(PublishError::ShuttingDown);
        }
        rx.await.unwrap_or(Err(PublishError::ShuttingDown))
    }

    /// Topic `T`'s typed publish.
    pub async fn publish_typed<T: Topic>(
        &self,
        msg: &T::Message,
    ) -> Result<MessageId, PublishError> {
        self.publish(T::SPEC.id, T::encode(msg)).await
    }

    /// Starts receiving new messages on `topic`. When the topic validates, each must be
    /// judged with [`validate`](Self::validate); messages that find the channel full are
    /// ignored (not forwarded). Returns once the node routes the topic here.
    pub async fn gossip(
        &self,
        topic: TopicId,
        queue: usize,
    ) -> Result<mpsc::Receiver<GossipMessage>, NodeStopped> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let (done, routed) = oneshot::channel();
        self.cmd
            .send(Command::Listen { topic, tx, done })
            .await
            .map_err(|_| NodeStopped)?;
        routed.await.map_err(|_| NodeStopped)?;
        Ok(rx)
    }

    /// The verdict on a message from [`gossip`](Self::gossip).
    pub async fn validate(&self, id: GossipId, verdict: Verdict) -> Result<(), NodeStopped> {
        self.cmd
            .send(Command::Validate { id, verdict })
            .await
            .map_err(|_| NodeStopped)
    }
}
