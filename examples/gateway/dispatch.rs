//! Every path the gateway's own routes don't take: the path checked, the public-path check, the
//! JWT layer and what is behind it (the scope rules, the forwarding or the forward-auth answer),
//! then the request's metrics and access line.
//!
//! The request is read and handed on when [`dispatch`] is called; [`Dispatching`], the future it
//! returns, holds only the future of the step that answers (the layer's, or a public path's
//! forwarding, each of which owns what it needs) and what the metrics and the access line need
//! afterwards. A named future rather than an `async fn`: a worker's [`Gate`](crate::gate::Gate)
//! gives it to hyper without a box of its own, and none of the request's earlier steps is kept in
//! it to be copied along.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use serde_json::Value;
use tower::{Service, ServiceExt as _};
use tower_jwt_auth::{AuthError, DefaultRejection, JwtAuth};

use crate::app::AppState;
use crate::forward_auth::Original;
use crate::metrics::Outcome;
use crate::protected::Protected;
use crate::proxy::UpstreamFailure;
use crate::routes::CheckedPath;
use crate::upgrade::{self, TokenFromProtocol};

type Layered = JwtAuth<Protected, Value, DefaultRejection>;
type BoxedResponse = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// The router's fallback: the same as [`dispatch`], for a path that the router was given but
/// none of its routes takes.
pub(crate) async fn fallback(
    State(state): State<Arc<AppState>>,
    request: Request<Body>,
) -> Response<Body> {
    match dispatch(state, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Handles `request` (see the module docs): checked, authenticated unless public, forwarded or
/// answered; the future records the outcome and writes the access line when it has the response.
pub(crate) fn dispatch(state: Arc<AppState>, mut request: Request<Body>) -> Dispatching {
    let started = Instant::now();
    let original = state.forward_auth.then(|| Original::of(&request));
    // Only what the access line needs is copied, and only when it is written.
    let access = state.access_log.then(|| match &original {
        Some(original) => (
            original.method.clone(),
            original.path.clone().unwrap_or_default(),
        ),
        None => (
            request.method().as_str().to_owned(),
            request.uri().path().to_owned(),
        ),
    });
    if let Some(original) = &original {
        // For the DPoP proof check against the original request.
        request.extensions_mut().insert(original.clone());
    }
    let step = handle(&state, request, original.as_ref());
    Dispatching {
        state,
        started,
        host: original.and_then(|original| original.host),
        access,
        step,
    }
}

pin_project! {
    /// The future of [`dispatch`].
    pub(crate) struct Dispatching {
        state: Arc<AppState>,
        started: Instant,
        // In forward-auth mode, the original request's host, for the access line.
        host: Option<String>,
        // The method and path for the access line, when it is on.
        access: Option<(String, String)>,
        #[pin]
        step: Step,
    }
}

pin_project! {
    /// What answers the request.
    #[project = StepProj]
    enum Step {
        // Answered at once: not ready, or a refused path.
        Answered { answer: Option<(Response<Body>, Outcome)> },
        // A public path, forwarded (or answered) without a token.
        Public { future: BoxedResponse },
        // The JWT layer, and behind it the scope rules and the target.
        Protected { #[pin] future: <Layered as Service<Request<Body>>>::Future },
        // The same, had the layer not been ready at once (it always is: it is as ready as
        // `Protected`, which always is).
        ProtectedWhenReady { future: BoxedResponse },
    }
}

impl Future for Dispatching {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (response, outcome) = match this.step.project() {
            StepProj::Answered { answer } => match answer.take() {
                Some(answer) => answer,
                // Polled again after completion: a contract violation by the caller.
                None => panic!("Dispatching polled after completion"),
            },
            StepProj::Public { future } => (ready!(future.as_mut().poll(cx)), Outcome::Public),
            StepProj::Protected { future } => {
                let response = match ready!(future.poll(cx)) {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let outcome = outcome_behind_the_layer(&response);
                (response, outcome)
            }
            StepProj::ProtectedWhenReady { future } => {
                let response = ready!(future.as_mut().poll(cx));
                let outcome = outcome_behind_the_layer(&response);
                (response, outcome)
            }
        };
        let elapsed = this.started.elapsed();
        this.state.metrics.record(outcome, elapsed);
        if let Some(failure) = response.extensions().get::<UpstreamFailure>() {
            this.state.metrics.upstream_failure(*failure);
        }
        if let Some((method, path)) = this.access.take() {
            let cause = match outcome {
                Outcome::Rejected(cause) => Some(cause),
                _ => None,
            };
            tracing::info!(
                target: "gateway::access",
                method,
                path,
                host = this.host.as_deref(),
                status = response.status().as_u16(),
                outcome = outcome.name(),
                cause,
                elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                "request"
            );
        }
        Poll::Ready(Ok(response))
    }
}

/// Accepted, or rejected by the layer or a scope rule (the rejection carries its cause).
fn outcome_behind_the_layer(response: &Response<Body>) -> Outcome {
    match response.extensions().get::<AuthError>() {
        Some(error) => Outcome::Rejected(error.cause()),
        None => Outcome::Accepted,
    }
}

/// Handles a request, up to the step that answers it; in forward-auth mode, as the check of the
/// `original` request.
fn handle(state: &AppState, mut request: Request<Body>, original: Option<&Original>) -> Step {
    let Some(ready) = state.ready.get() else {
        let mut response = Response::new(Body::from("starting: signing keys not loaded yet\n"));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Step::Answered {
            answer: Some((response, Outcome::NotReady)),
        };
    };
    let raw_path = match original {
        Some(original) => original.path.as_deref().map_err(|error| *error),
        None => Ok(request.uri().path()),
    };
    let path = match raw_path.and_then(|raw| CheckedPath::new(raw, ready.routes.allow_path_params))
    {
        Ok(path) => path,
        Err(reason) => {
            tracing::debug!(%reason, "request refused: path");
            let mut response = Response::new(Body::from(format!("bad request: {reason}\n")));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Step::Answered {
                answer: Some((response, Outcome::BadRequest)),
            };
        }
    };
    // Before the public-path check, so that a token there never reaches the upstream as a
    // protocol name (`Authorization` is removed unless --forward-authorization).
    if ready.token_from_websocket_protocol && upgrade::take_protocol_token(request.headers_mut()) {
        request.extensions_mut().insert(TokenFromProtocol);
    }
    if ready.routes.is_public(&path) {
        return Step::Public {
            future: Box::pin(ready.target.respond(request, &path, false)),
        };
    }
    request.extensions_mut().insert(path);
    ready.sender.prepare(&mut request);
    let mut protected = ready
        .protected
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The layer is as ready as `Protected`, which always is: called at once, without a waker
    // to be woken.
    match protected.poll_ready(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(())) => Step::Protected {
            future: protected.call(request),
        },
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => {
            let protected = protected.clone();
            Step::ProtectedWhenReady {
                future: Box::pin(async move {
                    match protected.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                }),
            }
        }
    }
}
