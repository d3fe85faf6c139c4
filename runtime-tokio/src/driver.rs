//! The task that owns the machine.

use crate::app::{GossipMessage, Incoming, Routes};
use crate::conn::{self, Inbox, WriteCmd};
use crate::{Clock, Command, Exit, RuntimeOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use timed_core::{
    Action, ConnId, Direction, DownReason, GoodbyeReason, InboundId, Input, NodeEvent, NodeId,
    PeerMachine, ProtocolId, QueryError, QueryId, RefuseReason, ResponseBody, Store, Verdict,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, info_span, trace, warn, Span};

struct ConnEntry {
    span: Span,
    write: mpsc::UnboundedSender<WriteCmd>,
    pause: watch::Sender<bool>,
    /// Receivers held until the dial completes and the I/O tasks start.
    pending: Option<(mpsc::UnboundedReceiver<WriteCmd>, watch::Receiver<bool>)>,
}

pub(crate) struct Driver<S: Store> {
    machine: PeerMachine<S>,
    clock: Clock,
    opts: RuntimeOptions,
    listener: Option<TcpListener>,
    /// After an accept error (e.g. out of file descriptors), accepting resumes at this time.
    accept_resume: Option<tokio::time::Instant>,
    events: broadcast::Sender<NodeEvent>,
    inbox_tx: mpsc::Sender<Inbox>,
    inbox_rx: mpsc::Receiver<Inbox>,
    conns: HashMap<ConnId, ConnEntry>,
    queries: HashMap<QueryId, oneshot::Sender<Result<ResponseBody, QueryError>>>,
    requests: HashMap<QueryId, oneshot::Sender<Result<Vec<u8>, QueryError>>>,
    routes: Routes,
    /// For the `Incoming` requests handed to servers; weak, so the node still stops once
    /// every handle is gone.
    cmd: mpsc::WeakSender<Command>,
    /// Writer tasks; awaited on shutdown so every Goodbye is flushed.
    writers: JoinSet<()>,
    fatal: Option<String>,
}

impl<S: Store> Driver<S> {
    pub(crate) fn new(
        machine: PeerMachine<S>,
        clock: Clock,
        opts: RuntimeOptions,
        listener: Option<TcpListener>,
        events: broadcast::Sender<NodeEvent>,
        cmd: mpsc::WeakSender<Command>,
    ) -> Self {
        let (inbox_tx, inbox_rx) = mpsc::channel(opts.inbox_capacity.max(1));
        Driver {
            machine,
            clock,
            opts,
            listener,
            accept_resume: None,
            events,
            inbox_tx,
            inbox_rx,
            conns: HashMap::new(),
            queries: HashMap::new(),
            requests: HashMap::new(),
            routes: Routes::default(),
            cmd,
            writers: JoinSet::new(),
            fatal: None,
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Exit<S> {
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        loop {
            self.drain_actions();
            while self.writers.try_join_next().is_some() {}
            if self.machine.is_stopped() {
                break;
            }
            let deadline = self.machine.poll_timeout();
            if let Some(t) = deadline {
                timer.as_mut().reset(self.clock.to_tokio(t));
            }
            let accepting = self.listener.is_some()
                && self
                    .accept_resume
                    .is_none_or(|t| t <= tokio::time::Instant::now());
            let listener = self.listener.as_ref();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    // Every handle is gone: nobody can ever talk to this node again.
                    None => self.machine.shutdown(self.clock.now()),
                },
                Some(msg) = self.inbox_rx.recv() => self.on_inbox(msg),
                res = accept(listener), if accepting => self.on_accept(res),
                _ = &mut timer, if deadline.is_some() => {
                    self.machine.handle_timeout(self.clock.now());
                }
                _ = sleep_until_opt(self.accept_resume), if self.accept_resume.is_some() => {
                    self.accept_resume = None;
                }
            }
        }
        self.finish().await
    }

    /// After the machine stopped: stop accepting, let every writer flush its Goodbye and
    /// close, then hand back the store.
    async fn finish(mut self) -> Exit<S> {
        self.listener = None;
        self.drain_actions();
        // Connections the machine no longer tracks but whose writer is still open (there
        // should be none after `shutdown`): close them too.
        for (_, entry) in self.conns.drain() {
            let _ = entry.write.send(WriteCmd::Close);
        }
        for (_, reply) in self.queries.drain() {
            let _ = reply.send(Err(QueryError::ShuttingDown));
        }
        let deadline = tokio::time::Instant::now() + self.opts.shutdown_timeout;
        // Keep draining the inbox meanwhile so no reader or writer blocks on a full channel.
        loop {
            tokio::select! {
                joined = self.writers.join_next() => if joined.is_none() { break },
                Some(_) = self.inbox_rx.recv() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    warn!(left = self.writers.len(), "shutdown: connections did not flush in time; closing them");
                    self.writers.abort_all();
                    break;
                }
            }
        }
        info!("stopped");
        Exit {
            store: self.machine.into_store(),
            fatal: self.fatal,
        }
    }

    fn on_command(&mut self, cmd: Command) {
        let now = self.clock.now();
        match cmd {
            Command::Query { peer, req, reply } => {
                let id = self.machine.query(now, peer, req);
                self.queries.insert(id, reply);
            }
            Command::SubmitTx { tx, reply } => {
                let _ = reply.send(self.machine.submit_tx(now, tx));
            }
            Command::Dial { addr } => self.machine.dial(now, addr),
            Command::Status { reply } => {
                let _ = reply.send(self.machine.status());
            }
            Command::Shutdown => {
                info!("shutting down: saying goodbye to every peer");
                self.machine.shutdown(now);
            }
            Command::Request {
                peer,
                protocol,
                payload,
                reply,
            } => {
                let id = self.machine.request(now, peer, protocol, payload);
                self.requests.insert(id, reply);
            }
            Command::Serve { protocol, tx } => self.routes.serve(protocol, tx),
            Command::Respond { id, result } => {
                if let Err(e) = self.machine.respond(now, id, result) {
                    debug!(error = %e, "answer to a peer's request not sent");
                }
            }
            Command::Publish {
                topic,
                payload,
                reply,
            } => {
                let _ = reply.send(self.machine.publish(now, topic, payload));
            }
            Command::Listen { topic, tx } => self.routes.listen(topic, tx),
            Command::Validate { id, verdict } => {
                if let Err(e) = self.machine.validate(now, id, verdict) {
                    debug!(error = %e, "verdict on a gossip message not applied");
                }
            }
        }
    }

    fn on_inbox(&mut self, msg: Inbox) {
        let now = self.clock.now();
        match msg {
            Inbox::Connected { conn, stream } => {
                let Some(entry) = self.conns.get_mut(&conn) else {
                    // The machine gave up on this dial meanwhile; drop the socket.
                    return;
                };
                let Some((writes, pause)) = entry.pending.take() else {
                    return;
                };
                let span = entry.span.clone();
                span.in_scope(|| debug!("connected"));
                self.start_io(conn, stream, writes, pause, span);
                self.machine.handle(now, Input::Connected { conn });
            }
            Inbox::DialFailed { conn, error } => {
                if let Some(entry) = self.conns.remove(&conn) {
                    entry.span.in_scope(|| debug!(%error, "dial failed"));
                    self.machine.handle(now, Input::DialFailed { conn });
                }
            }
            Inbox::Bytes { conn, data } => {
                if self.conns.contains_key(&conn) {
                    self.machine
                        .handle(now, Input::BytesIn { conn, data: &data });
                }
            }
            Inbox::Written { conn, bytes } => {
                if self.conns.contains_key(&conn) {
                    self.machine.handle(now, Input::Written { conn, bytes });
                }
            }
            Inbox::Closed { conn, kind } => {
                // Dropping the entry drops the writer's queue: it flushes and ends.
                if let Some(entry) = self.conns.remove(&conn) {
                    entry
                        .span
                        .in_scope(|| debug!(kind = kind.as_str(), "transport closed"));
                    self.machine.handle(now, Input::Closed { conn, kind });
                }
            }
        }
    }

    fn on_accept(&mut self, res: std::io::Result<(TcpStream, SocketAddr)>) {
        match res {
            Ok((stream, remote)) => match self.machine.accept(self.clock.now(), remote) {
                Ok(conn) => {
                    let span = conn_span(conn, Direction::Inbound, remote);
                    span.in_scope(|| debug!("accepted"));
                    let (write, writes) = mpsc::unbounded_channel();
                    let (pause, pause_rx) = watch::channel(false);
                    self.conns.insert(
                        conn,
                        ConnEntry {
                            span: span.clone(),
                            write,
                            pause,
                            pending: None,
                        },
                    );
                    self.start_io(conn, stream, writes, pause_rx, span);
                }
                Err(refused) => debug!(%remote, %refused, "inbound connection refused"),
            },
            Err(e) => {
                // Typically out of file descriptors: back off briefly instead of spinning.
                warn!(error = %e, "accept failed; pausing accepts for 100ms");
                self.accept_resume = Some(tokio::time::Instant::now() + Duration::from_millis(100));
            }
        }
    }

    fn start_io(
        &mut self,
        conn: ConnId,
        stream: TcpStream,
        writes: mpsc::UnboundedReceiver<WriteCmd>,
        pause: watch::Receiver<bool>,
        span: Span,
    ) {
        let writer = conn::spawn_io(
            conn,
            stream,
            self.inbox_tx.clone(),
            writes,
            pause,
            &self.opts,
            span,
        );
        self.writers.spawn(async move {
            let _ = writer.await;
        });
    }

    /// Carries out every queued action, in order.
    fn drain_actions(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Send { conn, data } => {
                    if let Some(entry) = self.conns.get(&conn) {
                        // Bounded in bytes by the machine's transport window (it only hands
                        // over more once we report `Written`).
                        let _ = entry.write.send(WriteCmd::Data(data));
                    }
                }
                Action::Close { conn } => {
                    if let Some(entry) = self.conns.remove(&conn) {
                        entry.span.in_scope(|| debug!("closing"));
                        let _ = entry.write.send(WriteCmd::Close);
                    }
                }
                Action::Dial { conn, addr } => {
                    let span = conn_span(conn, Direction::Outbound, addr);
                    span.in_scope(|| debug!("dialing"));
                    let (write, writes) = mpsc::unbounded_channel();
                    let (pause, pause_rx) = watch::channel(false);
                    conn::spawn_dial(
                        conn,
                        addr,
                        self.opts.connect_timeout,
                        self.inbox_tx.clone(),
                        span.clone(),
                    );
                    self.conns.insert(
                        conn,
                        ConnEntry {
                            span,
                            write,
                            pause,
                            pending: Some((writes, pause_rx)),
                        },
                    );
                }
                Action::PauseRead { conn } => {
                    if let Some(entry) = self.conns.get(&conn) {
                        entry.span.in_scope(|| debug!("pausing reads"));
                        let _ = entry.pause.send(true);
                    }
                }
                Action::ResumeRead { conn } => {
                    if let Some(entry) = self.conns.get(&conn) {
                        entry.span.in_scope(|| debug!("resuming reads"));
                        let _ = entry.pause.send(false);
                    }
                }
                Action::Notify(event) => self.on_event(event),
            }
        }
    }

    fn on_event(&mut self, event: NodeEvent) {
        let span_of = |conns: &HashMap<ConnId, ConnEntry>, conn: ConnId| {
            conns
                .get(&conn)
                .map(|e| e.span.clone())
                .unwrap_or_else(Span::none)
        };
        match &event {
            NodeEvent::RequestDone { id, result, .. } => {
                trace!(query = %id, ok = result.is_ok(), "request done");
                if let Some(reply) = self.requests.remove(id) {
                    let _ = reply.send(result.clone());
                }
            }
            NodeEvent::InboundRequest {
                id,
                peer,
                protocol,
                payload,
            } => self.route_request(*id, *peer, *protocol, payload.clone()),
            NodeEvent::GossipReceived {
                id,
                topic,
                from,
                payload,
            } => {
                let msg = GossipMessage {
                    id: *id,
                    topic: *topic,
                    from: *from,
                    payload: payload.clone(),
                };
                if let Err(id) = self.routes.route_gossip(msg) {
                    // Nobody can judge it: not forwarded. (An unvalidated topic already
                    // forwarded it, and this verdict is refused as unknown.)
                    let _ = self.machine.validate(self.clock.now(), id, Verdict::Ignore);
                }
            }
            NodeEvent::QueryDone { id, result } => {
                trace!(query = %id, ok = result.is_ok(), "query done");
                if let Some(reply) = self.queries.remove(id) {
                    let _ = reply.send(result.clone());
                }
            }
            NodeEvent::PeerUp {
                peer,
                conn,
                direction,
                addr,
            } => {
                let span = span_of(&self.conns, *conn);
                span.record("peer", tracing::field::display(peer.short()));
                span.in_scope(
                    || info!(peer = %peer, direction = direction.as_str(), %addr, "peer up"),
                );
            }
            NodeEvent::PeerMoved { peer, from, to } => {
                if let Some(e) = self.conns.get(to) {
                    e.span.record("peer", tracing::field::display(peer.short()));
                }
                debug!(peer = %peer.short(), %from, %to, "peer moved to another connection");
            }
            NodeEvent::PeerDown { peer, conn, reason } => {
                let span = span_of(&self.conns, *conn);
                let _g = span.enter();
                match reason {
                    DownReason::GoodbyeReceived(r) => {
                        info!(peer = %peer.short(), %conn, reason = r.as_str(), "peer down: it said goodbye ({r})")
                    }
                    DownReason::GoodbyeSent(GoodbyeReason::Shutdown) => {
                        debug!(peer = %peer.short(), %conn, "peer down: we are shutting down")
                    }
                    _ => info!(peer = %peer.short(), %conn, reason = %reason, "peer down"),
                }
            }
            NodeEvent::ConnFailed { conn, addr, reason } => {
                debug!(%conn, %addr, %reason, "connection ended before the handshake completed")
            }
            NodeEvent::GoodbyeReceived {
                conn,
                reason,
                detail,
                ..
            } => {
                let span = span_of(&self.conns, *conn);
                span.in_scope(|| debug!(reason = reason.as_str(), %detail, "peer said goodbye"));
            }
            NodeEvent::BlocksApplied { from, to, .. } => debug!(from, to, "blocks applied"),
            NodeEvent::Reorg { fork, old_tip, to } => info!(fork, old_tip, to, "chain reorganised"),
            NodeEvent::TxAccepted { id } => debug!(tx = %id, "transaction accepted"),
            NodeEvent::Misbehaved {
                peer,
                addr,
                what,
                detail,
            } => warn!(
                peer = %peer.map(|p| p.short().to_string()).unwrap_or_else(|| "?".into()),
                %addr, what = what.as_str(), %detail, "peer misbehaved: disconnected and banned"
            ),
            NodeEvent::Fatal { error } => {
                error!(%error, "storage failure: the node stops");
                self.fatal = Some(error.clone());
            }
        }
        // No receivers is fine.
        let _ = self.events.send(event);
    }
}

impl<S: Store> Driver<S> {
    fn route_request(
        &mut self,
        id: InboundId,
        peer: NodeId,
        protocol: ProtocolId,
        payload: Vec<u8>,
    ) {
        let refusal = match self.cmd.upgrade() {
            Some(cmd) => self
                .routes
                .route_request(Incoming::new(id, peer, protocol, payload, cmd))
                .err()
                .map(|(_, _, r)| r),
            None => Some(RefuseReason::Unavailable),
        };
        if let Some(reason) = refusal {
            debug!(%protocol, reason = reason.as_str(), "peer's request refused: no server can take it");
            let _ = self.machine.respond(self.clock.now(), id, Err(reason));
        }
    }
}

fn conn_span(conn: ConnId, dir: Direction, remote: SocketAddr) -> Span {
    info_span!("conn", id = %conn, dir = dir.as_str(), %remote, peer = tracing::field::Empty)
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
