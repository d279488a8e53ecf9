//! `/metrics`: requests by outcome (rejections by [`AuthError::cause`]), a latency histogram,
//! upstream failures, and the key sets' fetch counts and state, read at scrape time.
//!
//! [`AuthError::cause`]: tower_jwt_auth::AuthError::cause

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;
use tower_jwt_auth::JwtAuthLayer;

use crate::proxy::UpstreamFailure;

/// The content type of the OpenMetrics text exposition, which Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, &'static str)>;

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

    fn labels(self) -> Labels {
        match self {
            Self::Rejected(cause) => vec![("outcome", "rejected"), ("cause", cause)],
            other => vec![("outcome", other.name())],
        }
    }
}

/// The outcomes whose series are resolved once, at start (a rejection's series depends on its
/// cause and is looked up in its family).
const FIXED_OUTCOMES: [Outcome; 4] = [
    Outcome::Accepted,
    Outcome::Public,
    Outcome::BadRequest,
    Outcome::NotReady,
];

/// The series of one outcome: each handle shares its value with the family's series.
#[derive(Clone)]
struct Series {
    requests: Counter,
    duration: Histogram,
}

/// The gateway's metrics; cheap to clone.
///
/// On the request path, recording a request of a [`FIXED_OUTCOMES`] outcome is an atomic
/// increment and a histogram observation on handles resolved at start: no label set is built,
/// hashed or looked up under the family's lock.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    /// By the outcome's index in [`FIXED_OUTCOMES`].
    fixed: Arc<[Series; 4]>,
    /// By [`UpstreamFailure`]: unreachable, timeout.
    failures: Arc<[Counter; 2]>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// Metrics whose key-set figures come from the layer in `layer`, once it is set.
    pub fn new(layer: Arc<OnceLock<JwtAuthLayer<Value>>>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let duration = Family::<Labels, Histogram>::new_with_constructor(latency_histogram as _);
        let upstream_failures = Family::<Labels, Counter>::default();
        registry.register(
            "gateway_requests",
            "Requests by outcome; rejections by cause",
            requests.clone(),
        );
        registry.register_with_unit(
            "gateway_request_duration",
            "Time from receiving a request to sending the response headers, by outcome",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "gateway_upstream_failures",
            "Forwarded requests that got no response from the upstream, by kind",
            upstream_failures.clone(),
        );
        registry.register_collector(Box::new(KeySetCollector { layer }));
        // The usual series exist from the start, at zero, and their handles are kept.
        let fixed = FIXED_OUTCOMES.map(|outcome| Series {
            requests: requests.get_or_create_owned(&outcome.labels()),
            duration: duration.get_or_create_owned(&vec![("outcome", outcome.name())]),
        });
        let failures = [UpstreamFailure::Unreachable, UpstreamFailure::Timeout]
            .map(|failure| upstream_failures.get_or_create_owned(&vec![("kind", failure.label())]));
        Self {
            registry: Arc::new(registry),
            requests,
            duration,
            fixed: Arc::new(fixed),
            failures: Arc::new(failures),
        }
    }

    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        match FIXED_OUTCOMES.iter().position(|fixed| *fixed == outcome) {
            Some(index) => {
                let series = &self.fixed[index];
                series.requests.inc();
                series.duration.observe(seconds);
            }
            None => {
                self.requests.get_or_create(&outcome.labels()).inc();
                self.duration
                    .get_or_create(&vec![("outcome", outcome.name())])
                    .observe(seconds);
            }
        }
    }

    pub fn upstream_failure(&self, failure: UpstreamFailure) {
        let index = match failure {
            UpstreamFailure::Unreachable => 0,
            UpstreamFailure::Timeout => 1,
        };
        self.failures[index].inc();
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
