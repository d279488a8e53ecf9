//! The service behind the JWT layer: the path's scope rule, then the target.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::FutureExt as _;
use tower::{Layer as _, ServiceExt as _};
use tower_jwt_auth::{Authorize, DefaultRejection};

use crate::app::Target;
use crate::config::RouteRules;
use crate::routes::CheckedPath;

/// Behind the layer, for a request whose token is valid: the path's scope rule is checked by the
/// crate's [`Authorize`] (its `403` is the crate's rejection), then the target answers. A plain
/// service rather than a router: the one path it serves was checked and put in the request's
/// extensions by the gateway's `handle` (`app.rs`).
#[derive(Clone)]
pub(crate) struct Protected {
    pub(crate) target: Target,
    pub(crate) routes: Arc<RouteRules>,
    /// The check of each scope rule, by the rule's index.
    pub(crate) authorizers: Arc<Vec<Authorize<DefaultRejection>>>,
}

impl tower::Service<Request<Body>> for Protected {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let Some(path) = request.extensions_mut().remove::<CheckedPath>() else {
            // `handle` always inserts the path before calling the layer.
            return Box::pin(std::future::ready(Ok(
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            )));
        };
        let authorize = self
            .routes
            .scope_rule(&path)
            .and_then(|(index, _)| self.authorizers.get(index))
            .cloned();
        let Some(authorize) = authorize else {
            // The forwarding future owns what it needs (it does not borrow the path), so the box
            // holds it alone.
            return Box::pin(self.target.respond(request, &path, true).map(Ok));
        };
        let target = self.target.clone();
        let inner = tower::service_fn(move |request: Request<Body>| {
            target
                .respond(request, &path, true)
                .map(Ok::<_, Infallible>)
        });
        Box::pin(authorize.layer(inner).oneshot(request))
    }
}
