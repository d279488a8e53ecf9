//! [`Issuer`]: one trusted issuer (its `iss`, audiences, algorithms and key sources), and how its
//! keys are loaded or started when the layer is built.

use std::collections::HashSet;
use std::sync::Arc;

use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::dpop::DpopPolicy;
use crate::error::ConfigError;
use crate::introspection::{ClientCredentials, IntrospectionEndpoint};
use crate::keys::{
    HttpPolicy, KeySet, KeySource, KeyStore, RefreshPolicy, RemoteKeys, RemoteSetup, RemoteSource,
    SourceKind, checked_url,
};
use crate::verify::IssuerPolicy;

/// A trusted token issuer: the `iss` it puts in tokens, the audiences accepted from it, the
/// algorithms it may use, and where its keys come from.
///
/// ```
/// use tower_jwt_auth::{Algorithm, Issuer, KeySource};
///
/// let issuer = Issuer::new("https://auth.example.com/")
///     .audience("orders-api")
///     .algorithms([Algorithm::RS256, Algorithm::ES256])
///     .key(KeySource::jwks_file("/etc/orders/jwks.json"));
/// # let _ = issuer;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Issuer {
    iss: Option<String>,
    audiences: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    keys: Vec<KeySource>,
    dpop: DpopPolicy,
    introspection: Option<IntrospectionEndpoint>,
    introspect_jwts: bool,
}

impl Issuer {
    /// An issuer whose tokens must carry exactly this `iss` (a missing `iss` is a failure).
    pub fn new(iss: impl Into<String>) -> Self {
        Self {
            iss: Some(iss.into()),
            ..Self::without_issuer_check()
        }
    }

    /// An issuer whose keys are found by discovery: its metadata is read from
    /// `{iss}/.well-known/openid-configuration` (OpenID Connect Discovery), or else from
    /// `/.well-known/oauth-authorization-server{path}` (RFC 8414); the document's `issuer` must
    /// equal `iss` exactly, and its `jwks_uri` is then fetched and kept fresh like a
    /// [`KeySource::jwks_url`]. Tokens must carry exactly this `iss`.
    ///
    /// ```
    /// use tower_jwt_auth::Issuer;
    ///
    /// let issuer = Issuer::discover("https://accounts.example.com").audience("orders-api");
    /// # let _ = issuer;
    /// ```
    pub fn discover(iss: impl Into<String>) -> Self {
        Self::new(iss).key(KeySource::discovery())
    }

    /// An issuer whose `iss` is not checked: tokens with any `iss`, or none, are verified with its
    /// keys. Only allowed as the sole issuer of a layer.
    pub fn without_issuer_check() -> Self {
        Self {
            iss: None,
            audiences: Vec::new(),
            algorithms: None,
            keys: Vec::new(),
            dpop: DpopPolicy::Disabled,
            introspection: None,
            introspect_jwts: false,
        }
    }

    /// Accepts tokens whose `aud` names `audience`. Once any audience is set, `aud` is required
    /// and must name at least one of them. Default: `aud` is not checked.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The algorithms accepted from this issuer. Default: every supported algorithm; HMAC
    /// (`HS*`) ones are only ever usable with a configured shared secret or `oct` key.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Adds a source of signing keys. At least one is required.
    pub fn key(mut self, source: KeySource) -> Self {
        self.keys.push(source);
        self
    }

    /// Whether this issuer's tokens may or must be DPoP-bound (RFC 9449); see [`crate::dpop`].
    /// Default: [`DpopPolicy::Disabled`].
    pub fn dpop(mut self, policy: DpopPolicy) -> Self {
        self.dpop = policy;
        self
    }

    /// The `iss` and the DPoP policy, for the layer's sender-constraint settings.
    pub(crate) fn dpop_policy(&self) -> (Option<String>, DpopPolicy) {
        (self.iss.clone(), self.dpop)
    }

    /// Requires `audience` as `aud` if no audience was set (RFC 8707: the protected resource's
    /// identifier is the audience of the tokens meant for it).
    pub(crate) fn default_audience(&mut self, audience: &str) {
        if self.audiences.is_empty() {
            self.audiences.push(audience.to_owned());
        }
    }

    /// Sends tokens that are not a compact JWS (opaque tokens) to this introspection endpoint
    /// (RFC 7662), authenticated with `credentials`. An active token passes with the claims of
    /// the answer, checked like a JWT's (`iss` when present, `exp`, `nbf`, `iat`, `aud`, required
    /// claims, validators; `exp` is required unless
    /// [`allow_missing_exp`](crate::JwtAuthBuilder::allow_missing_exp)); handlers get the same [`Claims`](crate::Claims) and
    /// [`VerifiedToken`](crate::VerifiedToken). An inactive one is `401 invalid_token` ("token not
    /// active"); an endpoint that can't answer gives `503` with `Retry-After`.
    ///
    /// Answers are cached until the token's `exp`, for at most five minutes
    /// ([`INTROSPECTION_MAX_TTL`](crate::INTROSPECTION_MAX_TTL)), inactive ones for ten seconds
    /// ([`INTROSPECTION_NEGATIVE_TTL`](crate::INTROSPECTION_NEGATIVE_TTL)); concurrent requests with the same
    /// token share one call. An issuer with an introspection endpoint needs no key source when
    /// all its tokens are opaque; at most one issuer of a layer may have one. The URL must be
    /// `https` (plain `http` only to loopback, or with
    /// [`allow_insecure_http`](crate::JwtAuthBuilder::allow_insecure_http)). Default: none.
    ///
    /// ```
    /// use tower_jwt_auth::{ClientCredentials, Issuer};
    ///
    /// let issuer = Issuer::new("https://auth.example.com/")
    ///     .audience("orders-api")
    ///     .introspection(
    ///         "https://auth.example.com/oauth2/introspect",
    ///         ClientCredentials::post("orders-api", "s3cr3t"),
    ///     );
    /// # let _ = issuer;
    /// ```
    pub fn introspection(mut self, url: impl Into<String>, credentials: ClientCredentials) -> Self {
        self.introspection = Some(IntrospectionEndpoint {
            url: url.into(),
            credentials,
        });
        self
    }

    /// Introspects this issuer's JWTs too, after their signature and claims passed: a token
    /// revoked at the issuer is refused as soon as the issuer says so (within the cache's time),
    /// at the cost of a call per token. Needs [`introspection`](Self::introspection).
    /// Default: only opaque tokens are introspected.
    pub fn introspect_jwts(mut self) -> Self {
        self.introspect_jwts = true;
        self
    }

    /// The introspection endpoint and whether JWTs are introspected too.
    pub(crate) fn introspection_endpoint(&self) -> Option<(&IntrospectionEndpoint, bool)> {
        self.introspection
            .as_ref()
            .map(|endpoint| (endpoint, self.introspect_jwts))
    }

    /// Whether one of its key sources is fetched over the network.
    pub(crate) fn has_remote_source(&self) -> bool {
        self.keys.iter().any(KeySource::is_remote)
    }

    pub(crate) fn name(&self) -> &str {
        self.iss.as_deref().unwrap_or("(any issuer)")
    }

    pub(crate) async fn build(self, remote: &RemoteContext) -> Result<IssuerPolicy, ConfigError> {
        let algorithms: AlgorithmSet = match &self.algorithms {
            None => Algorithm::ALL.into_iter().collect(),
            Some(list) => list.iter().copied().collect(),
        };
        if algorithms.is_empty() {
            return Err(ConfigError::Algorithm(format!(
                "issuer `{}` allows no algorithm",
                self.name()
            )));
        }
        // An issuer whose tokens are all opaque needs only its introspection endpoint.
        if self.keys.is_empty() && self.introspection.is_none() {
            return Err(ConfigError::NoKeys(self.name().to_owned()));
        }
        if let Some(shared) = self.keys.iter().find_map(|source| match source.kind() {
            SourceKind::Shared(shared) => Some(shared),
            _ => None,
        }) {
            // The set is the shared one, whole: static keys beside it would make it another set.
            if self.keys.len() > 1 {
                return Err(ConfigError::InvalidSetting {
                    name: "KeySource::shared",
                    reason: format!(
                        "issuer `{}`: shared keys must be the issuer's only key source",
                        self.name()
                    ),
                });
            }
            let keys = shared.store();
            return Ok(self.into_policy(algorithms, keys));
        }
        let mut keys = Vec::new();
        let mut remote_source = None;
        for source in &self.keys {
            if source.is_remote() {
                if remote_source.is_some() {
                    return Err(ConfigError::MultipleRemoteSources(self.name().to_owned()));
                }
                remote_source = Some(self.remote_source(source, remote.http_policy)?);
            } else {
                keys.extend(source.load(algorithms)?.into_iter().map(Arc::new));
            }
        }
        let keys = match remote_source {
            None => KeyStore::fixed(KeySet::new(keys)),
            Some(source) => {
                let current = Arc::new(arc_swap::ArcSwap::from_pointee(KeySet::new(keys.clone())));
                let setup = RemoteSetup {
                    issuer: self.iss.clone(),
                    source,
                    client: remote.client()?,
                    policy: remote.policy.clone(),
                    http_policy: remote.http_policy,
                    allowed: algorithms,
                    configured: keys,
                };
                let fetched = RemoteKeys::start(setup, Arc::clone(&current), remote.wait_for_keys)
                    .await
                    .map_err(|error| ConfigError::KeyFetch {
                        issuer: self.name().to_owned(),
                        error,
                    })?;
                KeyStore::remote(current, fetched)
            }
        };
        Ok(self.into_policy(algorithms, keys))
    }

    fn into_policy(self, algorithms: AlgorithmSet, keys: KeyStore) -> IssuerPolicy {
        IssuerPolicy {
            iss: self.iss.map(String::into_boxed_str),
            audiences: self
                .audiences
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            algorithms,
            keys,
        }
    }

    fn remote_source(
        &self,
        source: &KeySource,
        http_policy: HttpPolicy,
    ) -> Result<RemoteSource, ConfigError> {
        let not_allowed =
            |err: crate::keys::FetchError| ConfigError::UrlNotAllowed(err.to_string());
        match source.kind() {
            SourceKind::JwksUrl(url) => Ok(RemoteSource::JwksUrl(
                checked_url(url, http_policy).map_err(not_allowed)?,
            )),
            SourceKind::Discovery => {
                let issuer = self
                    .iss
                    .clone()
                    .ok_or_else(|| ConfigError::InvalidSetting {
                        name: "discover",
                        reason: "discovery needs the issuer URL".to_owned(),
                    })?;
                checked_url(&issuer, http_policy).map_err(not_allowed)?;
                Ok(RemoteSource::Discovery { issuer })
            }
            _ => Err(ConfigError::InvalidSetting {
                name: "key",
                reason: format!("`{}` is not a remote key source", source.name()),
            }),
        }
    }
}

/// The settings shared by every remote key set of a layer.
pub(crate) struct RemoteContext {
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) policy: RefreshPolicy,
    pub(crate) http_policy: HttpPolicy,
    pub(crate) wait_for_keys: bool,
}

impl RemoteContext {
    /// The layer's shared client (a cheap handle to one connection pool).
    fn client(&self) -> Result<reqwest::Client, ConfigError> {
        self.client.clone().ok_or(ConfigError::InvalidSetting {
            name: "http_client",
            reason: "no HTTP client for a remote key source".to_owned(),
        })
    }
}

/// Refuses two issuers with the same `iss`, or an issuer without `iss` check beside others.
pub(crate) fn check_issuers_are_distinct(issuers: &[Issuer]) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for issuer in issuers {
        let duplicate = match &issuer.iss {
            None => issuers.len() > 1,
            Some(iss) => !seen.insert(iss.as_str()),
        };
        if duplicate {
            return Err(ConfigError::AmbiguousIssuer(issuer.name().to_owned()));
        }
    }
    Ok(())
}
