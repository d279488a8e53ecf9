//! Rotation through the unknown-`kid` refetch: a rotated key is accepted and a removed one refused,
//! and refetches are coalesced and rate-limited.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;
use tower_jwt_auth::RefreshPolicy;

use super::support::server::{IssuerServer, eventually};
use super::support::*;
use super::{app, claims_for, eager, layer_for};

#[tokio::test]
async fn a_rotated_key_is_accepted_and_a_removed_one_rejected() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    let layer = layer_for(&server, eager()).await;
    let app = app(&layer);

    // The provider publishes a new key and signs with it: the first token under it is accepted,
    // after exactly one refetch.
    server.set_keys(vec![old.public_jwk.clone(), new.public_jwk.clone()]);
    assert_ok(&get_with_token(&app, "/me", &new.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 2);
    assert_ok(&get_with_token(&app, "/me", &old.sign(&claims_for(&server))).await);

    // The old key is withdrawn; once a refetch has happened, it is no longer accepted.
    server.set_keys(vec![new.public_jwk.clone()]);
    let stranger = TestKey::rs256("stranger");
    assert_invalid_token(
        &get_with_token(&app, "/me", &stranger.sign(&claims_for(&server))).await,
        "no key for this token",
    );
    assert_eq!(server.jwks_hits(), 3);
    assert_invalid_token(
        &get_with_token(&app, "/me", &old.sign(&claims_for(&server))).await,
        "no key for this token",
    );
    assert_ok(&get_with_token(&app, "/me", &new.sign(&claims_for(&server))).await);
}

#[tokio::test]
async fn verify_outside_a_request_refetches_too() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    let layer = layer_for(&server, eager()).await;
    server.set_keys(vec![new.public_jwk.clone()]);
    let (_, token) = layer.verify(&new.sign(&claims_for(&server))).await.unwrap();
    assert_eq!(token.key_id(), Some("new"));
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn a_known_kid_with_a_bad_signature_never_refetches() {
    let key = TestKey::rs256("a");
    let impostor = TestKey::rsa("rsa-b", "a", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(&server, eager()).await;
    let app = app(&layer);
    for _ in 0..5 {
        assert_invalid_token(
            &get_with_token(&app, "/me", &impostor.sign(&claims_for(&server))).await,
            "signature invalid",
        );
    }
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn a_kid_still_unknown_after_a_refetch_is_remembered_until_the_next_refresh() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(&server, eager()).await;
    let app = app(&layer);
    let x = TestKey::rs256("x");
    let y = TestKey::rs256("y");

    let unknown = |reply: Reply| assert_invalid_token(&reply, "no key for this token");
    unknown(get_with_token(&app, "/me", &x.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 2);
    unknown(get_with_token(&app, "/me", &x.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 2, "x is known to be unknown");
    unknown(get_with_token(&app, "/me", &y.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 3, "y is not");

    // After that refresh, x may be looked for again: the provider may have published it since.
    server.set_keys(vec![key.public_jwk.clone(), x.public_jwk.clone()]);
    assert_ok(&get_with_token(&app, "/me", &x.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 4);
}

#[tokio::test]
async fn a_thousand_concurrent_requests_with_a_new_kid_cause_one_fetch() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    // A long wait, so that a slow machine can't time the waiting requests out.
    let layer = layer_for(
        &server,
        RefreshPolicy::default().unknown_kid_wait(Duration::from_secs(120)),
    )
    .await;
    let app = app(&layer);
    server.set_keys(vec![old.public_jwk.clone(), new.public_jwk.clone()]);

    // Hold the refetch in flight while the requests pile up behind it.
    server.close_gate();
    let token = new.sign(&claims_for(&server));
    let mut requests = JoinSet::new();
    for _ in 0..1000 {
        let (app, token) = (app.clone(), token.clone());
        requests.spawn(async move { get_with_token(&app, "/me", &token).await.status });
    }
    eventually("the refetch to reach the server", async || {
        server.jwks_hits() == 2
    })
    .await;
    server.open_gate();
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(server.jwks_hits(), 2, "one fetch at build, one refetch");
}

#[tokio::test]
async fn random_unknown_kids_cause_at_most_one_fetch_per_cooldown() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(
        &server,
        RefreshPolicy::default().unknown_kid_cooldown(Duration::from_secs(3600)),
    )
    .await;
    let app = app(&layer);
    let mut requests = JoinSet::new();
    for i in 0..1000 {
        let app = app.clone();
        let token = key.sign_with_header(
            &json!({"alg": "RS256", "kid": format!("random-{i}-{}", fastrand::u64(..))}),
            &claims_for(&server),
        );
        requests.spawn(async move { get_with_token(&app, "/me", &token).await });
    }
    while let Some(reply) = requests.join_next().await {
        assert_invalid_token(&reply.unwrap(), "no key for this token");
    }
    assert!(
        server.jwks_hits() <= 2,
        "{} fetches for one cooldown",
        server.jwks_hits()
    );
    // The real key still works, with no fetch.
    let before = server.jwks_hits();
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), before);
}
