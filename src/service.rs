//! [`JwtAuth`]: the service the layer wraps around yours.

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::error::AuthError;
use crate::future::ResponseFuture;
use crate::layer::JwtAuthLayer;
use crate::response::RejectionResponse;

/// Verifies the bearer token of each request before calling the inner service.
///
/// Made by [`JwtAuthLayer`]; see there. Readiness is the inner service's: `poll_ready` is passed
/// through, and a rejected request does not consume the readiness it reserved.
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: DeserializeOwned + Send + Sync + 'static,
    R: RejectionResponse<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.layer.authenticate(&mut request) {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(error) => {
                log_rejection(&error);
                let mut response = self.layer.rejection().reject(&error);
                response.extensions_mut().insert(error);
                ResponseFuture::rejected(response)
            }
        }
    }
}

/// One line per rejection, with its cause and never the token.
fn log_rejection(error: &AuthError) {
    match error {
        AuthError::KeysUnavailable { .. } => {
            tracing::warn!(cause = error.cause(), %error, "request rejected");
        }
        _ => tracing::debug!(cause = error.cause(), %error, "request rejected"),
    }
}
