//! What a worker's connections are served by: the gateway's own endpoints (`/healthz`,
//! `/metrics`, the RFC 9728 document, the demo page) through an axum [`Router`], and every other
//! path, the proxied requests, straight to [`dispatch`] without the router (and without a box:
//! its future is a named one).
//!
//! The router costs a proxied request a route lookup, its URL parameters and original URI put in
//! the request's extensions, a clone of the boxed route service, the handler's extractors and a
//! box for the handler's future (about 1 µs of CPU per request, 4% of the gateway's, in the
//! profile of BENCHMARKS.md 4.2). The paths the router answers itself are few and known when it
//! is built ([`OwnPaths`]); the router keeps [`dispatch`] as its fallback, so a path sent to it
//! that none of its routes takes is still dispatched.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::future::RouteFuture;
use futures_util::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use tower::Service;

use crate::app::AppState;
use crate::dispatch::{Dispatching, dispatch};
use crate::headers::ClientAddr;

/// The paths a worker's router answers itself: exact paths, and path prefixes.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnPaths {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl OwnPaths {
    /// A route of the router at exactly `path`.
    pub(crate) fn exact(&mut self, path: impl Into<String>) {
        self.exact.push(path.into());
    }

    /// Routes of the router at paths starting with `prefix`.
    pub(crate) fn prefix(&mut self, prefix: impl Into<String>) {
        self.prefixes.push(prefix.into());
    }

    /// Whether the router may have a route for `path` (the raw path, as the router matches it).
    fn covers(&self, path: &str) -> bool {
        self.exact.iter().any(|own| own == path)
            || self
                .prefixes
                .iter()
                .any(|own| path.starts_with(own.as_str()))
    }
}

/// One worker's service (see the module docs); each connection has a copy that knows the
/// client's address ([`for_client`](Self::for_client)), served by [`crate::server`].
#[derive(Clone)]
pub(crate) struct Gate {
    router: Router,
    state: Arc<AppState>,
    own: Arc<OwnPaths>,
    /// The connection's client, for the forwarding headers (put in each request's extensions,
    /// and, for the router's handlers, as axum's [`ConnectInfo`]).
    client: Option<ClientAddr>,
}

impl Gate {
    /// `router` must have [`dispatch`] as its fallback, and routes only at `own` paths.
    pub(crate) fn new(router: Router, state: Arc<AppState>, own: OwnPaths) -> Self {
        Self {
            router,
            state,
            own: Arc::new(own),
            client: None,
        }
    }
}

impl Gate {
    /// The service of one connection, from the client at `remote`.
    pub(crate) fn for_client(&self, remote: SocketAddr) -> Self {
        let mut gate = self.clone();
        gate.client = Some(ClientAddr::new(remote));
        gate
    }
}

impl hyper::service::Service<Request<Incoming>> for Gate {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<RouteFuture<Infallible>, Dispatching>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut request = request.map(Body::new);
        if let Some(client) = &self.client {
            request.extensions_mut().insert(client.clone());
        }
        if self.own.covers(request.uri().path()) {
            if let Some(client) = &self.client {
                request.extensions_mut().insert(ConnectInfo(client.addr));
            }
            return Either::Left(self.router.clone().call(request));
        }
        Either::Right(dispatch(Arc::clone(&self.state), request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths_are_exact_or_under_a_prefix() {
        let mut own = OwnPaths::default();
        own.exact("/healthz");
        own.prefix("/_demo");
        assert!(own.covers("/healthz"));
        assert!(!own.covers("/healthz/"));
        assert!(!own.covers("/healthzz"));
        assert!(own.covers("/_demo/app.js"));
        assert!(own.covers("/_demo"));
        assert!(!own.covers("/hello"));
    }
}
