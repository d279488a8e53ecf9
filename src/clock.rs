//! [`Clock`]: where the layer reads the time for `exp`, `nbf`, `iat` and the token age.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock every time check of a layer reads.
///
/// The default is [`SystemClock`]. A test can pass its own (a fixed or steppable time) to
/// [`JwtAuthBuilder::clock`](crate::JwtAuthBuilder::clock) instead of minting tokens in the past.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use tower_jwt_auth::Clock;
///
/// /// A clock the test moves by hand.
/// #[derive(Default)]
/// struct ManualClock(AtomicU64);
///
/// impl Clock for ManualClock {
///     fn now(&self) -> SystemTime {
///         UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::Relaxed))
///     }
/// }
///
/// let clock = ManualClock::default();
/// clock.0.store(1_700_000_000, Ordering::Relaxed);
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock, as the kernel last ticked it where the system offers that: on Linux,
/// `CLOCK_REALTIME_COARSE` (read in ~3 ns, against ~33 ns for [`SystemTime::now`] on the machine
/// of BENCHMARKS.md), which lags the precise clock by at most one tick (1–10 ms). Every request
/// reads the clock, hits included, and a token's times are whole seconds, checked with a leeway
/// of a minute by default. Elsewhere, [`SystemTime::now`].
///
/// A layer that must read the precise clock can be given one, as [`Clock`] shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn now(&self) -> SystemTime {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        match (u64::try_from(now.tv_sec), u32::try_from(now.tv_nsec)) {
            (Ok(seconds), Ok(nanos)) => UNIX_EPOCH + std::time::Duration::new(seconds, nanos),
            // Before 1970, or a kernel answer out of range: the precise clock.
            _ => SystemTime::now(),
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

/// A layer's clock, shared by its clones.
#[derive(Clone)]
pub(crate) struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    pub(crate) fn new(clock: impl Clock) -> Self {
        Self(Arc::new(clock))
    }

    /// Seconds since the Unix epoch; a time before 1970 reads as negative seconds.
    pub(crate) fn unix_seconds(&self) -> i64 {
        unix_seconds(self.0.now())
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        Self::new(SystemClock)
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedClock").finish_non_exhaustive()
    }
}

/// `time` as whole seconds since the Unix epoch, saturating at the i64 bounds.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        // Before 1970: rounded down, so that 0.5 s before the epoch is second -1.
        Err(before) => {
            let before = before.duration();
            let seconds = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() > 0 {
                seconds.saturating_neg().saturating_sub(1)
            } else {
                seconds.saturating_neg()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_system_clock_is_at_most_a_tick_behind_the_precise_one() {
        // A tick is 1 to 10 ms; a second is room for a busy machine between the two readings.
        let before = SystemTime::now();
        let coarse = SystemClock.now();
        let after = SystemTime::now();
        assert!(coarse <= after, "{coarse:?} is after {after:?}");
        let behind = before.duration_since(coarse).unwrap_or_default();
        assert!(behind < Duration::from_secs(1), "{behind:?} behind");
    }

    #[test]
    fn reads_whole_seconds_on_both_sides_of_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH), 0);
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(500)), -1);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(2)), -2);
    }
}
