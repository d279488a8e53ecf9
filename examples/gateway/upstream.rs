//! The upstream: its URL, and the connections to it (plain HTTP, or HTTPS with rustls: the
//! system's roots or a private CA, SNI, HTTP/2 when the upstream offers it by ALPN).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::config::ConfigError;

/// Where requests go: scheme, authority and a base path (without trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    pub base_path: String,
    /// The PEM file of the CA certificates to trust instead of the system's (`--upstream-ca`).
    pub ca_file: Option<PathBuf>,
}

impl Upstream {
    /// Parses an `http(s)://host[:port][/base]` URL; `setting` names it in errors.
    pub fn parse(value: &str, setting: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            setting: setting.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(value).map_err(|err| invalid(&err.to_string()))?;
        let scheme = match url.scheme() {
            "http" => Scheme::HTTP,
            "https" => Scheme::HTTPS,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials in the URL are not supported"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment is not allowed"));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = Authority::try_from(format!("{host}:{port}").as_str())
            .map_err(|err| invalid(&err.to_string()))?;
        Ok(Self {
            scheme,
            authority,
            base_path: url.path().trim_end_matches('/').to_owned(),
            ca_file: None,
        })
    }

    /// The URL as configured, for logs.
    pub fn display(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// Why the connections to the upstream can't be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the upstream CA file `{}` (--upstream-ca): {source}", path.display())]
    ReadCa {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("the upstream CA file `{}` (--upstream-ca) has no usable certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("cannot set up TLS for the upstream: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The connector to the upstream; `http2` offers `h2` by ALPN (HTTPS only: a plain-HTTP upstream
/// is spoken to in HTTP/1.1). Upgrade requests need a connection that stays HTTP/1.1.
pub fn connector(
    upstream: &Upstream,
    timeout: Duration,
    http2: bool,
) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeout));
    http.enforce_http(false);
    let roots = match &upstream.ca_file {
        Some(path) => roots_from_file(path)?,
        None => system_roots(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    Ok(if http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.wrap_connector(http)
    })
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|source| TlsError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    for cert in certs {
        let cert = cert.map_err(|source| TlsError::ReadCa {
            path: path.to_owned(),
            source,
        })?;
        // A certificate rustls can't use as a trust anchor is skipped; none at all is an error.
        if let Err(err) = roots.add(cert) {
            tracing::warn!(error = %err, file = %path.display(), "CA certificate skipped");
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// The system's trust store; the webpki roots (Mozilla's) when the system has none.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::debug!(error = %err, "while loading the system's CA certificates");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::info!("no CA certificates in the system's store; using the webpki roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_upstreams_parse_with_their_default_ports() {
        let http = Upstream::parse("http://svc/api/", "--upstream").unwrap();
        assert_eq!(http.authority.as_str(), "svc:80");
        assert_eq!(http.base_path, "/api");
        let https = Upstream::parse("https://svc.example", "--upstream").unwrap();
        assert_eq!(https.scheme, Scheme::HTTPS);
        assert_eq!(https.authority.as_str(), "svc.example:443");
        for bad in ["ftp://svc", "http://u:p@svc", "http://svc/?q", "nope"] {
            assert!(Upstream::parse(bad, "--upstream").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("gateway-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut upstream = Upstream::parse("https://svc", "--upstream").unwrap();
        upstream.ca_file = Some(path);
        let err = connector(&upstream, Duration::from_secs(1), true).unwrap_err();
        assert!(err.to_string().contains("no usable certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
