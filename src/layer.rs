//! [`JwtAuthLayer`]: the layer users add, and the verification it shares with every service.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::Request;
use serde::de::DeserializeOwned;
use tower_layer::Layer;

use crate::builder::JwtAuthBuilder;
use crate::claims::{Claims, VerifiedToken};
use crate::error::AuthError;
use crate::keys::{KeySetStatus, RemoteKeys};
use crate::response::DefaultRejection;
use crate::service::JwtAuth;
use crate::token::TokenExtractor;
use crate::verify::{Failure, Verifier};

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
    shared: Arc<Shared<T>>,
    optional: bool,
    rejection: R,
}

/// What every clone of a layer and its services share.
pub(crate) struct Shared<T> {
    pub(crate) verifier: Verifier<T>,
    pub(crate) extractor: TokenExtractor,
    pub(crate) realm: Option<Arc<str>>,
}

/// Marks a request that passed an optional layer without a token, so that the extractors can tell
/// "anonymous" from "the layer is missing".
#[derive(Debug, Clone)]
pub(crate) struct Anonymous {
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) realm: Option<Arc<str>>,
}

impl<T, R: Clone> Clone for JwtAuthLayer<T, R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            optional: self.optional,
            rejection: self.rejection.clone(),
        }
    }
}

impl<T, R: fmt::Debug> fmt::Debug for JwtAuthLayer<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("verifier", &self.shared.verifier)
            .field("extractor", &self.shared.extractor)
            .field("optional", &self.optional)
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
    pub(crate) fn from_parts(shared: Arc<Shared<T>>, rejection: R) -> Self {
        Self {
            shared,
            optional: false,
            rejection,
        }
    }

    /// The same layer in optional mode: a request without a token is passed on anonymously (no
    /// claims inserted; extract `Option<Claims<T>>`), while a request with a bad token is still
    /// rejected. Shares the verifier and keys with `self`.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// The same layer with another response for rejections, e.g. a closure
    /// `Fn(&AuthError) -> http::Response<B>`.
    pub fn with_rejection<R2>(self, rejection: R2) -> JwtAuthLayer<T, R2> {
        JwtAuthLayer {
            shared: self.shared,
            optional: self.optional,
            rejection,
        }
    }

    pub(crate) fn rejection(&self) -> &R {
        &self.rejection
    }
}

impl<T, R> JwtAuthLayer<T, R>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Verifies a token outside of a request (a WebSocket message, a job queue …) with the same
    /// keys and rules as the layer, including the refetch when the token names a `kid` the
    /// issuer's fetched keys lack.
    ///
    /// # Errors
    ///
    /// The [`AuthError`] the layer would have rejected a request with.
    pub async fn verify(&self, token: &str) -> Result<(Claims<T>, VerifiedToken), AuthError> {
        let verifier = &self.shared.verifier;
        let verified = match verifier.verify(token, unix_now()) {
            Ok(verified) => verified,
            Err(failure) => {
                wait_for_keys(failure)?.await;
                verifier
                    .verify(token, unix_now())
                    .map_err(Failure::settle)?
            }
        };
        Ok((verified.claims, verified.token))
    }

    /// The state of each issuer's keys, in the order the issuers were configured: how many keys,
    /// how old, whether stale or unusable. For health checks: a service whose key sets are all
    /// `usable` can verify tokens.
    pub fn key_sets(&self) -> Vec<KeySetStatus> {
        self.shared
            .verifier
            .issuers
            .iter()
            .map(|issuer| issuer.keys.status(issuer.iss.as_deref()))
            .collect()
    }

    /// Authenticates `request`: on success inserts the claims (or, in optional mode without a
    /// token, the anonymous marker) into its extensions.
    pub(crate) fn authenticate<B>(&self, request: &mut Request<B>) -> Result<(), Failure> {
        let shared = &*self.shared;
        let verified = match shared.extractor.extract(request.headers(), request.uri())? {
            Some(token) => Some(shared.verifier.verify(&token, unix_now())?),
            None => None,
        };
        let extensions = request.extensions_mut();
        match verified {
            Some(verified) => {
                extensions.insert(verified.claims);
                extensions.insert(verified.token);
                Ok(())
            }
            None if self.optional => {
                extensions.insert(Anonymous {
                    realm: shared.realm.clone(),
                });
                Ok(())
            }
            None => Err(AuthError::MissingToken.into()),
        }
    }
}

/// Turns a failure into the wait for the keys that may resolve it: joining a refetch running
/// now, or starting one if the cooldown allows. Any other failure is the answer.
pub(crate) fn wait_for_keys(
    failure: Failure,
) -> Result<impl Future<Output = ()> + Send + 'static, AuthError> {
    match failure {
        Failure::KeysMayArrive { remote, kid, error } => {
            let unknown_key = matches!(error, AuthError::UnknownKey);
            if remote.may_refetch(kid.as_deref(), unknown_key) {
                Ok(async move { RemoteKeys::refetch_for_unknown_kid(&remote).await })
            } else {
                Err(error)
            }
        }
        Failure::Rejected(error) => Err(error),
    }
}

impl Failure {
    /// The answer after a refetch did not help. A `kid` still unknown after a refetch is
    /// remembered, so that further tokens naming it don't trigger another one.
    pub(crate) fn settle(self) -> AuthError {
        if let Failure::KeysMayArrive {
            remote,
            kid,
            error: AuthError::UnknownKey,
        } = &self
        {
            remote.remember_unknown_kid(kid.as_deref());
        }
        self.into_error()
    }
}

impl<S, T, R: Clone> Layer<S> for JwtAuthLayer<T, R> {
    type Service = JwtAuth<S, T, R>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::new(inner, self.clone())
    }
}

/// Seconds since the Unix epoch; a clock before 1970 reads as 0.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
