//! [`Authorize`]: per-route authorization on top of [`JwtAuthLayer`](crate::JwtAuthLayer): scopes
//! (all of, any of), roles, and any predicate on the verified token or the typed claims.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::authenticator::Anonymous;
use crate::claims::{Claims, VerifiedToken};
use crate::error::AuthError;
use crate::response::{DefaultRejection, LayerRejection, RejectionResponse, reject};

type Check = dyn Fn(&Extensions) -> Option<bool> + Send + Sync;

/// Requires something of the token a [`JwtAuthLayer`](crate::JwtAuthLayer) verified before it: a
/// request that lacks it is answered `403` with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` (RFC 6750 §3.1) and never
/// reaches the service.
///
/// Put it inside the authentication layer, typically as a route layer:
///
/// ```
/// use axum::{Router, routing::{get, post}};
/// use tower_jwt_auth::{Authorize, KEYCLOAK_REALM_ROLES};
///
/// let app: Router = Router::new()
///     .route("/orders", post(|| async { "created" }))
///     .route_layer(Authorize::all_scopes(["orders:write"]))
///     .route("/reports", get(|| async { "…" }).route_layer(Authorize::any_scope(["reports", "admin"])))
///     .route("/admin", get(|| async { "…" }).route_layer(Authorize::role(KEYCLOAK_REALM_ROLES, "admin")));
/// // .layer(jwt_auth_layer) goes around all of it.
/// ```
///
/// A request that passed an [optional](crate::JwtAuthLayer::optional) layer anonymously gets `401`
/// instead; a request that went through no `JwtAuthLayer` at all gets `500` (a server bug).
#[must_use]
pub struct Authorize<R = DefaultRejection> {
    check: Arc<Check>,
    /// What the challenge names as the missing scope.
    required: Arc<str>,
    rejection: R,
    /// Whether to answer with the rejection of the `JwtAuthLayer` the request went through (its
    /// realm, DPoP and `resource_metadata` challenges, custom response), until
    /// [`with_rejection`](Authorize::with_rejection) sets one.
    inherit: bool,
}

impl<R: Clone> Clone for Authorize<R> {
    fn clone(&self) -> Self {
        Self {
            check: Arc::clone(&self.check),
            required: Arc::clone(&self.required),
            rejection: self.rejection.clone(),
            inherit: self.inherit,
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for Authorize<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("required", &self.required)
            .field("rejection", &self.rejection)
            .finish_non_exhaustive()
    }
}

/// A rule on the token's scopes: all of `scopes` granted, or at least one.
fn scope_rule<I, S>(scopes: I, all: bool) -> Authorize
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let scopes: Box<[Box<str>]> = scopes
        .into_iter()
        .map(|scope| scope.into().into_boxed_str())
        .collect();
    let required = scopes.join(" ");
    Authorize::token(required, move |token| {
        let mut granted = scopes.iter().map(|scope| token.has_scope(scope));
        if all {
            granted.all(|ok| ok)
        } else {
            granted.any(|ok| ok)
        }
    })
}

impl Authorize {
    /// Requires every one of `scopes` (from `scope` or `scp`).
    pub fn all_scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        scope_rule(scopes, true)
    }

    /// Requires at least one of `scopes` (from `scope` or `scp`).
    pub fn any_scope<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        scope_rule(scopes, false)
    }

    /// Requires the claim at the JSON pointer `pointer` to grant `role` (see
    /// [`VerifiedToken::has_role`]), e.g. [`KEYCLOAK_REALM_ROLES`](crate::KEYCLOAK_REALM_ROLES).
    /// The challenge names `role` as the missing scope.
    pub fn role(pointer: impl Into<String>, role: impl Into<String>) -> Self {
        let (pointer, role) = (pointer.into(), role.into());
        let required = role.clone();
        Self::token(required, move |token| token.has_role(&pointer, &role))
    }

    /// Requires `predicate` to hold for the verified token; `required` is what the challenge
    /// names as missing (a scope, a role …; keep it free of anything secret).
    pub fn token<F>(required: impl Into<String>, predicate: F) -> Self
    where
        F: Fn(&VerifiedToken) -> bool + Send + Sync + 'static,
    {
        Self::from_check(required.into(), move |extensions| {
            extensions.get::<VerifiedToken>().map(&predicate)
        })
    }

    /// Requires `predicate` to hold for the typed claims of a `JwtAuthLayer<T>`.
    ///
    /// ```
    /// # use serde::Deserialize;
    /// use tower_jwt_auth::Authorize;
    ///
    /// #[derive(Deserialize)]
    /// struct MyClaims { tenant: String }
    ///
    /// let acme_only = Authorize::claims("tenant:acme", |claims: &MyClaims| claims.tenant == "acme");
    /// # let _ = acme_only;
    /// ```
    pub fn claims<T, F>(required: impl Into<String>, predicate: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        Self::from_check(required.into(), move |extensions| {
            extensions
                .get::<Claims<T>>()
                .map(|claims| predicate(&claims.0))
        })
    }

    fn from_check(
        required: String,
        check: impl Fn(&Extensions) -> Option<bool> + Send + Sync + 'static,
    ) -> Self {
        Self {
            check: Arc::new(check),
            required: Arc::from(required),
            rejection: DefaultRejection::default(),
            inherit: true,
        }
    }
}

impl<R> Authorize<R> {
    /// The same requirement with another response for rejections (see
    /// [`RejectionResponse`]); e.g. `DefaultRejection::with_realm("api")`. Default: the
    /// rejection of the [`JwtAuthLayer`](crate::JwtAuthLayer) the request went through (its
    /// realm, DPoP and `resource_metadata` challenges, custom response), else
    /// [`DefaultRejection`].
    pub fn with_rejection<R2>(self, rejection: R2) -> Authorize<R2> {
        Authorize {
            check: self.check,
            required: self.required,
            rejection,
            inherit: false,
        }
    }

    /// Why `request` may not pass, if it may not.
    fn refusal<B>(&self, request: &Request<B>) -> Option<AuthError> {
        let extensions = request.extensions();
        match (self.check)(extensions) {
            Some(true) => None,
            Some(false) => Some(AuthError::InsufficientScope {
                required: self.required.to_string().into(),
            }),
            None if extensions.get::<Anonymous>().is_some() => Some(AuthError::MissingToken),
            None => Some(AuthError::AuthorizationWithoutAuthentication),
        }
    }
}

impl<S, R: Clone> Layer<S> for Authorize<R> {
    type Service = AuthorizeService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthorizeService {
            inner,
            authorize: self.clone(),
        }
    }
}

/// The service made by [`Authorize`].
pub struct AuthorizeService<S, R> {
    inner: S,
    authorize: Authorize<R>,
}

impl<S: Clone, R: Clone> Clone for AuthorizeService<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            authorize: self.authorize.clone(),
        }
    }
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for AuthorizeService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeService")
            .field("inner", &self.inner)
            .field("authorize", &self.authorize)
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for AuthorizeService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectionResponse<ResBody>,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = AuthorizeFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.authorize.refusal(&request) {
            None => AuthorizeFuture {
                phase: Phase::Inner {
                    future: self.inner.call(request),
                },
            },
            Some(error) => {
                // Without a rejection of its own, the layer's (realm, DPoP and
                // `resource_metadata` challenges) answers, as the extractors do.
                let layer = self
                    .authorize
                    .inherit
                    .then(|| request.extensions().get::<LayerRejection<ResBody>>())
                    .flatten();
                let response = match layer {
                    Some(LayerRejection(rejection)) => reject(&**rejection, &error),
                    None => reject(&self.authorize.rejection, &error),
                };
                AuthorizeFuture {
                    phase: Phase::Refused {
                        response: Some(response),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`AuthorizeService`].
    pub struct AuthorizeFuture<F, B> {
        #[pin]
        phase: Phase<F, B>,
    }
}

pin_project! {
    #[project = PhaseProj]
    enum Phase<F, B> {
        Inner {
            #[pin]
            future: F,
        },
        Refused {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B, E> Future for AuthorizeFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().phase.project() {
            PhaseProj::Inner { future } => future.poll(cx),
            PhaseProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a contract violation by the caller.
                None => panic!("AuthorizeFuture polled after completion"),
            },
        }
    }
}

impl<F, B> fmt::Debug for AuthorizeFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeFuture").finish_non_exhaustive()
    }
}
