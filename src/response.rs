//! Turning an [`AuthError`] into a response: RFC 6750 §3 by default, anything through
//! [`RejectionResponse`].

use std::sync::Arc;

use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};

use crate::error::AuthError;
use crate::telemetry;

/// Builds the response for a rejected request.
///
/// Implemented by [`DefaultRejection`] (RFC 6750) and by any
/// `Fn(&AuthError) -> http::Response<B>` closure, so that a service can answer with JSON problem
/// details, a gRPC status, or anything else. Whatever it returns, the layer inserts the
/// [`AuthError`] into the response's extensions, so outer layers (logging, metrics) can see why.
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_jwt_auth::{AuthError, RejectionResponse};
///
/// let problem_json = |error: &AuthError| {
///     Response::builder()
///         .status(error.status())
///         .header("content-type", "application/problem+json")
///         .body(format!(r#"{{"title":"{}"}}"#, error.description()))
///         .unwrap()
/// };
/// let response = problem_json.reject(&AuthError::Expired);
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// ```
pub trait RejectionResponse<B> {
    /// The response for `error`.
    fn reject(&self, error: &AuthError) -> Response<B>;
}

impl<B, F> RejectionResponse<B> for F
where
    F: Fn(&AuthError) -> Response<B>,
{
    fn reject(&self, error: &AuthError) -> Response<B> {
        self(error)
    }
}

/// The RFC 6750 §3 rejection: the status of [`AuthError::status`], an empty body, a
/// `WWW-Authenticate: Bearer` challenge with `realm`, `error` and `error_description`, and
/// `Retry-After` when keys are unavailable.
#[derive(Debug, Clone, Default)]
pub struct DefaultRejection {
    realm: Option<Arc<str>>,
    /// The `algs` of a `DPoP` challenge, and whether a `Bearer` one goes with it.
    dpop: Option<(Arc<str>, bool)>,
    /// The URL of the RFC 9728 metadata, sent as `resource_metadata` in every challenge.
    resource_metadata: Option<Arc<str>>,
}

impl DefaultRejection {
    /// Whether this is `DefaultRejection::default()`: no realm, no DPoP or metadata challenge.
    pub(crate) fn is_plain(&self) -> bool {
        self.realm.is_none() && self.dpop.is_none() && self.resource_metadata.is_none()
    }

    /// A rejection whose challenges carry `realm`.
    pub fn with_realm(realm: impl Into<Arc<str>>) -> Self {
        Self {
            realm: Some(realm.into()),
            ..Self::default()
        }
    }

    /// Challenges with `DPoP algs="…"` (RFC 9449 §7.1), and also with `Bearer` if `bearer`.
    /// The layer sets this itself when an issuer allows DPoP.
    pub fn dpop_challenge(mut self, algs: impl Into<Arc<str>>, bearer: bool) -> Self {
        self.dpop = Some((algs.into(), bearer));
        self
    }

    /// Challenges with `resource_metadata="url"` (RFC 9728 §5.1), the URL of the protected
    /// resource's metadata. The layer sets this itself with
    /// [`JwtAuthBuilder::protected_resource`](crate::JwtAuthBuilder::protected_resource); give it
    /// to an [`Authorize`](crate::Authorize) with `with_rejection` so that its `403`s carry it too.
    pub fn resource_metadata(mut self, url: impl Into<Arc<str>>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }
}

impl<B: Default> RejectionResponse<B> for DefaultRejection {
    fn reject(&self, error: &AuthError) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        // A server fault is not a challenge.
        if !error.status().is_server_error() || error.retry_after().is_some() {
            let metadata = self.resource_metadata.as_deref();
            let extra: &[(&str, &str)] = match &metadata {
                Some(url) => &[("resource_metadata", url)],
                None => &[],
            };
            match &self.dpop {
                None => {
                    headers.insert(
                        WWW_AUTHENTICATE,
                        challenge("Bearer", Some(error), self.realm.as_deref(), extra),
                    );
                }
                Some((algs, bearer)) => {
                    let realm = self.realm.as_deref();
                    crate::dpop::challenges(headers, error, realm, algs, *bearer, extra);
                }
            }
        }
        if let AuthError::UseDpopNonce { nonce } = error
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            headers.insert(http::HeaderName::from_static("dpop-nonce"), value);
        }
        if let Some(retry_after) = error.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
        }
        response
    }
}

/// The one place a rejection is built, for the layer, [`Authorize`](crate::Authorize), the axum
/// extractors and [`AuthError`]'s own response: the configured response, the error in its
/// extensions (for outer layers), one `debug` line with the cause (never the token) and the
/// `jwt_auth_requests_total` count.
pub(crate) fn reject<B, R>(rejection: &R, error: &AuthError) -> Response<B>
where
    R: RejectionResponse<B> + ?Sized,
{
    // At debug level even for `keys_unavailable`: the key refresh logs an outage once when it
    // starts, not once per request.
    tracing::debug!(cause = error.cause(), %error, "request rejected");
    telemetry::request_rejected(error);
    let mut response = rejection.reject(error);
    response.extensions_mut().insert(error.clone());
    response
}

/// The rejection of the [`JwtAuthLayer`](crate::JwtAuthLayer) a request went through, in the
/// body type of the service behind it. The layer puts it into the request's extensions, so that
/// an extractor refusing the request later answers the way the layer would have.
pub(crate) struct LayerRejection<B>(pub(crate) Arc<dyn RejectionResponse<B> + Send + Sync>);

impl<B> Clone for LayerRejection<B> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<B> std::fmt::Debug for LayerRejection<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LayerRejection").finish_non_exhaustive()
    }
}

/// The `WWW-Authenticate` challenge for `error` (RFC 6750 §3): `Bearer`, then `realm` if given,
/// then `error`, `error_description` and, for `insufficient_scope`, `scope`. A request without a
/// token gets no error code (§3.1).
pub fn www_authenticate(error: &AuthError, realm: Option<&str>) -> HeaderValue {
    challenge("Bearer", Some(error), realm, &[])
}

/// One challenge of `scheme`: `realm`, then, if `error` has a code, `error`,
/// `error_description` and `scope` (for `insufficient_scope`), then `extra` parameters.
pub(crate) fn challenge(
    scheme: &'static str,
    error: Option<&AuthError>,
    realm: Option<&str>,
    extra: &[(&str, &str)],
) -> HeaderValue {
    let mut params: Vec<(&str, String)> = Vec::with_capacity(4 + extra.len());
    if let Some(realm) = realm {
        params.push(("realm", realm.to_owned()));
    }
    if let Some(error) = error
        && let Some(code) = error.error_code()
    {
        params.push(("error", code.as_str().to_owned()));
        params.push(("error_description", error.description().into_owned()));
    }
    if let Some(AuthError::InsufficientScope { required }) = error {
        params.push(("scope", required.to_string()));
    }
    params.extend(
        extra
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    let mut value = String::from(scheme);
    for (index, (name, raw)) in params.iter().enumerate() {
        value.push_str(if index == 0 { " " } else { ", " });
        value.push_str(name);
        value.push_str("=\"");
        value.push_str(&quoted_string_content(raw));
        value.push('"');
    }
    // Every byte is visible ASCII or a space after `quoted_string_content`.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(scheme))
}

/// The content of an RFC 9110 quoted-string: `"` and `\` escaped, and anything that is not
/// visible ASCII or a space replaced, since RFC 6750 limits these values to that set.
fn quoted_string_content(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn challenge(error: &AuthError, realm: Option<&str>) -> String {
        www_authenticate(error, realm).to_str().unwrap().to_owned()
    }

    #[test]
    fn no_token_gets_a_bare_challenge() {
        assert_eq!(challenge(&AuthError::MissingToken, None), "Bearer");
        assert_eq!(
            challenge(&AuthError::MissingToken, Some("api")),
            r#"Bearer realm="api""#
        );
    }

    #[test]
    fn bad_tokens_get_invalid_token_with_a_description() {
        assert_eq!(
            challenge(&AuthError::Expired, Some("api")),
            r#"Bearer realm="api", error="invalid_token", error_description="token expired""#
        );
    }

    #[test]
    fn malformed_requests_get_invalid_request() {
        assert_eq!(
            challenge(&AuthError::MultipleTokens, None),
            r#"Bearer error="invalid_request", error_description="more than one token in the request""#
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let error = AuthError::InsufficientScope {
            required: "admin write".into(),
        };
        assert_eq!(
            challenge(&error, None),
            r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin write""#
        );
    }

    #[test]
    fn quotes_and_non_ascii_in_values_cannot_break_the_header() {
        let error = AuthError::ClaimsRejected("say \"hi\" \\ ünïcode\r\n".into());
        let value = challenge(&error, Some("re\"alm"));
        assert_eq!(
            value,
            r#"Bearer realm="re\"alm", error="invalid_token", error_description="say \"hi\" \\ ?n?code??""#
        );
    }

    #[test]
    fn keys_unavailable_is_503_with_retry_after() {
        let error = AuthError::KeysUnavailable {
            retry_after: Duration::from_secs(5),
        };
        let response: Response<()> = DefaultRejection::default().reject(&error);
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    }
}
