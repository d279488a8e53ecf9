//! Checking a verified token's sender constraint (`cnf`) against the request that carried it.

use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Method, Request};
use serde::Deserialize;
use url::{Position, Url};

use super::proof::{ProofKeys, access_token_hash, verify_proof};
use super::{DpopConfig, DpopPolicy, InMemoryReplayCache, NonceSource, ReplayCache, ReplayCheck};
use crate::algorithm::AlgorithmSet;
use crate::claims::VerifiedToken;
use crate::error::{AuthError, ConfigError};
use crate::json::JsonObject;
use crate::token::Scheme;

/// The `cnf` (confirmation) claim of a token (RFC 7800): what the token is bound to.
///
/// Read from [`VerifiedToken::confirmation`]; a handler can log the key thumbprint or bind its
/// own state to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    jkt: Option<Box<str>>,
    x5t_s256: Option<Box<str>>,
}

impl Confirmation {
    /// `cnf.jkt`: the RFC 7638 SHA-256 thumbprint of the DPoP key the token is bound to.
    pub fn jkt(&self) -> Option<&str> {
        self.jkt.as_deref()
    }

    /// `cnf.x5t#S256`: the SHA-256 thumbprint of the client certificate the token is bound to
    /// (RFC 8705 §3.1).
    pub fn x5t_s256(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    /// Whether the token is bound to a key or a certificate.
    pub fn is_bound(&self) -> bool {
        self.jkt.is_some() || self.x5t_s256.is_some()
    }

    /// Reads `cnf` from a token's claims: absent or `null` is unbound; present, it must be an
    /// object whose `jkt` and `x5t#S256`, if there, are strings.
    pub(crate) fn from_claims(claims: &JsonObject<'_>) -> Result<Self, AuthError> {
        #[derive(Deserialize)]
        struct Cnf {
            jkt: Option<String>,
            #[serde(rename = "x5t#S256")]
            x5t_s256: Option<String>,
        }
        if !claims.has("cnf") {
            return Ok(Self::default());
        }
        let cnf: Cnf = claims
            .get("cnf")
            .map_err(|()| AuthError::InvalidClaim("cnf".into()))?
            .ok_or(AuthError::InvalidClaim("cnf".into()))?;
        Ok(Self {
            jkt: cnf.jkt.map(String::into_boxed_str),
            x5t_s256: cnf.x5t_s256.map(String::into_boxed_str),
        })
    }
}

/// The DER certificate a client authenticated the TLS connection with (RFC 8705), put into the
/// request extensions by the TLS-terminating server (or by trusted code reading a proxy's header).
///
/// A token with `cnf.x5t#S256` is accepted only when this extension is present and its SHA-256
/// matches. Insert it only from the TLS layer: the layer trusts it as given. With a rustls
/// server that requires client certificates (`WebPkiClientVerifier`), per connection
/// (`tests/mtls.rs` runs the whole server):
///
/// ```
/// use http::Request;
/// use tower::Layer as _;
/// use tower_jwt_auth::ClientCertificate;
///
/// /// Wraps `app` for one accepted TLS connection.
/// fn with_client_certificate<S, B>(
///     tls: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
///     app: S,
/// ) -> tower::util::MapRequest<S, impl Fn(Request<B>) -> Request<B> + Clone> {
///     let certificate = tls
///         .get_ref()
///         .1
///         .peer_certificates()
///         .and_then(|chain| chain.first())
///         .map(|der| ClientCertificate::new(der.to_vec()));
///     tower::util::MapRequestLayer::new(move |mut request: Request<B>| {
///         if let Some(certificate) = &certificate {
///             request.extensions_mut().insert(certificate.clone());
///         }
///         request
///     })
///     .layer(app)
/// }
/// # let _ = with_client_certificate::<tower::util::BoxCloneService<Request<()>, (), ()>, ()>;
/// ```
///
/// Behind a TLS-terminating proxy, trusted code can build it from the proxy's header instead
/// (e.g. nginx's `$ssl_client_escaped_cert`, URL-encoded PEM), after removing any copy of that
/// header the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(Arc<[u8]>);

impl ClientCertificate {
    /// The certificate, DER-encoded.
    pub fn new(der: impl Into<Arc<[u8]>>) -> Self {
        Self(der.into())
    }

    /// The certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// `base64url(SHA-256(DER))`: the `x5t#S256` a token bound to it carries.
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &self.0))
    }
}

/// The method and URL the client addressed, for a layer that does not see the client's request
/// itself: a forward-auth endpoint (nginx `auth_request`, Traefik `forwardAuth`) reads them from
/// the proxy's `X-Forwarded-*` headers and inserts this extension before the layer runs. The DPoP
/// proof's `htm` and `htu` are then compared with these instead of the request's own.
///
/// Only trusted code may insert it: whoever sets it chooses what the proof is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequest {
    pub(crate) method: Method,
    pub(crate) url: Arc<str>,
}

impl OriginalRequest {
    /// The client's method and absolute URL (query and fragment are ignored). `None` if `url` is
    /// not an absolute `http` or `https` URL.
    pub fn new(method: Method, url: &str) -> Option<Self> {
        normalize(url).map(|url| Self {
            method,
            url: url.into(),
        })
    }
}

/// `url` without query and fragment, normalised by RFC 3986 §6.2.2 and §6.2.3 as far as the
/// WHATWG parser goes: scheme and host lower-case, default port dropped, dot segments removed,
/// an empty path as `/`. `None` if it is not an absolute `http`/`https` URL.
fn normalize(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    Some(url[..Position::AfterPath].to_owned())
}

/// The external base URL, checked: absolute `http`/`https`, no query or fragment.
pub(crate) fn external_base(url: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidSetting {
        name: "external_url",
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(url).map_err(|err| invalid(&err.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid("must be an absolute http or https URL"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("must have no query or fragment"));
    }
    Ok(parsed)
}

/// What a request presents for the sender-constraint check, owned so that it can wait with a
/// pending decision. Cheap: header values and the certificate are shared bytes, and the URL is
/// built only for a `DPoP` request.
#[derive(Debug)]
pub(crate) struct Presented {
    scheme: Scheme,
    proof: ProofHeader,
    method: Method,
    /// The normalised URL the client addressed, without query: only for a `DPoP` request.
    url: Option<String>,
    certificate: Option<ClientCertificate>,
}

#[derive(Debug)]
enum ProofHeader {
    None,
    One(HeaderValue),
    Many,
}

/// The sender-constraint settings of a layer: each issuer's DPoP policy, how proofs are checked,
/// and the external URL.
pub(crate) struct SenderConstraint {
    /// Each issuer's `iss` (`None` for a sole issuer without `iss` check) and policy, in the
    /// verifier's order.
    policies: Box<[(Option<Box<str>>, DpopPolicy)]>,
    /// Whether some issuer requires DPoP (else a bearer token's issuer needs no look-up).
    any_required: bool,
    dpop: Option<ProofChecker>,
    external_url: Option<Url>,
}

struct ProofChecker {
    algorithms: AlgorithmSet,
    window: i64,
    replay: Arc<dyn ReplayCache>,
    nonces: Option<Arc<dyn NonceSource>>,
    max_len: usize,
    /// The proof keys already prepared, by their proofs' headers.
    keys: ProofKeys,
}

impl std::fmt::Debug for SenderConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderConstraint")
            .field("policies", &self.policies)
            .field("dpop", &self.dpop.is_some())
            .field("external_url", &self.external_url.as_ref().map(Url::as_str))
            .finish()
    }
}

impl SenderConstraint {
    /// Prepares the settings. DPoP for any issuer needs an external URL and asymmetric
    /// algorithms.
    pub(crate) fn new(
        policies: Vec<(Option<String>, DpopPolicy)>,
        config: DpopConfig,
        external_url: Option<Url>,
        max_len: usize,
    ) -> Result<Self, ConfigError> {
        let enabled = policies
            .iter()
            .any(|(_, policy)| *policy != DpopPolicy::Disabled);
        let algorithms = config.algorithm_set();
        if algorithms.is_empty() || config.algorithms.iter().any(|alg| alg.is_symmetric()) {
            return Err(ConfigError::InvalidSetting {
                name: "dpop",
                reason: "proof algorithms must be a non-empty list of asymmetric ones".to_owned(),
            });
        }
        if enabled && external_url.is_none() {
            return Err(ConfigError::InvalidSetting {
                name: "external_url",
                reason: "DPoP needs the URL clients address this service by (the proofs' htu); \
                         set JwtAuthBuilder::external_url"
                    .to_owned(),
            });
        }
        let dpop = enabled.then(|| ProofChecker {
            algorithms,
            window: i64::try_from(config.window.as_secs()).unwrap_or(i64::MAX),
            replay: config
                .replay
                .unwrap_or_else(|| Arc::new(InMemoryReplayCache::default())),
            nonces: config.nonces,
            max_len,
            keys: ProofKeys::default(),
        });
        Ok(Self {
            any_required: policies
                .iter()
                .any(|(_, policy)| *policy == DpopPolicy::Required),
            policies: policies
                .into_iter()
                .map(|(iss, policy)| (iss.map(String::into_boxed_str), policy))
                .collect(),
            dpop,
            external_url,
        })
    }

    /// Whether `Authorization: DPoP` is read at all.
    pub(crate) fn dpop_enabled(&self) -> bool {
        self.dpop.is_some()
    }

    /// Whether some issuer still accepts plain bearer tokens.
    pub(crate) fn bearer_accepted(&self) -> bool {
        self.policies
            .iter()
            .any(|(_, policy)| *policy != DpopPolicy::Required)
    }

    fn policy_for(&self, iss: Option<&str>) -> DpopPolicy {
        if let [(None, only)] = &*self.policies {
            return *only;
        }
        self.policies
            .iter()
            .find(|(known, _)| known.as_deref() == iss && iss.is_some())
            .map_or(DpopPolicy::Disabled, |(_, policy)| *policy)
    }

    /// What `request` presents. `scheme` is how its token came.
    pub(crate) fn presented<B>(&self, request: &Request<B>, scheme: Scheme) -> Presented {
        let certificate = request.extensions().get::<ClientCertificate>().cloned();
        if scheme == Scheme::Bearer || self.dpop.is_none() {
            return Presented {
                scheme,
                proof: ProofHeader::None,
                method: Method::GET,
                url: None,
                certificate,
            };
        }
        let mut values = request.headers().get_all("dpop").iter();
        let proof = match (values.next(), values.next()) {
            (None, _) => ProofHeader::None,
            (Some(one), None) => ProofHeader::One(one.clone()),
            (Some(_), Some(_)) => ProofHeader::Many,
        };
        let original = request.extensions().get::<OriginalRequest>();
        let method = super::method_of(request.method(), original);
        let url = match (original, &self.external_url) {
            (Some(original), _) => Some(original.url.to_string()),
            (None, Some(base)) => {
                let prefix = base[..Position::AfterPath].trim_end_matches('/');
                normalize(&format!("{prefix}{}", request.uri().path()))
            }
            (None, None) => None,
        };
        Presented {
            scheme,
            proof,
            method,
            url,
            certificate,
        }
    }

    /// Checks the token's binding against what the request presents, at `now`.
    pub(crate) fn check(
        &self,
        presented: &Presented,
        token: &[u8],
        verified: &VerifiedToken,
        now: i64,
    ) -> Result<(), AuthError> {
        let cnf = verified.confirmation();
        if let Some(expected) = cnf.x5t_s256() {
            let certificate = presented
                .certificate
                .as_ref()
                .ok_or(AuthError::TokenBinding("client certificate required"))?;
            if certificate.thumbprint() != expected {
                return Err(AuthError::TokenBinding(
                    "client certificate does not match the token",
                ));
            }
        }
        // The issuer's policy needs `iss`; a plain bearer token under no `Required` policy (the
        // common case) does not read it.
        let policy = || self.policy_for(verified.registered_claims().iss.as_deref());
        match presented.scheme {
            Scheme::Bearer if cnf.jkt().is_some() => Err(AuthError::TokenBinding(
                "DPoP-bound token sent as a bearer token",
            )),
            Scheme::Bearer if self.any_required && policy() == DpopPolicy::Required => {
                Err(AuthError::TokenBinding("DPoP proof required"))
            }
            Scheme::Bearer => Ok(()),
            Scheme::Dpop => {
                let (Some(checker), DpopPolicy::Allowed | DpopPolicy::Required) =
                    (&self.dpop, policy())
                else {
                    return Err(AuthError::TokenBinding("DPoP not accepted for this issuer"));
                };
                let jkt = cnf
                    .jkt()
                    .ok_or(AuthError::TokenBinding("token is not DPoP-bound"))?;
                checker.check(presented, token, jkt, now)
            }
        }
    }
}

impl ProofChecker {
    fn check(
        &self,
        presented: &Presented,
        token: &[u8],
        jkt: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let invalid = AuthError::InvalidDpopProof;
        let text = match &presented.proof {
            ProofHeader::None => return Err(invalid("no DPoP proof")),
            ProofHeader::Many => return Err(invalid("more than one DPoP header")),
            ProofHeader::One(value) => value
                .to_str()
                .map_err(|_| invalid("proof is not ASCII text"))?,
        };
        if text.len() > self.max_len {
            return Err(invalid("proof too large"));
        }
        let proof = verify_proof(text, self.algorithms, &self.keys)?;
        if proof.htm != presented.method.as_str() {
            return Err(invalid("htm does not match the request method"));
        }
        let expected = presented
            .url
            .as_deref()
            .ok_or(invalid("request URL unknown"))?;
        // `expected` is normalised, and normalising is idempotent (tested below): a proof that
        // sends it byte for byte, as clients do, matches without a second URL parse.
        if proof.htu != expected && normalize(&proof.htu).as_deref() != Some(expected) {
            return Err(invalid("htu does not match the request URL"));
        }
        if now.saturating_sub(proof.iat).unsigned_abs() > self.window.unsigned_abs() {
            return Err(invalid("iat outside the accepted window"));
        }
        if proof.ath.as_deref() != Some(access_token_hash(token).as_str()) {
            return Err(invalid("ath does not match the access token"));
        }
        if proof.jkt != jkt {
            return Err(invalid("proof key does not match the token's cnf.jkt"));
        }
        if let Some(nonces) = &self.nonces {
            let current = proof
                .nonce
                .as_deref()
                .is_some_and(|nonce| nonces.is_valid(nonce, now));
            if !current {
                return Err(AuthError::UseDpopNonce {
                    nonce: nonces.current(now).into(),
                });
            }
        }
        // Last, so that only proofs that passed everything else take a place in the cache.
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(proof.jkt.as_bytes());
        context.update(b"\n");
        context.update(proof.jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        let expires_at = proof.iat.saturating_add(self.window).saturating_add(1);
        match self.replay.check_and_record(key, expires_at, now) {
            ReplayCheck::Fresh => Ok(()),
            ReplayCheck::Seen => Err(invalid("proof replayed")),
            ReplayCheck::Full => Err(invalid("too many recent proofs to check for replay")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_compared_in_normal_form_without_query() {
        for (a, b) in [
            ("HTTPS://API.Example.COM:443/x", "https://api.example.com/x"),
            ("http://h:80/a/./b/../c", "http://h/a/c"),
            ("https://h/p?q=1#f", "https://h/p"),
            ("https://h", "https://h/"),
        ] {
            assert_eq!(normalize(a), normalize(b), "{a} {b}");
            assert!(normalize(a).is_some());
        }
        assert_ne!(normalize("https://h:8443/x"), normalize("https://h/x"));
        assert_ne!(normalize("http://h/x"), normalize("https://h/x"));
        for bad in ["/x", "ftp://h/x", "urn:x", "file:///x", ""] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    /// The `htu` fast path compares a proof's text with a normalised URL: that is sound only if
    /// a normalised URL normalises to itself.
    #[test]
    fn normalising_is_idempotent() {
        for url in [
            "HTTPS://API.Example.COM:443/x",
            "http://h:80/a/./b/../c?q#f",
            "https://h",
            "https://h:8443/%7euser/a%2Fb/%zz",
            "https://[::1]:8080/x y/ü",
            "https://xn--bcher-kva.example/Bücher",
            "https://bücher.example/a//b/./../c/",
            "http://user:pass@h/p",
            "https://h/a\\b/%2e%2E/c",
            "https://127.0.0.1/./",
            "https://0x7f.1/x",
        ] {
            let once = normalize(url).unwrap_or_else(|| panic!("{url}"));
            assert_eq!(normalize(&once).as_deref(), Some(once.as_str()), "{url}");
        }
    }
}
