//! [`JwtAuthLayer`]: the layer users add. The decision lives in [`Authenticator`].

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tower_layer::Layer;

use crate::authenticator::Authenticator;
use crate::builder::JwtAuthBuilder;
use crate::claims::{Claims, VerifiedToken};
use crate::error::AuthError;
use crate::keys::KeySetStatus;
use crate::response::DefaultRejection;
use crate::service::JwtAuth;

/// Verifies JWT bearer tokens in front of a service and hands it typed claims.
///
/// For each request the layer takes the token from `Authorization: Bearer` (and any opt-in
/// source), verifies its signature with the keys of its issuer, checks its claims, and then
/// inserts [`Claims<T>`] and [`VerifiedToken`] into the request extensions before calling the
/// inner service. A request that fails is answered without calling it: `401` with a
/// `WWW-Authenticate: Bearer` challenge, `400` for a malformed request, `503` when no keys are
/// available (see [`AuthError`] and [`RejectionResponse`](crate::RejectionResponse)).
///
/// The layer is cheap to clone: clones share one verifier and key set.
///
/// ```
/// use axum::{Router, routing::get};
/// use serde::Deserialize;
/// use tower_jwt_auth::{Claims, Issuer, JwtAuthLayer, KeySource};
///
/// #[derive(Deserialize)]
/// struct MyClaims {
///     sub: String,
/// }
///
/// async fn hello(Claims(claims): Claims<MyClaims>) -> String {
///     format!("hello {}", claims.sub)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = JwtAuthLayer::<MyClaims>::builder()
///     .issuer(
///         Issuer::new("https://auth.example.com/")
///             .audience("my-api")
///             .key(KeySource::shared_secret(b"an example secret of at least 32 bytes")),
///     )
///     .build()
///     .await?;
/// let app: Router = Router::new().route("/hello", get(hello)).layer(auth);
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
///
/// # Deployment caveat
///
/// Verification is local: a token stays valid until its `exp` even if the issuer revokes it.
/// Keep access tokens short-lived. Clocks matter too: the leeway (default 60 s) absorbs usual skew.
#[must_use]
pub struct JwtAuthLayer<T, R = DefaultRejection> {
    authenticator: Authenticator<T>,
    rejection: Arc<R>,
}

impl<T, R> Clone for JwtAuthLayer<T, R> {
    fn clone(&self) -> Self {
        Self {
            authenticator: self.authenticator.clone(),
            rejection: Arc::clone(&self.rejection),
        }
    }
}

impl<T, R: fmt::Debug> fmt::Debug for JwtAuthLayer<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("authenticator", &self.authenticator)
            .field("rejection", &self.rejection)
            .finish()
    }
}

impl<T> JwtAuthLayer<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Starts configuring a layer whose handlers get claims of type `T`.
    ///
    /// Use `serde_json::Value` for untyped claims, or [`RegisteredClaims`](crate::RegisteredClaims)
    /// when the registered ones are all you need.
    pub fn builder() -> JwtAuthBuilder<T> {
        JwtAuthBuilder::default()
    }
}

impl<T, R> JwtAuthLayer<T, R> {
    pub(crate) fn new(authenticator: Authenticator<T>, rejection: R) -> Self {
        Self {
            authenticator,
            rejection: Arc::new(rejection),
        }
    }

    /// The same layer in optional mode: a request without a token is passed on anonymously (no
    /// claims inserted; extract `Option<Claims<T>>`), while a request with a bad token is still
    /// rejected. Shares the verifier and keys with `self`.
    pub fn optional(mut self) -> Self {
        self.authenticator = self.authenticator.optional();
        self
    }

    /// The same layer with another response for rejections, e.g. a closure
    /// `Fn(&AuthError) -> http::Response<B>`. The axum extractors ([`Claims`] …) answer with it
    /// too when they refuse a request this layer let through.
    pub fn with_rejection<R2>(self, rejection: R2) -> JwtAuthLayer<T, R2> {
        JwtAuthLayer {
            authenticator: self.authenticator,
            rejection: Arc::new(rejection),
        }
    }
}

impl<T, R> JwtAuthLayer<T, R>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Verifies a token outside of a request (a WebSocket message, a job queue …) with the same
    /// keys and rules as the layer, including the refetch when the token names a `kid` the
    /// issuer's fetched keys lack, and the async checks.
    ///
    /// With the `axum` feature, [`AuthError`] is a response, so a handler can use `?` on it.
    ///
    /// # Errors
    ///
    /// The [`AuthError`] the layer would have rejected a request with.
    pub async fn verify(&self, token: &str) -> Result<(Claims<T>, VerifiedToken), AuthError> {
        let verified = self.authenticator.verify(token).await?;
        Ok((verified.claims, verified.token))
    }

    /// The protected-resource metadata (RFC 9728) given to
    /// [`JwtAuthBuilder::protected_resource`], completed with the issuers and DPoP settings; serve
    /// it with [`ProtectedResource::service`](crate::ProtectedResource::service).
    pub fn protected_resource(&self) -> Option<&crate::ProtectedResource> {
        self.authenticator.resource()
    }

    /// The layer's [`RevocationList`](crate::RevocationList), if it has one: for health checks
    /// ([`RevocationList::status`](crate::RevocationList::status)) or to revoke through it.
    pub fn revocation(&self) -> Option<&crate::RevocationList> {
        self.authenticator.revocation()
    }

    /// The state of each issuer's keys, in the order the issuers were configured: how many keys,
    /// how old, whether stale or unusable. For health checks: a service whose key sets are all
    /// `usable` can verify tokens.
    pub fn key_sets(&self) -> Vec<KeySetStatus> {
        self.authenticator
            .verifier()
            .issuers
            .iter()
            .map(|issuer| issuer.keys.status(issuer.iss.as_deref()))
            .collect()
    }

    /// Refetches every remote key set now, and returns when each fetch has ended (joining a fetch
    /// already in flight). For an operator's "keys were rotated, pick them up" hook; the
    /// background refresh and the unknown-`kid` refetch make it unnecessary in normal operation.
    /// The result is in [`key_sets`](Self::key_sets).
    pub async fn refresh_keys(&self) {
        for issuer in &self.authenticator.verifier().issuers {
            issuer.keys.refresh().await;
        }
    }
}

impl<S, T, R> Layer<S> for JwtAuthLayer<T, R> {
    type Service = JwtAuth<S, T, R>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::new(
            inner,
            self.authenticator.clone(),
            Arc::clone(&self.rejection),
        )
    }
}
