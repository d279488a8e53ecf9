//! The public API around the request path: the clock, async checks, token sources, CORS
//! preflight, key refresh on demand, `AuthError` as a response, extractors answering with the
//! layer's rejection, readiness under a concurrency limit, and the auto traits of public types.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use support::server::{IssuerServer, eventually};
use support::*;
use tower::{Layer as _, Service as _, ServiceExt as _};
use tower_jwt_auth::{
    AuthError, Authorize, Claims, ClaimsRejection, Clock, DefaultRejection, Issuer, JwtAuth,
    JwtAuthBuilder, JwtAuthLayer, KeySource, RefreshPolicy, RegisteredClaims, ResponseFuture,
    SharedKeys, SignatureVerifier, SystemClock, TokenSource, VerifiedToken,
};

fn builder() -> JwtAuthBuilder<Value> {
    JwtAuthLayer::<Value>::builder().realm("tests").issuer(
        Issuer::new(ISSUER)
            .audience(AUDIENCE)
            .key(KeySource::shared_secret(SECRET)),
    )
}

fn app(layer: JwtAuthLayer<Value>) -> Router {
    Router::new()
        .route("/me", get(|_: Claims<Value>| async { "ok" }))
        .layer(layer)
}

#[tokio::test]
async fn every_time_check_reads_the_configured_clock() {
    let clock = Arc::new(ManualClock::default());
    let issued = 1_000_000_000;
    clock.set(issued);
    let layer = builder()
        .clock(Arc::clone(&clock))
        .leeway(Duration::ZERO)
        .max_token_age(Duration::from_secs(300))
        .build()
        .await
        .unwrap();
    let app = app(layer);
    // A token of 2001, valid for ten minutes, from 60 s after it was issued.
    let token = hs256(
        SECRET,
        None,
        &claims_with(json!({"iat": issued, "nbf": issued + 60, "exp": issued + 600})),
    );
    assert_invalid_token(
        &get_with_token(&app, "/me", &token).await,
        "token not yet valid",
    );
    clock.set(issued + 60);
    assert_eq!(
        get_with_token(&app, "/me", &token).await.status,
        StatusCode::OK
    );
    // Past the maximum age, and (served from the cache or not) past `exp`.
    clock.set(issued + 301);
    assert_invalid_token(&get_with_token(&app, "/me", &token).await, "token too old");
    clock.set(issued + 600);
    assert_invalid_token(&get_with_token(&app, "/me", &token).await, "token expired");
    // The system clock is the default; it is after 2001.
    assert!(SystemClock.now() > UNIX_EPOCH + Duration::from_secs(issued as u64));
}

#[tokio::test]
async fn async_checks_run_after_the_signature_and_on_every_cache_hit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let layer = builder()
        .validate_async(move |claims: Claims<Value>, token: VerifiedToken| {
            let seen = Arc::clone(&seen);
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                // Another task gets a turn: the check really waits.
                tokio::task::yield_now().await;
                assert_eq!(
                    token.registered_claims().sub,
                    claims.0["sub"].as_str().map(str::to_owned)
                );
                match claims.0["sub"].as_str() {
                    Some("mallory") => Err("subject banned".into()),
                    _ => Ok(()),
                }
            }
        })
        .build()
        .await
        .unwrap();
    let app = app(layer.clone());
    let good = hs256(SECRET, None, &valid_claims());
    for _ in 0..3 {
        assert_eq!(
            get_with_token(&app, "/me", &good).await.status,
            StatusCode::OK
        );
    }
    // Once per request, the two cache hits included.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let banned = hs256(SECRET, None, &claims_with(json!({"sub": "mallory"})));
    assert_invalid_token(
        &get_with_token(&app, "/me", &banned).await,
        "subject banned",
    );
    // `verify` runs them too.
    assert_eq!(
        layer.verify(&banned).await.unwrap_err(),
        AuthError::ClaimsRejected("subject banned".into())
    );
    // A bad signature never reaches the check.
    let before = calls.load(Ordering::SeqCst);
    let forged = hs256(&[9; 32], None, &valid_claims());
    assert_invalid_token(
        &get_with_token(&app, "/me", &forged).await,
        "signature invalid",
    );
    assert_eq!(calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn a_token_may_come_as_a_websocket_subprotocol_when_opted_in() {
    let token = hs256(SECRET, None, &valid_claims());
    let request = || {
        Request::get("/me")
            .header(
                "sec-websocket-protocol",
                format!("graphql-ws, access_token, {token}"),
            )
            .body(Body::empty())
            .unwrap()
    };
    let plain = app(builder().build().await.unwrap());
    assert_eq!(
        send(&plain, request()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let opted_in = app(builder()
        .token_source(TokenSource::WebSocketProtocol)
        .build()
        .await
        .unwrap());
    assert_eq!(send(&opted_in, request()).await.status, StatusCode::OK);
    // With the header too, the request carries two tokens.
    let both = Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .header("sec-websocket-protocol", format!("access_token, {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&opted_in, both).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cors_preflights_pass_without_a_token_only_when_allowed() {
    let preflight = || {
        Request::options("/me")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .body(Body::empty())
            .unwrap()
    };
    let strict = Router::new()
        .route(
            "/me",
            get(|| async { "ok" }).options(|| async { "preflight" }),
        )
        .layer(builder().build().await.unwrap());
    assert_eq!(
        send(&strict, preflight()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let allowing = Router::new()
        .route(
            "/me",
            get(|_: Claims<Value>| async { "ok" }).options(|| async { "preflight" }),
        )
        .layer(builder().allow_cors_preflight().build().await.unwrap());
    let reply = send(&allowing, preflight()).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "preflight")
    );
    // A plain OPTIONS (no Origin) or a GET with an Origin still needs a token.
    let bare_options = Request::options("/me").body(Body::empty()).unwrap();
    assert_eq!(
        send(&allowing, bare_options).await.status,
        StatusCode::UNAUTHORIZED
    );
    let cross_origin_get = Request::get("/me")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&allowing, cross_origin_get).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn refresh_keys_fetches_the_rotated_set_now() {
    let old = TestKey::ed25519("old");
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(
            Issuer::new(ISSUER)
                .audience(AUDIENCE)
                .key(KeySource::jwks_url(server.jwks_url())),
        )
        // Neither the schedule nor an unknown kid would refetch during the test.
        .refresh_policy(
            RefreshPolicy::default()
                .min_interval(Duration::from_secs(3600))
                .unknown_kid_cooldown(Duration::from_secs(3600)),
        )
        .build()
        .await
        .unwrap();
    assert_eq!(server.jwks_hits(), 1);
    let rotated = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    server.set_keys(vec![rotated.public_jwk.clone()]);
    layer.refresh_keys().await;
    assert_eq!(server.jwks_hits(), 2);
    assert!(layer.verify(&rotated.sign(&valid_claims())).await.is_ok());
    assert_eq!(
        layer.verify(&old.sign(&valid_claims())).await.unwrap_err(),
        AuthError::UnknownKey
    );
}

#[tokio::test]
async fn auth_error_is_the_default_rfc_6750_response() {
    let response = AuthError::Expired.into_response();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token", error_description="token expired""#
    );
    assert_eq!(
        response.extensions().get::<AuthError>(),
        Some(&AuthError::Expired)
    );
    // So a handler verifying a token itself can use `?`.
    let layer = builder().build().await.unwrap();
    let handler = {
        let layer = layer.clone();
        move |body: String| async move {
            let (claims, _) = layer.verify(&body).await?;
            Ok::<_, AuthError>(claims.0["sub"].as_str().unwrap_or_default().to_owned())
        }
    };
    let app: Router = Router::new().route("/ws", axum::routing::post(handler));
    let post = |body: String| Request::post("/ws").body(Body::from(body)).unwrap();
    let ok = send(&app, post(hs256(SECRET, None, &valid_claims()))).await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "user-1"));
    let expired = hs256(SECRET, None, &claims_with(json!({"exp": now() - 3600})));
    let refused = send(&app, post(expired)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.www_authenticate(),
        r#"Bearer error="invalid_token", error_description="token expired""#
    );
}

#[tokio::test]
async fn extractors_answer_with_the_layers_custom_rejection() {
    let layer = builder()
        .build()
        .await
        .unwrap()
        .optional()
        .with_rejection(|error: &AuthError| {
            Response::builder()
                .status(error.status())
                .header("content-type", "application/problem+json")
                .body(Body::from(format!(
                    r#"{{"title":"{}"}}"#,
                    error.description()
                )))
                .unwrap()
        });
    let app = Router::new()
        .route("/me", get(|_: Claims<Value>| async { "ok" }))
        .route_layer(Authorize::all_scopes(["unused"]).with_rejection(DefaultRejection::default()))
        .route("/open", get(|_: Claims<Value>| async { "ok" }))
        .layer(layer);
    // The optional layer lets an anonymous request through; the extractor refuses it with the
    // layer's own response.
    let reply = send(&app, Request::get("/open").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(reply.body, r#"{"title":"no bearer token in the request"}"#);
}

#[tokio::test]
async fn a_request_waiting_for_keys_keeps_the_readiness_it_reserved() {
    // The unknown-kid wait path in front of an inner service limited to one request at a time:
    // the waiting request holds the ready inner service it took, and releases it when answered.
    let known = TestKey::ed25519("known");
    let server = IssuerServer::start(vec![known.public_jwk.clone()]).await;
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(
            Issuer::new(ISSUER)
                .audience(AUDIENCE)
                .key(KeySource::jwks_url(server.jwks_url())),
        )
        .refresh_policy(RefreshPolicy::default().unknown_kid_cooldown(Duration::ZERO))
        .build()
        .await
        .unwrap();
    let inner = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("inner")))
    });
    // The inner service takes one request at a time: its readiness is a permit, which the
    // waiting request must carry with it (and the wrapping service must not lose).
    let mut service = layer.layer(tower::limit::ConcurrencyLimit::new(inner, 1));
    let rotated = TestKey::rsa("rsa-b", "rotated", jsonwebtoken::Algorithm::RS256);
    let request = |token: &str| {
        Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    server.close_gate();
    server.set_keys(vec![known.public_jwk.clone(), rotated.public_jwk.clone()]);
    service.ready().await.unwrap();
    let waiting = tokio::spawn(service.call(request(&rotated.sign(&valid_claims()))));
    // While it waits for the refetch, the only permit is taken.
    eventually("the refetch to start", async || server.jwks_hits() >= 2).await;
    let mut second = service.clone();
    let ready = futures_ready(&mut second);
    assert!(!ready, "a second request must wait for the permit");
    server.open_gate();
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The permit is back.
    second.ready().await.unwrap();
    let response = second
        .call(request(&known.sign(&valid_claims())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Whether `service` is ready right now, without waiting.
fn futures_ready<S: tower::Service<Request<Body>>>(service: &mut S) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    matches!(service.poll_ready(&mut cx), std::task::Poll::Ready(Ok(())))
}

/// The public types a service is built from cross threads and clone cheaply.
#[test]
fn public_types_are_send_sync_and_clone() {
    fn send_sync<X: Send + Sync>() {}
    fn clone<X: Clone>() {}
    send_sync::<JwtAuthLayer<Value>>();
    clone::<JwtAuthLayer<Value>>();
    send_sync::<JwtAuth<Router, Value, DefaultRejection>>();
    clone::<JwtAuth<Router, Value, DefaultRejection>>();
    fn send<X: Send>() {}
    send::<ResponseFuture<Router, Value, DefaultRejection, Body>>();
    send_sync::<Claims<RegisteredClaims>>();
    clone::<Claims<RegisteredClaims>>();
    send_sync::<VerifiedToken>();
    clone::<VerifiedToken>();
    send_sync::<AuthError>();
    clone::<AuthError>();
    send_sync::<ClaimsRejection>();
    send_sync::<Authorize>();
    clone::<Authorize>();
    send_sync::<SignatureVerifier>();
    send_sync::<tower_jwt_auth::ConfigError>();
    send_sync::<JwtAuthBuilder<Value>>();
}

#[tokio::test]
async fn layers_on_one_shared_key_set_share_its_fetches() {
    let first = TestKey::ed25519("first");
    let server = IssuerServer::start(vec![first.public_jwk.clone()]).await;
    let keys = SharedKeys::builder(KeySource::jwks_url(server.jwks_url()))
        .refresh_policy(RefreshPolicy::default().unknown_kid_cooldown(Duration::ZERO))
        .start()
        .await
        .unwrap();
    let layer_for = |audience: &str| {
        JwtAuthLayer::<Value>::builder()
            .issuer(
                Issuer::new(ISSUER)
                    .audience(audience)
                    .key(KeySource::shared(&keys)),
            )
            .build()
    };
    let orders = layer_for(AUDIENCE).await.unwrap();
    let billing = layer_for("billing").await.unwrap();
    // One fetch at start, whatever the number of layers.
    assert_eq!(server.jwks_hits(), 1);
    let token_for =
        |key: &TestKey, audience: &str| key.sign(&claims_with(json!({"aud": audience})));
    assert!(orders.verify(&token_for(&first, AUDIENCE)).await.is_ok());
    assert!(billing.verify(&token_for(&first, "billing")).await.is_ok());
    // Each layer keeps its own audience.
    assert_eq!(
        billing
            .verify(&token_for(&first, AUDIENCE))
            .await
            .unwrap_err(),
        AuthError::AudienceNotAllowed
    );

    // A rotation found by one layer's refetch serves the other at once.
    let second = TestKey::rsa("rsa-b", "second", jsonwebtoken::Algorithm::RS256);
    server.set_keys(vec![first.public_jwk.clone(), second.public_jwk.clone()]);
    assert!(orders.verify(&token_for(&second, AUDIENCE)).await.is_ok());
    assert_eq!(server.jwks_hits(), 2);
    assert!(billing.verify(&token_for(&second, "billing")).await.is_ok());
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(keys.status().key_count, 2);
    assert_eq!(orders.key_sets()[0].key_count, 2);

    // A shared set is the issuer's only source.
    let mixed = JwtAuthLayer::<Value>::builder()
        .issuer(
            Issuer::new(ISSUER)
                .key(KeySource::shared(&keys))
                .key(KeySource::shared_secret(SECRET)),
        )
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(mixed, tower_jwt_auth::ConfigError::InvalidSetting { .. }),
        "{mixed:?}"
    );
    // A static source can't be shared.
    let err = SharedKeys::start(KeySource::shared_secret(SECRET))
        .await
        .unwrap_err();
    assert!(
        matches!(err, tower_jwt_auth::ConfigError::InvalidSetting { .. }),
        "{err:?}"
    );
}
