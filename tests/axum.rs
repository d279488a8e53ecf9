//! The layer on an axum router: accepted tokens reach the handler with typed claims, rejected ones
//! never do, and the extractors behave with and without the layer.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use support::*;
use tower_jwt_auth::{
    Algorithm, Claims, Issuer, JwtAuthLayer, KeySource, RegisteredClaims, VerifiedToken,
};

#[derive(Debug, Deserialize)]
struct MyClaims {
    #[serde(flatten)]
    registered: RegisteredClaims,
    #[serde(default)]
    name: Option<String>,
}

async fn whoami(Claims(claims): Claims<MyClaims>, token: VerifiedToken) -> String {
    format!(
        "{} {} {}",
        claims.registered.sub.as_deref().unwrap_or("-"),
        token.algorithm().map_or("-", |alg| alg.as_str()),
        claims.name.as_deref().unwrap_or("-"),
    )
}

async fn maybe(claims: Option<Claims<MyClaims>>) -> String {
    match claims {
        Some(claims) => format!("hello {}", claims.registered.sub.as_deref().unwrap_or("-")),
        None => "hello anonymous".to_owned(),
    }
}

async fn layer_for(keys: &[&TestKey]) -> JwtAuthLayer<MyClaims> {
    JwtAuthLayer::builder()
        .issuer(
            Issuer::new(ISSUER)
                .audience(AUDIENCE)
                .key(KeySource::jwks_json(jwks(keys)))
                .key(KeySource::shared_secret(SECRET).with_kid("hmac")),
        )
        .realm("tests")
        .build()
        .await
        .unwrap()
}

fn app(layer: JwtAuthLayer<MyClaims>) -> Router {
    Router::new()
        .route("/me", get(whoami))
        .layer(layer.clone())
        .merge(
            Router::new()
                .route("/maybe", get(maybe))
                .layer(layer.optional()),
        )
}

#[tokio::test]
async fn accepts_every_supported_algorithm_and_hands_over_typed_claims() {
    use jsonwebtoken::Algorithm as J;
    let keys = [
        TestKey::rsa("rsa-a", "rs256", J::RS256),
        TestKey::rsa("rsa-a", "rs384", J::RS384),
        TestKey::rsa("rsa-a", "rs512", J::RS512),
        TestKey::rsa("rsa-b", "ps256", J::PS256),
        TestKey::rsa("rsa-b", "ps384", J::PS384),
        TestKey::rsa("rsa-b", "ps512", J::PS512),
        TestKey::ec("ec-p256", "es256"),
        TestKey::ec("ec-p384", "es384"),
        TestKey::ed25519("eddsa"),
    ];
    let app = app(layer_for(&keys.iter().collect::<Vec<_>>()).await);
    for key in &keys {
        let token = key.sign(&claims_with(json!({"name": "Ada"})));
        let reply = get_with_token(&app, "/me", &token).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: {}",
            key.kid,
            reply.www_authenticate()
        );
        assert_eq!(reply.body, format!("user-1 {} Ada", alg_name(key.alg)));
    }
    for (alg, name) in [
        (J::HS256, "HS256"),
        (J::HS384, "HS384"),
        (J::HS512, "HS512"),
    ] {
        // The 32-byte secret is only long enough for HS256 (RFC 7518 §3.2).
        let token = support::sign_raw(
            &json!({"alg": name, "kid": "hmac"}).to_string(),
            &valid_claims().to_string(),
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
            alg,
        );
        let reply = get_with_token(&app, "/me", &token).await;
        if alg == J::HS256 {
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.body, "user-1 HS256 -");
        } else {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name}");
        }
    }
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_challenge() {
    let app = app(layer_for(&[&TestKey::ed25519("k")]).await);
    let reply = send(&app, Request::get("/me").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.www_authenticate(), r#"Bearer realm="tests""#);
}

#[tokio::test]
async fn bad_token_is_401_invalid_token_and_never_reaches_the_handler() {
    let key = TestKey::ed25519("k");
    let app = app(layer_for(&[&key]).await);
    let expired = key.sign(&claims_with(json!({"exp": now() - 3600})));
    let reply = get_with_token(&app, "/me", &expired).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.www_authenticate(),
        r#"Bearer realm="tests", error="invalid_token", error_description="token expired""#
    );
    assert_eq!(reply.body, "");
}

#[tokio::test]
async fn optional_mode_passes_anonymous_requests_but_rejects_bad_tokens() {
    let key = TestKey::ed25519("k");
    let app = app(layer_for(&[&key]).await);

    let anonymous = send(&app, Request::get("/maybe").body(Body::empty()).unwrap()).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.body, "hello anonymous");

    let good = get_with_token(&app, "/maybe", &key.sign(&valid_claims())).await;
    assert_eq!(good.body, "hello user-1");

    let forged = get_with_token(&app, "/maybe", &TestKey::rs256("k").sign(&valid_claims())).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert!(forged.www_authenticate().contains("invalid_token"));
}

#[tokio::test]
async fn a_required_extractor_behind_an_optional_layer_answers_401() {
    let key = TestKey::ed25519("k");
    let layer = layer_for(&[&key]).await.optional();
    let app = Router::new().route("/me", get(whoami)).layer(layer);
    let reply = send(&app, Request::get("/me").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.www_authenticate(), r#"Bearer realm="tests""#);
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_that_says_so() {
    let app = Router::new()
        .route("/me", get(whoami))
        .route("/maybe", get(maybe));
    for path in ["/me", "/maybe"] {
        let reply = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(reply.body.contains("JwtAuthLayer"), "{}", reply.body);
    }
}

#[tokio::test]
async fn claims_of_another_type_than_the_layer_s_are_a_500() {
    let key = TestKey::ed25519("k");
    let layer: JwtAuthLayer<serde_json::Value> = JwtAuthLayer::builder()
        .issuer(Issuer::new(ISSUER).key(KeySource::jwks_json(jwks(&[&key]))))
        .build()
        .await
        .unwrap();
    let app = Router::new().route("/me", get(whoami)).layer(layer);
    let reply = get_with_token(&app, "/me", &key.sign(&valid_claims())).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn pem_keys_verify_like_jwks_keys() {
    let keys = [
        TestKey::rs256("rsa"),
        TestKey::ec("ec-p256", "p256"),
        TestKey::ec("ec-p384", "p384"),
        TestKey::ed25519("ed"),
    ];
    let mut issuer = Issuer::new(ISSUER).audience(AUDIENCE);
    for key in &keys {
        issuer = issuer.key(KeySource::public_key_pem(&key.public_pem).with_kid(&key.kid));
    }
    let layer: JwtAuthLayer<MyClaims> = JwtAuthLayer::builder()
        .issuer(issuer)
        .build()
        .await
        .unwrap();
    let app = Router::new().route("/me", get(whoami)).layer(layer);
    for key in &keys {
        let reply = get_with_token(&app, "/me", &key.sign(&valid_claims())).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", key.kid);
    }
}

#[tokio::test]
async fn verify_checks_a_token_outside_a_request() {
    let key = TestKey::ed25519("k");
    let layer = layer_for(&[&key]).await;
    let (claims, token) = layer.verify(&key.sign(&valid_claims())).await.unwrap();
    assert_eq!(claims.registered.sub.as_deref(), Some("user-1"));
    assert_eq!(token.algorithm(), Some(Algorithm::EdDSA));
    assert_eq!(token.key_id(), Some("k"));
    assert!(layer.verify("not.a.token").await.is_err());
}
