//! [`SharedKeys`]: one started, refreshing remote key set that any number of layers use.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::refresh::{RemoteKeys, RemoteSetup, RemoteSource};
use super::remote::{HttpPolicy, checked_url, default_client};
use super::source::SourceKind;
use super::{KeySet, KeySetStatus, KeySource, KeyStore, RefreshPolicy};
use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::error::ConfigError;

/// A remote key set (a JWKS URL, or an issuer's keys found by discovery), fetched once, kept fresh
/// in the background, and shared by every layer built on it: two layers for two audiences, or for
/// two claims types, make one fetch at start and share every refresh and every unknown-`kid`
/// refetch. Cheap to clone; the refresh stops when the last clone and the last layer using it are
/// dropped.
///
/// ```no_run
/// use tower_jwt_auth::{Issuer, JwtAuthLayer, KeySource, RefreshPolicy, SharedKeys};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = SharedKeys::builder(KeySource::jwks_url("https://auth.example.com/jwks.json"))
///     .refresh_policy(RefreshPolicy::default())
///     .start()
///     .await?;
/// let orders = JwtAuthLayer::<serde_json::Value>::builder()
///     .issuer(Issuer::new("https://auth.example.com/").audience("orders").key(KeySource::shared(&keys)))
///     .build()
///     .await?;
/// let billing = JwtAuthLayer::<serde_json::Value>::builder()
///     .issuer(Issuer::new("https://auth.example.com/").audience("billing").key(KeySource::shared(&keys)))
///     .build()
///     .await?;
/// # let _ = (orders, billing);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SharedKeys {
    current: Arc<ArcSwap<KeySet>>,
    remote: Arc<RemoteKeys>,
}

impl fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeys")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl SharedKeys {
    /// Fetches the keys of `source` (a [`KeySource::jwks_url`]) with the default settings and
    /// starts refreshing them; see [`builder`](Self::builder) for the settings.
    ///
    /// # Errors
    ///
    /// As [`SharedKeysBuilder::start`].
    pub async fn start(source: KeySource) -> Result<Self, ConfigError> {
        Self::builder(source).start().await
    }

    /// Settings for a shared set fetched from `source` (a [`KeySource::jwks_url`]).
    pub fn builder(source: KeySource) -> SharedKeysBuilder {
        SharedKeysBuilder {
            source,
            issuer: None,
            policy: RefreshPolicy::default(),
            client: None,
            http_policy: HttpPolicy::LoopbackOnly,
            algorithms: None,
            wait_for_keys: true,
        }
    }

    /// Settings for a shared set found by discovery from `issuer`'s metadata, as
    /// [`Issuer::discover`](crate::Issuer::discover) does.
    pub fn discover(issuer: impl Into<String>) -> SharedKeysBuilder {
        let mut builder = Self::builder(KeySource::discovery());
        builder.issuer = Some(issuer.into());
        builder
    }

    /// The state of the set: keys, age, staleness, fetches.
    pub fn status(&self) -> KeySetStatus {
        self.remote.status()
    }

    /// Refetches the set now (joining a fetch in flight), for every layer using it.
    pub async fn refresh(&self) {
        self.remote.fetch_now().await;
    }

    /// The store an issuer of a layer reads.
    pub(crate) fn store(&self) -> KeyStore {
        KeyStore::remote(Arc::clone(&self.current), Arc::clone(&self.remote))
    }
}

/// Settings of a [`SharedKeys`]; from [`SharedKeys::builder`] or [`SharedKeys::discover`].
#[must_use]
#[derive(Debug)]
pub struct SharedKeysBuilder {
    source: KeySource,
    issuer: Option<String>,
    policy: RefreshPolicy,
    client: Option<reqwest::Client>,
    http_policy: HttpPolicy,
    algorithms: Option<Vec<Algorithm>>,
    wait_for_keys: bool,
}

impl SharedKeysBuilder {
    /// How the set is refreshed and each fetch bounded. Default: [`RefreshPolicy::default`].
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The HTTP client for the fetches (custom roots, a proxy). Default: a built-in rustls client
    /// with the policy's timeouts, following redirects only to the same origin.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Allows plain-`http` URLs to any host. Default: `https`, or `http` to loopback only.
    pub fn allow_insecure_http(mut self) -> Self {
        self.http_policy = HttpPolicy::Anywhere;
        self
    }

    /// The algorithms keys are prepared for; a key without `alg` serves the first of its family
    /// in this list. Each layer's issuer still applies its own allow-list to every token.
    /// Default: every supported algorithm, RS256 before PS*.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Lets [`start`](Self::start) succeed when the first fetch fails: the set starts empty
    /// (requests get `503`) and keeps fetching in the background. Default: `start` fails.
    pub fn allow_start_without_keys(mut self) -> Self {
        self.wait_for_keys = false;
        self
    }

    /// Fetches the keys and starts the background refresh (on the current Tokio runtime).
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoRuntime`] outside a Tokio runtime; [`ConfigError::UrlNotAllowed`] for a
    /// refused URL; [`ConfigError::KeyFetch`] when the first fetch fails (unless allowed);
    /// [`ConfigError::InvalidSetting`] for a source that is not remote or a bad policy.
    pub async fn start(self) -> Result<SharedKeys, ConfigError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::NoRuntime);
        }
        self.policy.check()?;
        let not_allowed = |err: super::FetchError| ConfigError::UrlNotAllowed(err.to_string());
        let source = match (self.source.kind(), &self.issuer) {
            (SourceKind::JwksUrl(url), _) => {
                RemoteSource::JwksUrl(checked_url(url, self.http_policy).map_err(not_allowed)?)
            }
            (SourceKind::Discovery, Some(issuer)) => {
                checked_url(issuer, self.http_policy).map_err(not_allowed)?;
                RemoteSource::Discovery {
                    issuer: issuer.clone(),
                }
            }
            _ => {
                return Err(ConfigError::InvalidSetting {
                    name: "SharedKeys::builder",
                    reason: format!(
                        "`{}` is not a JWKS URL; shared keys are fetched and refreshed",
                        self.source.name()
                    ),
                });
            }
        };
        let allowed: AlgorithmSet = match self.algorithms {
            Some(list) => list.into_iter().collect(),
            None => Algorithm::ALL.into_iter().collect(),
        };
        if allowed.is_empty() {
            return Err(ConfigError::Algorithm(
                "shared keys allow no algorithm".to_owned(),
            ));
        }
        let client = match self.client {
            Some(client) => client,
            None => default_client(&self.policy).map_err(ConfigError::HttpClient)?,
        };
        let label = self.issuer.clone().unwrap_or_else(|| self.source.name());
        let current = Arc::new(ArcSwap::from_pointee(KeySet::new(Vec::new())));
        let setup = RemoteSetup {
            issuer: self.issuer,
            source,
            client,
            policy: self.policy,
            http_policy: self.http_policy,
            allowed,
            configured: Vec::new(),
        };
        let remote = RemoteKeys::start(setup, Arc::clone(&current), self.wait_for_keys)
            .await
            .map_err(|error| ConfigError::KeyFetch {
                issuer: label,
                error,
            })?;
        Ok(SharedKeys { current, remote })
    }
}
