//! Outages: the last good keys keep serving through every kind of failure, `503` while no keys
//! exist, and zero staleness failing closed.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use tower_jwt_auth::{ConfigError, FetchError, JwtAuthLayer, RefreshPolicy};

use super::support::server::{IssuerServer, Mode, eventually};
use super::support::*;
use super::{app, builder_for, claims_for, eager, layer_for};

/// Builds a layer, breaks the server as `breakage` says, makes the layer refetch, and checks
/// that the last good keys keep serving while the failure is visible in the status.
async fn old_keys_keep_serving(
    policy: RefreshPolicy,
    breakage: impl AsyncFnOnce(&mut IssuerServer),
) {
    let key = TestKey::rs256("a");
    let mut server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(&server, policy).await;
    let app = app(&layer);
    let claims = claims_for(&server);
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims)).await);

    breakage(&mut server).await;
    // A token naming an unknown kid makes the layer refetch (the cooldown is zero here).
    let stranger = TestKey::rs256("stranger");
    assert_invalid_token(
        &get_with_token(&app, "/me", &stranger.sign(&claims)).await,
        "no key for this token",
    );
    eventually("the failed fetch", async || {
        layer.key_sets()[0].fetches.failed >= 1
    })
    .await;

    let status = &layer.key_sets()[0];
    assert!(status.usable && status.stale, "{status:?}");
    assert!(status.last_error.is_some());
    assert_eq!(status.key_count, 1);
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims)).await);
}

#[tokio::test]
async fn old_keys_keep_serving_when_the_server_is_down() {
    old_keys_keep_serving(eager(), async |server| server.stop().await).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_a_server_error() {
    old_keys_keep_serving(eager(), async |server| server.set_mode(Mode::Status(500))).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_a_timeout() {
    let policy = eager().fetch_timeout(Duration::from_millis(200));
    old_keys_keep_serving(policy, async |server| server.set_mode(Mode::Hang)).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_a_slow_body() {
    let policy = eager().fetch_timeout(Duration::from_millis(200));
    old_keys_keep_serving(policy, async |server| server.set_mode(Mode::SlowBody)).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_malformed_json() {
    old_keys_keep_serving(eager(), async |server| server.set_mode(Mode::Malformed)).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_a_jwks_without_usable_keys() {
    old_keys_keep_serving(eager(), async |server| {
        server.set_keys(vec![
            json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        ]);
    })
    .await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_an_oversized_body() {
    old_keys_keep_serving(eager(), async |server| {
        server.set_mode(Mode::Oversized(2 * 1024 * 1024));
    })
    .await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_an_oversized_chunked_body() {
    let policy = eager().max_response_size(16 * 1024);
    old_keys_keep_serving(policy, async |server| {
        server.set_mode(Mode::OversizedChunked(64 * 1024));
    })
    .await;
}

#[tokio::test]
async fn without_keys_requests_get_503_until_keys_arrive() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_mode(Mode::Status(500));

    // By default a layer whose keys can't be fetched is not built.
    let error = layer_for_result(&server).await.unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::KeyFetch {
                error: FetchError::Status(500),
                ..
            }
        ),
        "{error}"
    );

    let layer = builder_for(&server, RefreshPolicy::default())
        .allow_start_without_keys()
        .build()
        .await
        .unwrap();
    let app = app(&layer);
    let token = key.sign(&claims_for(&server));
    eventually("a first failed fetch", async || {
        layer.key_sets()[0].fetches.failed >= 1
    })
    .await;
    let reply = get_with_token(&app, "/me", &token).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert!(!layer.key_sets()[0].usable);

    // The background retries pick the keys up once the server recovers.
    server.set_mode(Mode::Serve);
    eventually("the keys to arrive", async || {
        get_with_token(&app, "/me", &token).await.status == StatusCode::OK
    })
    .await;
    assert!(layer.key_sets()[0].usable);
}

async fn layer_for_result(server: &IssuerServer) -> Result<JwtAuthLayer<Value>, ConfigError> {
    builder_for(server, RefreshPolicy::default()).build().await
}

#[tokio::test]
async fn zero_staleness_fails_closed_once_a_refresh_is_missed() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_cache_control("max-age=0");
    let policy = RefreshPolicy::default()
        .min_interval(Duration::from_millis(50))
        .max_staleness(Duration::ZERO);
    let layer = layer_for(&server, policy).await;
    let app = app(&layer);
    let token = key.sign(&claims_for(&server));
    assert_ok(&get_with_token(&app, "/me", &token).await);

    server.set_mode(Mode::Status(503));
    eventually("the layer to fail closed", async || {
        get_with_token(&app, "/me", &token).await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(!layer.key_sets()[0].usable);
}
