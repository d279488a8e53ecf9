//! The layer around plain tower/hyper services with non-axum bodies: what reaches the inner service,
//! what never does, custom rejections, readiness, cloning, and a real server over loopback.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use support::*;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_jwt_auth::{AuthError, Claims, Issuer, JwtAuth, JwtAuthLayer, KeySource, VerifiedToken};

#[derive(Debug, Deserialize)]
struct MyClaims {
    sub: String,
}

async fn layer() -> JwtAuthLayer<MyClaims> {
    JwtAuthLayer::builder()
        .issuer(
            Issuer::new(ISSUER)
                .audience(AUDIENCE)
                .key(KeySource::jwks_json(jwks(&[&key()]))),
        )
        .realm("tests")
        .build()
        .await
        .unwrap()
}

/// An inner service with a `String` body that counts its calls and echoes what the layer gave it.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    service_fn(move |request: Request<String>| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let sub = request
                .extensions()
                .get::<Claims<MyClaims>>()
                .map_or("anonymous", |claims| claims.sub.as_str());
            let alg = request
                .extensions()
                .get::<VerifiedToken>()
                .and_then(VerifiedToken::algorithm)
                .map_or("-", |algorithm| algorithm.as_str());
            Ok(Response::new(format!("{sub} {alg} {}", request.body())))
        }
    })
}

fn request(token: Option<&str>) -> Request<String> {
    let mut builder = Request::get("/resource");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body("payload".to_owned()).unwrap()
}

#[tokio::test]
async fn an_accepted_request_reaches_the_inner_service_with_claims_in_extensions() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = layer().await.layer(echo(Arc::clone(&calls)));
    let token = key().sign(&valid_claims());
    let response = service.oneshot(request(Some(&token))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "user-1 EdDSA payload");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_rejected_request_is_answered_without_calling_the_inner_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service = layer().await.layer(echo(Arc::clone(&calls)));
    let expired = key().sign(&claims_with(json!({"exp": now() - 3600})));
    let forged = TestKey::ec("ec-p256", "k").sign(&valid_claims());
    for (request, challenge_value) in [
        (request(None), r#"Bearer realm="tests""#.to_owned()),
        (
            request(Some(&expired)),
            challenge("tests", "invalid_token", "token expired"),
        ),
        (
            request(Some(&forged)),
            challenge("tests", "invalid_token", "algorithm does not match the key"),
        ),
    ] {
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], challenge_value);
        assert_eq!(response.body(), "");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_rejection_response_carries_the_auth_error() {
    let service = layer().await.layer(echo(Arc::default()));
    let missing = service.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(
        missing.extensions().get::<AuthError>(),
        Some(&AuthError::MissingToken)
    );
    let expired = key().sign(&claims_with(json!({"exp": now() - 3600})));
    let response = service.oneshot(request(Some(&expired))).await.unwrap();
    assert_eq!(
        response.extensions().get::<AuthError>(),
        Some(&AuthError::Expired)
    );
}

#[tokio::test]
async fn an_optional_layer_passes_anonymous_requests_without_claims() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = layer().await.optional().layer(echo(Arc::clone(&calls)));
    let response = service.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(response.body(), "anonymous - payload");
    let forged = TestKey::ed25519("other").sign(&valid_claims());
    let response = service.oneshot(request(Some(&forged))).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_custom_rejection_maps_errors_to_a_json_body_and_status() {
    let calls = Arc::new(AtomicUsize::new(0));
    let problem_json = |error: &AuthError| {
        let status = match error {
            AuthError::MissingToken => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        };
        let body = json!({"cause": error.cause(), "detail": error.description()});
        Response::builder()
            .status(status)
            .header("content-type", "application/problem+json")
            .body(body.to_string())
            .unwrap()
    };
    let service = layer()
        .await
        .with_rejection(problem_json)
        .layer(echo(Arc::clone(&calls)));

    let expired = key().sign(&claims_with(json!({"exp": now() - 3600})));
    let response = service
        .clone()
        .oneshot(request(Some(&expired)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(
        response.extensions().get::<AuthError>(),
        Some(&AuthError::Expired)
    );
    let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(body, json!({"cause": "expired", "detail": "token expired"}));

    let missing = service.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = serde_json::from_str(missing.body()).unwrap();
    assert_eq!(body["cause"], "missing_token");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let good = key().sign(&valid_claims());
    let response = service.oneshot(request(Some(&good))).await.unwrap();
    assert_eq!(response.body(), "user-1 EdDSA payload");
}

const PENDING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;

/// A service whose readiness is set from outside; the `Full<Bytes>` body is not axum's.
#[derive(Clone)]
struct Gate {
    state: Arc<AtomicU8>,
}

impl Service<Request<Full<Bytes>>> for Gate {
    type Response = Response<Full<Bytes>>;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.state.load(Ordering::SeqCst) {
            PENDING => Poll::Pending,
            READY => Poll::Ready(Ok(())),
            _ => Poll::Ready(Err("inner service failed")),
        }
    }

    fn call(&mut self, _request: Request<Full<Bytes>>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"inner")))))
    }
}

#[tokio::test]
async fn poll_ready_is_the_inner_services() {
    let state = Arc::new(AtomicU8::new(PENDING));
    let mut service = layer().await.layer(Gate {
        state: Arc::clone(&state),
    });
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_pending());

    state.store(READY, Ordering::SeqCst);
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));

    state.store(FAILED, Ordering::SeqCst);
    assert!(matches!(
        service.poll_ready(&mut cx),
        Poll::Ready(Err("inner service failed"))
    ));
}

#[tokio::test]
async fn works_with_a_full_bytes_body() {
    let state = Arc::new(AtomicU8::new(READY));
    let service = layer().await.layer(Gate { state });
    let token = key().sign(&valid_claims());
    let accepted = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.clone().oneshot(accepted).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"inner");

    let anonymous = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    let response = service.oneshot(anonymous).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
}

fn assert_clone_send_sync<T: Clone + Send + Sync + 'static>(value: &T) -> T {
    value.clone()
}

#[tokio::test]
async fn the_layer_and_its_service_are_clone_and_clones_behave_alike() {
    let layer = layer().await;
    let layer_clone = assert_clone_send_sync(&layer);
    let calls = Arc::new(AtomicUsize::new(0));
    let service: JwtAuth<_, MyClaims, _> = layer_clone.layer(echo(Arc::clone(&calls)));
    let service_clone = service.clone();
    let token = key().sign(&valid_claims());
    for service in [service, service_clone] {
        let response = service.oneshot(request(Some(&token))).await.unwrap();
        assert_eq!(response.body(), "user-1 EdDSA payload");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(layer);
}

#[tokio::test]
async fn a_real_hyper_server_answers_200_with_a_token_and_401_without() {
    let inner = service_fn(|request: Request<Incoming>| async move {
        let sub = request
            .extensions()
            .get::<Claims<MyClaims>>()
            .map_or_else(String::new, |claims| claims.sub.clone());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(sub))))
    });
    let service = layer().await.layer(inner);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{address}/me").parse().unwrap();
    let token = key().sign(&valid_claims());

    let with_token = Request::get(uri.clone())
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap();
    let response = client.request(with_token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"user-1");

    let without = Request::get(uri).body(Empty::new()).unwrap();
    let response = client.request(without).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="tests""#
    );
    server.abort();
}
