//! Maps the runtime's monotonic clock onto the core's [`Instant`].

use crate::runtime::far_saturating_add;
use std::time::Duration;
use timed_core::Instant;

/// The node's clock: microseconds of the runtime's clock since the node started. Because it
/// reads the runtime's clock ([`Runtime::now`](crate::Runtime::now)), a runtime with virtual
/// time (tokio's `start_paused`) runs the machine in virtual time.
#[derive(Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
    read: fn() -> std::time::Instant,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("start", &self.start).finish()
    }
}

impl Clock {
    /// A clock reading `read` whose epoch (`Instant::ZERO`) is now.
    pub fn start(read: fn() -> std::time::Instant) -> Self {
        Clock {
            start: read(),
            read,
        }
    }

    /// The current time as a core instant. Monotonic, as the core requires.
    pub fn now(&self) -> Instant {
        let us = (self.read)()
            .saturating_duration_since(self.start)
            .as_micros();
        Instant(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// The runtime instant of a core deadline, for arming a timer.
    pub fn to_runtime(&self, t: Instant) -> std::time::Instant {
        far_saturating_add(self.start, Duration::from_micros(t.as_micros()))
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
