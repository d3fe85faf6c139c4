//! Maps the process's monotonic clock onto the core's [`Instant`].

use std::time::Duration;
use timed_core::Instant;

/// The one place this crate reads the monotonic clock. Everything else (the machine's `now`,
/// timer deadlines, linger and shutdown deadlines) goes through it.
//
// The workspace lint forbids `Instant::now` because the core must never read a clock; a
// runtime adapter is where the clock lives, and this is its single read point.
#[allow(clippy::disallowed_methods)]
pub(crate) fn monotonic_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// The runtime's clock: microseconds of [`std::time::Instant`] since the moment the node
/// started (captured once, in [`Clock::start`]).
///
/// Unlike timed-tokio's clock there is no paused/virtual time: async-std has none, so the
/// tests here run in real time (use short intervals).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    /// A clock whose epoch (`Instant::ZERO`) is now.
    pub fn start() -> Self {
        Clock {
            start: monotonic_now(),
        }
    }

    /// The current time as a core instant. Monotonic, as the core requires.
    pub fn now(&self) -> Instant {
        let us = monotonic_now()
            .saturating_duration_since(self.start)
            .as_micros();
        Instant(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// The std instant of a core deadline, for arming a timer. Saturates far in the future
    /// instead of overflowing.
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        self.start
            .checked_add(Duration::from_micros(t.as_micros()).min(far))
            .unwrap_or(self.start + far)
    }
}

/// Seconds since the Unix epoch, read once when a node starts, to set
/// `Config::unix_time_at_zero` (block timestamps), exactly as timed-tokio does. `None` if the
/// system clock is before 1970.
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
