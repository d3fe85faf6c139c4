//! The task that owns the machine: it feeds the machine every input and carries out every
//! action, on whatever runtime `R` is.

use crate::app::{GossipMessage, Incoming, Routes};
use crate::conn::{self, Inbox, IoLimits, PipeEnds, Pipes, WriteCmd};
use crate::handle::{Command, Exit};
use crate::log::log_event;
use crate::runtime::{far_saturating_add, Runtime, Stream};
use crate::{Clock, RuntimeOptions};
use futures::future::RemoteHandle;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use timed_core::{
    Action, ConnId, Direction, InboundId, Input, NodeEvent, NodeId, PeerMachine, ProtocolId,
    QueryError, QueryId, RefuseReason, ResponseBody, Store, Verdict,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, info_span, warn, Span};

/// After an accept error (typically out of file descriptors), accepting pauses this long
/// instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct ConnEntry {
    span: Span,
    pipes: Pipes,
    /// The tasks' ends, held until the dial completes and the I/O tasks start.
    pending: Option<PipeEnds>,
}

pub(crate) struct Driver<R: Runtime, S: Store> {
    rt: R,
    machine: PeerMachine<S>,
    clock: Clock,
    opts: RuntimeOptions,
    listener: Option<R::Listener>,
    /// After an accept error, accepting resumes at this time.
    accept_resume: Option<std::time::Instant>,
    events: broadcast::Sender<NodeEvent>,
    inbox_tx: mpsc::Sender<Inbox<R>>,
    inbox_rx: mpsc::Receiver<Inbox<R>>,
    conns: HashMap<ConnId, ConnEntry>,
    queries: HashMap<QueryId, oneshot::Sender<Result<ResponseBody, QueryError>>>,
    requests: HashMap<QueryId, oneshot::Sender<Result<Vec<u8>, QueryError>>>,
    routes: Routes,
    /// For the `Incoming` requests handed to servers; weak, so the node still stops once
    /// every handle is gone.
    cmd: mpsc::WeakSender<Command>,
    /// Writer tasks; awaited on shutdown so every Goodbye is flushed, cancelled by dropping.
    writers: FuturesUnordered<RemoteHandle<()>>,
    fatal: Option<timed_core::StoreFailure>,
}

/// What the driver is given at start.
pub(crate) struct Parts<R: Runtime, S: Store> {
    pub(crate) rt: R,
    pub(crate) machine: PeerMachine<S>,
    pub(crate) clock: Clock,
    pub(crate) opts: RuntimeOptions,
    pub(crate) listener: Option<R::Listener>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) cmd: mpsc::WeakSender<Command>,
}

impl<R: Runtime, S: Store> Driver<R, S> {
    pub(crate) fn new(p: Parts<R, S>) -> Self {
        let (inbox_tx, inbox_rx) = mpsc::channel(p.opts.inbox_capacity.max(1));
        Driver {
            rt: p.rt,
            machine: p.machine,
            clock: p.clock,
            opts: p.opts,
            listener: p.listener,
            accept_resume: None,
            events: p.events,
            inbox_tx,
            inbox_rx,
            conns: HashMap::new(),
            queries: HashMap::new(),
            requests: HashMap::new(),
            routes: Routes::default(),
            cmd: p.cmd,
            writers: FuturesUnordered::new(),
            fatal: None,
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Exit<S> {
        // The one timer, re-armed from `poll_timeout` whenever the deadline changes.
        let mut timer: Option<Pin<Box<R::Sleep>>> = None;
        let mut armed: Option<timed_core::Instant> = None;
        loop {
            self.drain_actions();
            // Reap finished writers (FuturesUnordered tracks readiness itself, so polling
            // with a no-op waker loses nothing).
            while let Some(Some(())) = self.writers.next().now_or_never() {}
            if self.machine.is_stopped() {
                break;
            }
            let deadline = self.machine.poll_timeout();
            if deadline != armed {
                timer = deadline.map(|t| Box::pin(self.rt.sleep_until(self.clock.to_runtime(t))));
                armed = deadline;
            }
            let accepting = self.listener.is_some() && self.accept_resume.is_none();
            let listener = self.listener.as_ref();
            let rt = &self.rt;
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    // Every handle is gone: nobody can ever talk to this node again.
                    None => self.machine.shutdown(self.clock.now()),
                },
                Some(msg) = self.inbox_rx.recv() => self.on_inbox(msg),
                res = accept(rt, listener), if accepting => self.on_accept(res),
                () = wait(&mut timer) => {
                    timer = None;
                    armed = None;
                    self.machine.handle_timeout(self.clock.now());
                }
                () = wait_until(rt, self.accept_resume) => self.accept_resume = None,
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
            let _ = entry.pipes.write.send(WriteCmd::Close);
        }
        for (_, reply) in self.queries.drain() {
            let _ = reply.send(Err(QueryError::ShuttingDown));
        }
        for (_, reply) in self.requests.drain() {
            let _ = reply.send(Err(QueryError::ShuttingDown));
        }
        let deadline = far_saturating_add(R::now(), self.opts.shutdown_timeout);
        let mut out_of_time = Box::pin(self.rt.sleep_until(deadline));
        // Keep draining the inbox meanwhile so no reader or writer blocks on a full channel.
        loop {
            tokio::select! {
                joined = self.writers.next() => if joined.is_none() { break },
                Some(_) = self.inbox_rx.recv() => {}
                _ = &mut out_of_time => {
                    warn!(left = self.writers.len(), "shutdown: connections did not flush in time; closing them");
                    self.writers.clear(); // dropping the handles cancels the writers
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
            Command::Serve { protocol, tx, done } => {
                self.routes.serve(protocol, tx);
                let _ = done.send(());
            }
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
            Command::Listen { topic, tx, done } => {
                self.routes.listen(topic, tx);
                let _ = done.send(());
            }
            Command::Validate { id, verdict } => {
                if let Err(e) = self.machine.validate(now, id, verdict) {
                    debug!(error = %e, "verdict on a gossip message not applied");
                }
            }
        }
    }

    fn on_inbox(&mut self, msg: Inbox<R>) {
        let now = self.clock.now();
        match msg {
            Inbox::Connected { conn, stream } => {
                let Some(entry) = self.conns.get_mut(&conn) else {
                    // The machine gave up on this dial meanwhile; dropping the socket closes it.
                    return;
                };
                let Some(ends) = entry.pending.take() else {
                    return;
                };
                let span = entry.span.clone();
                span.in_scope(|| debug!("connected"));
                self.start_io(conn, stream, ends, span);
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

    fn on_accept(&mut self, res: std::io::Result<(Stream<R>, SocketAddr)>) {
        match res {
            Ok((stream, remote)) => match self.machine.accept(self.clock.now(), remote) {
                Ok(conn) => {
                    let span = conn_span(conn, Direction::Inbound, remote);
                    span.in_scope(|| debug!("accepted"));
                    let (pipes, ends) = conn::pipes();
                    let entry = ConnEntry {
                        span: span.clone(),
                        pipes,
                        pending: None,
                    };
                    self.conns.insert(conn, entry);
                    self.start_io(conn, stream, ends, span);
                }
                Err(refused) => debug!(%remote, %refused, "inbound connection refused"),
            },
            Err(e) => {
                warn!(error = %e, "accept failed; pausing accepts for {ACCEPT_BACKOFF:?}");
                self.accept_resume = Some(far_saturating_add(R::now(), ACCEPT_BACKOFF));
            }
        }
    }

    fn start_io(&mut self, conn: ConnId, stream: Stream<R>, ends: PipeEnds, span: Span) {
        let limits = IoLimits {
            read_buffer: self.opts.read_buffer,
            linger: self.opts.linger,
        };
        let inbox = self.inbox_tx.clone();
        let writer = conn::spawn_io(&self.rt, conn, stream, inbox, ends, limits, span);
        self.writers.push(writer);
    }

    /// Carries out every queued action, in order.
    fn drain_actions(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Send { conn, data } => {
                    if let Some(entry) = self.conns.get(&conn) {
                        // Bounded in bytes by the machine's transport window (it only hands
                        // over more once we report `Written`).
                        let _ = entry.pipes.write.send(WriteCmd::Data(data));
                    }
                }
                Action::Close { conn } => {
                    if let Some(entry) = self.conns.remove(&conn) {
                        entry.span.in_scope(|| debug!("closing"));
                        let _ = entry.pipes.write.send(WriteCmd::Close);
                    }
                }
                Action::Dial { conn, addr } => self.dial(conn, addr),
                Action::PauseRead { conn } => self.set_paused(conn, true),
                Action::ResumeRead { conn } => self.set_paused(conn, false),
                Action::Notify(event) => self.on_event(event),
            }
        }
    }

    fn dial(&mut self, conn: ConnId, addr: SocketAddr) {
        let span = conn_span(conn, Direction::Outbound, addr);
        span.in_scope(|| debug!("dialing"));
        let (pipes, ends) = conn::pipes();
        let limit = self.opts.connect_timeout;
        conn::spawn_dial(
            &self.rt,
            conn,
            addr,
            limit,
            self.inbox_tx.clone(),
            span.clone(),
        );
        let entry = ConnEntry {
            span,
            pipes,
            pending: Some(ends),
        };
        self.conns.insert(conn, entry);
    }

    fn set_paused(&mut self, conn: ConnId, paused: bool) {
        if let Some(entry) = self.conns.get(&conn) {
            let what = if paused {
                "pausing reads"
            } else {
                "resuming reads"
            };
            entry.span.in_scope(|| debug!("{what}"));
            let _ = entry.pipes.pause.send(paused);
        }
    }

    fn on_event(&mut self, event: NodeEvent) {
        log_event(&event, |conn| {
            self.conns
                .get(&conn)
                .map(|e| e.span.clone())
                .unwrap_or_else(Span::none)
        });
        match &event {
            NodeEvent::RequestDone { id, result, .. } => {
                if let Some(reply) = self.requests.remove(id) {
                    let _ = reply.send(result.clone());
                }
            }
            NodeEvent::QueryDone { id, result } => {
                if let Some(reply) = self.queries.remove(id) {
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
            NodeEvent::Fatal { error } => self.fatal = Some(error.clone()),
            _ => {}
        }
        // No receivers is fine.
        let _ = self.events.send(event);
    }

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

async fn accept<R: Runtime>(
    rt: &R,
    listener: Option<&R::Listener>,
) -> std::io::Result<(Stream<R>, SocketAddr)> {
    match listener {
        Some(l) => rt.accept(l).await,
        None => std::future::pending().await,
    }
}

/// Resolves when `timer` fires; never, while there is none.
async fn wait<F: std::future::Future>(timer: &mut Option<Pin<Box<F>>>) {
    match timer {
        Some(t) => {
            t.as_mut().await;
        }
        None => std::future::pending().await,
    }
}

async fn wait_until<R: Runtime>(rt: &R, at: Option<std::time::Instant>) {
    match at {
        Some(t) => {
            rt.sleep_until(t).await;
        }
        None => std::future::pending().await,
    }
}
