//! Which key a token gets: `kid` tricks, header hints (`jku`, `x5u`, `jwk`, `x5c`) that are never
//! followed, a JWKS that cannot supply an HMAC secret, weak or invalid EC, RSA and Ed25519 keys
//! that are skipped, and one key serving one algorithm.

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tower_jwt_auth::{Algorithm, Claims, ConfigError, JwtAuthLayer, KeySource};

use super::support::server::IssuerServer;
use super::support::*;
use super::{app, app_with, ed, expect_invalid};

#[tokio::test]
async fn kid_tricks_name_no_key_and_touch_nothing() {
    let app = app().await;
    let big_app = app_with(
        vec![issuer_with(KeySource::jwks_json(jwks(&[&ed()])))],
        |b| b.max_token_len(1 << 20),
    )
    .await;
    let attacker_secret = [0u8; 32];
    let long = "k".repeat(100_000);
    let kids = [
        "../../../../../../dev/null",
        "/dev/null",
        "..\\..\\windows\\win.ini",
        "file:///etc/passwd",
        "ed/../ed",
        "' OR '1'='1",
        "ed' --",
        "ed\"; DROP TABLE keys; --",
        "$(id)",
        "ed\u{0}",
        "\u{0}",
        "",
        " ed",
        "ed ",
        "ED",
        "e\u{0301}d",
    ];
    let mut tokens = Vec::new();
    for kid in kids {
        let header = json!({"alg": "EdDSA", "kid": kid});
        tokens.push(ed().sign_with_header(&header, &valid_claims()));
        // The classic: point `kid` at an empty or known file and key HS256 with its contents.
        let header = json!({"alg": "HS256", "kid": kid});
        for secret in [&b""[..], &attacker_secret] {
            tokens.push(hmac_token(
                jsonwebtoken::Algorithm::HS256,
                secret,
                &header,
                &valid_claims(),
            ));
        }
    }
    expect_invalid(&app, &tokens, "no key for this token").await;

    // A very long kid: over the default size cap it is never decoded; under a large cap it is
    // just another unknown name.
    let long_kid = ed().sign_with_header(&json!({"alg": "EdDSA", "kid": long}), &valid_claims());
    expect_invalid(
        &app,
        std::slice::from_ref(&long_kid),
        "token longer than the configured maximum",
    )
    .await;
    expect_invalid(&big_app, &[long_kid], "no key for this token").await;

    // `kid` of another JSON type is malformed, not coerced.
    let typed: Vec<String> = [
        json!(null),
        json!(7),
        json!(-0.0),
        json!(true),
        json!(["ed"]),
        json!({"kid": "ed"}),
    ]
    .into_iter()
    .map(|kid| ed().sign_with_header(&json!({"alg": "EdDSA", "kid": kid}), &valid_claims()))
    .collect();
    expect_invalid(&app, &typed, "malformed token").await;
}

#[tokio::test]
async fn jku_x5u_jwk_and_x5c_are_never_fetched_nor_trusted() {
    let attacker = TestKey::rsa("rsa-b", "attacker", jsonwebtoken::Algorithm::RS256);
    let evil = IssuerServer::start(vec![attacker.public_jwk.clone()]).await;
    let honest_key = TestKey::rsa("rsa-a", "rsa", jsonwebtoken::Algorithm::RS256);
    let legit = IssuerServer::start(vec![honest_key.public_jwk.clone()]).await;

    let static_app = app_with(
        vec![issuer_with(KeySource::jwks_json(jwks(&[&honest_key])))],
        |b| b,
    )
    .await;
    let remote_app = app_with(
        vec![issuer_with(KeySource::jwks_url(legit.jwks_url()))],
        |b| b,
    )
    .await;
    let legit_hits = legit.jwks_hits();

    let attacker_der = b64url(&pem_to_der(&attacker.public_pem));
    let hints = |kid: &str| {
        json!({
            "alg": "RS256",
            "kid": kid,
            "jku": evil.jwks_url(),
            "x5u": format!("{}/.well-known/openid-configuration", evil.issuer()),
            "jwk": attacker.public_jwk,
            "x5c": [attacker_der],
            "x5t": "AAAA",
            "x5t#S256": "AAAA",
        })
    };
    for app in [&static_app, &remote_app] {
        // Signed by the configured key, the hints change nothing...
        let honest = honest_key.sign_with_header(&hints("rsa"), &valid_claims());
        assert_ok(&get_with_token(app, "/me", &honest).await);
        // ...and signed by the key they point to, the token fails, whatever kid it names.
        let own_kid = attacker.sign_with_header(&hints("attacker"), &valid_claims());
        expect_invalid(app, &[own_kid], "no key for this token").await;
        let borrowed_kid = attacker.sign_with_header(&hints("rsa"), &valid_claims());
        expect_invalid(app, &[borrowed_kid], "signature invalid").await;
        let no_kid = attacker.sign_with_header(
            &json!({"alg": "RS256", "jku": evil.jwks_url(), "jwk": attacker.public_jwk}),
            &valid_claims(),
        );
        expect_invalid(app, &[no_kid], "signature invalid").await;
    }
    // The attacker's server was never contacted; the legitimate one at most for the unknown kid.
    assert_eq!(evil.jwks_hits(), 0);
    assert_eq!(evil.oidc_hits(), 0);
    assert!(legit.jwks_hits() <= legit_hits + 1);
}

#[tokio::test]
async fn a_fetched_jwks_cannot_supply_an_hmac_secret() {
    let secret = b"a shared secret published in a JWKS!";
    let oct = json!({"kty": "oct", "kid": "s", "alg": "HS256", "k": b64url(secret)});
    let server = IssuerServer::start(vec![oct, ed().public_jwk.clone()]).await;
    let app = app_with(
        vec![issuer_with(KeySource::jwks_url(server.jwks_url()))],
        |b| b,
    )
    .await;
    assert_ok(&get_with_token(&app, "/me", &ed().sign(&valid_claims())).await);
    let token = hmac_token(
        jsonwebtoken::Algorithm::HS256,
        secret,
        &json!({"alg": "HS256", "kid": "s"}),
        &valid_claims(),
    );
    expect_invalid(&app, &[token], "no key for this token").await;
}

#[tokio::test]
async fn wrong_curve_and_invalid_point_keys_in_a_jwks_are_skipped() {
    let p256 = TestKey::ec("ec-p256", "p256");
    let p384 = TestKey::ec("ec-p384", "p384");
    let with = |key: &TestKey, kid: &str, changes: Value| {
        let mut jwk = key.public_jwk.clone();
        jwk["kid"] = json!(kid);
        for (name, value) in changes.as_object().unwrap() {
            jwk[name] = value.clone();
        }
        jwk
    };
    let y = p256.public_jwk["y"].as_str().unwrap();
    let mut off_curve = URL_SAFE_NO_PAD.decode(y).unwrap();
    off_curve[31] ^= 1;
    let bad = vec![
        // P-384 coordinates labelled P-256 and the other way round.
        with(&p384, "crv-p256", json!({"crv": "P-256"})),
        with(&p256, "crv-p384", json!({"crv": "P-384"})),
        // Curves this crate does not verify on.
        with(&p256, "crv-p521", json!({"crv": "P-521"})),
        with(&p256, "crv-k1", json!({"crv": "secp256k1"})),
        with(&p256, "crv-ed", json!({"crv": "Ed25519"})),
        with(&p256, "no-crv", json!({"crv": null})),
        // A point that is not on the curve (the invalid-curve attack), and the zero point.
        with(&p256, "off-curve", json!({"y": b64url(&off_curve)})),
        with(
            &p256,
            "zero",
            json!({"x": b64url(&[0; 32]), "y": b64url(&[0; 32])}),
        ),
        // Truncated and over-long coordinates.
        with(&p256, "short", json!({"x": b64url(&[1; 31])})),
        with(&p256, "long", json!({"y": b64url(&[1; 33])})),
        // An Ed25519 key of the wrong size, and an X25519 (key agreement) key.
        with(&ed(), "ed-short", json!({"x": b64url(&[1; 31])})),
        with(&ed(), "x25519", json!({"crv": "X25519"})),
        // The EC key under an EC-incompatible alg, or typed as another kty.
        with(&p256, "alg-es384", json!({"alg": "ES384"})),
        with(&p256, "kty-okp", json!({"kty": "OKP"})),
    ];
    let mut keys = bad.clone();
    keys.push(p256.public_jwk.clone());
    let app = app_with(
        vec![issuer_with(KeySource::jwks_json(
            json!({ "keys": keys }).to_string(),
        ))],
        |b| b,
    )
    .await;
    assert_ok(&get_with_token(&app, "/me", &p256.sign(&valid_claims())).await);
    // Tokens naming a skipped key find nothing, whoever signed them.
    let mut tokens = Vec::new();
    for jwk in &bad {
        let kid = jwk["kid"].as_str().unwrap();
        for key in [&p256, &p384] {
            let alg = alg_name(key.alg);
            tokens.push(key.sign_with_header(&json!({"alg": alg, "kid": kid}), &valid_claims()));
        }
    }
    expect_invalid(&app, &tokens, "no key for this token").await;

    // A set of nothing but such keys fails the build.
    let only_bad = KeySource::jwks_json(json!({ "keys": bad }).to_string());
    let err = JwtAuthLayer::<Value>::builder()
        .issuer(issuer_with(only_bad))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::NoUsableKey { .. }), "{err:?}");
}

#[tokio::test]
async fn rsa_keys_under_2048_bits_or_with_a_tiny_exponent_are_refused() {
    let weak = TestKey::rsa("rsa-1024", "weak", jsonwebtoken::Algorithm::RS256);
    let strong = TestKey::rs256("strong");

    // As a PEM: the build fails and says why.
    let err = JwtAuthLayer::<Value>::builder()
        .issuer(issuer_with(KeySource::public_key_pem(&weak.public_pem)))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidKey { reason, .. } if reason.contains("under 2048")),
        "{err:?}"
    );

    // In a JWKS: skipped, while the good key serves. `e = 1` makes a "signature" equal to the
    // padded message: such a key is refused too.
    let mut exponent_one = strong.public_jwk.clone();
    exponent_one["kid"] = json!("e1");
    exponent_one["e"] = json!(b64url(&[1]));
    let keys = json!({"keys": [weak.public_jwk, exponent_one, strong.public_jwk]}).to_string();
    let app = app_with(vec![issuer_with(KeySource::jwks_json(keys))], |b| b).await;
    assert_ok(&get_with_token(&app, "/me", &strong.sign(&valid_claims())).await);
    // (aws-lc won't sign with a 1024-bit key; the token is refused before any signature check.)
    let weak_token =
        strong.sign_with_header(&json!({"alg": "RS256", "kid": "weak"}), &valid_claims());
    expect_invalid(&app, &[weak_token], "no key for this token").await;
    // With e = 1, "signing" is writing down the PKCS#1 v1.5 encoding of the hash: a forgery
    // anyone can make.
    let e1 = strong.sign_with_header(&json!({"alg": "RS256", "kid": "e1"}), &valid_claims());
    let (signing_input, _) = e1.rsplit_once('.').unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, signing_input.as_bytes());
    let digest_info = [
        &hex("3031300d060960864801650304020105000420")[..],
        digest.as_ref(),
    ]
    .concat();
    let mut encoded = vec![0x00, 0x01];
    encoded.resize(256 - digest_info.len() - 1, 0xff);
    encoded.push(0x00);
    encoded.extend(digest_info);
    let forged = with_signature(&e1, &encoded);
    // The key is kept in the set today (aws-lc parses it) but refuses every signature at
    // verification; skipping it at load would answer "no key". Either way the forgery fails.
    for token in [forged, e1] {
        let reply = get_with_token(&app, "/me", &token).await;
        assert!(
            [
                challenge("tests", "invalid_token", "no key for this token"),
                challenge("tests", "invalid_token", "signature invalid"),
            ]
            .contains(&reply.www_authenticate().to_owned()),
            "{}",
            reply.www_authenticate()
        );
    }
}

/// The identity point of Ed25519 (`y = 1`), and the signature `R = identity, S = 0`, which the
/// verification equation `[S]B = R + [k]A` accepts for any message when `A` is the identity.
fn identity_forgery(kid: &str) -> (Value, String) {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64url(&identity)});
    let header = b64url(json!({"alg": "EdDSA", "kid": kid}).to_string().as_bytes());
    let payload = b64url(claims_with(json!({"sub": "admin"})).to_string().as_bytes());
    let signature = b64url(&[identity, [0; 32]].concat());
    (jwk, format!("{header}.{payload}.{signature}"))
}

#[tokio::test]
async fn small_order_and_non_canonical_ed25519_keys_are_skipped() {
    let (identity, forged) = identity_forgery("identity");
    let mut keys = vec![identity, ed().public_jwk.clone()];
    // The other small-order points (y = 0, p − 1 and the two of order 8, either sign) and
    // non-canonical encodings (y >= p).
    let mut encodings: Vec<[u8; 32]> = Vec::new();
    for y in [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ] {
        let bytes: [u8; 32] = hex(y).try_into().unwrap();
        encodings.push(bytes);
        let mut negated = bytes;
        negated[31] ^= 0x80;
        encodings.push(negated);
    }
    for (i, x) in encodings.iter().enumerate() {
        keys.push(
            json!({"kty": "OKP", "crv": "Ed25519", "kid": format!("weak-{i}"), "x": b64url(x)}),
        );
    }
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(issuer_with(KeySource::jwks_json(
            json!({ "keys": keys }).to_string(),
        )))
        .build()
        .await
        .unwrap();
    // Only the honest key is loaded.
    assert_eq!(layer.key_sets()[0].key_count, 1);
    let app = Router::new()
        .route("/me", get(|_: Claims<Value>| async { "ok" }))
        .layer(layer);
    assert_ok(&get_with_token(&app, "/me", &ed().sign(&valid_claims())).await);
    // The forgery that verified under the identity key (any payload, no private key).
    let mut tokens = vec![forged];
    for i in 0..encodings.len() {
        let (_, token) = identity_forgery(&format!("weak-{i}"));
        tokens.push(token);
    }
    let app = app_with(
        vec![issuer_with(KeySource::jwks_json(
            json!({ "keys": keys }).to_string(),
        ))],
        |b| b,
    )
    .await;
    expect_invalid(&app, &tokens, "no key for this token").await;
}

#[tokio::test]
async fn an_rsa_key_without_alg_serves_only_the_first_rsa_algorithm_of_the_allow_list() {
    // RFC 8725 §3.1: one key, one algorithm. The JWK has no `alg`.
    let rs256 = TestKey::rs256("rsa");
    let ps256 = TestKey::rsa("rsa-a", "rsa", jsonwebtoken::Algorithm::PS256);
    let rs512 = TestKey::rsa("rsa-a", "rsa", jsonwebtoken::Algorithm::RS512);
    let mut jwk = rs256.public_jwk.clone();
    jwk.as_object_mut().unwrap().remove("alg");
    let keys = json!({ "keys": [jwk] }).to_string();
    let default = app_with(vec![issuer_with(KeySource::jwks_json(keys.clone()))], |b| b).await;
    assert_ok(&get_with_token(&default, "/me", &rs256.sign(&valid_claims())).await);
    let others = [ps256.sign(&valid_claims()), rs512.sign(&valid_claims())];
    expect_invalid(&default, &others, "algorithm does not match the key").await;

    // An issuer listing a PS algorithm first gets that one, and only that one.
    let pss_first = app_with(
        vec![
            issuer_with(KeySource::jwks_json(keys))
                .algorithms([Algorithm::PS256, Algorithm::RS256]),
        ],
        |b| b,
    )
    .await;
    assert_ok(&get_with_token(&pss_first, "/me", &ps256.sign(&valid_claims())).await);
    expect_invalid(
        &pss_first,
        &[rs256.sign(&valid_claims())],
        "algorithm does not match the key",
    )
    .await;
}
