//! [`JwtAuth`]: the service the layer wraps around yours.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::authenticator::{Authenticator, Decision, admit};
use crate::future::ResponseFuture;
use crate::response::{DefaultRejection, LayerRejection, RejectionResponse, reject};
use crate::telemetry;

/// Verifies the bearer token of each request before calling the inner service.
///
/// Made by [`JwtAuthLayer`](crate::JwtAuthLayer); see there. Readiness is the inner service's:
/// `poll_ready` is passed through, and a rejected request does not consume the readiness it
/// reserved.
///
/// The inner service must be `Clone`: a request that has to wait (its token names a `kid` missing
/// from a fetched key set, or an async check runs) takes the ready service with it (leaving a
/// clone in its place, the usual tower pattern). Other requests call the inner service directly.
pub struct JwtAuth<S, T, R> {
    inner: S,
    /// Behind one `Arc`: axum clones the service for every request (and drops the clone), and
    /// each `Arc` of a clone is a count that every core serving requests writes to.
    shared: Arc<Shared<T, R>>,
}

struct Shared<T, R> {
    authenticator: Authenticator<T>,
    rejection: Arc<R>,
}

impl<S, T, R> JwtAuth<S, T, R> {
    pub(crate) fn new(inner: S, authenticator: Authenticator<T>, rejection: Arc<R>) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                authenticator,
                rejection,
            }),
        }
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

impl<S: Clone, T, R> Clone for JwtAuth<S, T, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, T, R: fmt::Debug> fmt::Debug for JwtAuth<S, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .field("authenticator", &self.shared.authenticator)
            .field("rejection", &self.shared.rejection)
            .finish()
    }
}

impl<S, T, R, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    T: DeserializeOwned + Send + Sync + 'static,
    R: RejectionResponse<ResBody> + Send + Sync + 'static,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, T, R, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // No span at all unless some subscriber may want debug spans. A disabled span is not
        // free: with `tracing`'s `log` feature on (axum's defaults turn it on) it keeps its
        // metadata and asks `log` on creation, entry, every `record` and drop (measured: ~390
        // instructions a request, 8% of a hit).
        let span = if tracing::level_enabled!(tracing::Level::DEBUG) {
            tracing::debug_span!(
                "jwt_auth",
                outcome = tracing::field::Empty,
                cause = tracing::field::Empty
            )
        } else {
            tracing::Span::none()
        };
        let decision = span.in_scope(|| self.shared.authenticator.decide(&request));
        match decision {
            Decision::Ready(Ok(outcome)) => {
                span.record("outcome", "accepted");
                telemetry::request_accepted();
                self.lend_rejection(&mut request);
                admit(&mut request, outcome);
                // The inner service runs outside the span: its work is not the layer's.
                ResponseFuture::inner(self.inner.call(request))
            }
            Decision::Ready(Err(error)) => {
                let _entered = span.enter();
                span.record("outcome", "rejected");
                span.record("cause", error.cause());
                ResponseFuture::rejected(reject(&*self.shared.rejection, &error))
            }
            Decision::Pending(pending) => {
                span.record("outcome", "pending");
                // The ready service goes with the request; a clone takes its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                self.lend_rejection(&mut request);
                ResponseFuture::pending(pending, inner, request, Arc::clone(&self.shared.rejection))
            }
        }
    }
}

impl<S, T, R> JwtAuth<S, T, R> {
    /// Puts this layer's rejection into `request`, so that an extractor refusing it later answers
    /// the way the layer would (its realm, its custom response). The rejection is shared, not
    /// copied.
    fn lend_rejection<ReqBody, ResBody>(&self, request: &mut Request<ReqBody>)
    where
        R: RejectionResponse<ResBody> + Send + Sync + 'static,
        ResBody: 'static,
    {
        // Without one, the extractors and `Authorize` answer with the plain default rejection:
        // lending that would only cost an extension (an allocation) per request.
        if (&*self.shared.rejection as &dyn std::any::Any)
            .downcast_ref::<DefaultRejection>()
            .is_some_and(DefaultRejection::is_plain)
        {
            return;
        }
        let rejection: Arc<dyn RejectionResponse<ResBody> + Send + Sync> =
            Arc::clone(&self.shared.rejection) as _;
        request.extensions_mut().insert(LayerRejection(rejection));
    }
}
