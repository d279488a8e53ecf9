//! The catalogue of known attacks on JWT verifiers (RFC 8725 and the CVEs that followed), one test
//! per family. Each builds the attack against a real layer and asserts the exact rejection, so it
//! fails if the attack passes; most also check that the honest token next to it is accepted, so a
//! rejection can't come from a broken fixture.
//!
//! Policy choices made where a specification leaves room (documented in SECURITY.md): duplicate
//! JSON member names, any `crit`, `b64: false`, nested JWTs and non-canonical base64url are all
//! refused.

mod support;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Value, json};
use support::server::IssuerServer;
use support::*;
use tower_jwt_auth::{
    Algorithm, AuthError, Claims, ConfigError, Issuer, JwtAuthBuilder, JwtAuthLayer, KeySource,
    SignatureVerifier,
};

type Builder = JwtAuthBuilder<Value>;

async fn app_with(issuers: Vec<Issuer>, configure: impl FnOnce(Builder) -> Builder) -> Router {
    let mut builder = JwtAuthLayer::<Value>::builder().realm("tests");
    for issuer in issuers {
        builder = builder.issuer(issuer);
    }
    let layer = configure(builder).build().await.unwrap();
    Router::new()
        .route("/me", get(|_: Claims<Value>| async { "ok" }))
        .layer(layer)
}

/// One issuer whose JWKS holds an Ed25519 (`ed`), an RSA (`rsa`) and a P-256 (`ec`) key.
async fn app() -> Router {
    let keys = jwks(&[
        &TestKey::ed25519("ed"),
        &TestKey::rs256("rsa"),
        &TestKey::ec("ec-p256", "ec"),
    ]);
    app_with(vec![issuer_with(KeySource::jwks_json(keys))], |b| b).await
}

/// Sends each token and asserts the `401 invalid_token` with `description`.
async fn expect_invalid(app: &Router, tokens: &[String], description: &str) {
    for token in tokens {
        let reply = get_with_token(app, "/me", token).await;
        assert_eq!(
            (reply.status, reply.www_authenticate()),
            (
                StatusCode::UNAUTHORIZED,
                challenge("tests", "invalid_token", description).as_str()
            ),
            "{token:.120}"
        );
    }
}

fn ed() -> TestKey {
    TestKey::ed25519("ed")
}

/// The three parts of a signed token, base64url-encoded.
fn parts(token: &str) -> [String; 3] {
    let mut split = token.split('.').map(str::to_owned);
    [(); 3].map(|()| split.next().unwrap())
}

#[tokio::test]
async fn alg_none_in_any_spelling_and_empty_signatures_are_refused() {
    let app = app().await;
    let honest = ed().sign(&valid_claims());
    assert_ok(&get_with_token(&app, "/me", &honest).await);
    let [_, payload, signature] = parts(&honest);

    let mut unsecured = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [json!({"alg": alg}), json!({"alg": alg, "kid": "ed"})] {
            let header = b64url(header.to_string().as_bytes());
            unsecured.push(format!("{header}.{payload}."));
            unsecured.push(format!("{header}.{payload}.{signature}"));
        }
    }
    expect_invalid(&app, &unsecured, "unsecured token (alg none)").await;

    // A real algorithm with the signature left out: refused before any key is looked at.
    let mut empty = Vec::new();
    for (key, alg) in [
        (ed(), "EdDSA"),
        (TestKey::rs256("rsa"), "RS256"),
        (TestKey::ec("ec-p256", "ec"), "ES256"),
    ] {
        let token = key.sign(&valid_claims());
        let (signing_input, _) = token.rsplit_once('.').unwrap();
        empty.push(format!("{signing_input}."));
        let header = b64url(json!({"alg": alg, "kid": key.kid}).to_string().as_bytes());
        empty.push(format!("{header}.{payload}."));
    }
    let hs = hs256(SECRET, None, &valid_claims());
    empty.push(format!("{}.", hs.rsplit_once('.').unwrap().0));
    expect_invalid(&app, &empty, "malformed token").await;

    // `alg` names that look like `none` or a supported one but are not.
    let odd: Vec<String> = ["", "none ", "nonE\u{0}", "eddsa", "ED25519", "Ed25519"]
        .iter()
        .map(|alg| ed().sign_with_header(&json!({"alg": alg, "kid": "ed"}), &valid_claims()))
        .collect();
    expect_invalid(&app, &odd, "unsupported algorithm").await;
}

#[tokio::test]
async fn algorithm_confusion_hmac_keyed_with_the_public_key_is_refused() {
    let rsa = TestKey::rs256("rsa");
    let ec = TestKey::ec("ec-p256", "ec");
    let ed = ed();
    for key in [&rsa, &ec, &ed] {
        // Every form of the public key an attacker might feed an HMAC verifier as its secret.
        let pem = key.public_pem.clone();
        let secrets: Vec<Vec<u8>> = vec![
            pem.clone().into_bytes(),
            pem.trim_end().as_bytes().to_vec(),
            pem.replace('\n', "\r\n").into_bytes(),
            pem_to_der(&pem),
            key.public_jwk.to_string().into_bytes(),
            serde_json::to_vec_pretty(&key.public_jwk).unwrap(),
            jwks(&[key]).into_bytes(),
        ];
        let sources = [
            (KeySource::jwks_json(jwks(&[key])), true),
            (KeySource::public_key_pem(&pem).with_kid(&key.kid), true),
            (KeySource::public_key_pem(&pem), false),
        ];
        for (source, has_kid) in sources {
            // HS256 in the allow-list changes nothing: no key here may serve it.
            let issuer = issuer_with(source).algorithms([
                Algorithm::HS256,
                Algorithm::HS384,
                Algorithm::HS512,
                Algorithm::RS256,
                Algorithm::ES256,
                Algorithm::EdDSA,
            ]);
            let app = app_with(vec![issuer], |b| b).await;
            assert_ok(&get_with_token(&app, "/me", &key.sign(&valid_claims())).await);
            for secret in &secrets {
                for alg in [
                    jsonwebtoken::Algorithm::HS256,
                    jsonwebtoken::Algorithm::HS384,
                    jsonwebtoken::Algorithm::HS512,
                ] {
                    let name = alg_name(alg);
                    let with_kid = json!({"alg": name, "kid": key.kid});
                    let token = hmac_token(alg, secret, &with_kid, &valid_claims());
                    let description = if has_kid {
                        "algorithm does not match the key"
                    } else {
                        "no key for this token"
                    };
                    expect_invalid(&app, &[token], description).await;
                    let token = hmac_token(alg, secret, &json!({"alg": name}), &valid_claims());
                    expect_invalid(&app, &[token], "no key for this token").await;
                }
            }
        }
    }
}

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

/// The order of the P-256 and P-384 groups, and the P-256 field prime.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
const P384_N: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";

/// `value` as a big-endian integer of `size` bytes.
fn int(value: u8, size: usize) -> Vec<u8> {
    let mut bytes = vec![0; size];
    bytes[size - 1] = value;
    bytes
}

#[tokio::test]
async fn ecdsa_zero_and_out_of_range_signatures_are_refused() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 verified any message in Java 15–18.
    let app = app_with(
        vec![issuer_with(KeySource::jwks_json(jwks(&[
            &TestKey::ec("ec-p256", "p256"),
            &TestKey::ec("ec-p384", "p384"),
        ])))],
        |b| b,
    )
    .await;
    for (key, n, size) in [
        (TestKey::ec("ec-p256", "p256"), P256_N, 32),
        (TestKey::ec("ec-p384", "p384"), P384_N, 48),
    ] {
        let honest = key.sign(&valid_claims());
        assert_ok(&get_with_token(&app, "/me", &honest).await);
        let real = signature_of(&honest);
        let (real_r, real_s) = real.split_at(size);
        let n = hex(n);
        let mut n_minus_1 = n.clone();
        n_minus_1[size - 1] -= 1;
        let ones = vec![0xff; size];
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (int(0, size), int(0, size)),
            (int(0, size), int(1, size)),
            (int(1, size), int(0, size)),
            (int(1, size), int(1, size)),
            (n.clone(), n.clone()),
            (n.clone(), int(1, size)),
            (int(1, size), n.clone()),
            (n.clone(), real_s.to_vec()),
            (real_r.to_vec(), n.clone()),
            (real_r.to_vec(), int(0, size)),
            (int(0, size), real_s.to_vec()),
            (ones.clone(), ones.clone()),
            (ones.clone(), real_s.to_vec()),
            (n_minus_1.clone(), n_minus_1),
        ];
        let mut tokens: Vec<String> = pairs
            .into_iter()
            .map(|(r, s)| with_signature(&honest, &[r, s].concat()))
            .collect();
        if size == 32 {
            // r = p: larger than n, and a field element, not a scalar.
            tokens.push(with_signature(&honest, &[hex(P256_P), int(1, 32)].concat()));
        }
        // Wrong lengths: truncated, padded, doubled, one byte, and the other curve's size.
        for signature in [
            real[..real.len() - 1].to_vec(),
            [real.as_slice(), &[0]].concat(),
            [&[0], real.as_slice()].concat(),
            [real.as_slice(), real.as_slice()].concat(),
            vec![0],
            vec![0; if size == 32 { 96 } else { 64 }],
        ] {
            tokens.push(with_signature(&honest, &signature));
        }
        expect_invalid(&app, &tokens, "signature invalid").await;
    }
}

#[tokio::test]
async fn der_encoded_ecdsa_signatures_are_refused() {
    // JWS requires the fixed-size R || S form (RFC 7518 §3.4); the ASN.1 DER form that most ECDSA
    // APIs produce is a second encoding of the same signature and must not verify.
    let app = app_with(
        vec![issuer_with(KeySource::jwks_json(jwks(&[
            &TestKey::ec("ec-p256", "p256"),
            &TestKey::ec("ec-p384", "p384"),
        ])))],
        |b| b,
    )
    .await;
    for key in [
        TestKey::ec("ec-p256", "p256"),
        TestKey::ec("ec-p384", "p384"),
    ] {
        let mut tokens = Vec::new();
        // Several tokens, so that r and s with and without a high bit (a DER padding byte) occur.
        for n in 0..8 {
            let honest = key.sign(&claims_with(json!({"jti": n.to_string()})));
            assert_ok(&get_with_token(&app, "/me", &honest).await);
            let der = ecdsa_raw_to_der(&signature_of(&honest));
            assert_eq!(der[0], 0x30);
            tokens.push(with_signature(&honest, &der));
        }
        expect_invalid(&app, &tokens, "signature invalid").await;
    }
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

/// `part` respelt with non-zero unused trailing bits: the same bytes, another string. `None` when
/// its length leaves no unused bits.
fn with_dirty_trailing_bits(part: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if part.len().is_multiple_of(4) {
        return None;
    }
    let last = *part.as_bytes().last()?;
    let index = ALPHABET.iter().position(|c| *c == last)?;
    let dirty = ALPHABET[index + 1] as char;
    Some(format!("{}{dirty}", &part[..part.len() - 1]))
}

#[tokio::test]
async fn non_canonical_base64url_is_refused_even_when_signed() {
    let app = app().await;
    let key = ed();
    // Header and payload whose encodings end in a partial group, so that unused bits exist.
    let partial = |mut json: String| {
        while json.len().is_multiple_of(3) {
            json.push(' ');
        }
        b64url(json.as_bytes())
    };
    let header = partial(r#"{"alg":"EdDSA","kid":"ed"}"#.to_owned());
    let payload = partial(valid_claims().to_string());
    let honest = sign_encoded(&format!("{header}.{payload}"), &key);
    assert_ok(&get_with_token(&app, "/me", &honest).await);
    let [_, _, signature] = parts(&honest);

    let mut tokens = vec![
        // Re-spelt header or payload, correctly signed over the new spelling: still refused.
        sign_encoded(
            &format!("{}.{payload}", with_dirty_trailing_bits(&header).unwrap()),
            &key,
        ),
        sign_encoded(
            &format!("{header}.{}", with_dirty_trailing_bits(&payload).unwrap()),
            &key,
        ),
        // A re-spelt signature over the honest input.
        format!(
            "{header}.{payload}.{}",
            with_dirty_trailing_bits(&signature).unwrap()
        ),
        // Padding at the end of the token.
        format!("{honest}=="),
    ];
    // The standard alphabet's `+` and `/` for `-` and `_`, signed as they are.
    let standard = |part: &str| part.replace('-', "+").replace('_', "/");
    let plus_header = b64url(br#"{"alg":"EdDSA","kid":"ed","x":"~~~~~~"}"#);
    assert!(plus_header.contains(['-', '_']));
    tokens.push(sign_encoded(
        &format!("{}.{payload}", standard(&plus_header)),
        &key,
    ));
    if signature.contains(['-', '_']) {
        tokens.push(format!("{header}.{payload}.{}", standard(&signature)));
    }
    expect_invalid(&app, &tokens, "malformed token").await;

    // Padding or other non-b64token characters inside the token: not even a well-formed request.
    for token in [
        format!("{header}=.{payload}.{signature}"),
        format!("{header}.{payload}=.{signature}"),
        format!("{header}.{payload}.%{signature}"),
        format!("{header}.{payload}.{signature}!"),
    ] {
        let reply = get_with_token(&app, "/me", &token).await;
        assert_invalid_request(&reply, "malformed authorization header");
    }
}

#[tokio::test]
async fn duplicate_member_names_are_refused() {
    // Policy: RFC 7515 §4 and RFC 7519 §4 allow either rejecting duplicates or taking the last
    // one; two parsers taking different ones is how a token means two things. Refused.
    let app = app().await;
    let key = ed();
    let signed = |header: &str, payload: &str| sign_raw(header, payload, &key.encoding, key.alg);
    let claims = valid_claims().to_string();
    let with = |extra: &str| format!("{},{extra}}}", &claims[..claims.len() - 1]);
    let header = r#"{"alg":"EdDSA","kid":"ed"}"#;
    let now = now();
    let tokens = [
        signed(r#"{"alg":"EdDSA","kid":"ed","alg":"none"}"#, &claims),
        signed(r#"{"alg":"none","kid":"ed","alg":"EdDSA"}"#, &claims),
        signed(r#"{"alg":"EdDSA","kid":"rsa","kid":"ed"}"#, &claims),
        signed(r#"{"alg":"EdDSA","kid":"ed","\u006bid":"ed"}"#, &claims),
        signed(
            r#"{"alg":"EdDSA","kid":"ed","typ":"JWT","typ":"at+jwt"}"#,
            &claims,
        ),
        signed(
            r#"{"alg":"EdDSA","kid":"ed","crit":["x"],"crit":[]}"#,
            &claims,
        ),
        // An expired exp first, a valid one after it (or the reverse).
        signed(header, &with(&format!(r#""exp":{}"#, now - 3600))),
        signed(header, &with(&format!(r#""exp":{}"#, now + 3600))),
        signed(header, &with(r#""iss":"https://evil.test/""#)),
        signed(header, &with(r#""\u0061ud":"other""#)),
        signed(header, &with(r#""sub":"admin""#)),
        signed(header, &with(r#""role":"user","role":"admin""#)),
        // At any depth: a nested claim has one meaning for every reader.
        signed(
            header,
            &with(r#""realm_access":{"roles":["user"],"roles":["admin"]}"#),
        ),
        signed(
            header,
            &with(r#""resource_access":{"api":{"roles":[]},"\u0061pi":{"roles":["admin"]}}"#),
        ),
        signed(header, &with(r#""cnf":[{"jkt":"a","jkt":"b"}]"#)),
        signed(
            r#"{"alg":"EdDSA","kid":"ed","x":{"y":{"z":1,"z":2}}}"#,
            &claims,
        ),
    ];
    expect_invalid(&app, &tokens, "malformed token").await;
    // The same name in different objects is fine.
    let nested = signed(
        header,
        &with(r#""realm_access":{"roles":["a"]},"resource_access":{"api":{"roles":["a"]}}"#),
    );
    assert_ok(&get_with_token(&app, "/me", &nested).await);
}

#[tokio::test]
async fn crit_and_unencoded_payloads_are_refused() {
    // Policy: this crate implements no JWS extension, so any `crit` is refused (RFC 7515
    // §4.1.11), and so is RFC 7797's `b64: false`, with or without `crit`.
    let app = app().await;
    let key = ed();
    let critical: Vec<String> = [
        json!({"alg": "EdDSA", "kid": "ed", "crit": ["exp"], "exp": 1}),
        json!({"alg": "EdDSA", "kid": "ed", "crit": ["x-custom"], "x-custom": true}),
        json!({"alg": "EdDSA", "kid": "ed", "crit": ["absent"]}),
        json!({"alg": "EdDSA", "kid": "ed", "crit": ["alg"]}),
        json!({"alg": "EdDSA", "kid": "ed", "crit": ["b64"], "b64": false}),
        json!({"alg": "EdDSA", "kid": "ed", "b64": false}),
        json!({"alg": "EdDSA", "kid": "ed", "crit": ["b64"], "b64": true}),
    ]
    .iter()
    .map(|header| key.sign_with_header(header, &valid_claims()))
    .collect();
    expect_invalid(&app, &critical, "unsupported critical header parameter").await;

    let malformed: Vec<String> = [
        json!({"alg": "EdDSA", "kid": "ed", "crit": []}),
        json!({"alg": "EdDSA", "kid": "ed", "crit": "b64"}),
        json!({"alg": "EdDSA", "kid": "ed", "crit": [7]}),
        json!({"alg": "EdDSA", "kid": "ed", "crit": null}),
        json!({"alg": "EdDSA", "kid": "ed", "b64": "false"}),
        json!({"alg": "EdDSA", "kid": "ed", "b64": 0}),
    ]
    .iter()
    .map(|header| key.sign_with_header(header, &valid_claims()))
    .collect();
    expect_invalid(&app, &malformed, "malformed token").await;

    // The unencoded payload itself, signed as RFC 7797 would: JSON is not a b64token.
    let header = b64url(br#"{"alg":"EdDSA","kid":"ed","crit":["b64"],"b64":false}"#);
    let token = sign_encoded(&format!("{header}.{}", valid_claims()), &key);
    let reply = get_with_token(&app, "/me", &token).await;
    assert_invalid_request(&reply, "malformed authorization header");
}

#[tokio::test]
async fn jwe_tokens_and_nested_jwts_are_refused() {
    let app = app().await;
    let key = ed();
    let inner = key.sign(&valid_claims());
    let mut tokens = Vec::new();
    // Five-part compact JWEs, including one wrapping a valid token's parts.
    for header in [
        json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "rsa"}),
        json!({"alg": "dir", "enc": "A128CBC-HS256"}),
        json!({"alg": "EdDSA", "kid": "ed"}),
    ] {
        let header = b64url(header.to_string().as_bytes());
        tokens.push(format!("{header}.ZW5j.aXY.Y2lwaGVy.dGFn"));
        tokens.push(format!("{header}..aXY.Y2lwaGVy.dGFn"));
    }
    tokens.push(format!("{inner}.aXY.dGFn"));
    // A JWE header in three parts.
    tokens.push(key.sign_with_header(
        &json!({"alg": "EdDSA", "kid": "ed", "enc": "A256GCM"}),
        &valid_claims(),
    ));
    // Nested JWTs (`cty: JWT`), whose payload is a valid token in its own right.
    for cty in ["JWT", "jwt", "application/JWT", "Application/jwt"] {
        let header = json!({"alg": "EdDSA", "kid": "ed", "cty": cty}).to_string();
        tokens.push(sign_raw(&header, &inner, &key.encoding, key.alg));
        tokens.push(key.sign_with_header(
            &json!({"alg": "EdDSA", "kid": "ed", "cty": cty}),
            &valid_claims(),
        ));
    }
    expect_invalid(&app, &tokens, "encrypted or nested tokens are not accepted").await;

    // A JWE's own algorithms in a three-part token are simply unsupported.
    let oaep = key.sign_with_header(&json!({"alg": "RSA-OAEP", "kid": "ed"}), &valid_claims());
    expect_invalid(&app, &[oaep], "unsupported algorithm").await;
}

#[tokio::test]
async fn typ_confusion_is_refused_under_the_at_jwt_profile() {
    // An ID token, logout token or DPoP proof from the same issuer, replayed as an access token.
    let keys = KeySource::jwks_json(jwks(&[&ed()]));
    let app = app_with(vec![issuer_with(keys)], |b| b.require_token_type("at+jwt")).await;
    let key = ed();
    let typed = |typ: Value| {
        let mut header = json!({"alg": "EdDSA", "kid": "ed"});
        if !typ.is_null() {
            header["typ"] = typ;
        }
        key.sign_with_header(&header, &valid_claims())
    };
    assert_ok(&get_with_token(&app, "/me", &typed(json!("at+jwt"))).await);
    assert_ok(&get_with_token(&app, "/me", &typed(json!("application/at+jwt"))).await);
    let tokens: Vec<String> = [
        "JWT",
        "jwt",
        "application/jwt",
        "id_token+jwt",
        "logout+jwt",
        "dpop+jwt",
        "secevent+jwt",
        "at+jwt ",
        " at+jwt",
        "at+jwt\u{0}",
        "at+jwt; charset=utf-8",
        "application/application/at+jwt",
        "",
    ]
    .into_iter()
    .map(|typ| typed(json!(typ)))
    .chain([typed(Value::Null)])
    .collect();
    expect_invalid(&app, &tokens, "token type not accepted").await;
    let odd: Vec<String> = [json!(["at+jwt"]), json!(1), json!({"typ": "at+jwt"})]
        .into_iter()
        .map(typed)
        .collect();
    expect_invalid(&app, &odd, "malformed token").await;
}

#[tokio::test]
async fn date_claims_must_be_numbers_and_in_range() {
    let app = app().await;
    let key = ed();
    let now = now();
    let send = |changes: Value| {
        let token = key.sign(&claims_with(changes));
        let app = app.clone();
        async move { get_with_token(&app, "/me", &token).await }
    };
    // Strings, booleans, arrays and objects are not NumericDates, whatever they hold.
    for name in ["exp", "nbf", "iat"] {
        for value in [
            json!((now + 600).to_string()),
            json!("1.9e9"),
            json!("2030-01-01T00:00:00Z"),
            json!(true),
            json!([now + 600]),
            json!({"$date": now + 600}),
        ] {
            let reply = send(json!({ name: value })).await;
            assert_invalid_token(&reply, &format!("invalid claim {name}"));
        }
    }
    // Floats are rounded down; values past year 9999 or outside an i64 are refused, never
    // saturated (`exp: 2^64` once read as "never expires").
    let cases = [
        (json!({"exp": (now - 120) as f64 + 0.999}), "token expired"),
        (json!({"exp": -1}), "token expired"),
        (json!({"exp": 18446744073709551616.0}), "exp out of range"),
        (json!({"exp": u64::MAX}), "exp out of range"),
        (json!({"exp": 1u64 << 63}), "exp out of range"),
        (json!({"exp": 1e300}), "exp out of range"),
        (json!({"exp": 253402300800_i64}), "exp out of range"),
        (json!({"exp": i64::MIN}), "exp out of range"),
        (json!({"exp": -1e300}), "exp out of range"),
        (json!({"nbf": 1e300}), "nbf out of range"),
        (json!({"nbf": u64::MAX}), "nbf out of range"),
        (json!({"iat": i64::MAX}), "iat out of range"),
        (
            json!({"iat": (now + 3600) as f64 + 0.5}),
            "token issued in the future",
        ),
    ];
    for (changes, description) in cases {
        assert_invalid_token(&send(changes).await, description);
    }
    // The last second of year 9999 is still a date.
    assert_ok(&send(json!({"exp": 253402300799_i64})).await);
    // Missing `exp` is a failure by default (RFC 8725 §3.10 leaves it to the application).
    assert_invalid_token(
        &send(json!({"exp": null})).await,
        "missing required claim exp",
    );
}

#[tokio::test]
async fn aud_and_iss_must_be_present_and_match_exactly() {
    let app = app().await;
    let key = ed();
    let send = |changes: Value| {
        let token = key.sign(&claims_with(changes));
        let app = app.clone();
        async move { get_with_token(&app, "/me", &token).await }
    };
    for aud in [json!(AUDIENCE), json!([AUDIENCE]), json!(["x", AUDIENCE])] {
        assert_ok(&send(json!({ "aud": aud })).await);
    }
    for aud in [
        Value::Null,
        json!("other"),
        json!(["other"]),
        json!([]),
        json!(""),
        json!("TEST-API"),
        json!(format!("{AUDIENCE} ")),
        json!(format!("{AUDIENCE},other")),
        json!(format!("{AUDIENCE}\u{0}")),
    ] {
        assert_invalid_token(&send(json!({ "aud": aud })).await, "audience not allowed");
    }
    for aud in [
        json!(7),
        json!([7]),
        json!([[AUDIENCE]]),
        json!({"aud": AUDIENCE}),
    ] {
        assert_invalid_token(&send(json!({ "aud": aud })).await, "invalid claim aud");
    }
    for iss in [
        Value::Null,
        json!("https://evil.test/"),
        json!("https://issuer.test"),
        json!("https://ISSUER.test/"),
        json!("https://issuer.test/."),
        json!(format!("{ISSUER}\u{0}")),
        json!(""),
    ] {
        assert_invalid_token(&send(json!({ "iss": iss })).await, "issuer not allowed");
    }
    for iss in [json!(7), json!([ISSUER]), json!({"iss": ISSUER})] {
        assert_invalid_token(&send(json!({ "iss": iss })).await, "invalid claim iss");
    }
}

#[tokio::test]
async fn a_token_signed_by_one_issuer_cannot_pass_as_another() {
    const A: &str = "https://a.test/";
    const B: &str = "https://b.test/";
    let key_a = TestKey::rsa("rsa-a", "a", jsonwebtoken::Algorithm::RS256);
    let key_b = TestKey::rsa("rsa-b", "b", jsonwebtoken::Algorithm::RS256);
    let ed_b = TestKey::ed25519("b-ed");
    let app = app_with(
        vec![
            Issuer::new(A)
                .audience(AUDIENCE)
                .key(KeySource::jwks_json(jwks(&[&key_a]))),
            Issuer::new(B)
                .audience(AUDIENCE)
                .key(KeySource::jwks_json(jwks(&[&key_b, &ed_b]))),
        ],
        |b| b,
    )
    .await;
    let as_a = claims_with(json!({"iss": A}));
    let as_b = claims_with(json!({"iss": B}));
    assert_ok(&get_with_token(&app, "/me", &key_a.sign(&as_a)).await);
    assert_ok(&get_with_token(&app, "/me", &key_b.sign(&as_b)).await);

    // B's keys, claiming to be A: A's keys don't know B's kids...
    let b_as_a = [key_b.sign(&as_a), ed_b.sign(&as_a)];
    expect_invalid(&app, &b_as_a, "no key for this token").await;
    // ...and B's key under A's kid, or with no kid, fails A's signature check.
    let borrowed = [
        key_b.sign_with_header(&json!({"alg": "RS256", "kid": "a"}), &as_a),
        key_b.sign_with_header(&json!({"alg": "RS256"}), &as_a),
    ];
    expect_invalid(&app, &borrowed, "signature invalid").await;
    // The same the other way round.
    let a_as_b = key_a.sign_with_header(&json!({"alg": "RS256", "kid": "b"}), &as_b);
    expect_invalid(&app, &[a_as_b], "signature invalid").await;
    expect_invalid(&app, &[key_a.sign(&as_b)], "no key for this token").await;
}

#[tokio::test]
async fn oversized_tokens_and_deeply_nested_json_are_refused_safely() {
    let app = app().await;
    let key = ed();
    // Over the default 8 KiB cap, in the header or the payload: refused before decoding.
    let big_header = key.sign_with_header(
        &json!({"alg": "EdDSA", "kid": "ed", "x": "a".repeat(9 * 1024)}),
        &valid_claims(),
    );
    let big_payload = key.sign(&claims_with(json!({"pad": "a".repeat(9 * 1024)})));
    let garbage = "a".repeat(100 * 1024);
    expect_invalid(
        &app,
        &[big_header, big_payload, garbage],
        "token longer than the configured maximum",
    )
    .await;

    // Under a 1 MiB cap, nesting 100 000 levels deep never overflows the stack.
    let big_app = app_with(
        vec![issuer_with(KeySource::jwks_json(jwks(&[&key])))],
        |b| b.max_token_len(1 << 20),
    )
    .await;
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let header = r#"{"alg":"EdDSA","kid":"ed"}"#;
    let signed = |header: &str, payload: &str| sign_raw(header, payload, &key.encoding, key.alg);
    let claims = valid_claims().to_string();
    let malformed = [
        signed(&deep, &claims),
        signed(header, &deep),
        signed(&format!(r#"{{"alg":"EdDSA","kid":{deep}}}"#), &claims),
        signed(
            &format!(r#"{{"alg":"EdDSA","kid":"ed","crit":{deep}}}"#),
            &claims,
        ),
        signed(
            &format!(r#"{{"alg":"EdDSA","kid":"ed","typ":{deep_object}}}"#),
            &claims,
        ),
    ];
    expect_invalid(&big_app, &malformed, "malformed token").await;
    // In a claim the verifier reads, it is a badly typed claim.
    for (member, value) in [("aud", &deep), ("exp", &deep_object), ("iss", &deep)] {
        let claims = claims_with(json!({ member: null })).to_string();
        let claims = format!("{},\"{member}\":{value}}}", &claims[..claims.len() - 1]);
        let token = signed(header, &claims);
        expect_invalid(&big_app, &[token], &format!("invalid claim {member}")).await;
    }
}

#[tokio::test]
async fn extra_dots_and_whitespace_are_refused() {
    let app = app().await;
    let token = ed().sign(&valid_claims());
    let [header, payload, signature] = parts(&token);
    let malformed = [
        format!("{token}."),
        format!(".{token}"),
        format!("{header}..{payload}.{signature}"),
        format!("{header}.{payload}..{signature}"),
        format!("{header}.{payload}.{signature}.{signature}"),
        format!("{header}.{payload}"),
        format!("{header}{payload}.{signature}"),
        "..".to_owned(),
        "...".to_owned(),
    ];
    expect_invalid(&app, &malformed, "malformed token").await;

    for value in [
        format!("Bearer {header}. {payload}.{signature}"),
        format!("Bearer {header}.{payload}.{signature} "),
        format!("Bearer {header}.{payload}.{signature}\t"),
        format!("Bearer\t{token}"),
        format!("Bearer {token} {token}"),
        format!("Bearer {token}, Bearer {token}"),
        format!("Bearer {token}\u{a0}"),
        format!("Bearer \u{3000}{token}"),
    ] {
        let reply = get_with_headers(&app, "/me", &[("authorization", value.as_bytes())]).await;
        assert_invalid_request(&reply, "malformed authorization header");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = app().await;
    let good = format!("Bearer {}", ed().sign(&valid_claims()));
    let forged = format!("Bearer {}", TestKey::rs256("x").sign(&valid_claims()));
    for pair in [
        [good.as_str(), good.as_str()],
        [good.as_str(), forged.as_str()],
        [forged.as_str(), good.as_str()],
        [good.as_str(), "Basic dXNlcjpwYXNz"],
        ["Basic dXNlcjpwYXNz", good.as_str()],
    ] {
        let headers = [
            ("authorization", pair[0].as_bytes()),
            ("authorization", pair[1].as_bytes()),
        ];
        let reply = get_with_headers(&app, "/me", &headers).await;
        assert_invalid_request(&reply, "more than one token in the request");
    }
}

#[tokio::test]
async fn a_token_in_the_query_or_a_cookie_is_ignored_unless_opted_in() {
    let app = app().await;
    let token = ed().sign(&valid_claims());
    let bare = r#"Bearer realm="tests""#;
    for path in [
        format!("/me?access_token={token}"),
        format!("/me?token={token}"),
        format!("/me?id_token={token}"),
    ] {
        let reply = get_with_headers(&app, &path, &[]).await;
        assert_eq!(
            (reply.status, reply.www_authenticate()),
            (StatusCode::UNAUTHORIZED, bare)
        );
        // Beside a header token it is ignored, not counted as a second token.
        let header = format!("Bearer {token}");
        let reply = get_with_headers(&app, &path, &[("authorization", header.as_bytes())]).await;
        assert_ok(&reply);
    }
    let cookie = format!("access_token={token}; token={token}");
    let reply = get_with_headers(&app, "/me", &[("cookie", cookie.as_bytes())]).await;
    assert_eq!(
        (reply.status, reply.www_authenticate()),
        (StatusCode::UNAUTHORIZED, bare)
    );

    // Opted in, the query works, and a token in both places is refused.
    let query_app = app_with(
        vec![issuer_with(KeySource::jwks_json(jwks(&[&ed()])))],
        |b| b.token_from_query("access_token"),
    )
    .await;
    let path = format!("/me?access_token={token}");
    assert_ok(&get_with_headers(&query_app, &path, &[]).await);
    let header = format!("Bearer {token}");
    let reply = get_with_headers(&query_app, &path, &[("authorization", header.as_bytes())]).await;
    assert_invalid_request(&reply, "more than one token in the request");
}

#[tokio::test]
async fn a_header_remembered_from_a_valid_token_lends_no_trust() {
    // The layer skips re-reading a header whose bytes match the last verified token's. A token
    // reusing those bytes must still carry its own valid signature, and one whose header differs
    // by a single byte is read afresh.
    let app = app().await;
    let honest = ed().sign(&valid_claims());
    assert_ok(&get_with_token(&app, "/me", &honest).await);
    let [header, payload, signature] = parts(&honest);

    // The same header with another payload and the honest signature, or another key's signature.
    let other_payload = b64url(claims_with(json!({"sub": "admin"})).to_string().as_bytes());
    let other_signature = parts(&TestKey::ed25519("ed-other").sign(&valid_claims()))[2].clone();
    let forged = vec![
        format!("{header}.{other_payload}.{signature}"),
        format!("{header}.{payload}.{other_signature}"),
    ];
    expect_invalid(&app, &forged, "signature invalid").await;

    // The honest header with `alg` changed: read afresh, so the swap is seen.
    let swapped = b64url(json!({"alg": "none", "kid": "ed"}).to_string().as_bytes());
    expect_invalid(
        &app,
        &[format!("{swapped}.{payload}.{signature}")],
        "unsecured token (alg none)",
    )
    .await;
    assert_ok(&get_with_token(&app, "/me", &honest).await);
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

#[tokio::test]
async fn every_entry_point_enforces_the_token_size_cap() {
    let key = ed();
    let big = key.sign(&claims_with(json!({"pad": "a".repeat(9 * 1024)})));
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(issuer_with(KeySource::jwks_json(jwks(&[&key]))))
        .build()
        .await
        .unwrap();
    assert_eq!(
        layer.verify(&big).await.unwrap_err(),
        AuthError::TokenTooLarge
    );
    let roomy = JwtAuthLayer::<Value>::builder()
        .issuer(issuer_with(KeySource::jwks_json(jwks(&[&key]))))
        .max_token_len(64 * 1024)
        .build()
        .await
        .unwrap();
    assert!(roomy.verify(&big).await.is_ok());

    let verifier =
        SignatureVerifier::new(&[KeySource::jwks_json(jwks(&[&key]))], [Algorithm::EdDSA]).unwrap();
    assert_eq!(verifier.verify(&big).unwrap_err(), AuthError::TokenTooLarge);
    assert_eq!(
        verifier.verify(&"a".repeat(1 << 20)).unwrap_err(),
        AuthError::TokenTooLarge
    );
    let verifier = verifier.max_len(64 * 1024);
    assert!(verifier.verify(&big).is_ok());
}
