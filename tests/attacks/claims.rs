//! What a token claims to be: its `typ` under the `at+jwt` profile, its dates, its audience and
//! issuer, and an issuer another issuer's key cannot speak for.

use serde_json::{Value, json};
use tower_jwt_auth::{Issuer, KeySource};

use super::support::*;
use super::{app, app_with, ed, expect_invalid};

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
