//! [`ProtectedResource`]: the OAuth 2.0 protected-resource metadata of RFC 9728, which tells a
//! client (an MCP client, for one) which authorization servers issue tokens for this resource.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;
use tower_service::Service;
use url::Url;

use crate::error::ConfigError;

/// The well-known path prefix of RFC 9728 §3.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// The metadata of a protected resource (RFC 9728 §2), served at
/// `/.well-known/oauth-protected-resource` followed by the resource's path (§3.1).
///
/// Give it to [`JwtAuthBuilder::protected_resource`](crate::JwtAuthBuilder::protected_resource):
/// the layer then fills what it knows (authorization servers from the issuers, DPoP algorithms),
/// requires the resource as `aud` for issuers with no audience of their own (RFC 8707), and adds
/// `resource_metadata="…"` to every challenge. Serve the completed document with
/// [`JwtAuthLayer::protected_resource`](crate::JwtAuthLayer::protected_resource):
///
/// ```
/// use axum::{Router, routing::post};
/// use tower_jwt_auth::{Issuer, JwtAuthLayer, KeySource, ProtectedResource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = JwtAuthLayer::<serde_json::Value>::builder()
///     .issuer(
///         Issuer::new("https://auth.example.com/")
///             .key(KeySource::shared_secret(b"an example secret of at least 32 bytes")),
///     )
///     .protected_resource(
///         ProtectedResource::new("https://mcp.example.com/mcp")
///             .scopes_supported(["tools:read", "tools:call"])
///             .resource_name("Example MCP server"),
///     )
///     .build()
///     .await?;
/// let metadata = auth.protected_resource().expect("configured").clone();
/// assert_eq!(
///     metadata.metadata_url(),
///     "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
/// );
/// let app: Router = Router::new()
///     .route("/mcp", post(|| async { "{}" }).layer(auth))
///     .route_service(&metadata.well_known_path(), metadata.service());
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[must_use]
pub struct ProtectedResource {
    resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dpop_signing_alg_values_supported: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_bound_access_tokens_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<String>,
    #[serde(skip)]
    dpop_set: bool,
}

impl ProtectedResource {
    /// The metadata of the resource identified by `resource`, an absolute `https` URL without
    /// query or fragment (checked when the layer is built). `bearer_methods_supported` defaults
    /// to `["header"]`; the rest is empty until set or filled by the layer.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".to_owned()],
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            resource_name: None,
            resource_documentation: None,
            dpop_set: false,
        }
    }

    /// The issuers of tokens for this resource. Default: the layer's configured issuers.
    pub fn authorization_servers(
        mut self,
        servers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.authorization_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// The scopes clients may request for this resource.
    pub fn scopes_supported(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// How tokens may be sent (`header`, `body`, `query`). Default: `["header"]`.
    pub fn bearer_methods_supported(
        mut self,
        methods: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.bearer_methods_supported = methods.into_iter().map(Into::into).collect();
        self
    }

    /// The DPoP proof algorithms accepted and whether DPoP-bound tokens are required. Default:
    /// what the layer's DPoP settings say.
    pub fn dpop(
        mut self,
        algorithms: impl IntoIterator<Item = impl Into<String>>,
        required: bool,
    ) -> Self {
        self.dpop_signing_alg_values_supported = algorithms.into_iter().map(Into::into).collect();
        self.dpop_bound_access_tokens_required = required;
        self.dpop_set = true;
        self
    }

    /// A human-readable name of the resource.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// A URL of documentation for developers.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The path the document is served at (RFC 9728 §3.1): the well-known prefix, then the
    /// resource's path unless it is `/`.
    pub fn well_known_path(&self) -> String {
        let path = Url::parse(&self.resource)
            .map(|url| url.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        format!("{WELL_KNOWN_PREFIX}{path}")
    }

    /// The URL of the document, as sent in `resource_metadata` challenges.
    pub fn metadata_url(&self) -> String {
        match Url::parse(&self.resource) {
            Ok(url) => format!(
                "{}{}",
                url.origin().ascii_serialization(),
                self.well_known_path()
            ),
            Err(_) => self.well_known_path(),
        }
    }

    /// The document as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A tower service answering `GET` and `HEAD` with the document (`application/json`), and
    /// `405` to other methods. Mount it at [`well_known_path`](Self::well_known_path).
    pub fn service(&self) -> ProtectedResourceService {
        ProtectedResourceService {
            document: Arc::from(self.to_json()),
        }
    }

    /// Checks the resource identifier and fills the defaults the layer knows.
    pub(crate) fn complete(
        mut self,
        issuers: Vec<String>,
        dpop: Option<(Vec<String>, bool)>,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidSetting {
            name: "protected_resource",
            reason: reason.to_owned(),
        };
        let url = Url::parse(&self.resource).map_err(|err| invalid(&err.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(invalid("the resource must be an absolute https URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("the resource must have no query or fragment"));
        }
        if self.authorization_servers.is_empty() {
            self.authorization_servers = issuers;
        }
        if !self.dpop_set
            && let Some((algorithms, required)) = dpop
        {
            self.dpop_signing_alg_values_supported = algorithms;
            self.dpop_bound_access_tokens_required = required;
        }
        Ok(self)
    }
}

/// Serves a [`ProtectedResource`] document; see [`ProtectedResource::service`].
#[derive(Debug, Clone)]
pub struct ProtectedResourceService {
    document: Arc<str>,
}

impl<B> Service<Request<B>> for ProtectedResourceService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut response = Response::new(String::new());
        if request.method() == Method::GET || request.method() == Method::HEAD {
            if request.method() == Method::GET {
                *response.body_mut() = self.document.to_string();
            }
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
        } else {
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_well_known_path_takes_the_resource_path_as_suffix() {
        let at_root = ProtectedResource::new("https://api.example.com");
        assert_eq!(at_root.well_known_path(), WELL_KNOWN_PREFIX);
        assert_eq!(
            at_root.metadata_url(),
            "https://api.example.com/.well-known/oauth-protected-resource"
        );
        let with_path = ProtectedResource::new("https://api.example.com:8443/tenant/mcp/");
        assert_eq!(
            with_path.metadata_url(),
            "https://api.example.com:8443/.well-known/oauth-protected-resource/tenant/mcp"
        );
    }
}
