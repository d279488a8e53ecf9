//! axum extractors for what the layer inserted: [`Claims<T>`] and [`VerifiedToken`].

use std::any::type_name;
use std::fmt;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::authenticator::Anonymous;
use crate::claims::{Claims, VerifiedToken};
use crate::error::AuthError;
use crate::response::{DefaultRejection, LayerRejection, reject};

/// Why [`Claims`], [`VerifiedToken`] or [`RequireScopes`] could not be extracted.
///
/// Answered the way the [`JwtAuthLayer`](crate::JwtAuthLayer) the request went through answers
/// (its realm, its [`with_rejection`](crate::JwtAuthLayer::with_rejection) response), counted
/// and logged like the layer's own rejections. [`kind`](Self::kind) says which case it is.
#[derive(Debug, Clone)]
pub struct ClaimsRejection {
    kind: ClaimsRejectionKind,
    /// The layer's rejection, when a layer ran and its services answer with axum's body.
    layer: Option<LayerRejection<Body>>,
}

/// The cases of a [`ClaimsRejection`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsRejectionKind {
    /// The request went through a [`JwtAuthLayer::optional`](crate::JwtAuthLayer::optional) layer
    /// without a token, but the handler requires one: `401` with a `Bearer` challenge.
    Unauthenticated,
    /// No layer ran for this request, or it was built for another claims type: a server bug,
    /// answered with `500`.
    LayerMissing {
        /// The type the handler asked for.
        type_name: &'static str,
    },
    /// The token lacks a scope that [`RequireScopes`] asks for: `403 insufficient_scope`.
    InsufficientScope {
        /// The required scopes, space-separated.
        required: String,
    },
}

impl ClaimsRejection {
    /// Which case it is.
    pub fn kind(&self) -> &ClaimsRejectionKind {
        &self.kind
    }

    fn new(kind: ClaimsRejectionKind, parts: &Parts) -> Self {
        Self {
            kind,
            layer: parts.extensions.get::<LayerRejection<Body>>().cloned(),
        }
    }

    /// The [`AuthError`] the layer's rejection is built from; `None` for a missing layer.
    fn auth_error(&self) -> Option<AuthError> {
        match &self.kind {
            ClaimsRejectionKind::Unauthenticated => Some(AuthError::MissingToken),
            ClaimsRejectionKind::LayerMissing { .. } => None,
            ClaimsRejectionKind::InsufficientScope { required } => {
                Some(AuthError::InsufficientScope {
                    required: required.clone().into(),
                })
            }
        }
    }
}

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ClaimsRejectionKind::Unauthenticated => f.write_str("no bearer token in the request"),
            ClaimsRejectionKind::LayerMissing { type_name } => write!(
                f,
                "missing request extension `{type_name}`: is `JwtAuthLayer` added to this route, \
                 with the same claims type?"
            ),
            ClaimsRejectionKind::InsufficientScope { required } => {
                write!(f, "insufficient scope: {required}")
            }
        }
    }
}

impl std::error::Error for ClaimsRejection {}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        let Some(error) = self.auth_error() else {
            tracing::error!(%self, "claims extractor used without the layer");
            return (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response();
        };
        match &self.layer {
            Some(LayerRejection(rejection)) => reject(&**rejection, &error),
            None => reject(&DefaultRejection::default(), &error),
        }
    }
}

/// [`AuthError`] as a response: the default RFC 6750 rejection (no realm), so that a handler can
/// use `?` on [`JwtAuthLayer::verify`](crate::JwtAuthLayer::verify), e.g. for a token that came in
/// a WebSocket message.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        reject(&DefaultRejection::default(), &self)
    }
}

/// The value the layer inserted, `None` if the request passed anonymously, or the layer is missing.
fn from_extensions<X>(parts: &Parts) -> Result<Option<X>, ClaimsRejection>
where
    X: Clone + Send + Sync + 'static,
{
    if let Some(value) = parts.extensions.get::<X>() {
        return Ok(Some(value.clone()));
    }
    match parts.extensions.get::<Anonymous>() {
        Some(_) => Ok(None),
        None => Err(ClaimsRejection::new(
            ClaimsRejectionKind::LayerMissing {
                type_name: type_name::<X>(),
            },
            parts,
        )),
    }
}

fn required<X>(parts: &Parts) -> Result<X, ClaimsRejection>
where
    X: Clone + Send + Sync + 'static,
{
    from_extensions(parts)?
        .ok_or_else(|| ClaimsRejection::new(ClaimsRejectionKind::Unauthenticated, parts))
}

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        required(parts)
    }
}

impl<S, T> OptionalFromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        from_extensions(parts)
    }
}

impl<S> FromRequestParts<S> for VerifiedToken
where
    S: Send + Sync,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        required(parts)
    }
}

impl<S> OptionalFromRequestParts<S> for VerifiedToken
where
    S: Send + Sync,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        from_extensions(parts)
    }
}

/// The scopes a handler requires through [`RequireScopes`].
///
/// ```
/// use tower_jwt_auth::{RequireScopes, ScopeRequirement};
///
/// struct WriteOrders;
/// impl ScopeRequirement for WriteOrders {
///     const SCOPES: &'static [&'static str] = &["orders:write"];
/// }
///
/// async fn create_order(RequireScopes(token, ..): RequireScopes<WriteOrders>) -> String {
///     format!("created by {:?}", token.registered_claims().sub)
/// }
/// # let _ = axum::routing::post::<_, _, ()>(create_order);
/// ```
pub trait ScopeRequirement {
    /// Every one of these must be granted (by `scope` or `scp`).
    const SCOPES: &'static [&'static str];
}

/// An extractor that succeeds when the verified token grants every scope of `S`, and otherwise
/// answers `403` with `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`: the
/// handler-side twin of [`Authorize::all_scopes`](crate::Authorize::all_scopes).
pub struct RequireScopes<S>(pub VerifiedToken, pub std::marker::PhantomData<fn() -> S>);

impl<S> fmt::Debug for RequireScopes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequireScopes").field(&self.0).finish()
    }
}

impl<St, S> FromRequestParts<St> for RequireScopes<S>
where
    St: Send + Sync,
    S: ScopeRequirement,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let token: VerifiedToken = required(parts)?;
        if S::SCOPES.iter().all(|scope| token.has_scope(scope)) {
            Ok(Self(token, std::marker::PhantomData))
        } else {
            Err(ClaimsRejection::new(
                ClaimsRejectionKind::InsufficientScope {
                    required: S::SCOPES.join(" "),
                },
                parts,
            ))
        }
    }
}
