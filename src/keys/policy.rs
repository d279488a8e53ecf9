//! [`RefreshPolicy`]: how fetched key sets are refreshed, and the limits of each fetch.

use std::time::Duration;

/// The first retry after a failed fetch; doubled on each further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// How fetched key sets are kept fresh, and the limits of each fetch.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_auth::RefreshPolicy;
///
/// let policy = RefreshPolicy::default()
///     .unknown_kid_cooldown(Duration::from_secs(60))
///     .max_staleness(Duration::from_secs(6 * 3600));
/// # let _ = policy;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RefreshPolicy {
    pub(crate) min_interval: Duration,
    pub(crate) max_interval: Duration,
    pub(crate) fallback_interval: Duration,
    pub(crate) unknown_kid_cooldown: Duration,
    pub(crate) unknown_kid_wait: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_response_size: usize,
    pub(crate) snapshot_dir: Option<std::path::PathBuf>,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(24 * 3600),
            fallback_interval: Duration::from_secs(600),
            unknown_kid_cooldown: Duration::from_secs(30),
            unknown_kid_wait: Duration::from_secs(2),
            max_staleness: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(10),
            max_response_size: 1024 * 1024,
            snapshot_dir: None,
        }
    }
}

impl RefreshPolicy {
    /// Keeps the last good JWKS of each fetched key set in `dir` (created if missing), written
    /// atomically (a temporary file, then a rename) after each fetch that brings a new document
    /// or confirms it (`304 Not Modified`).
    /// When the issuer can't be reached as the layer starts, the snapshot is used instead if it
    /// was fetched within [`max_staleness`](Self::max_staleness); a corrupt snapshot, or one of
    /// another key set, is ignored with a warning. The files hold public keys only. Default: no
    /// snapshots.
    ///
    /// ```
    /// use tower_jwt_auth::RefreshPolicy;
    ///
    /// let policy = RefreshPolicy::default().snapshot_dir("/var/lib/orders/jwks");
    /// # let _ = policy;
    /// ```
    pub fn snapshot_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.snapshot_dir = Some(dir.into());
        self
    }

    /// The shortest refresh interval, whatever `Cache-Control` says. Default: 1 minute.
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// The longest refresh interval, whatever `Cache-Control` says. Default: 24 hours.
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = interval;
        self
    }

    /// The refresh interval when the response has no `Cache-Control: max-age`. Default: 10 minutes.
    pub fn fallback_interval(mut self, interval: Duration) -> Self {
        self.fallback_interval = interval;
        self
    }

    /// The least time between two refetches caused by tokens with an unknown `kid`, so that
    /// tokens with random kids can't turn the service into a load generator against the issuer.
    /// Default: 30 seconds.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.unknown_kid_cooldown = cooldown;
        self
    }

    /// How long a request with an unknown `kid` waits for the refetch it triggered (or joined)
    /// before it is answered. Default: 2 seconds.
    pub fn unknown_kid_wait(mut self, wait: Duration) -> Self {
        self.unknown_kid_wait = wait;
        self
    }

    /// How long past its refresh time a key set keeps serving while refreshes fail
    /// (stale-if-error). Zero fails closed: requests get `503` as soon as a due refresh has not
    /// succeeded. Default: 24 hours.
    pub fn max_staleness(mut self, staleness: Duration) -> Self {
        self.max_staleness = staleness;
        self
    }

    /// The longest wait between retries of a failing fetch (exponential backoff with jitter from
    /// 1 second). Default: 5 minutes.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Connect timeout of the built-in HTTP client. Default: 5 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Total timeout of each discovery or JWKS request. Default: 10 seconds.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// The largest discovery or JWKS response accepted, in bytes. Default: 1 MiB.
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = bytes;
        self
    }

    /// Every duration setting at `Duration::MAX`: "never" and "forever" everywhere.
    #[cfg(test)]
    pub(crate) fn every_duration_at_max() -> Self {
        Self::default()
            .min_interval(Duration::MAX)
            .max_interval(Duration::MAX)
            .fallback_interval(Duration::MAX)
            .unknown_kid_cooldown(Duration::MAX)
            .unknown_kid_wait(Duration::MAX)
            .max_staleness(Duration::MAX)
            .max_backoff(Duration::MAX)
            .connect_timeout(Duration::MAX)
            .fetch_timeout(Duration::MAX)
    }

    /// Refuses settings that would make the refresh spin or every fetch fail.
    pub(crate) fn check(&self) -> Result<(), crate::ConfigError> {
        let invalid = |name: &'static str| {
            Err(crate::ConfigError::InvalidSetting {
                name,
                reason: "must be more than zero".to_owned(),
            })
        };
        if self.min_interval.is_zero() {
            return invalid("RefreshPolicy::min_interval");
        }
        if self.fetch_timeout.is_zero() {
            return invalid("RefreshPolicy::fetch_timeout");
        }
        if self.connect_timeout.is_zero() {
            return invalid("RefreshPolicy::connect_timeout");
        }
        if self.max_response_size == 0 {
            return invalid("RefreshPolicy::max_response_size");
        }
        Ok(())
    }

    pub(crate) fn interval(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.fallback_interval)
            .clamp(self.min_interval, self.max_interval.max(self.min_interval))
    }

    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let exponential = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(20));
        let capped = exponential
            .min(self.max_backoff)
            .max(Duration::from_millis(10));
        // Full jitter on the upper half, so that replicas don't retry in lockstep.
        (capped / 2).saturating_add(scaled(capped, fastrand::f64() / 2.0))
    }
}

/// `duration × factor` for a factor in `0.0..=1.0`, never more than `duration`. Unlike
/// [`Duration::mul_f64`], it can't panic: the float product of a huge duration may round past
/// the largest `Duration`.
pub(crate) fn scaled(duration: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(duration.as_secs_f64() * factor.clamp(0.0, 1.0))
        .map_or(duration, |product| product.min(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_follows_max_age_within_bounds() {
        let policy = RefreshPolicy::default();
        assert_eq!(policy.interval(None), Duration::from_secs(600));
        assert_eq!(
            policy.interval(Some(Duration::from_secs(3600))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            policy.interval(Some(Duration::from_secs(5))),
            Duration::from_secs(60)
        );
        assert_eq!(
            policy.interval(Some(Duration::from_secs(10 * 24 * 3600))),
            Duration::from_secs(24 * 3600)
        );
    }

    /// Every setter at `Duration::MAX` ("never", "forever") is a valid setting, and nothing
    /// computed from it overflows.
    #[test]
    fn every_duration_setting_accepts_duration_max() {
        let policy = RefreshPolicy::every_duration_at_max();
        assert!(policy.check().is_ok());
        assert_eq!(policy.interval(None), Duration::MAX);
        assert_eq!(policy.interval(Some(Duration::ZERO)), Duration::MAX);
        let endless = RefreshPolicy::default()
            .max_interval(Duration::MAX)
            .fallback_interval(Duration::MAX);
        assert_eq!(endless.interval(None), Duration::MAX);
        assert_eq!(
            endless.interval(Some(Duration::from_secs(u64::MAX))),
            Duration::from_secs(u64::MAX)
        );
        for failures in [1, 2, 21, 64, u32::MAX] {
            assert!(policy.backoff(failures) <= FIRST_BACKOFF.saturating_mul(1 << 20));
        }
        assert!(super::super::default_client(&policy).is_ok());
    }

    #[test]
    fn scaling_a_huge_duration_does_not_panic() {
        for duration in [Duration::MAX, Duration::from_secs(u64::MAX), Duration::ZERO] {
            for factor in [0.0, 0.5, 0.9, 1.0, 2.0, -1.0, f64::NAN, f64::INFINITY] {
                assert!(
                    scaled(duration, factor) <= duration,
                    "{duration:?} × {factor}"
                );
            }
        }
        assert_eq!(
            scaled(Duration::from_secs(100), 0.5),
            Duration::from_secs(50)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RefreshPolicy::default();
        for failures in 1..40 {
            let delay = policy.backoff(failures);
            let cap = FIRST_BACKOFF
                .saturating_mul(1 << (failures - 1).min(20))
                .min(policy.max_backoff);
            assert!(delay >= cap / 2 && delay <= cap, "{failures}: {delay:?}");
        }
    }
}
