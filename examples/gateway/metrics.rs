//! `/metrics`: requests by outcome (rejections by [`AuthError::cause`]), a latency histogram,
//! upstream failures, and the key sets' fetch counts and state, read at scrape time.
//!
//! [`AuthError::cause`]: tower_jwt_auth::AuthError::cause

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;
use tower_jwt_auth::JwtAuthLayer;

use crate::proxy::UpstreamFailure;

/// The content type of the OpenMetrics text exposition, which Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a request ended, for the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The token was verified (and any scope rule met).
    Accepted,
    /// A public path: no token needed.
    Public,
    /// Rejected; the cause is [`AuthError::cause`](tower_jwt_auth::AuthError::cause).
    Rejected(&'static str),
    /// The path was refused before authentication (dot-segments, encoded separators …).
    BadRequest,
    /// The gateway's keys were not loaded yet.
    NotReady,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Public => "public",
            Self::Rejected(_) => "rejected",
            Self::BadRequest => "bad_request",
            Self::NotReady => "not_ready",
        }
    }
}

/// The outcomes counted in fixed places (a rejection is counted by its cause, in a list).
const FIXED_OUTCOMES: [Outcome; 4] = [
    Outcome::Accepted,
    Outcome::Public,
    Outcome::BadRequest,
    Outcome::NotReady,
];

/// The latency histogram's upper bounds in seconds, 0.5 ms to ~16 s (and `+Inf` after them).
const BOUNDS: [f64; 16] = {
    let mut bounds = [0.0005; 16];
    let mut index = 1;
    while index < bounds.len() {
        bounds[index] = bounds[index - 1] * 2.0;
        index += 1;
    }
    bounds
};

/// The requests of one outcome on one worker: their count, and their latencies as a histogram
/// (whose count is the same).
#[derive(Default)]
struct Series {
    requests: AtomicU64,
    /// By the first of [`BOUNDS`] not below the latency; the last for `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    /// The latencies' sum, in nanoseconds (exact, and added without a compare-and-swap loop).
    nanos: AtomicU64,
}

impl Series {
    fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BOUNDS.len());
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Adds this series to `total`.
    fn add_to(&self, total: &mut Totals) {
        total.requests += self.requests.load(Ordering::Relaxed);
        for (sum, bucket) in total.buckets.iter_mut().zip(&self.buckets) {
            *sum += bucket.load(Ordering::Relaxed);
        }
        total.nanos += u128::from(self.nanos.load(Ordering::Relaxed));
    }
}

/// A series summed over the workers, at scrape time.
#[derive(Default)]
struct Totals {
    requests: u64,
    buckets: [u64; BOUNDS.len() + 1],
    nanos: u128,
}

impl Totals {
    fn encode_histogram(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets)
            .collect();
        // Nanoseconds to seconds: exact enough for a sum of latencies.
        #[allow(clippy::cast_precision_loss)]
        let seconds = self.nanos as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(seconds, self.requests, &buckets, None)
    }
}

/// What one worker counts, written only by that worker's thread (and read at scrape time), on
/// cache lines of its own: counts that both workers wrote (a shared counter, a histogram behind
/// a lock) moved their cache lines between the cores on every request.
#[derive(Default)]
#[repr(align(128))]
struct WorkerCounts {
    /// By the outcome's index in [`FIXED_OUTCOMES`].
    fixed: [Series; 4],
    /// Rejections, by cause (a short list: one entry per cause seen).
    rejected: Mutex<Vec<(&'static str, Series)>>,
    /// By [`UpstreamFailure`]: unreachable, timeout.
    failures: [AtomicU64; 2],
}

impl WorkerCounts {
    fn rejected(&self) -> MutexGuard<'_, Vec<(&'static str, Series)>> {
        // A panic while holding it leaves counts that are still counts.
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The gateway's metrics; cheap to clone. A worker records into counts of its own
/// ([`for_worker`](Self::for_worker)); a scrape sums every worker's.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    workers: Arc<[WorkerCounts]>,
    /// The worker whose counts this handle records into.
    worker: usize,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics for `workers` workers (at least one), whose key-set figures come from the layer in
    /// `layer`, once it is set. The handle records into the first worker's counts.
    pub fn new(layer: Arc<OnceLock<JwtAuthLayer<Value>>>, workers: usize) -> Self {
        let workers: Arc<[WorkerCounts]> = (0..workers.max(1))
            .map(|_| WorkerCounts::default())
            .collect();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RequestCollector {
            workers: Arc::clone(&workers),
        }));
        registry.register_collector(Box::new(KeySetCollector { layer }));
        Self {
            registry: Arc::new(registry),
            workers,
            worker: 0,
        }
    }

    /// The handle that records into worker `index`'s counts (the last worker's if there are
    /// fewer).
    pub fn for_worker(&self, index: usize) -> Self {
        Self {
            worker: index.min(self.workers.len() - 1),
            ..self.clone()
        }
    }

    fn counts(&self) -> &WorkerCounts {
        &self.workers[self.worker]
    }

    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        let counts = self.counts();
        match FIXED_OUTCOMES.iter().position(|fixed| *fixed == outcome) {
            Some(index) => counts.fixed[index].record(elapsed),
            None => {
                let cause = match outcome {
                    Outcome::Rejected(cause) => cause,
                    other => other.name(),
                };
                let mut rejected = counts.rejected();
                match rejected.iter().position(|(seen, _)| *seen == cause) {
                    Some(index) => rejected[index].1.record(elapsed),
                    None => {
                        let series = Series::default();
                        series.record(elapsed);
                        rejected.push((cause, series));
                    }
                }
            }
        }
    }

    pub fn upstream_failure(&self, failure: UpstreamFailure) {
        let index = match failure {
            UpstreamFailure::Unreachable => 0,
            UpstreamFailure::Timeout => 1,
        };
        self.counts().failures[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %err, "cannot encode the metrics");
        }
        text
    }
}

/// Sums the workers' counts at each scrape: requests by outcome (rejections by cause), their
/// latencies by outcome, and the upstream failures by kind. The usual series are there from the
/// start, at zero; a rejection's once a request was rejected for that cause.
struct RequestCollector {
    workers: Arc<[WorkerCounts]>,
}

impl fmt::Debug for RequestCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestCollector").finish_non_exhaustive()
    }
}

impl RequestCollector {
    /// The fixed outcomes' totals, and the rejections' by cause (sorted by cause).
    fn totals(&self) -> ([Totals; 4], Vec<(&'static str, Totals)>) {
        let mut fixed: [Totals; 4] = Default::default();
        let mut rejected: Vec<(&'static str, Totals)> = Vec::new();
        for counts in self.workers.iter() {
            for (total, series) in fixed.iter_mut().zip(&counts.fixed) {
                series.add_to(total);
            }
            for (cause, series) in counts.rejected().iter() {
                let at = match rejected.iter().position(|(seen, _)| seen == cause) {
                    Some(at) => at,
                    None => {
                        rejected.push((cause, Totals::default()));
                        rejected.len() - 1
                    }
                };
                series.add_to(&mut rejected[at].1);
            }
        }
        rejected.sort_by_key(|(cause, _)| *cause);
        (fixed, rejected)
    }
}

impl Collector for RequestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let (fixed, rejected) = self.totals();

        let mut requests = encoder.encode_descriptor(
            "gateway_requests",
            "Requests by outcome; rejections by cause.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, total) in FIXED_OUTCOMES.iter().zip(&fixed) {
            let labels = [("outcome", outcome.name())];
            ConstCounter::new(total.requests).encode(requests.encode_family(&labels)?)?;
        }
        for (cause, total) in &rejected {
            let labels = [("outcome", "rejected"), ("cause", *cause)];
            ConstCounter::new(total.requests).encode(requests.encode_family(&labels)?)?;
        }

        let mut duration = encoder.encode_descriptor(
            "gateway_request_duration",
            "Time from receiving a request to sending the response headers, by outcome.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (outcome, total) in FIXED_OUTCOMES.iter().zip(&fixed) {
            total.encode_histogram(duration.encode_family(&[("outcome", outcome.name())])?)?;
        }
        if !rejected.is_empty() {
            let mut all = Totals::default();
            for (_, total) in &rejected {
                all.requests += total.requests;
                for (sum, bucket) in all.buckets.iter_mut().zip(total.buckets) {
                    *sum += bucket;
                }
                all.nanos += total.nanos;
            }
            all.encode_histogram(duration.encode_family(&[("outcome", "rejected")])?)?;
        }

        let mut failures = encoder.encode_descriptor(
            "gateway_upstream_failures",
            "Forwarded requests that got no response from the upstream, by kind.",
            None,
            MetricType::Counter,
        )?;
        for (index, failure) in [UpstreamFailure::Unreachable, UpstreamFailure::Timeout]
            .into_iter()
            .enumerate()
        {
            let count: u64 = self
                .workers
                .iter()
                .map(|counts| counts.failures[index].load(Ordering::Relaxed))
                .sum();
            ConstCounter::new(count)
                .encode(failures.encode_family(&[("kind", failure.label())])?)?;
        }
        Ok(())
    }
}

/// Reads the key sets' state from the layer at each scrape.
struct KeySetCollector {
    layer: Arc<OnceLock<JwtAuthLayer<Value>>>,
}

impl fmt::Debug for KeySetCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySetCollector").finish_non_exhaustive()
    }
}

impl Collector for KeySetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let Some(layer) = self.layer.get() else {
            return Ok(());
        };
        let sets = layer.key_sets();
        let names: Vec<String> = sets
            .iter()
            .map(|set| {
                set.issuer
                    .clone()
                    .or_else(|| set.jwks_url.clone())
                    .unwrap_or_else(|| "-".to_owned())
            })
            .collect();

        let mut fetches = encoder.encode_descriptor(
            "gateway_jwks_fetches",
            "JWKS fetches since start, by issuer and result.",
            None,
            MetricType::Counter,
        )?;
        for (set, issuer) in sets.iter().zip(&names) {
            for (result, count) in [
                ("ok", set.fetches.ok),
                ("not_modified", set.fetches.not_modified),
                ("failed", set.fetches.failed),
            ] {
                let labels = [("issuer", issuer.as_str()), ("result", result)];
                ConstCounter::new(count).encode(fetches.encode_family(&labels)?)?;
            }
        }

        let mut keys = encoder.encode_descriptor(
            "gateway_jwks_keys",
            "Keys in use, by issuer.",
            None,
            MetricType::Gauge,
        )?;
        for (set, issuer) in sets.iter().zip(&names) {
            let count = i64::try_from(set.key_count).unwrap_or(i64::MAX);
            ConstGauge::new(count).encode(keys.encode_family(&[("issuer", issuer.as_str())])?)?;
        }

        let mut usable = encoder.encode_descriptor(
            "gateway_jwks_usable",
            "1 when the issuer's keys can verify tokens now, 0 otherwise.",
            None,
            MetricType::Gauge,
        )?;
        for (set, issuer) in sets.iter().zip(&names) {
            ConstGauge::new(i64::from(set.usable))
                .encode(usable.encode_family(&[("issuer", issuer.as_str())])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_sums_every_workers_counts() {
        let metrics = Metrics::new(Arc::new(OnceLock::new()), 2);
        let (first, second) = (metrics.for_worker(0), metrics.for_worker(1));
        first.record(Outcome::Accepted, Duration::from_micros(300));
        second.record(Outcome::Accepted, Duration::from_millis(3));
        second.record(
            Outcome::Rejected("missing_token"),
            Duration::from_micros(100),
        );
        first.record(
            Outcome::Rejected("invalid_token"),
            Duration::from_micros(100),
        );
        second.record(
            Outcome::Rejected("missing_token"),
            Duration::from_micros(100),
        );
        second.upstream_failure(UpstreamFailure::Timeout);
        let text = metrics.render();
        for line in [
            "# HELP gateway_requests Requests by outcome; rejections by cause.",
            "gateway_requests_total{outcome=\"accepted\"} 2",
            "gateway_requests_total{outcome=\"public\"} 0",
            "gateway_requests_total{outcome=\"rejected\",cause=\"invalid_token\"} 1",
            "gateway_requests_total{outcome=\"rejected\",cause=\"missing_token\"} 2",
            "# TYPE gateway_request_duration_seconds histogram",
            "# UNIT gateway_request_duration_seconds seconds",
            "gateway_request_duration_seconds_sum{outcome=\"accepted\"} 0.0033",
            "gateway_request_duration_seconds_count{outcome=\"accepted\"} 2",
            "gateway_request_duration_seconds_bucket{le=\"0.0005\",outcome=\"accepted\"} 1",
            "gateway_request_duration_seconds_bucket{le=\"0.002\",outcome=\"accepted\"} 1",
            "gateway_request_duration_seconds_bucket{le=\"0.004\",outcome=\"accepted\"} 2",
            "gateway_request_duration_seconds_bucket{le=\"+Inf\",outcome=\"accepted\"} 2",
            "gateway_request_duration_seconds_count{outcome=\"rejected\"} 3",
            "gateway_upstream_failures_total{kind=\"unreachable\"} 0",
            "gateway_upstream_failures_total{kind=\"timeout\"} 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }

    #[test]
    fn the_buckets_double_from_half_a_millisecond() {
        assert_eq!(BOUNDS[0], 0.0005);
        assert_eq!(BOUNDS[15], 0.0005 * 32768.0);
    }
}
