//! Forwarding a request to the upstream, over the worker's own HTTP/1.1 connections to a
//! plain-http upstream ([`Http1Pool`]), or with `hyper-util`'s pooled client to an HTTPS one
//! (HTTP/1.1, or HTTP/2 when it offers it) and for `Upgrade` requests: hop-by-hop headers dropped, forwarding headers written by
//! the gateway, the verified claims added as headers (after removing any copy the client sent),
//! the canonical path, bodies streamed both ways, and `Upgrade` requests tunnelled.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures_util::future::Either;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::Forwarding;
use crate::headers::{ClaimHeaders, ClientAddr, remove_hop_by_hop, set_forwarding};
use crate::http1_pool::{Http1Pool, SendError};
use crate::routes::CheckedPath;
use crate::upgrade::{self, TokenFromProtocol};
use crate::upstream::{self, TlsError, Upstream};

type UpstreamConnector = HttpsConnector<HttpConnector>;
type UpstreamClient = Client<UpstreamConnector, Body>;

/// Sends requests to the upstream.
///
/// A client's pooled connection is driven by a task on the runtime that opened it: a worker
/// thread sharing another's pool would hand its requests to that thread. Each worker has a
/// forwarder of its own ([`with_own_pools`](Self::with_own_pools)).
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// A plain-http upstream's connections (requests other than `Upgrade` ones); `None` for an
    /// https upstream, whose requests go through `client`.
    http1: Option<Http1Pool>,
    client: UpstreamClient,
    /// For `Upgrade` requests: HTTP/1.1 only, since an upgrade can't go over HTTP/2.
    upgrade_client: UpstreamClient,
    /// What the clients connect with (TLS settings and roots loaded once), for new pools.
    connector: UpstreamConnector,
    upgrade_connector: UpstreamConnector,
    upstream: Upstream,
    timeout: Duration,
    claim_headers: ClaimHeaders,
    forward_authorization: bool,
}

/// Why a request could not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Connection refused, reset, a TLS failure, or a broken response: `502`.
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
    pub fn new(
        upstream: Upstream,
        timeout: Duration,
        forwarding: &Forwarding,
    ) -> Result<Self, TlsError> {
        let connector = upstream::connector(&upstream, timeout, true)?;
        let upgrade_connector = upstream::connector(&upstream, timeout, false)?;
        Ok(Self {
            http1: Http1Pool::new(&upstream),
            client: pooled(connector.clone()),
            upgrade_client: pooled(upgrade_connector.clone()),
            connector,
            upgrade_connector,
            timeout,
            claim_headers: ClaimHeaders::new(forwarding),
            forward_authorization: forwarding.forward_authorization,
            upstream,
        })
    }

    /// The same forwarding with connection pools of its own (empty at first).
    pub fn with_own_pools(&self) -> Self {
        Self {
            http1: Http1Pool::new(&self.upstream),
            client: pooled(self.connector.clone()),
            upgrade_client: pooled(self.upgrade_connector.clone()),
            ..self.clone()
        }
    }

    /// Forwards `request` to the canonical `path`; the future answers the upstream's response,
    /// or a `502`/`504` with the failure in its extensions. With `authenticated`, the verified
    /// token and claims the layer put in the request's extensions become the claim headers (none
    /// on a public path). An `Upgrade` request answered `101` is tunnelled from then on.
    ///
    /// The request for the upstream is made here, before the future is first polled: the future
    /// holds only it and what the exchange needs, not the client's request or the path (every
    /// request's future is moved into a box behind the JWT layer, so its size is copied each time).
    pub fn forward(
        self: &Arc<Self>,
        mut request: Request<Body>,
        path: &CheckedPath,
        authenticated: bool,
    ) -> impl Future<Output = Response<Body>> + Send + use<> {
        let upgrade = upgrade::requested(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let token_from_protocol = request.extensions().get::<TokenFromProtocol>().is_some();
        match self.upstream_request(request, path, authenticated, upgrade.as_ref()) {
            Ok(upstream_request) => Either::Left(Arc::clone(self).exchange(
                upstream_request,
                client_upgrade,
                token_from_protocol,
            )),
            Err(err) => {
                tracing::warn!(error = %err, "cannot build the upstream URI");
                Either::Right(std::future::ready(failure_response(
                    UpstreamFailure::Unreachable,
                )))
            }
        }
    }

    /// The request for the upstream: hop-by-hop and spoofed headers removed, the forwarding
    /// headers and (with `authenticated`) the claim headers set, the upstream URI for the
    /// canonical `path`; an error when that URI can't be built.
    fn upstream_request(
        &self,
        request: Request<Body>,
        path: &CheckedPath,
        authenticated: bool,
        upgrade: Option<&HeaderValue>,
    ) -> Result<Request<Body>, http::Error> {
        let (mut parts, body) = request.into_parts();
        let client = parts.extensions.remove::<ClientAddr>();
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
        });

        let headers = &mut parts.headers;
        remove_hop_by_hop(headers);
        self.claim_headers.remove_spoofed(headers);
        if !self.forward_authorization {
            headers.remove(header::AUTHORIZATION);
        }
        // The client sets `Host` from the upstream URI; `Expect: 100-continue` was answered by
        // this hop (the body is streamed on as it comes).
        headers.remove(header::HOST);
        headers.remove(header::EXPECT);
        set_forwarding(headers, client.as_ref(), original_host);
        if authenticated {
            self.claim_headers
                .insert_verified(headers, &parts.extensions);
        }
        if let Some(protocol) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol.clone());
        }

        let absolute = upgrade.is_some() || self.http1.is_none();
        let uri = self.upstream_uri(path, &parts.uri, absolute)?;
        let mut upstream_request = Request::new(body);
        *upstream_request.method_mut() = parts.method;
        *upstream_request.uri_mut() = uri;
        *upstream_request.version_mut() = Version::HTTP_11;
        *upstream_request.headers_mut() = parts.headers;
        Ok(upstream_request)
    }

    /// Sends `request` (made by [`upstream_request`](Self::upstream_request)) and answers with
    /// the upstream's response; a client's `Upgrade` request (`client_upgrade`) answered `101`
    /// is tunnelled.
    async fn exchange(
        self: Arc<Self>,
        request: Request<Body>,
        client_upgrade: Option<OnUpgrade>,
        token_from_protocol: bool,
    ) -> Response<Body> {
        // One `await` per way: the futures of the three share their place in this one. `Err`:
        // no response head within the timeout.
        let sent = match (&client_upgrade, &self.http1) {
            (None, Some(pool)) => match pool.send(request, self.timeout).await {
                Err(SendError::Timeout) => Err(()),
                sent => Ok(sent.map_err(SendFailure::from)),
            },
            (Some(_), _) => tokio::time::timeout(self.timeout, send(&self.upgrade_client, request))
                .await
                .map_err(drop),
            (None, None) => tokio::time::timeout(self.timeout, send(&self.client, request))
                .await
                .map_err(drop),
        };
        match sent {
            Err(_) => {
                tracing::warn!(upstream = %self.upstream.display(), timeout_ms = self.timeout.as_millis() as u64, "upstream timed out");
                failure_response(UpstreamFailure::Timeout)
            }
            Ok(Err(err)) => {
                tracing::warn!(upstream = %self.upstream.display(), error = %error_chain(err.as_ref()), "upstream request failed");
                failure_response(UpstreamFailure::Unreachable)
            }
            Ok(Ok(mut response)) => {
                let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                let upgraded = match client_upgrade {
                    Some(client_upgrade) if switching => {
                        let upstream_upgrade = hyper::upgrade::on(&mut response);
                        tokio::spawn(upgrade::tunnel(client_upgrade, upstream_upgrade));
                        response.headers().get(header::UPGRADE).cloned()
                    }
                    _ => None,
                };
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                if let Some(protocol) = upgraded {
                    parts
                        .headers
                        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                    parts.headers.insert(header::UPGRADE, protocol);
                    if token_from_protocol {
                        upgrade::answer_protocol(&mut parts.headers);
                    }
                }
                Response::from_parts(parts, body)
            }
        }
    }

    /// The upstream's base path joined with the canonical path and the request's query; with
    /// `absolute`, after the upstream's scheme and authority (for `hyper-util`'s client).
    fn upstream_uri(
        &self,
        path: &CheckedPath,
        uri: &Uri,
        absolute: bool,
    ) -> Result<Uri, http::Error> {
        let encoded = path.encoded();
        let query = uri.query();
        let mut path_and_query = String::with_capacity(
            self.upstream.base_path.len()
                + encoded.len()
                + query.map_or(0, |query| query.len() + 1),
        );
        path_and_query.push_str(&self.upstream.base_path);
        path_and_query.push_str(&encoded);
        if let Some(query) = query {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        if !absolute {
            return Ok(Uri::from(PathAndQuery::try_from(path_and_query)?));
        }
        Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

type SendFailure = Box<dyn std::error::Error + Send + Sync>;

/// Sends `request` with `client`; the response's body as the server's.
async fn send(
    client: &UpstreamClient,
    request: Request<Body>,
) -> Result<Response<Body>, SendFailure> {
    let response = client.request(request).await?;
    Ok(response.map(Body::new))
}

/// A client with a connection pool of its own: keep-alive, idle connections closed after 60 s.
fn pooled(connector: UpstreamConnector) -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
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
