//! Forged signatures: `alg: none` and empty signatures, HMAC keyed with an issuer's public key,
//! ECDSA signatures of zero, out of range or DER-encoded, and a header remembered from a valid
//! token reused under another payload or signature.

use serde_json::json;
use tower_jwt_auth::{Algorithm, KeySource};

use super::support::*;
use super::{app, app_with, ed, expect_invalid, parts};

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

/// An app trusting a P-256 key (`kid` "p256") and a P-384 key ("p384").
async fn app_with_ec_keys() -> axum::Router {
    app_with(
        vec![issuer_with(KeySource::jwks_json(jwks(&[
            &TestKey::ec("ec-p256", "p256"),
            &TestKey::ec("ec-p384", "p384"),
        ])))],
        |b| b,
    )
    .await
}

#[tokio::test]
async fn ecdsa_zero_and_out_of_range_signatures_are_refused() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 verified any message in Java 15–18.
    let app = app_with_ec_keys().await;
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
    let app = app_with_ec_keys().await;
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
