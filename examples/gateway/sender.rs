//! Sender-constrained tokens and protected-resource metadata in the gateway: `--dpop`,
//! `--dpop-nonce`, `--external-url`, `--resource` and `--client-cert-header`.
//!
//! In forward-auth mode the DPoP proof is checked against the original request the proxy
//! describes (`X-Forwarded-Method`/`-Proto`/`-Host`/`-Uri`, or nginx's `X-Original-*` with the
//! external URL), never against the check request itself.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderName, Method, Request};
use percent_encoding::percent_decode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::Value;
use tower_jwt_auth::dpop::{DpopConfig, DpopPolicy, OriginalRequest, RotatingNonces};
use tower_jwt_auth::{ClientCertificate, JwtAuthBuilder, ProtectedResource};
use url::Url;

use crate::config::ConfigError;
use crate::forward_auth::Original;

/// How often the DPoP nonce rotates with `--dpop-nonce`.
pub const NONCE_INTERVAL: Duration = Duration::from_secs(300);

/// The checked sender-constraint settings.
#[derive(Debug, Clone, Default)]
pub struct SenderSettings {
    pub dpop: DpopPolicy,
    pub dpop_nonce: bool,
    pub external_url: Option<String>,
    pub resource: Option<String>,
    pub client_cert_header: Option<HeaderName>,
}

fn invalid(origin: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        setting: origin.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// An absolute `http`/`https` URL without query or fragment.
fn absolute_url((text, origin): (String, String)) -> Result<String, ConfigError> {
    let url = Url::parse(&text).map_err(|err| invalid(&origin, &text, &err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            &origin,
            &text,
            "expected an absolute http or https URL",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(&origin, &text, "must have no query or fragment"));
    }
    Ok(text)
}

impl SenderSettings {
    /// Checks the settings, each given with its origin.
    pub fn resolve(
        dpop: Option<(String, String)>,
        dpop_nonce: bool,
        external_url: Option<(String, String)>,
        resource: Option<(String, String)>,
        client_cert_header: Option<HeaderName>,
    ) -> Result<Self, ConfigError> {
        let dpop = match dpop {
            None => DpopPolicy::Disabled,
            Some((text, origin)) => match text.as_str() {
                "off" => DpopPolicy::Disabled,
                "allowed" => DpopPolicy::Allowed,
                "required" => DpopPolicy::Required,
                _ => return Err(invalid(&origin, &text, "expected off, allowed or required")),
            },
        };
        let external_url = external_url.map(absolute_url).transpose()?;
        let resource = resource.map(absolute_url).transpose()?;
        if dpop != DpopPolicy::Disabled && external_url.is_none() {
            return Err(ConfigError::Missing {
                setting: "--external-url".to_owned(),
                reason: "--dpop needs the URL clients address the gateway by, which DPoP proofs \
                         name (htu)"
                    .to_owned(),
            });
        }
        if dpop_nonce && dpop == DpopPolicy::Disabled {
            return Err(ConfigError::Missing {
                setting: "--dpop".to_owned(),
                reason: "--dpop-nonce needs --dpop allowed or required".to_owned(),
            });
        }
        Ok(Self {
            dpop,
            dpop_nonce,
            external_url,
            resource,
            client_cert_header,
        })
    }

    /// Sets the layer's external URL, DPoP settings and protected resource.
    pub fn apply(&self, mut builder: JwtAuthBuilder<Value>) -> JwtAuthBuilder<Value> {
        if let Some(url) = &self.external_url {
            builder = builder.external_url(url.clone());
        }
        if self.dpop_nonce {
            builder =
                builder.dpop(DpopConfig::default().nonces(RotatingNonces::new(NONCE_INTERVAL)));
        }
        if let Some(resource) = &self.resource {
            builder = builder.protected_resource(ProtectedResource::new(resource.clone()));
        }
        builder
    }

    /// `rejection` with the DPoP challenge the layer sends, for the scope rules' 403s.
    pub fn challenge(
        &self,
        rejection: tower_jwt_auth::DefaultRejection,
    ) -> tower_jwt_auth::DefaultRejection {
        if self.dpop == DpopPolicy::Disabled {
            return rejection;
        }
        let algs: Vec<&str> = tower_jwt_auth::dpop::DEFAULT_DPOP_ALGORITHMS
            .iter()
            .map(|alg| alg.as_str())
            .collect();
        rejection.dpop_challenge(algs.join(" "), self.dpop == DpopPolicy::Allowed)
    }

    /// Puts what the layer checks a token's binding against into `request`: the original
    /// request a forward-auth check describes, and the client certificate the TLS proxy passed.
    pub fn prepare(&self, request: &mut Request<Body>) {
        if self.dpop != DpopPolicy::Disabled
            && let Some(original) = request.extensions().get::<Original>()
            && let Some(described) = self.original_request(original)
        {
            request.extensions_mut().insert(described);
        }
        if let Some(name) = &self.client_cert_header {
            // Read once and taken out: the proxy's header is for the gateway; the upstream learns
            // who the caller is from the `x-auth-*` headers.
            let header = request.headers_mut().remove(name);
            let certificate = header.as_ref().and_then(|value| {
                let pem = percent_decode(value.as_bytes()).collect::<Vec<u8>>();
                CertificateDer::from_pem_slice(&pem).ok()
            });
            match certificate {
                Some(der) => {
                    request
                        .extensions_mut()
                        .insert(ClientCertificate::new(der.to_vec()));
                }
                None if header.is_some() => {
                    tracing::debug!(header = %name, "client certificate header is not a URL-encoded PEM certificate");
                }
                None => {}
            }
        }
    }

    /// The method and URL of the request a forward-auth check describes: the proxy's scheme and
    /// host if it sent them, else the external URL, then the original path.
    fn original_request(&self, original: &Original) -> Option<OriginalRequest> {
        let path = original.path.as_deref().ok()?;
        let method = Method::from_bytes(original.method.as_bytes()).ok()?;
        let url = match (&original.proto, &original.host, &self.external_url) {
            (Some(proto), Some(host), _) => format!("{proto}://{host}{path}"),
            (_, _, Some(base)) => format!("{}{path}", base.trim_end_matches('/')),
            _ => return None,
        };
        OriginalRequest::new(method, &url)
    }
}
