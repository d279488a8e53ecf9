//! What a proof is matched against besides the token: the server's nonce, the external URL behind a
//! proxy, and the original request at a forward-auth endpoint.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower_jwt_auth::dpop::{DpopConfig, DpopPolicy, OriginalRequest, RotatingNonces};
use tower_jwt_auth::{AuthError, Clock, JwtAuthLayer};

use super::support::*;
use super::{
    ClientKey, URL, app_with, assert_invalid_proof, builder, challenges, dpop_request, error,
    issuer, send,
};

#[tokio::test]
async fn the_server_nonce_flow() {
    let clock = ManualClock::at(now());
    let app = app_with(
        builder(DpopPolicy::Required)
            .clock(Arc::clone(&clock))
            .dpop(DpopConfig::default().nonces(RotatingNonces::new(Duration::from_secs(300)))),
    )
    .await;
    let key = ClientKey::es256();
    let token = key.token();
    // No nonce: 401 use_dpop_nonce with the nonce to use.
    let proof = key.proof("GET", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(matches!(error(&response), AuthError::UseDpopNonce { .. }));
    assert!(challenges(&response)[0].starts_with(r#"DPoP error="use_dpop_nonce""#));
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    // With it: accepted.
    let with_nonce = |nonce: &str| {
        let mut claims = key.claims("GET", URL, &token);
        claims["nonce"] = json!(nonce);
        claims["iat"] = json!(clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs());
        key.sign(&key.header(), &claims)
    };
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&with_nonce(&nonce)]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // A made-up nonce is refused the same way.
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&with_nonce("made-up")]),
    )
    .await;
    assert!(matches!(error(&response), AuthError::UseDpopNonce { .. }));
    // After two rotations the old nonce is stale; the answer carries the new one.
    clock.set(now() + 600);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&with_nonce(&nonce)]),
    )
    .await;
    assert!(matches!(error(&response), AuthError::UseDpopNonce { .. }));
    let rotated = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated, nonce);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&with_nonce(&rotated)]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn htu_is_the_external_url_behind_a_proxy() {
    // The proxy publishes the service at https://public.example.com/api and strips `/api`.
    let app = app_with(
        JwtAuthLayer::<Value>::builder()
            .issuer(issuer(DpopPolicy::Required))
            .external_url("https://Public.Example.com:443/api/"),
    )
    .await;
    let key = ClientKey::es256();
    let token = key.token();
    let public = key.proof("GET", "https://public.example.com/api/orders", &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&public]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // A proof for the internal address (what the service itself sees) is refused.
    let internal = key.proof("GET", "http://10.0.0.7:8080/orders", &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&internal]),
    )
    .await;
    assert_invalid_proof(&response, "htu does not match the request URL", "internal");
}

#[tokio::test]
async fn a_forward_auth_endpoint_checks_the_proof_against_the_original_request() {
    let layer = builder(DpopPolicy::Required).build().await.unwrap();
    // Trusted code in front of the layer sets the original method and URL (as a forward-auth
    // endpoint does from X-Forwarded-*).
    let app = Router::new()
        .route("/auth", get(|| async { "ok" }))
        .layer(layer)
        .layer(axum::middleware::map_request(
            |mut request: Request<Body>| async move {
                let original =
                    OriginalRequest::new(Method::DELETE, "https://shop.example.com/carts/7?x=1")
                        .unwrap();
                request.extensions_mut().insert(original);
                request
            },
        ));
    let key = ClientKey::es256();
    let token = key.token();
    let proof = key.proof("DELETE", "https://shop.example.com/carts/7", &token);
    let response = send(&app, dpop_request(Method::GET, "/auth", &token, &[&proof])).await;
    assert_eq!(response.status(), StatusCode::OK);
    // A proof for the auth endpoint itself is not one for the original request.
    let proof = key.proof("GET", "https://api.example.com/auth", &token);
    let response = send(&app, dpop_request(Method::GET, "/auth", &token, &[&proof])).await;
    assert_invalid_proof(
        &response,
        "htm does not match the request method",
        "auth endpoint",
    );
}
