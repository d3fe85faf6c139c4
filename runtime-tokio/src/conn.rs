//! The per-connection tasks: a dialer, a reader and a writer. They move bytes and report
//! what happened; they decide nothing.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use timed_core::{CloseKind, ConnId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, trace, Instrument, Span};

use crate::RuntimeOptions;

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
    inbox: mpsc::Sender<Inbox>,
    span: Span,
) {
    tokio::spawn(
        async move {
            let msg = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
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
pub(crate) fn spawn_io(
    conn: ConnId,
    stream: TcpStream,
    inbox: mpsc::Sender<Inbox>,
    writes: mpsc::UnboundedReceiver<WriteCmd>,
    pause: watch::Receiver<bool>,
    opts: &RuntimeOptions,
    span: Span,
) -> JoinHandle<()> {
    let (read_buffer, linger) = (opts.read_buffer, opts.linger);
    // Pings and pongs are tiny and latency-sensitive; the machine already batches bulk data.
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let reader =
        tokio::spawn(reader(conn, rd, inbox.clone(), pause, read_buffer).instrument(span.clone()));
    tokio::spawn(writer(conn, wr, inbox, writes, reader, linger).instrument(span))
}

async fn reader(
    conn: ConnId,
    mut half: OwnedReadHalf,
    inbox: mpsc::Sender<Inbox>,
    mut pause: watch::Receiver<bool>,
    buf_size: usize,
) {
    let mut buf = vec![0u8; buf_size.max(1)];
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
                if inbox
                    .send(Inbox::Bytes {
                        conn,
                        data: buf[..n].to_vec(),
                    })
                    .await
                    .is_err()
                {
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

async fn writer(
    conn: ConnId,
    mut half: OwnedWriteHalf,
    inbox: mpsc::Sender<Inbox>,
    mut writes: mpsc::UnboundedReceiver<WriteCmd>,
    mut reader: JoinHandle<()>,
    linger: Duration,
) {
    // `None`: the driver dropped us (the transport already reported the connection closed):
    // flush what is queued and end the same way as a close.
    while let Some(cmd) = writes.recv().await {
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
                    reader.abort();
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
    let _ = half.flush().await;
    let _ = half.shutdown().await;
    // Closing a socket with unread input makes the kernel send a reset, which can destroy our
    // last frames (the Goodbye) before the peer reads them. Keep reading until the peer closes
    // its side too, or the linger time is up.
    if tokio::time::timeout(linger, &mut reader).await.is_err() {
        reader.abort();
    }
    debug!("closed");
}
