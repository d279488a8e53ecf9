//! [`JwtAuth`]: the service the layer wraps around yours.

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::error::AuthError;
use crate::future::ResponseFuture;
use crate::layer::{JwtAuthLayer, wait_for_keys};
use crate::response::RejectionResponse;
use crate::telemetry;

/// Verifies the bearer token of each request before calling the inner service.
///
/// Made by [`JwtAuthLayer`]; see there. Readiness is the inner service's: `poll_ready` is passed
/// through, and a rejected request does not consume the readiness it reserved.
///
/// The inner service must be `Clone`: a request whose token names a `kid` missing from a fetched
/// key set waits for a refetch, and takes the ready service with it (leaving a clone in its place,
/// the usual tower pattern). Requests with a known key call the inner service directly.
pub struct JwtAuth<S, T, R> {
    inner: S,
    layer: JwtAuthLayer<T, R>,
}

impl<S, T, R> JwtAuth<S, T, R> {
    pub(crate) fn new(inner: S, layer: JwtAuthLayer<T, R>) -> Self {
        Self { inner, layer }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, T, R: Clone> Clone for JwtAuth<S, T, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, T, R: fmt::Debug> fmt::Debug for JwtAuth<S, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, T, R, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    T: DeserializeOwned + Send + Sync + 'static,
    R: RejectionResponse<ResBody> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, T, R, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let span = tracing::debug_span!(
            "jwt_auth",
            outcome = tracing::field::Empty,
            cause = tracing::field::Empty
        );
        let failure = match span.in_scope(|| self.layer.authenticate(&mut request)) {
            Ok(()) => {
                span.record("outcome", "accepted");
                telemetry::request_accepted();
                // The inner service runs outside the span: its work is not the layer's.
                return ResponseFuture::inner(self.inner.call(request));
            }
            Err(failure) => failure,
        };
        let _entered = span.enter();
        match wait_for_keys(failure) {
            Ok(wait) => {
                span.record("outcome", "awaiting_keys");
                // The ready service goes with the request; a clone takes its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::awaiting_keys(Box::pin(wait), inner, request, self.layer.clone())
            }
            Err(error) => {
                span.record("outcome", "rejected");
                span.record("cause", error.cause());
                ResponseFuture::rejected(reject(&self.layer, &error))
            }
        }
    }
}

/// The rejection response for `error`, with the error in its extensions, logged once.
pub(crate) fn reject<T, R, B>(layer: &JwtAuthLayer<T, R>, error: &AuthError) -> Response<B>
where
    R: RejectionResponse<B>,
{
    log_rejection(error);
    telemetry::request_rejected(error);
    let mut response = layer.rejection().reject(error);
    response.extensions_mut().insert(error.clone());
    response
}

/// One line per rejection, with its cause and never the token. At debug level even for
/// `keys_unavailable`: the key refresh logs the outage once when it starts, not once per request.
fn log_rejection(error: &AuthError) {
    tracing::debug!(cause = error.cause(), %error, "request rejected");
}
