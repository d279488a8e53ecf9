//! axum extractors for what the layer inserted: [`Claims<T>`] and [`VerifiedToken`].

use std::any::type_name;
use std::fmt;
use std::sync::Arc;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::claims::{Claims, VerifiedToken};
use crate::error::AuthError;
use crate::layer::Anonymous;
use crate::response::{DefaultRejection, RejectionResponse};

/// Why [`Claims`] or [`VerifiedToken`] could not be extracted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The request went through a [`JwtAuthLayer::optional`](crate::JwtAuthLayer::optional) layer
    /// without a token, but the handler requires one: `401` with a `Bearer` challenge.
    Unauthenticated {
        /// The layer's realm.
        realm: Option<Arc<str>>,
    },
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

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthenticated { .. } => f.write_str("no bearer token in the request"),
            Self::LayerMissing { type_name } => write!(
                f,
                "missing request extension `{type_name}`: is `JwtAuthLayer` added to this route, \
                 with the same claims type?"
            ),
            Self::InsufficientScope { required } => write!(f, "insufficient scope: {required}"),
        }
    }
}

impl std::error::Error for ClaimsRejection {}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated { realm } => {
                let rejection =
                    realm.map_or_else(DefaultRejection::default, DefaultRejection::with_realm);
                let mut response: Response = rejection.reject(&AuthError::MissingToken);
                response.extensions_mut().insert(AuthError::MissingToken);
                response
            }
            Self::LayerMissing { .. } => {
                tracing::error!(%self, "claims extractor used without the layer");
                (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
            }
            Self::InsufficientScope { required } => {
                let error = AuthError::InsufficientScope {
                    required: required.into(),
                };
                let mut response: Response = DefaultRejection::default().reject(&error);
                response.extensions_mut().insert(error);
                response
            }
        }
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
        None => Err(ClaimsRejection::LayerMissing {
            type_name: type_name::<X>(),
        }),
    }
}

fn required<X>(parts: &Parts) -> Result<X, ClaimsRejection>
where
    X: Clone + Send + Sync + 'static,
{
    from_extensions(parts)?.ok_or_else(|| ClaimsRejection::Unauthenticated {
        realm: parts
            .extensions
            .get::<Anonymous>()
            .and_then(|anonymous| anonymous.realm.clone()),
    })
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
            Err(ClaimsRejection::InsufficientScope {
                required: S::SCOPES.join(" "),
            })
        }
    }
}
