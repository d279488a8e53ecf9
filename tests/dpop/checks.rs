//! The checks RFC 9449 section 4.3 makes on a proof: every header and claim check, replay, and
//! exactly one `DPoP` header.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tower_jwt_auth::Algorithm;
use tower_jwt_auth::dpop::{DpopConfig, DpopPolicy};

use super::support::*;
use super::{
    ClientKey, URL, app, app_with, assert_invalid_proof, ath, builder, dpop_request, send,
};

#[tokio::test]
async fn every_header_check_of_section_4_3_refuses_a_bad_proof() {
    let app = app(DpopPolicy::Required).await;
    let key = ClientKey::es256();
    let other = ClientKey::new(TestKey::ec("ec-p384", "other"));
    let token = key.token();
    let claims = key.claims("GET", URL, &token);
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = json!("AAAA");
    let mut pinned_jwk = key.jwk.clone();
    pinned_jwk["alg"] = json!("ES384");
    let hs_token = hs256(SECRET, None, &claims);
    let hs_proof = {
        let (_, rest) = hs_token.split_once('.').unwrap();
        let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk});
        format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(header.to_string().as_bytes())
        )
    };
    let good = key.proof("GET", URL, &token);
    let (signing_input, _) = good.rsplit_once('.').unwrap();
    let forged_signature = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([1u8; 64]));
    let unsecured = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let cases: Vec<(&str, String, &str)> =
        vec![
        (
            "typ missing",
            key.sign(&json!({"alg": "ES256", "jwk": key.jwk}), &claims),
            "typ is not dpop+jwt",
        ),
        (
            "typ JWT",
            key.sign(&json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk}), &claims),
            "typ is not dpop+jwt",
        ),
        (
            "ES384 is not in the default list",
            other.proof("GET", URL, &token),
            "alg not allowed",
        ),
        ("HS256 proof", hs_proof, "alg not allowed"),
        ("alg none", unsecured, "unsecured proof"),
        (
            "no jwk",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &claims),
            "no jwk in the header",
        ),
        (
            "jwk with a private member",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private_jwk}), &claims),
            "jwk holds private key material",
        ),
        (
            "jwk pinned to another alg",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": pinned_jwk}), &claims),
            "jwk alg differs from the proof's alg",
        ),
        (
            "jwk is a symmetric key",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "AAAA"}}),
                &claims,
            ),
            "jwk holds private key material",
        ),
        ("forged signature", forged_signature, "signature invalid"),
        ("not a JWS", "a.b".to_owned(), "malformed proof"),
        (
            "crit",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk, "crit": ["x"], "x": 1}),
                &claims,
            ),
            "unsupported crit",
        ),
    ];
    for (case, proof, reason) in cases {
        let response = send(
            &app,
            dpop_request(Method::GET, "/orders", &token, &[&proof]),
        )
        .await;
        assert_invalid_proof(&response, reason, case);
    }
    // A proof signed by one key that names another in `jwk` fails its signature check.
    let p384 = ClientKey::new(TestKey::ec("ec-p384", "p384"));
    let mismatched = p384.key.sign_with_header(
        &json!({"typ": "dpop+jwt", "alg": "ES384", "jwk": key.jwk}),
        &claims,
    );
    let app384 = app_with(
        builder(DpopPolicy::Required)
            .dpop(DpopConfig::default().algorithms([Algorithm::ES256, Algorithm::ES384])),
    )
    .await;
    let response = send(
        &app384,
        dpop_request(Method::GET, "/orders", &token, &[&mismatched]),
    )
    .await;
    assert_invalid_proof(
        &response,
        "jwk is not a usable key for the proof's alg",
        "mislabelled",
    );
    let ed = ClientKey::new(TestKey::ed25519("ed"));
    let foreign = ed.key.sign_with_header(
        &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ClientKey::new(TestKey::ed25519("e2")).jwk}),
        &claims,
    );
    // Same Ed25519 key file, so it verifies; flip a signature byte to make it another signer's.
    let (input, signature) = foreign.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 1;
    let foreign = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&foreign]),
    )
    .await;
    assert_invalid_proof(&response, "signature invalid", "other signer");
}

#[tokio::test]
async fn every_claim_check_of_section_4_3_refuses_a_bad_proof() {
    let start = now();
    let clock = ManualClock::at(start);
    let app = app_with(builder(DpopPolicy::Required).clock(Arc::clone(&clock))).await;
    let key = ClientKey::es256();
    let token = key.token();
    let with = |changes: Value| {
        let mut claims = key.claims("GET", URL, &token);
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        key.sign(&key.header(), &claims)
    };
    let cases = [
        (
            "htm",
            json!({"htm": "POST"}),
            "htm does not match the request method",
        ),
        (
            "htm case",
            json!({"htm": "get"}),
            "htm does not match the request method",
        ),
        (
            "htu host",
            json!({"htu": "https://evil.example.com/orders"}),
            "htu does not match the request URL",
        ),
        (
            "htu path",
            json!({"htu": "https://api.example.com/admin"}),
            "htu does not match the request URL",
        ),
        (
            "htu scheme",
            json!({"htu": "http://api.example.com/orders"}),
            "htu does not match the request URL",
        ),
        (
            "htu port",
            json!({"htu": "https://api.example.com:8443/orders"}),
            "htu does not match the request URL",
        ),
        (
            "htu relative",
            json!({"htu": "/orders"}),
            "htu does not match the request URL",
        ),
        (
            "iat old",
            json!({"iat": start - 61}),
            "iat outside the accepted window",
        ),
        (
            "iat future",
            json!({"iat": start + 61}),
            "iat outside the accepted window",
        ),
        (
            "iat string",
            json!({"iat": start.to_string()}),
            "iat is not a date",
        ),
        ("no iat", json!({"iat": null}), "no iat"),
        ("no jti", json!({"jti": null}), "no jti"),
        ("empty jti", json!({"jti": ""}), "jti is empty or too long"),
        ("no htm", json!({"htm": null}), "no htm"),
        ("no htu", json!({"htu": null}), "no htu"),
        (
            "no ath",
            json!({"ath": null}),
            "ath does not match the access token",
        ),
        (
            "ath of another token",
            json!({"ath": ath("other")}),
            "ath does not match the access token",
        ),
    ];
    for (case, changes, reason) in cases {
        let response = send(
            &app,
            dpop_request(Method::GET, "/orders", &token, &[&with(changes)]),
        )
        .await;
        assert_invalid_proof(&response, reason, case);
    }
    // Within the window on either side, a normalised `htu` and a query are fine.
    for (case, changes) in [
        ("iat 60 s old", json!({"iat": start - 60})),
        ("iat 60 s ahead", json!({"iat": start + 60})),
        (
            "htu normalised",
            json!({"htu": "HTTPS://API.Example.COM:443/orders?page=2#top"}),
        ),
    ] {
        let response = send(
            &app,
            dpop_request(Method::GET, "/orders?page=2", &token, &[&with(changes)]),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{case}");
    }
    // The window is read on the layer's clock.
    let proof = with(json!({}));
    clock.set(start + 120);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_invalid_proof(&response, "iat outside the accepted window", "clock moved");
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let app = app(DpopPolicy::Required).await;
    let key = ClientKey::es256();
    let token = key.token();
    let proof = key.proof("GET", URL, &token);
    let first = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let again = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_invalid_proof(&again, "proof replayed", "replay");
    // A fresh proof passes.
    let fresh = key.proof("GET", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&fresh]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn exactly_one_proof_header_is_required() {
    let app = app(DpopPolicy::Required).await;
    let key = ClientKey::es256();
    let token = key.token();
    let a = key.proof("GET", URL, &token);
    let b = key.proof("GET", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&a, &b]),
    )
    .await;
    assert_invalid_proof(&response, "more than one DPoP header", "two proofs");
    let response = send(&app, dpop_request(Method::GET, "/orders", &token, &[])).await;
    assert_invalid_proof(&response, "no DPoP proof", "no proof");
}
