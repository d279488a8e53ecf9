//! Configuring a [`JwtAuthLayer`]: issuers, their keys, and the claim rules.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::HeaderName;
use serde::de::DeserializeOwned;

use crate::authenticator::{AsyncValidator, AuthConfig, Authenticator, Introspection};
use crate::cache::TokenCache;
use crate::claims::{Claims, VerifiedToken};
use crate::clock::{Clock, SharedClock};
use crate::dpop::{DpopConfig, SenderConstraint};
use crate::error::ConfigError;
use crate::introspection::Introspector;
use crate::issuer::{Issuer, RemoteContext, check_issuers_are_distinct};
use crate::jws::HeaderMemo;
use crate::keys::{HttpPolicy, RefreshPolicy, default_client};
use crate::layer::JwtAuthLayer;
use crate::resource::ProtectedResource;
use crate::response::DefaultRejection;
use crate::revocation::RevocationList;
use crate::token::{TokenExtractor, TokenSource};
use crate::verify::{ClaimRules, Validator, Verifier};

/// Default leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default maximum token length, in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
/// Default size of the verified-token cache, in bytes (about 10,000 tokens of 1 KiB).
pub const DEFAULT_TOKEN_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Builds a [`JwtAuthLayer`]; get one with [`JwtAuthLayer::builder`].
#[must_use]
pub struct JwtAuthBuilder<T> {
    issuers: Vec<Issuer>,
    leeway: Duration,
    require_exp: bool,
    token_type: Option<String>,
    max_age: Option<Duration>,
    required_claims: Vec<String>,
    validators: Vec<Validator<T>>,
    async_validators: Vec<AsyncValidator<T>>,
    clock: SharedClock,
    cors_preflight: bool,
    max_token_len: usize,
    token_sources: Vec<TokenSource>,
    realm: Option<String>,
    http_client: Option<reqwest::Client>,
    refresh_policy: RefreshPolicy,
    start_without_keys: bool,
    http_policy: HttpPolicy,
    token_cache_bytes: u64,
    dpop: DpopConfig,
    external_url: Option<String>,
    resource: Option<ProtectedResource>,
    revocation: Option<RevocationList>,
}

impl<T> fmt::Debug for JwtAuthBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthBuilder")
            .field("issuers", &self.issuers)
            .field("leeway", &self.leeway)
            .field("require_exp", &self.require_exp)
            .field("token_type", &self.token_type)
            .field("max_age", &self.max_age)
            .field("required_claims", &self.required_claims)
            .field("validators", &self.validators.len())
            .field("async_validators", &self.async_validators.len())
            .field("clock", &self.clock)
            .field("cors_preflight", &self.cors_preflight)
            .field("max_token_len", &self.max_token_len)
            .field("token_sources", &self.token_sources)
            .field("realm", &self.realm)
            .field("custom_http_client", &self.http_client.is_some())
            .field("refresh_policy", &self.refresh_policy)
            .field("start_without_keys", &self.start_without_keys)
            .field("http_policy", &self.http_policy)
            .field("token_cache_bytes", &self.token_cache_bytes)
            .field("dpop", &self.dpop)
            .field("external_url", &self.external_url)
            .field("resource", &self.resource)
            .field("revocation", &self.revocation)
            .finish()
    }
}

impl<T> Default for JwtAuthBuilder<T> {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            require_exp: true,
            token_type: None,
            max_age: None,
            required_claims: Vec::new(),
            validators: Vec::new(),
            async_validators: Vec::new(),
            clock: SharedClock::default(),
            cors_preflight: false,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            token_sources: Vec::new(),
            realm: None,
            http_client: None,
            refresh_policy: RefreshPolicy::default(),
            start_without_keys: false,
            http_policy: HttpPolicy::LoopbackOnly,
            token_cache_bytes: DEFAULT_TOKEN_CACHE_BYTES,
            dpop: DpopConfig::default(),
            external_url: None,
            resource: None,
            revocation: None,
        }
    }
}

impl<T> JwtAuthBuilder<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Trusts `issuer`. With several issuers, a token is routed by its (unverified) `iss` and
    /// checked only with that issuer's keys, audiences and algorithms.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default: 60 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepts tokens without `exp` (they never expire). Default: `exp` is required.
    pub fn allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Requires the header's `typ` to be this media type, compared without case and with or
    /// without `application/`; e.g. `"at+jwt"` for RFC 9068 access tokens, so that an ID token
    /// can't be used as an access token. Default: `typ` is not checked.
    pub fn require_token_type(mut self, typ: impl Into<String>) -> Self {
        self.token_type = Some(typ.into());
        self
    }

    /// Refuses tokens issued (`iat`) longer ago than `max_age`; `iat` becomes required.
    /// Default: no maximum age.
    pub fn max_token_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Requires the payload to carry the claim `name` (with a value other than `null`).
    /// Default: only `exp` is required (and `iss`/`aud` once configured).
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.required_claims.push(name.into());
        self
    }

    /// Adds a check on the typed claims, run after every other check. An `Err` rejects the
    /// request with `401 invalid_token`, its text sent as `error_description`: keep it short and
    /// free of anything secret.
    ///
    /// ```
    /// # use serde::Deserialize;
    /// # use tower_jwt_auth::JwtAuthLayer;
    /// #[derive(Deserialize)]
    /// struct MyClaims { email_verified: bool }
    ///
    /// let builder = JwtAuthLayer::<MyClaims>::builder().validate(|claims| {
    ///     if claims.email_verified { Ok(()) } else { Err("email not verified".into()) }
    /// });
    /// # let _ = builder;
    /// ```
    pub fn validate<F>(mut self, validator: F) -> Self
    where
        F: Fn(&T) -> Result<(), Cow<'static, str>> + Send + Sync + 'static,
    {
        self.validators.push(Box::new(validator));
        self
    }

    /// The longest token accepted, in bytes; longer ones are refused before any decoding, on
    /// every path (request extraction and [`JwtAuthLayer::verify`](crate::JwtAuthLayer::verify)).
    /// Default: 8 KiB ([`DEFAULT_MAX_TOKEN_LEN`]).
    pub fn max_token_len(mut self, max_token_len: usize) -> Self {
        self.max_token_len = max_token_len;
        self
    }

    /// Also reads the token from `source`; may be called for several sources. The
    /// `Authorization: Bearer` header is always read, and a request carrying a token in more than
    /// one place is refused (`400 invalid_request`). Default: only `Authorization: Bearer`.
    ///
    /// ```
    /// use tower_jwt_auth::{JwtAuthLayer, TokenSource};
    ///
    /// // Browsers can't set headers on a WebSocket handshake: they send
    /// // `Sec-WebSocket-Protocol: access_token, <jwt>` instead.
    /// let builder = JwtAuthLayer::<serde_json::Value>::builder()
    ///     .token_source(TokenSource::WebSocketProtocol)
    ///     .token_source(TokenSource::Cookie("session".into()));
    /// # let _ = builder;
    /// ```
    pub fn token_source(mut self, source: TokenSource) -> Self {
        self.token_sources.push(source);
        self
    }

    /// Also reads the token from this cookie: [`token_source`](Self::token_source) with
    /// [`TokenSource::Cookie`]. Default: only `Authorization: Bearer`.
    pub fn token_from_cookie(self, name: impl Into<String>) -> Self {
        self.token_source(TokenSource::Cookie(name.into()))
    }

    /// Also reads the token from this header, as a bare token: [`token_source`](Self::token_source)
    /// with [`TokenSource::Header`]. Default: only `Authorization: Bearer`.
    pub fn token_from_header(self, name: HeaderName) -> Self {
        self.token_source(TokenSource::Header(name))
    }

    /// Also reads the token from this query parameter (RFC 6750 §2.3, discouraged: URLs are
    /// logged): [`token_source`](Self::token_source) with [`TokenSource::Query`]. Default: only
    /// `Authorization: Bearer`.
    pub fn token_from_query(self, name: impl Into<String>) -> Self {
        self.token_source(TokenSource::Query(name.into()))
    }

    /// Lets CORS preflight requests (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) pass without a token, as anonymous requests: browsers
    /// never send credentials on a preflight. Put tower-http's `CorsLayer` outside this layer so
    /// that it answers them (see the README). Default: a preflight needs a token like any request.
    pub fn allow_cors_preflight(mut self) -> Self {
        self.cors_preflight = true;
        self
    }

    /// The clock every time check reads (`exp`, `nbf`, `iat`, the maximum age). Default:
    /// [`SystemClock`](crate::SystemClock). Tests can step their own clock instead of minting
    /// tokens in the past.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = SharedClock::new(clock);
        self
    }

    /// Adds a check that may wait (a database, a remote deny list) on the typed claims and the
    /// [`VerifiedToken`](crate::VerifiedToken), run after the signature and claim checks and on
    /// every cache hit too; `Err` rejects the request with `401 invalid_token` and the reason as
    /// `error_description` (keep it free of anything secret), like [`validate`](Self::validate).
    ///
    /// Requests wait only when such a check exists; without one the layer's path stays
    /// synchronous.
    ///
    /// ```
    /// use std::collections::HashSet;
    /// use std::sync::Arc;
    /// use tower_jwt_auth::{JwtAuthLayer, RegisteredClaims};
    ///
    /// let banned = Arc::new(HashSet::from(["mallory".to_owned()]));
    /// let builder = JwtAuthLayer::<RegisteredClaims>::builder().validate_async(move |claims, _token| {
    ///     let banned = Arc::clone(&banned);
    ///     async move {
    ///         match &claims.sub {
    ///             Some(sub) if banned.contains(sub) => Err("subject banned".into()),
    ///             _ => Ok(()),
    ///         }
    ///     }
    /// });
    /// # let _ = builder;
    /// ```
    pub fn validate_async<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn(Claims<T>, VerifiedToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Cow<'static, str>>> + Send + 'static,
    {
        self.async_validators.push(Box::new(move |claims, token| {
            Box::pin(check(claims, token))
        }));
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenges. Default: none.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// How many bytes the verified-token cache may hold, so that a repeated token skips the
    /// signature check; `0` switches the cache off. Default: [`DEFAULT_TOKEN_CACHE_BYTES`]
    /// (32 MiB, about 10,000 tokens of 1 KiB).
    ///
    /// An entry weighs the token, its payload twice (the text kept for
    /// [`VerifiedToken::payload_json`](crate::VerifiedToken::payload_json) and, about as much, the
    /// decoded claims) and 320 bytes, so a claims-heavy 8 KiB token counts for what it costs. A
    /// token is admitted on its second sighting, so a flood of one-off tokens can't flush the ones
    /// in use. An entry is found by a keyed hash and keeps the token's bytes, compared exactly on
    /// a hit; it lives until the token's `exp` (an hour at most); a token that is not valid yet is
    /// not kept, and an entry whose signing key has left the issuer's key set is not used. On a
    /// hit the time claims (`exp`, `nbf`, `iat`, the maximum age) are checked again and the
    /// [`validate`](Self::validate) and [`validate_async`](Self::validate_async) checks run again,
    /// so a check that consults changing state (a deny list) still sees every request.
    pub fn token_cache_bytes(mut self, bytes: u64) -> Self {
        self.token_cache_bytes = bytes;
        self
    }

    /// Refuses tokens on `list` (`401 invalid_token`, "token revoked"), checked against its local
    /// copy after the signature and claims, and on verified-token cache hits. A Redis-backed list
    /// whose copy is stale beyond its maximum staleness answers `503` unless it fails open; see
    /// [`RevocationList`]. Default: no revocation list.
    ///
    /// ```
    /// use tower_jwt_auth::{JwtAuthLayer, RegisteredClaims, RevocationList};
    ///
    /// let revoked = RevocationList::memory();
    /// let builder = JwtAuthLayer::<RegisteredClaims>::builder().revocation(revoked.clone());
    /// # let _ = builder;
    /// ```
    pub fn revocation(mut self, list: RevocationList) -> Self {
        self.revocation = Some(list);
        self
    }

    /// The HTTP client for discovery and JWKS requests, e.g. one with a custom root CA or a
    /// proxy. Default: a built-in rustls client with the [`RefreshPolicy`] timeouts that follows
    /// redirects only to the same origin (scheme, host and port).
    ///
    /// With your own client, its connect timeout and redirect policy are yours; the total
    /// timeout ([`RefreshPolicy::fetch_timeout`]) and the size cap still apply to every request,
    /// and an answer that comes from another origin than the one asked is refused.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// How fetched key sets are refreshed and how each fetch is bounded. Default:
    /// [`RefreshPolicy::default`].
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.refresh_policy = policy;
        self
    }

    /// Lets [`build`](Self::build) succeed when a remote key set can't be fetched: the layer
    /// starts without those keys, answers `503` with `Retry-After` to requests that need them,
    /// and keeps fetching in the background. Default: `build` fails with
    /// [`ConfigError::KeyFetch`], so a misconfigured service does not start.
    pub fn allow_start_without_keys(mut self) -> Self {
        self.start_without_keys = true;
        self
    }

    /// Allows plain-`http` JWKS and discovery URLs to any host. Default: `https` only, except
    /// for loopback hosts (`127.0.0.0/8`, `::1`, `localhost`). Keys fetched over plain `http`
    /// can be replaced by anyone on the network path; use this only inside a trusted network.
    pub fn allow_insecure_http(mut self) -> Self {
        self.http_policy = HttpPolicy::Anywhere;
        self
    }

    /// How DPoP proofs are checked (algorithms, time window, replay cache, nonces), for the
    /// issuers that allow DPoP ([`Issuer::dpop`]). See [`crate::dpop`]. Default:
    /// [`DpopConfig::default`].
    pub fn dpop(mut self, config: DpopConfig) -> Self {
        self.dpop = config;
        self
    }

    /// The absolute base URL clients address this service by, e.g. `https://api.example.com`
    /// (or `https://example.com/api` when a proxy strips `/api`): a DPoP proof's `htu` must equal
    /// it followed by the request's path. Required once an issuer allows DPoP, since behind a
    /// proxy the service can't know it from the request. Default: none.
    pub fn external_url(mut self, url: impl Into<String>) -> Self {
        self.external_url = Some(url.into());
        self
    }

    /// Describes the protected resource (RFC 9728): every challenge then carries
    /// `resource_metadata="…"`, issuers without an audience of their own require the resource
    /// identifier as `aud` (RFC 8707), and the completed document (authorization servers default
    /// to the issuers, DPoP algorithms to the DPoP settings) is at
    /// [`JwtAuthLayer::protected_resource`]. Default: none.
    pub fn protected_resource(mut self, resource: ProtectedResource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Reads every key source, makes the first fetch of the remote ones, and builds the layer.
    ///
    /// Remote key sources need a Tokio runtime (their refresh runs as a task on it).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting or key source that is wrong, or the issuer whose
    /// keys could not be fetched.
    pub async fn build(mut self) -> Result<JwtAuthLayer<T>, ConfigError> {
        install_crypto_provider();
        if self.issuers.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        if self.max_token_len == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_token_len",
                reason: "must be at least 1".to_owned(),
            });
        }
        check_issuers_are_distinct(&self.issuers)?;
        if let Some(resource) = &self.resource {
            for issuer in &mut self.issuers {
                issuer.default_audience(resource.resource());
            }
        }
        let external_url = self
            .external_url
            .as_deref()
            .map(crate::dpop::external_base)
            .transpose()?;
        let dpop_algs = self.dpop.algs_param();
        let dpop_alg_names: Vec<String> = dpop_algs.split(' ').map(str::to_owned).collect();
        let issuer_names: Vec<String> = self
            .issuers
            .iter()
            .filter_map(|issuer| issuer.dpop_policy().0)
            .collect();
        let sender = SenderConstraint::new(
            self.issuers.iter().map(Issuer::dpop_policy).collect(),
            self.dpop,
            external_url,
            self.max_token_len,
        )?;
        let introspected: Vec<_> = self
            .issuers
            .iter()
            .enumerate()
            .filter_map(|(index, issuer)| {
                issuer
                    .introspection_endpoint()
                    .map(|(endpoint, jwts)| (index, endpoint.clone(), jwts))
            })
            .collect();
        if introspected.len() > 1 {
            return Err(ConfigError::InvalidSetting {
                name: "introspection",
                reason: "only one issuer of a layer may have an introspection endpoint".to_owned(),
            });
        }
        let has_remote =
            !introspected.is_empty() || self.issuers.iter().any(Issuer::has_remote_source);
        if has_remote {
            self.refresh_policy.check()?;
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(ConfigError::NoRuntime);
            }
        }
        // One client for every issuer's discovery and JWKS requests (connection pool included).
        let client = match (self.http_client, has_remote) {
            (Some(client), _) => Some(client),
            (None, true) => {
                Some(default_client(&self.refresh_policy).map_err(ConfigError::HttpClient)?)
            }
            (None, false) => None,
        };
        let introspection = match (introspected.into_iter().next(), &client) {
            (Some((issuer, endpoint, jwts)), Some(client)) => {
                let url = crate::keys::checked_url(&endpoint.url, self.http_policy)
                    .map_err(|error| ConfigError::UrlNotAllowed(error.to_string()))?;
                Some(Introspection {
                    issuer,
                    introspector: Introspector::new(url, endpoint.credentials, client.clone()),
                    jwts,
                })
            }
            _ => None,
        };
        let remote = RemoteContext {
            client,
            policy: self.refresh_policy,
            http_policy: self.http_policy,
            wait_for_keys: !self.start_without_keys,
        };
        let mut issuers = Vec::with_capacity(self.issuers.len());
        for issuer in self.issuers {
            issuers.push(issuer.build(&remote).await?);
        }
        let issuers = issuers.into_boxed_slice();
        let rules = ClaimRules {
            leeway_secs: seconds(self.leeway),
            require_exp: self.require_exp,
            token_type: self.token_type.map(String::into_boxed_str),
            max_age_secs: self.max_age.map(seconds),
            required_claims: self
                .required_claims
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
        };
        let config = AuthConfig {
            verifier: Verifier {
                issuers,
                max_token_len: self.max_token_len,
                rules,
                validators: self.validators.into_boxed_slice(),
                cache: (self.token_cache_bytes > 0)
                    .then(|| TokenCache::new(self.token_cache_bytes)),
                headers: HeaderMemo::default(),
            },
            extractor: TokenExtractor {
                extra_sources: self.token_sources.into_boxed_slice(),
                max_len: self.max_token_len,
                dpop_scheme: sender.dpop_enabled(),
            },
            clock: self.clock,
            async_validators: self.async_validators.into_boxed_slice(),
            cors_preflight: self.cors_preflight,
            resource: None,
            sender,
            revocation: self.revocation,
            introspection,
        };
        let mut config = config;
        if let Some(resource) = self.resource {
            let dpop = config
                .sender
                .dpop_enabled()
                .then(|| (dpop_alg_names, !config.sender.bearer_accepted()));
            config.resource = Some(resource.complete(issuer_names, dpop)?);
        }
        let mut rejection = match self.realm {
            Some(realm) => DefaultRejection::with_realm(realm),
            None => DefaultRejection::default(),
        };
        if config.sender.dpop_enabled() {
            rejection = rejection.dpop_challenge(dpop_algs, config.sender.bearer_accepted());
        }
        if let Some(resource) = &config.resource {
            rejection = rejection.resource_metadata(resource.metadata_url());
        }
        Ok(JwtAuthLayer::new(Authenticator::new(config), rejection))
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// `jsonwebtoken` needs a process-wide crypto provider before its first use; installing it here
/// means nothing can panic on a first decode. Another part of the program may have installed one
/// already, which is fine.
fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
