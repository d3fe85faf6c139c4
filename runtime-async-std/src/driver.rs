//! The task that owns the machine.

use crate::conn::{self, Inbox, WriteCmd};
use crate::events::Fanout;
use crate::{clock::monotonic_now, Clock, Command, Exit, RuntimeOptions};
use async_io::Timer;
use async_std::net::{TcpListener, TcpStream};
use async_std::task::JoinHandle;
use futures::channel::{mpsc, oneshot};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use timed_core::{
    Action, ConnId, Direction, DownReason, GoodbyeReason, Input, NodeEvent, PeerMachine,
    QueryError, QueryId, RefuseReason, ResponseBody, Store, Verdict,
};
use tracing::{debug, error, info, info_span, trace, warn, Span};

struct ConnEntry {
    span: Span,
    write: mpsc::UnboundedSender<WriteCmd>,
    pause: mpsc::UnboundedSender<bool>,
    /// Receivers held until the dial completes and the I/O tasks start.
    pending: Option<(
        mpsc::UnboundedReceiver<WriteCmd>,
        mpsc::UnboundedReceiver<bool>,
    )>,
}

/// What woke the driver. The `select!` only produces one of these (owned data), so the
/// futures borrowing the driver's fields are gone before it is handled.
enum Wake {
    Command(Option<crate::Command>),
    Inbox(Inbox),
    Accept(std::io::Result<(TcpStream, SocketAddr)>),
    AcceptResume,
    Timer,
    Nothing,
}

pub(crate) struct Driver<S: Store> {
    machine: PeerMachine<S>,
    clock: Clock,
    opts: RuntimeOptions,
    listener: Option<TcpListener>,
    /// After an accept error (e.g. out of file descriptors), accepting resumes at this time.
    accept_resume: Option<std::time::Instant>,
    events: Fanout,
    inbox_tx: mpsc::Sender<Inbox>,
    inbox_rx: mpsc::Receiver<Inbox>,
    conns: HashMap<ConnId, ConnEntry>,
    queries: HashMap<QueryId, oneshot::Sender<Result<ResponseBody, QueryError>>>,
    /// Writer tasks; awaited on shutdown so every Goodbye is flushed.
    writers: FuturesUnordered<JoinHandle<()>>,
    fatal: Option<String>,
}

impl<S: Store> Driver<S> {
    pub(crate) fn new(
        machine: PeerMachine<S>,
        clock: Clock,
        opts: RuntimeOptions,
        listener: Option<TcpListener>,
        events: Fanout,
    ) -> Self {
        // `channel(n)` holds n plus one slot per sender (every connection task has one).
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
            writers: FuturesUnordered::new(),
            fatal: None,
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Exit<S> {
        // The one timer, re-armed from `poll_timeout` whenever the deadline changes.
        let mut timer = Timer::never();
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
                match deadline {
                    Some(t) => {
                        timer.set_at(self.clock.to_std(t));
                    }
                    None => timer = Timer::never(),
                }
                armed = deadline;
            }
            let wake = {
                let listener = self.listener.as_ref();
                let resume = self.accept_resume;
                let accept = async move {
                    match (listener, resume) {
                        (Some(l), None) => Wake::Accept(l.accept().await),
                        (Some(_), Some(t)) => {
                            Timer::at(t).await;
                            Wake::AcceptResume
                        }
                        _ => futures::future::pending().await,
                    }
                }
                .fuse();
                futures::pin_mut!(accept);
                let mut tick = FutureExt::fuse(&mut timer);
                futures::select! {
                    msg = self.inbox_rx.next() => match msg {
                        Some(msg) => Wake::Inbox(msg),
                        // Cannot happen while the driver holds a sender.
                        None => Wake::Nothing,
                    },
                    cmd = commands.next() => Wake::Command(cmd),
                    w = accept => w,
                    _ = tick => Wake::Timer,
                }
            };
            match wake {
                Wake::Command(Some(cmd)) => self.on_command(cmd),
                // Every handle is gone: nobody can ever talk to this node again.
                Wake::Command(None) => self.machine.shutdown(self.clock.now()),
                Wake::Inbox(msg) => self.on_inbox(msg),
                Wake::Accept(res) => self.on_accept(res),
                Wake::AcceptResume => self.accept_resume = None,
                Wake::Nothing => {}
                Wake::Timer => {
                    // A fired timer stays fired: re-arm it on the next round.
                    armed = None;
                    self.machine.handle_timeout(self.clock.now());
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
            let _ = entry.write.unbounded_send(WriteCmd::Close);
        }
        for (_, reply) in self.queries.drain() {
            let _ = reply.send(Err(QueryError::ShuttingDown));
        }
        let mut deadline = FutureExt::fuse(Timer::at(monotonic_now() + self.opts.shutdown_timeout));
        // Keep draining the inbox meanwhile so no reader or writer blocks on a full channel.
        // `writers` may already be terminated (empty, polled to `None`): check emptiness
        // here, since a fused `select!` skips a terminated stream instead of returning `None`.
        while !self.writers.is_empty() {
            futures::select_biased! {
                _ = self.writers.next() => {}
                _ = self.inbox_rx.next() => {}
                _ = deadline => {
                    warn!(left = self.writers.len(), "shutdown: connections did not flush in time; closing them");
                    for writer in std::mem::take(&mut self.writers) {
                        writer.cancel().await;
                    }
                    break;
                }
            }
        }
        self.events.close();
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
                    let (write, writes) = mpsc::unbounded();
                    let (pause, pause_rx) = mpsc::unbounded();
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
                self.accept_resume = Some(monotonic_now() + Duration::from_millis(100));
            }
        }
    }

    fn start_io(
        &mut self,
        conn: ConnId,
        stream: TcpStream,
        writes: mpsc::UnboundedReceiver<WriteCmd>,
        pause: mpsc::UnboundedReceiver<bool>,
        span: Span,
    ) {
        let writer = conn::spawn_io(
            conn,
            stream,
            self.inbox_tx.clone(),
            writes,
            pause,
            self.opts.read_buffer,
            self.opts.linger,
            span,
        );
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
                        let _ = entry.write.unbounded_send(WriteCmd::Data(data));
                    }
                }
                Action::Close { conn } => {
                    if let Some(entry) = self.conns.remove(&conn) {
                        entry.span.in_scope(|| debug!("closing"));
                        let _ = entry.write.unbounded_send(WriteCmd::Close);
                    }
                }
                Action::Dial { conn, addr } => {
                    let span = conn_span(conn, Direction::Outbound, addr);
                    span.in_scope(|| debug!("dialing"));
                    let (write, writes) = mpsc::unbounded();
                    let (pause, pause_rx) = mpsc::unbounded();
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
                        let _ = entry.pause.unbounded_send(true);
                    }
                }
                Action::ResumeRead { conn } => {
                    if let Some(entry) = self.conns.get(&conn) {
                        entry.span.in_scope(|| debug!("resuming reads"));
                        let _ = entry.pause.unbounded_send(false);
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
            // This adapter does not yet route application protocols (the tokio one does):
            // a peer's request is refused at once rather than left to its deadline, and a
            // message needing a verdict is not forwarded.
            NodeEvent::InboundRequest { id, protocol, .. } => {
                debug!(%protocol, "peer's request refused: this runtime serves no application protocol");
                let _ = self
                    .machine
                    .respond(self.clock.now(), *id, Err(RefuseReason::Unavailable));
            }
            NodeEvent::GossipReceived { id, .. } => {
                let _ = self
                    .machine
                    .validate(self.clock.now(), *id, Verdict::Ignore);
            }
            NodeEvent::RequestDone { id, .. } => trace!(query = %id, "request done"),
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
            NodeEvent::BlocksApplied { from, to, .. } => debug!(from, to, "blocks applied"),
            NodeEvent::Reorg { fork, old_tip, to } => {
                info!(fork, old_tip, to, "chain reorganised")
            }
            NodeEvent::TxAccepted { id } => debug!(tx = %id, "transaction accepted"),
            NodeEvent::GoodbyeReceived {
                conn,
                peer,
                reason,
                detail,
            } => span_of(&self.conns, *conn).in_scope(|| {
                debug!(
                    peer = %peer.map(|p| p.short().to_string()).unwrap_or_else(|| "?".into()),
                    reason = reason.as_str(), %detail, "goodbye received"
                )
            }),
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
        // No subscribers is fine; a slow one misses events (and is told so).
        self.events.publish(&event);
    }
}

fn conn_span(conn: ConnId, dir: Direction, remote: SocketAddr) -> Span {
    info_span!("conn", id = %conn, dir = dir.as_str(), %remote, peer = tracing::field::Empty)
}
