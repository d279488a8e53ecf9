//! Test helpers for services that use this crate (feature `test-util`).
//!
//! [`TestIssuer`] is a local OpenID Connect issuer for your own tests: it generates fresh
//! signing keys, serves its discovery document and JWKS over plain HTTP on `127.0.0.1` (an
//! ephemeral port), mints tokens with any claims, rotates its keys, and can simulate an outage.
//! Your layer fetches its keys from it exactly as it would from a real provider, so a test covers
//! the configuration you ship.
//!
//! ```toml
//! [dev-dependencies]
//! tower-jwt-auth = { version = "0.1", features = ["test-util"] }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::{Algorithm, Issuer, JwtAuthBuilder, JwtAuthLayer};

mod dpop;
mod introspection;
#[cfg(feature = "redis")]
mod redis_server;
mod server;
mod token;

pub use dpop::{DpopKey, ProofBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_server::{TestRedis, TestRedisError};
use server::*;
pub use token::TokenBuilder;
use token::*;

const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const JWKS_PATH: &str = "/jwks.json";
/// The `kid` of [`TestIssuer::token_with_unknown_kid`].
const UNKNOWN_KID: &str = "unknown-kid";

/// The kind of signing key a [`TestIssuer`] generates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TestKeyKind {
    /// RSA 2048, signing with `RS256`.
    Rsa,
    /// ECDSA on P-256, signing with `ES256` (the default: quick to generate).
    #[default]
    EcP256,
    /// Ed25519, signing with `EdDSA`.
    Ed25519,
}

impl TestKeyKind {
    /// The algorithm tokens signed with this kind of key carry.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Rsa => Algorithm::RS256,
            Self::EcP256 => Algorithm::ES256,
            Self::Ed25519 => Algorithm::EdDSA,
        }
    }

    fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Rsa => jsonwebtoken::Algorithm::RS256,
            Self::EcP256 => jsonwebtoken::Algorithm::ES256,
            Self::Ed25519 => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    fn alg_name(self) -> &'static str {
        match self {
            Self::Rsa => "RS256",
            Self::EcP256 => "ES256",
            Self::Ed25519 => "EdDSA",
        }
    }
}

/// Why a [`TestIssuer`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestIssuerError {
    /// No port could be bound on `127.0.0.1`.
    #[error("cannot bind the test issuer to 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// The crypto library could not generate a key.
    #[error("cannot generate a {0:?} test key")]
    KeyGeneration(TestKeyKind),
}

/// A local OpenID Connect issuer for tests: fresh keys, discovery and JWKS on `127.0.0.1`, and
/// tokens minted on demand.
///
/// - [`issuer`](Self::issuer) is `http://127.0.0.1:PORT`; it serves
///   `/.well-known/openid-configuration` and the JWKS it names ([`jwks_url`](Self::jwks_url)),
///   with an `ETag`.
/// - [`token`](Self::token) and [`token_builder`](Self::token_builder) mint tokens signed with the
///   current key: `iss` is the issuer, `aud` its [audience](TestIssuerBuilder::audience), `sub`
///   its [subject](TestIssuerBuilder::subject), `iat` now and `exp` in 5 minutes, unless you say
///   otherwise.
/// - [`rotate`](Self::rotate) adds a new current key and keeps publishing the old ones until
///   [`retire_previous`](Self::retire_previous).
/// - [`set_outage`](Self::set_outage) makes discovery, JWKS and introspection answer `503`,
///   [`set_hang`](Self::set_hang) makes them not answer at all;
///   [`jwks_requests`](Self::jwks_requests) counts the JWKS requests received.
///
/// The server runs as a task on the Tokio runtime that started it, and stops when the
/// `TestIssuer` is dropped.
///
/// ```
/// use axum::{Router, body::Body, http::{Request, StatusCode}, routing::get};
/// use tower::ServiceExt as _;
/// use tower_jwt_auth::{Claims, RegisteredClaims, test_util::TestIssuer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start().await?;
/// let auth = issuer.layer_builder::<RegisteredClaims>().build().await?;
/// let app = Router::new()
///     .route("/me", get(|Claims(me): Claims<RegisteredClaims>| async move { me.sub.clone().unwrap_or_default() }))
///     .layer(auth);
///
/// let token = issuer.token(serde_json::json!({ "sub": "alice" }));
/// let request = Request::get("/me").header("authorization", format!("Bearer {token}")).body(Body::empty())?;
/// assert_eq!(app.clone().oneshot(request).await?.status(), StatusCode::OK);
///
/// let request = Request::get("/me").header("authorization", format!("Bearer {}", issuer.expired_token())).body(Body::empty())?;
/// assert_eq!(app.oneshot(request).await?.status(), StatusCode::UNAUTHORIZED);
/// # Ok(())
/// # }
/// ```
pub struct TestIssuer {
    shared: Arc<IssuerCore>,
    addr: SocketAddr,
    kind: TestKeyKind,
    audience: String,
    subject: String,
    token_lifetime: Duration,
    task: JoinHandle<()>,
}

/// Configures a [`TestIssuer`]; get one with [`TestIssuer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TestIssuerBuilder {
    kind: TestKeyKind,
    audience: String,
    subject: String,
    token_lifetime: Duration,
    max_age: Option<Duration>,
}

impl Default for TestIssuerBuilder {
    fn default() -> Self {
        Self {
            kind: TestKeyKind::default(),
            audience: TestIssuer::DEFAULT_AUDIENCE.to_owned(),
            subject: TestIssuer::DEFAULT_SUBJECT.to_owned(),
            token_lifetime: Duration::from_secs(300),
            max_age: None,
        }
    }
}

impl TestIssuerBuilder {
    /// The kind of key generated at start and on each [`rotate`](TestIssuer::rotate).
    /// Default: [`TestKeyKind::EcP256`].
    pub fn key_kind(mut self, kind: TestKeyKind) -> Self {
        self.kind = kind;
        self
    }

    /// The `aud` of minted tokens, and the audience [`TestIssuer::issuer_config`] accepts.
    /// Default: [`TestIssuer::DEFAULT_AUDIENCE`].
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The `sub` of minted tokens. Default: [`TestIssuer::DEFAULT_SUBJECT`].
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// How long minted tokens are valid (`exp - iat`). Default: 5 minutes.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Sends `Cache-Control: max-age=…` with the JWKS, which sets the layer's refresh interval
    /// (within its [`RefreshPolicy`](crate::RefreshPolicy) bounds). Default: no `Cache-Control`.
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Generates the first key and starts serving on `127.0.0.1` with an ephemeral port.
    ///
    /// # Panics
    ///
    /// Outside of a Tokio runtime (the server is spawned on the current one).
    ///
    /// # Errors
    ///
    /// [`TestIssuerError::Bind`] if no port can be bound, [`TestIssuerError::KeyGeneration`] if
    /// the key can't be generated.
    pub async fn start(self) -> Result<TestIssuer, TestIssuerError> {
        let key = TestKey::generate(self.kind, 1)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(TestIssuerError::Bind)?;
        let addr = listener.local_addr().map_err(TestIssuerError::Bind)?;
        let (hang, _) = watch::channel(false);
        let shared = Arc::new(IssuerCore {
            issuer: format!("http://{addr}"),
            cache_control: self.max_age.and_then(|max_age| {
                HeaderValue::from_str(&format!("max-age={}", max_age.as_secs())).ok()
            }),
            key_ring: Mutex::new(KeyRing {
                keys: vec![key],
                version: 1,
                outage: false,
            }),
            jwks_requests: AtomicUsize::new(0),
            discovery_requests: AtomicUsize::new(0),
            hang,
            introspection: introspection::IntrospectionState::default(),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(TestIssuer {
            shared,
            addr,
            kind: self.kind,
            audience: self.audience,
            subject: self.subject,
            token_lifetime: self.token_lifetime,
            task,
        })
    }
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.shared.issuer)
            .field("key_kind", &self.kind)
            .field("kid", &self.kid())
            .field("audience", &self.audience)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        // Dropping the server task drops the listener and every open connection.
        self.task.abort();
    }
}

impl TestIssuer {
    /// The `aud` of minted tokens unless [configured](TestIssuerBuilder::audience).
    pub const DEFAULT_AUDIENCE: &'static str = "test-api";
    /// The `sub` of minted tokens unless [configured](TestIssuerBuilder::subject).
    pub const DEFAULT_SUBJECT: &'static str = "test-user";

    /// Starts an issuer with the defaults: an EC P-256 key, audience
    /// [`DEFAULT_AUDIENCE`](Self::DEFAULT_AUDIENCE), subject
    /// [`DEFAULT_SUBJECT`](Self::DEFAULT_SUBJECT), tokens valid for 5 minutes.
    ///
    /// # Panics
    ///
    /// Outside of a Tokio runtime.
    ///
    /// # Errors
    ///
    /// See [`TestIssuerBuilder::start`].
    pub async fn start() -> Result<Self, TestIssuerError> {
        Self::builder().start().await
    }

    /// Configures an issuer: key kind, audience, subject, token lifetime.
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder::default()
    }

    /// The issuer identifier, `http://127.0.0.1:PORT`: the `iss` of its tokens and the URL to
    /// [discover](Issuer::discover) it from.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The URL of the JWKS.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.shared.issuer)
    }

    /// The URL of the OpenID Connect discovery document.
    pub fn discovery_url(&self) -> String {
        format!("{}{DISCOVERY_PATH}", self.shared.issuer)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `aud` of minted tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The kind of key generated at start and on each [`rotate`](Self::rotate).
    pub fn key_kind(&self) -> TestKeyKind {
        self.kind
    }

    /// The `kid` of the current signing key, e.g. `es256-1`.
    pub fn kid(&self) -> String {
        self.shared.key_ring().current().kid.clone()
    }

    /// The `kid`s of the keys the JWKS publishes now, oldest first.
    pub fn published_kids(&self) -> Vec<String> {
        self.shared
            .key_ring()
            .published()
            .map(|key| key.kid.clone())
            .collect()
    }

    /// The JWKS as served now.
    pub fn jwks(&self) -> Value {
        self.shared.key_ring().jwks()
    }

    /// This issuer as a layer trusts it: found by discovery, with its audience.
    pub fn issuer_config(&self) -> Issuer {
        Issuer::discover(self.issuer()).audience(self.audience())
    }

    /// A layer builder that trusts this issuer (and only it) through
    /// [`issuer_config`](Self::issuer_config); add your own settings and
    /// [`build`](JwtAuthBuilder::build) it.
    ///
    /// The layer refetches the JWKS for an unknown `kid` at most once per
    /// [`RefreshPolicy::unknown_kid_cooldown`](crate::RefreshPolicy::unknown_kid_cooldown)
    /// (30 s by default); a test that rotates keys more than once may want a zero cooldown.
    pub fn layer_builder<T>(&self) -> JwtAuthBuilder<T>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        JwtAuthLayer::<T>::builder().issuer(self.issuer_config())
    }

    /// Starts a token: the default claims, signed with the current key.
    pub fn token_builder(&self) -> TokenBuilder<'_> {
        let now = unix_now();
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(self.issuer()));
        claims.insert("sub".into(), Value::from(self.subject.as_str()));
        claims.insert("aud".into(), Value::from(self.audience.as_str()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert(
            "exp".into(),
            Value::from(now.saturating_add(seconds(self.token_lifetime))),
        );
        TokenBuilder {
            issuer: self,
            now,
            claims,
            kid: KidHeader::SigningKey,
            signing_kid: None,
            unknown_key: false,
            typ: None,
        }
    }

    /// A valid token with the default claims.
    pub fn valid_token(&self) -> String {
        self.token_builder().sign()
    }

    /// A valid token: the default claims with `claims` merged in (an object; a `null` member
    /// removes that claim). E.g. `issuer.token(json!({ "scope": "orders:read" }))`.
    ///
    /// # Panics
    ///
    /// If `claims` does not serialize to a JSON object (or `null`).
    pub fn token(&self, claims: impl Serialize) -> String {
        self.token_builder().claims(claims).sign()
    }

    /// A token that expired half an hour ago (beyond any usual leeway).
    pub fn expired_token(&self) -> String {
        self.token_builder().expired().sign()
    }

    /// A valid token for another audience.
    pub fn token_for_audience(&self, audience: impl Into<String>) -> String {
        self.token_builder().audience(audience).sign()
    }

    /// [`token`](Self::token) signed with the current key, but naming `kid` in its header.
    ///
    /// # Panics
    ///
    /// If `claims` does not serialize to a JSON object (or `null`).
    pub fn token_with_kid(&self, claims: impl Serialize, kid: impl Into<String>) -> String {
        self.token_builder().claims(claims).key_id(kid).sign()
    }

    /// A token whose header names a `kid` the issuer never published (`unknown-kid`): the layer
    /// refetches the JWKS once, then answers `401` "no key for this token".
    pub fn token_with_unknown_kid(&self) -> String {
        self.token_builder().key_id(UNKNOWN_KID).sign()
    }

    /// Generates a new key of the issuer's [kind](TestIssuerBuilder::key_kind) and makes it the
    /// current one; the JWKS publishes it next to the previous keys. Returns its `kid`.
    ///
    /// # Panics
    ///
    /// If the crypto library can't generate the key (it does not happen in practice).
    pub fn rotate(&self) -> String {
        self.rotate_to(self.kind)
    }

    /// Like [`rotate`](Self::rotate), with a key of another kind.
    ///
    /// # Panics
    ///
    /// If the crypto library can't generate the key (it does not happen in practice).
    pub fn rotate_to(&self, kind: TestKeyKind) -> String {
        let mut state = self.shared.key_ring();
        let key = TestKey::generate(kind, state.keys.len() + 1)
            .unwrap_or_else(|error| panic!("TestIssuer::rotate: {error}"));
        let kid = key.kid.clone();
        state.keys.push(key);
        state.version += 1;
        kid
    }

    /// Stops publishing every key but the current one. Tokens they signed can still be minted
    /// with [`TokenBuilder::signed_with`], to check that they are refused.
    pub fn retire_previous(&self) {
        let mut state = self.shared.key_ring();
        let last = state.keys.len().saturating_sub(1);
        for key in &mut state.keys[..last] {
            key.published = false;
        }
        state.version += 1;
    }

    /// While `true`, discovery, JWKS and introspection requests get `503 Service Unavailable`.
    pub fn set_outage(&self, outage: bool) {
        self.shared.key_ring().outage = outage;
    }

    /// While `true`, discovery, JWKS and introspection requests get no answer (the connection
    /// stays open); they
    /// are answered once it is set back to `false`. For timeout tests.
    pub fn set_hang(&self, hang: bool) {
        self.shared.hang.send_replace(hang);
    }

    /// How many JWKS requests the server has received (whatever it answered).
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// How many discovery requests the server has received (whatever it answered).
    pub fn discovery_requests(&self) -> usize {
        self.shared.discovery_requests.load(Ordering::SeqCst)
    }
}
