//! Key selection and pinning: a token is checked only with a key of its own issuer, chosen by
//! `kid`, whose algorithm is fixed by the key and the issuer's allow-list; bad key configuration
//! fails the build with an error that says why, while bad keys inside a JWKS are skipped.

mod support;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use support::*;
use tower_jwt_auth::{Algorithm, Claims, ConfigError, Issuer, JwtAuthLayer, KeySource};

async fn build(issuers: Vec<Issuer>) -> Result<JwtAuthLayer<Value>, ConfigError> {
    let mut builder = JwtAuthLayer::builder().realm("tests");
    for issuer in issuers {
        builder = builder.issuer(issuer);
    }
    builder.build().await
}

async fn app(issuers: Vec<Issuer>) -> Router {
    let layer = build(issuers).await.unwrap();
    Router::new()
        .route("/me", get(|_: Claims<Value>| async { "ok" }))
        .layer(layer)
}

/// `key`'s JWK with `changes` merged in.
fn jwk_with(key: &TestKey, changes: Value) -> Value {
    let mut jwk = key.public_jwk.clone();
    for (name, value) in changes.as_object().unwrap() {
        jwk[name] = value.clone();
    }
    jwk
}

fn jwks_of(keys: &[Value]) -> KeySource {
    KeySource::jwks_json(json!({ "keys": keys }).to_string())
}

#[tokio::test]
async fn a_token_naming_an_unknown_kid_is_rejected() {
    let app = app(vec![issuer_with(KeySource::jwks_json(jwks(&[
        &TestKey::ed25519("a"),
    ])))])
    .await;
    assert_ok(&get_with_token(&app, "/me", &TestKey::ed25519("a").sign(&valid_claims())).await);
    // Same key material, another kid: the key is not looked for elsewhere.
    let reply = get_with_token(&app, "/me", &TestKey::ed25519("b").sign(&valid_claims())).await;
    assert_invalid_token(&reply, "no key for this token");
}

#[tokio::test]
async fn a_known_kid_with_an_algorithm_foreign_to_its_key_is_rejected() {
    let rsa = TestKey::rs256("rsa");
    let app = app(vec![issuer_with(KeySource::jwks_json(jwks(&[&rsa])))]).await;
    let ec = TestKey::ec("ec-p256", "rsa");
    let ed = TestKey::ed25519("rsa");
    for token in [ec.sign(&valid_claims()), ed.sign(&valid_claims())] {
        let reply = get_with_token(&app, "/me", &token).await;
        assert_invalid_token(&reply, "algorithm does not match the key");
    }
}

#[tokio::test]
async fn a_jwk_alg_pins_the_algorithm_of_its_key() {
    let rs256 = TestKey::rsa("rsa-a", "pinned", jsonwebtoken::Algorithm::RS256);
    let ps256 = TestKey::rsa("rsa-a", "pinned", jsonwebtoken::Algorithm::PS256);
    let pinned = jwk_with(&rs256, json!({"alg": "RS256"}));
    let pinned_app = app(vec![issuer_with(jwks_of(&[pinned]))]).await;
    assert_ok(&get_with_token(&pinned_app, "/me", &rs256.sign(&valid_claims())).await);
    let reply = get_with_token(&pinned_app, "/me", &ps256.sign(&valid_claims())).await;
    assert_invalid_token(&reply, "algorithm does not match the key");

    // Without `alg`, the key serves one algorithm too (RFC 8725 §3.1): the first RSA algorithm
    // of the allow-list, RS256 by default.
    let mut bare = rs256.public_jwk.clone();
    bare.as_object_mut().unwrap().remove("alg");
    let unpinned = app(vec![issuer_with(jwks_of(&[bare]))]).await;
    assert_ok(&get_with_token(&unpinned, "/me", &rs256.sign(&valid_claims())).await);
    let reply = get_with_token(&unpinned, "/me", &ps256.sign(&valid_claims())).await;
    assert_invalid_token(&reply, "algorithm does not match the key");
}

#[tokio::test]
async fn the_issuer_allow_list_rejects_other_algorithms() {
    let es256 = TestKey::ec("ec-p256", "ec");
    let ed = TestKey::ed25519("ed");
    let rsa = TestKey::rs256("rsa");
    let issuer = issuer_with(KeySource::jwks_json(jwks(&[&es256, &ed, &rsa])))
        .algorithms([Algorithm::ES256]);
    let app = app(vec![issuer]).await;
    assert_ok(&get_with_token(&app, "/me", &es256.sign(&valid_claims())).await);
    for token in [ed.sign(&valid_claims()), rsa.sign(&valid_claims())] {
        let reply = get_with_token(&app, "/me", &token).await;
        assert_invalid_token(&reply, "algorithm not allowed for this issuer");
    }
}

#[tokio::test]
async fn an_hmac_token_keyed_with_the_rsa_public_key_is_rejected() {
    let rsa = TestKey::rs256("rsa");
    let jwk_text = rsa.public_jwk.to_string();
    let mismatch = "algorithm does not match the key";
    let unknown = "no key for this token";
    for (source, naming_the_kid) in [
        (KeySource::jwks_json(jwks(&[&rsa])), mismatch),
        (KeySource::public_key_pem(&rsa.public_pem), unknown),
        (
            KeySource::public_key_pem(&rsa.public_pem).with_kid("rsa"),
            mismatch,
        ),
    ] {
        let app = app(vec![issuer_with(source)]).await;
        assert_ok(&get_with_token(&app, "/me", &rsa.sign(&valid_claims())).await);
        for secret in [rsa.public_pem.as_bytes(), jwk_text.as_bytes()] {
            let with_kid = hs256(secret, Some("rsa"), &valid_claims());
            let reply = get_with_token(&app, "/me", &with_kid).await;
            assert_invalid_token(&reply, naming_the_kid);
            let without_kid = hs256(secret, None, &valid_claims());
            let reply = get_with_token(&app, "/me", &without_kid).await;
            assert_invalid_token(&reply, unknown);
        }
    }
}

#[tokio::test]
async fn a_shared_secret_shorter_than_its_hash_fails_the_build() {
    for source in [
        KeySource::shared_secret(b"too short"),
        KeySource::shared_secret(&SECRET[..31]),
        KeySource::shared_secret(SECRET).with_algorithm(Algorithm::HS512),
    ] {
        let err = build(vec![issuer_with(source)]).await.unwrap_err();
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
    }
    assert!(
        build(vec![issuer_with(KeySource::shared_secret(SECRET))])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn unusable_keys_in_a_jwks_are_skipped_and_the_good_one_serves() {
    let good = TestKey::ed25519("good");
    let weak = TestKey::rsa("rsa-1024", "weak", jsonwebtoken::Algorithm::RS256);
    let source = jwks_of(&[
        jwk_with(&TestKey::ed25519("enc"), json!({"use": "enc"})),
        json!({"kty": "XYZ", "kid": "alien"}),
        weak.public_jwk.clone(),
        jwk_with(&TestKey::rs256("broken"), json!({"n": "!!not base64!!"})),
        good.public_jwk.clone(),
    ]);
    let app = app(vec![issuer_with(source)]).await;
    assert_ok(&get_with_token(&app, "/me", &good.sign(&valid_claims())).await);
    let enc = TestKey::ed25519("enc").sign(&valid_claims());
    // The 1024-bit key can't sign here; any token naming its kid shows it was skipped (had it
    // been kept, the answer would be "signature invalid").
    let naming_weak = TestKey::rs256("weak").sign(&valid_claims());
    for token in [enc, naming_weak] {
        let reply = get_with_token(&app, "/me", &token).await;
        assert_invalid_token(&reply, "no key for this token");
    }
}

#[tokio::test]
async fn a_jwks_without_any_usable_key_fails_the_build() {
    let weak = TestKey::rsa("rsa-1024", "weak", jsonwebtoken::Algorithm::RS256);
    for keys in [
        vec![
            jwk_with(&TestKey::ed25519("enc"), json!({"use": "enc"})),
            json!({"kty": "XYZ", "kid": "alien"}),
            weak.public_jwk.clone(),
            jwk_with(&TestKey::rs256("broken"), json!({"e": "A=="})),
        ],
        vec![],
    ] {
        let err = build(vec![issuer_with(jwks_of(&keys))]).await.unwrap_err();
        assert!(matches!(err, ConfigError::NoUsableKey { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn text_that_is_not_a_jwks_fails_the_build() {
    for text in ["", "{", "[]", r#"{"key":[]}"#, r#"{"keys":{}}"#] {
        let err = build(vec![issuer_with(KeySource::jwks_json(text))])
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidKey { .. }),
            "{text}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_jwks_file_is_read_and_a_missing_one_fails_the_build() {
    let missing = std::env::temp_dir().join(format!("no-such-jwks-{}.json", std::process::id()));
    let err = build(vec![issuer_with(KeySource::jwks_file(&missing))])
        .await
        .unwrap_err();
    match err {
        ConfigError::KeyFile { path, .. } => assert_eq!(path, missing),
        other => panic!("expected KeyFile, got {other:?}"),
    }

    let key = TestKey::ed25519("file");
    let path = std::env::temp_dir().join(format!("jwks-{}-keys-test.json", std::process::id()));
    std::fs::write(&path, jwks(&[&key])).unwrap();
    let app = app(vec![issuer_with(KeySource::jwks_file(&path))]).await;
    std::fs::remove_file(&path).unwrap();
    assert_ok(&get_with_token(&app, "/me", &key.sign(&valid_claims())).await);
}

#[tokio::test]
async fn a_bad_pem_fails_the_build() {
    let weak = TestKey::rsa("rsa-1024", "weak", jsonwebtoken::Algorithm::RS256);
    let private = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/rsa-a.key.pem"
    ))
    .unwrap();
    let truncated = &TestKey::rs256("k").public_pem[..100];
    for pem in [
        "not a pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        truncated,
        weak.public_pem.as_str(),
        private.as_str(),
    ] {
        let err = build(vec![issuer_with(KeySource::public_key_pem(pem))])
            .await
            .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn a_layer_needs_an_issuer_with_keys_and_algorithms() {
    let err = build(vec![]).await.unwrap_err();
    assert!(matches!(err, ConfigError::NoIssuer), "{err:?}");
    let err = build(vec![Issuer::new(ISSUER)]).await.unwrap_err();
    assert!(matches!(err, ConfigError::NoKeys(_)), "{err:?}");
    let no_algorithms = issuer_with(KeySource::shared_secret(SECRET)).algorithms([]);
    let err = build(vec![no_algorithms]).await.unwrap_err();
    assert!(matches!(err, ConfigError::Algorithm(_)), "{err:?}");
}

#[tokio::test]
async fn ambiguous_issuers_fail_the_build() {
    let key = || KeySource::shared_secret(SECRET);
    let cases = [
        vec![
            Issuer::new(ISSUER).key(key()),
            Issuer::new(ISSUER).key(key()),
        ],
        vec![
            Issuer::new(ISSUER).key(key()),
            Issuer::without_issuer_check().key(key()),
        ],
        vec![
            Issuer::without_issuer_check().key(key()),
            Issuer::new(ISSUER).key(key()),
        ],
        vec![
            Issuer::without_issuer_check().key(key()),
            Issuer::without_issuer_check().key(key()),
        ],
    ];
    for issuers in cases {
        let err = build(issuers).await.unwrap_err();
        assert!(matches!(err, ConfigError::AmbiguousIssuer(_)), "{err:?}");
    }
}

const ISSUER_A: &str = "https://a.test/";
const ISSUER_B: &str = "https://b.test/";

/// Two issuers whose keys share the kid `k` but not their material.
async fn two_issuers_app() -> (Router, TestKey, TestKey) {
    let key_a = TestKey::rsa("rsa-a", "k", jsonwebtoken::Algorithm::RS256);
    let key_b = TestKey::rsa("rsa-b", "k", jsonwebtoken::Algorithm::RS256);
    let app = app(vec![
        Issuer::new(ISSUER_A)
            .audience("a-api")
            .key(KeySource::jwks_json(jwks(&[&key_a]))),
        Issuer::new(ISSUER_B)
            .audience("b-api")
            .key(KeySource::jwks_json(jwks(&[&key_b])))
            .key(KeySource::jwks_json(jwks(&[&TestKey::ed25519("b-only")]))),
    ])
    .await;
    (app, key_a, key_b)
}

#[tokio::test]
async fn several_issuers_are_routed_by_iss() {
    let (app, key_a, key_b) = two_issuers_app().await;
    let for_a = claims_with(json!({"iss": ISSUER_A, "aud": "a-api"}));
    let for_b = claims_with(json!({"iss": ISSUER_B, "aud": "b-api"}));
    assert_ok(&get_with_token(&app, "/me", &key_a.sign(&for_a)).await);
    assert_ok(&get_with_token(&app, "/me", &key_b.sign(&for_b)).await);
    for claims in [valid_claims(), claims_with(json!({"iss": null}))] {
        let reply = get_with_token(&app, "/me", &key_a.sign(&claims)).await;
        assert_invalid_token(&reply, "issuer not allowed");
    }
    // Each issuer's audiences apply to its own tokens only.
    let crossed = claims_with(json!({"iss": ISSUER_A, "aud": "b-api"}));
    let reply = get_with_token(&app, "/me", &key_a.sign(&crossed)).await;
    assert_invalid_token(&reply, "audience not allowed");
}

#[tokio::test]
async fn rejects_token_signed_by_other_issuers_key() {
    let (app, _, key_b) = two_issuers_app().await;
    let claims_a = claims_with(json!({"iss": ISSUER_A, "aud": "a-api"}));
    // B's key under the kid A also uses: A's key is tried, and the signature fails.
    let reply = get_with_token(&app, "/me", &key_b.sign(&claims_a)).await;
    assert_invalid_token(&reply, "signature invalid");
    // A kid only B has: A's key set doesn't know it.
    let b_only = TestKey::ed25519("b-only").sign(&claims_a);
    let reply = get_with_token(&app, "/me", &b_only).await;
    assert_invalid_token(&reply, "no key for this token");
}

#[tokio::test]
async fn a_key_without_kid_serves_tokens_with_and_without_kid() {
    let key = TestKey::ec("ec-p256", "any-kid");
    let app = app(vec![issuer_with(KeySource::public_key_pem(
        &key.public_pem,
    ))])
    .await;
    let kidless = key.sign_with_header(&json!({"alg": "ES256"}), &valid_claims());
    for token in [key.sign(&valid_claims()), kidless] {
        assert_ok(&get_with_token(&app, "/me", &token).await);
    }
}

#[tokio::test]
async fn a_key_with_kid_serves_its_kid_and_kidless_tokens_only() {
    let key = TestKey::ec("ec-p256", "p");
    let source = KeySource::public_key_pem(&key.public_pem).with_kid("p");
    let app = app(vec![issuer_with(source)]).await;
    let kidless = key.sign_with_header(&json!({"alg": "ES256"}), &valid_claims());
    for token in [key.sign(&valid_claims()), kidless] {
        assert_ok(&get_with_token(&app, "/me", &token).await);
    }
    let other_kid = TestKey::ec("ec-p256", "q").sign(&valid_claims());
    let reply = get_with_token(&app, "/me", &other_kid).await;
    assert_invalid_token(&reply, "no key for this token");
}

#[tokio::test]
async fn a_wrong_signature_by_the_right_kid_is_rejected() {
    let app = app(vec![issuer_with(KeySource::jwks_json(jwks(&[
        &TestKey::rs256("k"),
    ])))])
    .await;
    let forged = TestKey::rsa("rsa-b", "k", jsonwebtoken::Algorithm::RS256).sign(&valid_claims());
    let reply = get_with_token(&app, "/me", &forged).await;
    assert_invalid_token(&reply, "signature invalid");
}
