//! The first load: keys fetched once when the layer is built, discovery and the issuer it pins,
//! unusable keys skipped one by one, each issuer with its own keys, and remote settings checked.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use tower_jwt_auth::{ConfigError, FetchError, Issuer, JwtAuthLayer, KeySource, RefreshPolicy};

use super::support::server::IssuerServer;
use super::support::*;
use super::{app, builder_for, claims_for, eager, layer_for};

#[tokio::test]
async fn keys_are_fetched_once_when_the_layer_is_built() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(&server, RefreshPolicy::default()).await;
    assert_eq!(server.jwks_hits(), 1);

    let app = app(&layer);
    for _ in 0..3 {
        assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
    }
    assert_eq!(server.jwks_hits(), 1, "known keys need no fetch");

    let [status] = &layer.key_sets()[..] else {
        panic!("one issuer")
    };
    assert_eq!(status.issuer.as_deref(), Some(&*server.issuer()));
    assert_eq!(status.jwks_url.as_deref(), Some(&*server.jwks_url()));
    assert_eq!(status.key_count, 1);
    assert!(status.usable && !status.stale);
    assert!(status.age.is_some());
    assert_eq!(status.fetches.ok, 1);
}

#[tokio::test]
async fn discovery_finds_the_jwks_and_pins_the_issuer() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = JwtAuthLayer::<Value>::builder()
        .realm("tests")
        .issuer(Issuer::discover(server.issuer()).audience(AUDIENCE))
        .build()
        .await
        .unwrap();
    assert_eq!((server.oidc_hits(), server.jwks_hits()), (1, 1));
    assert_eq!(
        layer.key_sets()[0].jwks_url.as_deref(),
        Some(&*server.jwks_url())
    );

    let app = app(&layer);
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
    let other_issuer = claims_with(json!({ "iss": "https://elsewhere.example" }));
    assert_invalid_token(
        &get_with_token(&app, "/me", &key.sign(&other_issuer)).await,
        "issuer not allowed",
    );
}

#[tokio::test]
async fn discovery_falls_back_to_oauth_server_metadata() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.serve_metadata(false, true);
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(server.issuer()))
        .build()
        .await
        .unwrap();
    assert_eq!(
        (server.oidc_hits(), server.oauth_hits(), server.jwks_hits()),
        (1, 1, 1)
    );
    let (_, token) = layer.verify(&key.sign(&claims_for(&server))).await.unwrap();
    assert_eq!(token.key_id(), Some("a"));
}

#[tokio::test]
async fn discovery_refuses_metadata_naming_another_issuer() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_metadata_issuer("https://evil.example");
    let error = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(server.issuer()))
        .build()
        .await
        .unwrap_err();
    match &error {
        ConfigError::KeyFetch {
            error: FetchError::Invalid(reason),
            ..
        } => assert!(reason.contains("https://evil.example"), "{reason}"),
        other => panic!("expected an issuer mismatch, got {other}"),
    }
    assert_eq!(
        server.jwks_hits(),
        0,
        "keys of a mismatched issuer are not fetched"
    );

    // The same holds for a trailing-slash difference: the comparison is exact.
    let slash = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(format!("{}/", server.issuer())))
        .build()
        .await;
    assert!(matches!(slash, Err(ConfigError::KeyFetch { .. })));
}

#[tokio::test]
async fn unusable_keys_in_a_fetched_set_are_skipped_one_by_one() {
    let key = TestKey::rs256("good");
    let weak = TestKey::rsa("rsa-1024", "weak", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![
        json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": key.public_jwk["n"], "e": "AQAB"}),
        weak.public_jwk.clone(),
        json!({"kty": "OKP", "crv": "X448", "kid": "x448", "x": "AAAA"}),
        json!({"kty": "whatever", "kid": "unknown"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "broken", "x": "!!", "y": 7}),
        json!({"kty": "oct", "kid": "secret", "k": b64url(SECRET)}),
        key.public_jwk.clone(),
    ])
    .await;
    let layer = layer_for(&server, RefreshPolicy::default()).await;
    assert_eq!(layer.key_sets()[0].key_count, 1);
    let app = app(&layer);
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
    // The 1024-bit key can't sign here; a token naming its kid shows it was skipped (had it been
    // kept, the answer would be "signature invalid").
    let naming_weak = TestKey::rs256("weak").sign(&claims_for(&server));
    assert_invalid_token(
        &get_with_token(&app, "/me", &naming_weak).await,
        "no key for this token",
    );
    // A shared secret published in a JWKS is never trusted: anyone can read it.
    let forged = hs256(SECRET, Some("secret"), &claims_for(&server));
    assert_eq!(
        get_with_token(&app, "/me", &forged).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn each_issuer_verifies_only_with_its_own_fetched_keys() {
    let key_a = TestKey::rs256("a");
    let key_b = TestKey::ec("ec-p256", "b");
    let server_a = IssuerServer::start(vec![key_a.public_jwk.clone()]).await;
    let server_b = IssuerServer::start(vec![key_b.public_jwk.clone()]).await;
    let layer = JwtAuthLayer::<Value>::builder()
        .realm("tests")
        .issuer(Issuer::discover(server_a.issuer()).audience(AUDIENCE))
        .issuer(Issuer::discover(server_b.issuer()).audience(AUDIENCE))
        .refresh_policy(eager())
        .build()
        .await
        .unwrap();
    let app = app(&layer);
    assert_eq!(layer.key_sets().len(), 2);
    assert_ok(&get_with_token(&app, "/me", &key_a.sign(&claims_for(&server_a))).await);
    assert_ok(&get_with_token(&app, "/me", &key_b.sign(&claims_for(&server_b))).await);

    // A token claiming issuer A but signed with B's key: A's keys don't have it, even after a
    // refetch from A; B is never asked.
    let b_hits = server_b.jwks_hits();
    assert_invalid_token(
        &get_with_token(&app, "/me", &key_b.sign(&claims_for(&server_a))).await,
        "no key for this token",
    );
    assert_eq!(server_b.jwks_hits(), b_hits);
}

#[tokio::test]
async fn remote_settings_are_checked() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let zero_interval = builder_for(
        &server,
        RefreshPolicy::default().min_interval(Duration::ZERO),
    )
    .build()
    .await;
    assert!(matches!(
        zero_interval,
        Err(ConfigError::InvalidSetting { .. })
    ));

    let two_remotes = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(server.issuer()).key(KeySource::jwks_url(server.jwks_url())))
        .build()
        .await;
    assert!(matches!(
        two_remotes,
        Err(ConfigError::MultipleRemoteSources(_))
    ));
    assert_eq!(server.jwks_hits(), 0);
}
