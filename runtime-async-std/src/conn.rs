//! The per-connection tasks: a dialer, a reader and a writer. They move bytes and report
//! what happened; they decide nothing.
//!
//! The reader and writer are written against the `futures` I/O traits only
//! ([`AsyncRead`]/[`AsyncWrite`]); the socket type appears in [`spawn_dial`] and
//! [`spawn_io`] alone.

use async_std::net::TcpStream;
use async_std::task::{self, JoinHandle};
use futures::channel::mpsc::{self, TryRecvError};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::{SinkExt, StreamExt};
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;
use timed_core::{CloseKind, ConnId};
use tracing::{debug, trace, Instrument, Span};

/// What connection tasks tell the driver.
#[derive(Debug)]
pub(crate) enum Inbox {
    Connected { conn: ConnId, stream: TcpStream },
    DialFailed { conn: ConnId, error: String },
    Bytes { conn: ConnId, data: Vec<u8> },
    Written { conn: ConnId, bytes: usize },
    Closed { conn: ConnId, kind: CloseKind },
}

/// What the driver tells a writer.
#[derive(Debug)]
pub(crate) enum WriteCmd {
    Data(Vec<u8>),
    /// Flush everything before this, send FIN, linger, close.
    Close,
}

pub(crate) fn close_kind(e: &std::io::Error) -> CloseKind {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            CloseKind::Reset
        }
        ErrorKind::UnexpectedEof => CloseKind::Fin,
        _ => CloseKind::Error,
    }
}

pub(crate) fn spawn_dial(
    conn: ConnId,
    addr: SocketAddr,
    timeout: Duration,
    mut inbox: mpsc::Sender<Inbox>,
    span: Span,
) {
    task::spawn(
        async move {
            let msg = match async_std::future::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => Inbox::Connected { conn, stream },
                Ok(Err(e)) => Inbox::DialFailed {
                    conn,
                    error: e.to_string(),
                },
                Err(_) => Inbox::DialFailed {
                    conn,
                    error: format!("no answer within {timeout:?}"),
                },
            };
            let _ = inbox.send(msg).await;
        }
        .instrument(span),
    );
}

/// Starts the reader and writer of an open connection. Returns the writer's handle; the
/// writer owns the reader's (it stops it after lingering).
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_io(
    conn: ConnId,
    stream: TcpStream,
    inbox: mpsc::Sender<Inbox>,
    writes: mpsc::UnboundedReceiver<WriteCmd>,
    pause: mpsc::UnboundedReceiver<bool>,
    read_buffer: usize,
    linger: Duration,
    span: Span,
) -> JoinHandle<()> {
    // Pings and pongs are tiny and latency-sensitive; the machine already batches bulk data.
    let _ = stream.set_nodelay(true);
    // async-std's (and smol's) TcpStream is a shared handle: one clone reads, one writes,
    // one stays behind to tear the socket down if the writer is cancelled.
    let guard = Teardown(stream.clone());
    let fin = stream.clone();
    let reader = task::spawn(
        reader(conn, stream.clone(), inbox.clone(), pause, read_buffer).instrument(span.clone()),
    );
    task::spawn(
        async move {
            let send_fin = move || {
                let _ = fin.shutdown(Shutdown::Write);
            };
            writer(conn, stream, inbox, writes, reader, linger, send_fin).await;
            drop(guard);
        }
        .instrument(span),
    )
}

/// Shuts the socket down both ways when dropped (also when the writer task is cancelled on a
/// shutdown timeout), so the reader sharing it ends too.
struct Teardown(TcpStream);

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// Applies every pending pause/resume message; returns the resulting state. A closed channel
/// (the driver forgot this connection) means "not paused": drain freely.
fn apply_pause(pause: &mut mpsc::UnboundedReceiver<bool>, paused: &mut bool) {
    loop {
        match pause.try_recv() {
            Ok(p) => *paused = p,
            Err(TryRecvError::Closed) => {
                *paused = false;
                return;
            }
            Err(TryRecvError::Empty) => return,
        }
    }
}

async fn reader<R: AsyncRead + Unpin>(
    conn: ConnId,
    mut half: R,
    mut inbox: mpsc::Sender<Inbox>,
    mut pause: mpsc::UnboundedReceiver<bool>,
    buf_size: usize,
) {
    let mut buf = vec![0u8; buf_size.max(1)];
    let mut paused = false;
    loop {
        // PauseRead: stop reading (the kernel's receive window then pushes back on the peer)
        // until ResumeRead.
        apply_pause(&mut pause, &mut paused);
        while paused {
            match pause.next().await {
                Some(p) => paused = p,
                None => paused = false,
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

async fn writer<W: AsyncWrite + Unpin>(
    conn: ConnId,
    mut half: W,
    mut inbox: mpsc::Sender<Inbox>,
    mut writes: mpsc::UnboundedReceiver<WriteCmd>,
    reader: JoinHandle<()>,
    linger: Duration,
    send_fin: impl FnOnce(),
) {
    // `None`: the driver dropped us (the transport already reported the connection closed):
    // flush what is queued and end the same way as a close.
    while let Some(cmd) = writes.next().await {
        match cmd {
            WriteCmd::Data(data) => {
                if let Err(e) = half.write_all(&data).await {
                    debug!(error = %e, "write failed");
                    let _ = inbox
                        .send(Inbox::Closed {
                            conn,
                            kind: close_kind(&e),
                        })
                        .await;
                    reader.cancel().await;
                    return;
                }
                trace!(bytes = data.len(), "written");
                let _ = inbox
                    .send(Inbox::Written {
                        conn,
                        bytes: data.len(),
                    })
                    .await;
            }
            WriteCmd::Close => break,
        }
    }
    // Flush, then FIN. `AsyncWrite::close` is not enough: on async-io sockets (async-std,
    // smol) it only flushes; the half-close is the socket's own `shutdown(Write)`.
    let _ = half.flush().await;
    let _ = half.close().await;
    send_fin();
    // Closing a socket with unread input makes the kernel send a reset, which can destroy our
    // last frames (the Goodbye) before the peer reads them. Keep reading until the peer closes
    // its side too, or the linger time is up.
    let mut reader = reader;
    if async_std::future::timeout(linger, &mut reader)
        .await
        .is_err()
    {
        reader.cancel().await;
    }
    debug!("closed");
}
