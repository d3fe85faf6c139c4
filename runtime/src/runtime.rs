//! What the driver needs from an async runtime, and nothing more.

use futures::io::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// An async runtime, as the driver uses it: spawn a task, TCP, and a clock with one kind of
/// timer. Implemented by `timed-tokio`, `timed-smol` and `timed-async-std`; a further
/// runtime needs only these methods.
///
/// All I/O goes through the `futures` traits. The contract on the stream halves:
/// - [`Runtime::Writer`]'s `poll_close` flushes and then half-closes the socket (sends FIN)
///   while the reader stays readable; the driver relies on it for its linger-before-close.
/// - Dropping both halves closes the socket.
/// - Streams come with `TCP_NODELAY` set: the machine batches bulk data itself, and pings
///   and pongs are tiny and latency-sensitive.
pub trait Runtime: Clone + Send + Sync + 'static {
    type Listener: Send + Sync + 'static;
    type Reader: AsyncRead + Send + Unpin + 'static;
    type Writer: AsyncWrite + Send + Unpin + 'static;
    /// Any output: it is ignored (async-io's `Timer` yields the instant it fired).
    type Sleep: Future + Send + 'static;

    /// Runs `task` to completion in the background. The driver never needs the task's
    /// handle: it cancels by dropping a `RemoteHandle` it keeps itself.
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// A listener on `addr`, with `SO_REUSEADDR` so a restarted node gets its port back at
    /// once even while the previous process's connections sit in `TIME_WAIT`.
    fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener>;

    fn local_addr(&self, listener: &Self::Listener) -> io::Result<SocketAddr>;

    fn accept<'a>(
        &self,
        listener: &'a Self::Listener,
    ) -> impl Future<Output = io::Result<(Stream<Self>, SocketAddr)>> + Send + use<'a, Self>;

    /// A connect that does not borrow the runtime: the driver moves it into a task.
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Stream<Self>>> + Send + use<Self>;

    /// The runtime's monotonic clock (a virtual one where the runtime has it, as tokio's
    /// paused clock).
    fn now() -> Instant;

    /// Resolves at `deadline` on [`Runtime::now`]'s clock.
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;
}

/// An open TCP connection, split into halves that two tasks own.
pub struct Stream<R: Runtime> {
    pub reader: R::Reader,
    pub writer: R::Writer,
}

impl<R: Runtime> std::fmt::Debug for Stream<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

/// `fut` ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

/// `fut`, or [`Elapsed`] if it has not finished `limit` from now on the runtime's clock.
pub async fn timeout<R: Runtime, T>(
    rt: &R,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Result<T, Elapsed> {
    let deadline = far_saturating_add(R::now(), limit);
    let sleep = rt.sleep_until(deadline);
    futures::pin_mut!(fut);
    futures::pin_mut!(sleep);
    match futures::future::select(fut, sleep).await {
        futures::future::Either::Left((v, _)) => Ok(v),
        futures::future::Either::Right((_, _)) => Err(Elapsed),
    }
}

/// `t + d`, saturating a century out instead of overflowing.
pub(crate) fn far_saturating_add(t: Instant, d: Duration) -> Instant {
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d.min(far)).unwrap_or(t + far)
}
