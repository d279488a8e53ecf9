//! The verified-token cache: a hit gives the same answer a full verification would, for exactly the
//! same bytes only, never past `exp`, never once the signing key has left the key set, and with the
//! user validators run again.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::{Value, json};
use support::server::{IssuerServer, eventually};
use support::*;
use tower_jwt_auth::{Claims, Issuer, JwtAuthLayer, KeySource, RefreshPolicy};

fn app(layer: JwtAuthLayer<Value>) -> Router {
    Router::new()
        .route(
            "/me",
            get(|Claims(claims): Claims<Value>| async move { claims["sub"].to_string() }),
        )
        .layer(layer)
}

fn static_issuer(key: &TestKey) -> Issuer {
    Issuer::new(ISSUER)
        .audience(AUDIENCE)
        .key(KeySource::jwks_json(jwks(&[key])))
}

#[tokio::test]
async fn a_repeated_token_gets_the_same_claims() {
    let key = TestKey::rs256("a");
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(static_issuer(&key))
        .build()
        .await
        .unwrap();
    let token = key.sign(&valid_claims());
    let (first, first_token) = layer.verify(&token).await.unwrap();
    let (second, second_token) = layer.verify(&token).await.unwrap();
    assert_eq!(first.0, second.0);
    assert_eq!(first_token.key_id(), second_token.key_id());
    assert_eq!(
        first_token.registered_claims().exp,
        second_token.registered_claims().exp
    );
}

#[tokio::test]
async fn a_cached_token_with_any_byte_changed_is_verified_afresh() {
    let key = TestKey::rs256("a");
    let app = app(JwtAuthLayer::builder()
        .realm("tests")
        .issuer(static_issuer(&key))
        .build()
        .await
        .unwrap());
    let token = key.sign(&valid_claims());
    assert_eq!(
        get_with_token(&app, "/me", &token).await.status,
        StatusCode::OK
    );

    // Same header and payload, another signature.
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{signing_input}.{flipped}{}", &signature[1..]);
    assert_invalid_token(
        &get_with_token(&app, "/me", &forged).await,
        "signature invalid",
    );
    // Same signature, another payload.
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let other_payload = b64url(claims_with(json!({"sub": "admin"})).to_string().as_bytes());
    assert_invalid_token(
        &get_with_token(
            &app,
            "/me",
            &format!("{header}.{other_payload}.{signature}"),
        )
        .await,
        "signature invalid",
    );
}

#[tokio::test]
async fn validators_run_on_every_request_even_on_a_hit() {
    let key = TestKey::rs256("a");
    let calls = Arc::new(AtomicUsize::new(0));
    let denied = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let layer = JwtAuthLayer::<Value>::builder()
        .realm("tests")
        .issuer(static_issuer(&key))
        .validate({
            let (calls, denied) = (Arc::clone(&calls), Arc::clone(&denied));
            move |claims| {
                calls.fetch_add(1, Ordering::SeqCst);
                let sub = claims["sub"].as_str().unwrap_or_default();
                if denied.lock().unwrap().iter().any(|d| d == sub) {
                    Err("user is blocked".into())
                } else {
                    Ok(())
                }
            }
        })
        .build()
        .await
        .unwrap();
    let app = app(layer);
    let token = key.sign(&valid_claims());
    for _ in 0..3 {
        assert_eq!(
            get_with_token(&app, "/me", &token).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // A deny list consulted by a validator takes effect at once for a cached token.
    denied.lock().unwrap().push("user-1".to_owned());
    assert_invalid_token(
        &get_with_token(&app, "/me", &token).await,
        "user is blocked",
    );
}

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires() {
    let key = TestKey::rs256("a");
    let layer = JwtAuthLayer::<Value>::builder()
        .realm("tests")
        .issuer(static_issuer(&key))
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let app = app(layer);
    let token = key.sign(&claims_with(json!({"exp": now() + 2})));
    assert_eq!(
        get_with_token(&app, "/me", &token).await.status,
        StatusCode::OK
    );
    eventually("the token to expire", async || {
        get_with_token(&app, "/me", &token).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_invalid_token(&get_with_token(&app, "/me", &token).await, "token expired");
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_leaves_the_key_set() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    let layer = JwtAuthLayer::<Value>::builder()
        .realm("tests")
        .issuer(Issuer::new(server.issuer()).key(KeySource::jwks_url(server.jwks_url())))
        .refresh_policy(RefreshPolicy::default().unknown_kid_cooldown(Duration::ZERO))
        .build()
        .await
        .unwrap();
    let app = app(layer);
    let claims = claims_with(json!({"iss": server.issuer()}));
    let old_token = old.sign(&claims);
    assert_eq!(
        get_with_token(&app, "/me", &old_token).await.status,
        StatusCode::OK
    );

    // The provider withdraws the old key; a token under the new one makes the layer refetch.
    server.set_keys(vec![new.public_jwk.clone()]);
    assert_eq!(
        get_with_token(&app, "/me", &new.sign(&claims)).await.status,
        StatusCode::OK
    );
    assert_invalid_token(
        &get_with_token(&app, "/me", &old_token).await,
        "no key for this token",
    );
}

#[tokio::test]
async fn a_key_still_published_keeps_its_cached_tokens_across_a_refresh() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::new(server.issuer()).key(KeySource::jwks_url(server.jwks_url())))
        .refresh_policy(RefreshPolicy::default().unknown_kid_cooldown(Duration::ZERO))
        .build()
        .await
        .unwrap();
    let claims = claims_with(json!({"iss": server.issuer()}));
    let token = key.sign(&claims);
    layer.verify(&token).await.unwrap();
    // A refetch brings the same key again (and an unrelated one).
    let other = TestKey::ed25519("other");
    server.set_keys(vec![key.public_jwk.clone(), other.public_jwk.clone()]);
    layer.verify(&other.sign(&claims)).await.unwrap();
    assert_eq!(server.jwks_hits(), 2);
    layer.verify(&token).await.unwrap();
}

#[tokio::test]
async fn the_cache_can_be_switched_off() {
    let key = TestKey::ed25519("a");
    let layer = JwtAuthLayer::<Value>::builder()
        .realm("tests")
        .issuer(static_issuer(&key))
        .token_cache_bytes(0)
        .build()
        .await
        .unwrap();
    let app = app(layer);
    let token = key.sign(&valid_claims());
    for _ in 0..2 {
        assert_eq!(
            get_with_token(&app, "/me", &token).await.status,
            StatusCode::OK
        );
    }
}
