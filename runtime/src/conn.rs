//! The per-connection tasks: a dialer, a reader and a writer. They move bytes and report
//! what happened; they decide nothing.

use crate::runtime::{timeout, Runtime, Stream};
use futures::future::{FutureExt, RemoteHandle};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use timed_core::{CloseKind, ConnId};
use tokio::sync::{mpsc, watch};
use tracing::{debug, trace, Instrument, Span};

/// What connection tasks tell the driver.
pub(crate) enum Inbox<R: Runtime> {
    Connected { conn: ConnId, stream: Stream<R> },
    DialFailed { conn: ConnId, error: String },
    Bytes { conn: ConnId, data: Vec<u8> },
    Written { conn: ConnId, bytes: usize },
    Closed { conn: ConnId, kind: CloseKind },
}

/// What the driver tells a writer.
#[derive(Debug)]
pub(crate) enum WriteCmd {
    Data(timed_core::wire::Payload),
    /// Flush everything before this, send FIN, linger, close.
    Close,
}

/// The driver's side of one connection's tasks.
pub(crate) struct Pipes {
    pub(crate) write: mpsc::UnboundedSender<WriteCmd>,
    pub(crate) pause: watch::Sender<bool>,
}

/// The tasks' side, handed over when the socket is open.
pub(crate) struct PipeEnds {
    writes: mpsc::UnboundedReceiver<WriteCmd>,
    pause: watch::Receiver<bool>,
}

pub(crate) fn pipes() -> (Pipes, PipeEnds) {
    let (write, writes) = mpsc::unbounded_channel();
    let (pause, pause_rx) = watch::channel(false);
    (
        Pipes { write, pause },
        PipeEnds {
            writes,
            pause: pause_rx,
        },
    )
}

/// Sizes and times the tasks work with (from `RuntimeOptions`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IoLimits {
    pub(crate) read_buffer: usize,
    pub(crate) linger: Duration,
}

fn close_kind(e: &std::io::Error) -> CloseKind {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            CloseKind::Reset
        }
        ErrorKind::UnexpectedEof => CloseKind::Fin,
        _ => CloseKind::Error,
    }
}

pub(crate) fn spawn_dial<R: Runtime>(
    rt: &R,
    conn: ConnId,
    addr: SocketAddr,
    limit: Duration,
    inbox: mpsc::Sender<Inbox<R>>,
    span: Span,
) {
    let connect = rt.connect(addr);
    let rt2 = rt.clone();
    rt.spawn(
        async move {
            let msg = match timeout(&rt2, limit, connect).await {
                Ok(Ok(stream)) => Inbox::Connected { conn, stream },
                Ok(Err(e)) => Inbox::DialFailed {
                    conn,
                    error: e.to_string(),
                },
                Err(_) => Inbox::DialFailed {
                    conn,
                    error: format!("no answer within {limit:?}"),
                },
            };
            let _ = inbox.send(msg).await;
        }
        .instrument(span),
    );
}

/// Starts the reader and writer of an open connection. The returned handle is the writer's
/// (dropping it cancels the writer); the writer owns the reader's.
pub(crate) fn spawn_io<R: Runtime>(
    rt: &R,
    conn: ConnId,
    stream: Stream<R>,
    inbox: mpsc::Sender<Inbox<R>>,
    ends: PipeEnds,
    limits: IoLimits,
    span: Span,
) -> RemoteHandle<()> {
    let (reading, reader) = read_loop(conn, stream.reader, inbox.clone(), ends.pause, limits)
        .instrument(span.clone())
        .remote_handle();
    rt.spawn(reading);
    let write = write_loop(
        rt.clone(),
        conn,
        stream.writer,
        inbox,
        ends.writes,
        reader,
        limits,
    );
    let (writing, writer) = write.instrument(span).remote_handle();
    rt.spawn(writing);
    writer
}

async fn read_loop<R: Runtime>(
    conn: ConnId,
    mut half: R::Reader,
    inbox: mpsc::Sender<Inbox<R>>,
    mut pause: watch::Receiver<bool>,
    limits: IoLimits,
) {
    let mut buf = vec![0u8; limits.read_buffer.max(1)];
    loop {
        // PauseRead: stop reading (the kernel's receive window then pushes back on the peer)
        // until ResumeRead. If the driver forgot this connection, drain freely.
        while *pause.borrow_and_update() {
            if pause.changed().await.is_err() {
                break;
            }
        }
        let msg = match half.read(&mut buf).await {
            Ok(0) => Inbox::Closed {
                conn,
                kind: CloseKind::Fin,
            },
            Ok(n) => {
                trace!(bytes = n, "read");
                let data = buf.get(..n).unwrap_or_default().to_vec();
                if inbox.send(Inbox::Bytes { conn, data }).await.is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                debug!(error = %e, "read failed");
                Inbox::Closed {
                    conn,
                    kind: close_kind(&e),
                }
            }
        };
        let _ = inbox.send(msg).await;
        return;
    }
}

async fn write_loop<R: Runtime>(
    rt: R,
    conn: ConnId,
    mut half: R::Writer,
    inbox: mpsc::Sender<Inbox<R>>,
    mut writes: mpsc::UnboundedReceiver<WriteCmd>,
    mut reader: RemoteHandle<()>,
    limits: IoLimits,
) {
    // `None`: the driver dropped us (the transport already reported the connection closed):
    // flush what is queued and end the same way as a close.
    while let Some(cmd) = writes.recv().await {
        match cmd {
            WriteCmd::Data(data) => {
                if let Err(e) = half.write_all(&data).await {
                    debug!(error = %e, "write failed");
                    let kind = close_kind(&e);
                    let _ = inbox.send(Inbox::Closed { conn, kind }).await;
                    return; // dropping `reader` cancels it
                }
                trace!(bytes = data.len(), "written");
                let bytes = data.len();
                let _ = inbox.send(Inbox::Written { conn, bytes }).await;
            }
            WriteCmd::Close => break,
        }
    }
    // Flush, then FIN (the `Runtime::Writer` contract for `close`).
    let _ = half.close().await;
    // Closing a socket with unread input makes the kernel send a reset, which can destroy our
    // last frames (the Goodbye) before the peer reads them. Keep reading until the peer closes
    // its side too, or the linger time is up (then dropping `reader` cancels it).
    let _ = timeout(&rt, limits.linger, &mut reader).await;
    debug!("closed");
}
