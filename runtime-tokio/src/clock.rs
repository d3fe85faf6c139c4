//! Maps tokio's clock onto the core's [`Instant`].

use timed_core::Instant;

/// The runtime's clock: microseconds of `tokio::time::Instant` since the moment the node
/// started. Because it reads tokio's clock, `#[tokio::test(start_paused = true)]` tests run
/// the machine in virtual time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    /// A clock whose epoch (`Instant::ZERO`) is now.
    pub fn start() -> Self {
        Clock {
            start: tokio::time::Instant::now(),
        }
    }

    /// The current time as a core instant. Monotonic, as the core requires.
    pub fn now(&self) -> Instant {
        let us = self.start.elapsed().as_micros();
        Instant(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// The tokio instant of a core deadline, for arming a timer.
    pub fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        self.start + std::time::Duration::from_micros(t.as_micros())
    }
}

/// Seconds since the Unix epoch, read once when a node starts, to set
/// `Config::unix_time_at_zero` (block timestamps). `None` if the system clock is before 1970.
//
// The workspace lint forbids reading the wall clock because the core must never do it. This is
// the runtime adapter, the one place allowed to: it reads it once, at start.
#[allow(clippy::disallowed_methods)]
pub fn unix_time_now() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}
