//! [`KeySetStatus`]: the state of an issuer's keys at one moment, for health checks and dashboards.

use std::time::Duration;

/// The state of an issuer's keys at one moment, from
/// [`JwtAuthLayer::key_sets`](crate::JwtAuthLayer::key_sets): for health checks and dashboards.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeySetStatus {
    /// The issuer (`None` for an issuer without `iss` check).
    pub issuer: Option<String>,
    /// The JWKS URL, once known.
    pub jwks_url: Option<String>,
    /// How many keys are in use.
    pub key_count: usize,
    /// Time since the last successful fetch (or revalidation); `None` before the first.
    pub age: Option<Duration>,
    /// Whether the last refresh failed and the previous keys are serving (stale-if-error).
    pub stale: bool,
    /// Whether requests can be verified now (`false`: they get `503`).
    pub usable: bool,
    /// The last fetch error, if the last fetch failed.
    pub last_error: Option<String>,
    /// Fetches since the layer was built, by result.
    pub fetches: FetchCounts,
}

/// How many fetches of a key set ended how, since the layer was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchCounts {
    /// A new JWKS was loaded.
    pub ok: u64,
    /// The server answered `304 Not Modified`: the keys are still current.
    pub not_modified: u64,
    /// The fetch (or the discovery before it) failed.
    pub failed: u64,
}

impl KeySetStatus {
    /// The status of configured keys, which are never fetched.
    pub(crate) fn fixed(issuer: Option<&str>, key_count: usize) -> Self {
        Self {
            issuer: issuer.map(str::to_owned),
            jwks_url: None,
            key_count,
            age: None,
            stale: false,
            usable: key_count > 0,
            last_error: None,
            fetches: FetchCounts::default(),
        }
    }
}
