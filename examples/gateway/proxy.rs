//! Forwarding a request to the upstream with `hyper-util`'s pooled client: hop-by-hop headers
//! dropped, `X-Forwarded-*` set, the verified claims added as headers (after removing any copy
//! the client sent), bodies streamed both ways.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::config::{Forwarding, ISS_HEADER, SCOPE_HEADER, SUB_HEADER, Upstream};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The hop-by-hop headers of RFC 9110 §7.6.1 (and the legacy ones proxies also drop).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Removes the hop-by-hop headers, including those the `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// The scopes of a token: `scope` (space-separated string, RFC 8693/9068) and `scp` (an array,
/// or a space-separated string as some issuers send it).
pub fn scopes(claims: &Value) -> Vec<&str> {
    let mut scopes = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(text)) => scopes.extend(text.split_whitespace()),
            Some(Value::Array(items)) => scopes.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    scopes.retain(|scope| seen.insert(*scope));
    scopes
}

/// Which claims go to the upstream, in which headers.
#[derive(Debug, Clone)]
pub struct ClaimHeaders {
    /// Claim → header: `sub`, `iss`, then the configured ones.
    claims: Vec<(String, HeaderName)>,
    scope: HeaderName,
    payload: Option<HeaderName>,
}

impl ClaimHeaders {
    pub fn new(forwarding: &Forwarding) -> Self {
        let mut claims = vec![
            ("sub".to_owned(), HeaderName::from_static(SUB_HEADER)),
            ("iss".to_owned(), HeaderName::from_static(ISS_HEADER)),
        ];
        claims.extend(forwarding.claim_headers.iter().cloned());
        Self {
            claims,
            scope: HeaderName::from_static(SCOPE_HEADER),
            payload: forwarding.claims_header.clone(),
        }
    }

    /// Every header name the gateway sets from claims.
    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.claims
            .iter()
            .map(|(_, header)| header)
            .chain(std::iter::once(&self.scope))
            .chain(self.payload.iter())
    }

    /// Removes every header the gateway sets from claims, whoever sent it.
    pub fn remove_all(&self, headers: &mut HeaderMap) {
        for name in self.names() {
            headers.remove(name);
        }
    }

    /// Adds the headers for verified `claims`. A claim that is absent, or whose value can't be a
    /// header value (control characters), is left out.
    pub fn insert(&self, headers: &mut HeaderMap, claims: &Value) {
        for (claim, header) in &self.claims {
            let text = match claims.get(claim) {
                None | Some(Value::Null) => continue,
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            };
            match HeaderValue::from_bytes(text.as_bytes()) {
                Ok(value) => {
                    headers.insert(header.clone(), value);
                }
                Err(_) => {
                    tracing::debug!(claim, header = %header, "claim not forwarded: not a valid header value")
                }
            }
        }
        let scopes = scopes(claims);
        if !scopes.is_empty()
            && let Ok(value) = HeaderValue::from_str(&scopes.join(" "))
        {
            headers.insert(self.scope.clone(), value);
        }
        if let Some(header) = &self.payload
            && let Ok(value) = HeaderValue::try_from(URL_SAFE_NO_PAD.encode(claims.to_string()))
        {
            headers.insert(header.clone(), value);
        }
    }
}

/// Sends requests to the upstream.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Body>,
    upstream: Upstream,
    timeout: Duration,
    claim_headers: ClaimHeaders,
    forward_authorization: bool,
}

/// Why a request could not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Connection refused, reset, or a broken response: `502`.
    Unreachable,
    /// No response headers within the timeout: `504`.
    Timeout,
}

impl UpstreamFailure {
    pub fn label(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
        }
    }
}

impl Forwarder {
    pub fn new(upstream: Upstream, timeout: Duration, forwarding: &Forwarding) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            client,
            upstream,
            timeout,
            claim_headers: ClaimHeaders::new(forwarding),
            forward_authorization: forwarding.forward_authorization,
        }
    }

    /// Forwards `request` (with the verified `claims`, or `None` on a public path) and returns
    /// the upstream's response, or a `502`/`504` with the failure in its extensions.
    pub async fn forward(&self, request: Request<Body>, claims: Option<&Value>) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let client_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
        });

        let headers = &mut parts.headers;
        remove_hop_by_hop(headers);
        self.claim_headers.remove_all(headers);
        if !self.forward_authorization {
            headers.remove(header::AUTHORIZATION);
        }
        // The client sets `Host` from the upstream URI; `Expect: 100-continue` was answered by
        // this hop (the body is streamed on as it comes).
        headers.remove(header::HOST);
        headers.remove(header::EXPECT);
        set_forwarded(headers, client_ip, original_host);
        if let Some(claims) = claims {
            self.claim_headers.insert(headers, claims);
        }

        let uri = match self.upstream_uri(&parts.uri) {
            Ok(uri) => uri,
            Err(err) => {
                tracing::warn!(error = %err, "cannot build the upstream URI");
                return failure_response(UpstreamFailure::Unreachable);
            }
        };
        let mut upstream_request = Request::new(body);
        *upstream_request.method_mut() = parts.method;
        *upstream_request.uri_mut() = uri;
        *upstream_request.version_mut() = Version::HTTP_11;
        *upstream_request.headers_mut() = parts.headers;

        match tokio::time::timeout(self.timeout, self.client.request(upstream_request)).await {
            Err(_) => {
                tracing::warn!(upstream = %self.upstream.display(), timeout_ms = self.timeout.as_millis() as u64, "upstream timed out");
                failure_response(UpstreamFailure::Timeout)
            }
            Ok(Err(err)) => {
                tracing::warn!(upstream = %self.upstream.display(), error = %error_chain(&err), "upstream request failed");
                failure_response(UpstreamFailure::Unreachable)
            }
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
        }
    }

    /// The upstream's base URL joined with the request's path and query.
    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(format!("{}{path_and_query}", self.upstream.base_path))
            .build()
    }
}

/// `X-Forwarded-For` gets the client's address appended; `-Proto` and `-Host` are replaced.
fn set_forwarded(headers: &mut HeaderMap, client_ip: Option<IpAddr>, host: Option<HeaderValue>) {
    if let Some(ip) = client_ip {
        let mut chain: Vec<String> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .collect();
        chain.push(ip.to_string());
        if let Ok(value) = HeaderValue::from_str(&chain.join(", ")) {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// `502 Bad Gateway` or `504 Gateway Timeout`, with the failure in the extensions for metrics.
pub fn failure_response(failure: UpstreamFailure) -> Response<Body> {
    let (status, text) = match failure {
        UpstreamFailure::Unreachable => (StatusCode::BAD_GATEWAY, "upstream unreachable\n"),
        UpstreamFailure::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
    };
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.extensions_mut().insert(failure);
    response
}

/// An error and its sources on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn scopes_come_from_scope_and_scp() {
        assert_eq!(scopes(&json!({"scope": "a  b"})), ["a", "b"]);
        assert_eq!(scopes(&json!({"scp": ["a", "c", 3]})), ["a", "c"]);
        assert_eq!(
            scopes(&json!({"scope": "a b", "scp": ["b", "c"]})),
            ["a", "b", "c"]
        );
        assert_eq!(scopes(&json!({"scp": "x y"})), ["x", "y"]);
        assert!(scopes(&json!({"scope": 1})).is_empty());
    }

    #[test]
    fn claims_become_headers_and_spoofed_ones_go() {
        let forwarding = Forwarding {
            claim_headers: vec![
                ("email".into(), HeaderName::from_static("x-auth-email")),
                ("roles".into(), HeaderName::from_static("x-auth-roles")),
            ],
            claims_header: Some(HeaderName::from_static("x-auth-claims")),
            forward_authorization: false,
        };
        let claim_headers = ClaimHeaders::new(&forwarding);
        let mut headers = HeaderMap::new();
        for name in [
            "x-auth-sub",
            "x-auth-email",
            "x-auth-scope",
            "x-auth-claims",
        ] {
            headers.insert(name, HeaderValue::from_static("spoofed"));
        }
        claim_headers.remove_all(&mut headers);
        assert!(headers.is_empty(), "{headers:?}");
        let claims = json!({"sub": "alice", "iss": "https://i/", "roles": ["a", "b"], "scope": "read", "email": "bad\nvalue"});
        claim_headers.insert(&mut headers, &claims);
        assert_eq!(headers["x-auth-sub"], "alice");
        assert_eq!(headers["x-auth-iss"], "https://i/");
        assert_eq!(headers["x-auth-roles"], r#"["a","b"]"#);
        assert_eq!(headers["x-auth-scope"], "read");
        assert!(
            !headers.contains_key("x-auth-email"),
            "control characters are not forwarded"
        );
        let payload = URL_SAFE_NO_PAD
            .decode(headers["x-auth-claims"].as_bytes())
            .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&payload).unwrap(), claims);
    }

    #[test]
    fn forwarded_headers_append_the_client_and_replace_the_rest() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        headers.insert(&X_FORWARDED_HOST, HeaderValue::from_static("evil"));
        set_forwarded(
            &mut headers,
            Some("127.0.0.1".parse().unwrap()),
            Some(HeaderValue::from_static("gw.example")),
        );
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
        assert_eq!(headers[&X_FORWARDED_HOST], "gw.example");
    }
}
