//! Robustness: broken tokens (bad base64url, wrong part counts, stray spaces, invalid UTF-8, deep
//! nesting, huge sizes) never panic and never get a 500; each gets the exact `401 invalid_token` or
//! `400 invalid_request` its defect calls for. Attacks (alg none, JWE, `crit`, duplicate members,
//! header-embedded keys …) are catalogued in `tests/attacks/`.

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::{Value, json};
use support::*;
use tower_jwt_auth::{Claims, Issuer, JwtAuthLayer, KeySource, RegisteredClaims};

fn issuer() -> Issuer {
    Issuer::new(ISSUER)
        .audience(AUDIENCE)
        .key(KeySource::jwks_json(jwks(&[&key()])))
}

async fn app_with_max_len(max_token_len: usize) -> Router {
    let layer: JwtAuthLayer<Value> = JwtAuthLayer::builder()
        .issuer(issuer())
        .realm("tests")
        .max_token_len(max_token_len)
        .build()
        .await
        .unwrap();
    Router::new()
        .route("/me", get(|_: Claims<Value>| async { "ok" }))
        .layer(layer)
}

async fn app() -> Router {
    app_with_max_len(tower_jwt_auth::DEFAULT_MAX_TOKEN_LEN).await
}

const HEADER: &str = r#"{"alg":"EdDSA","kid":"k"}"#;

/// `header.payload`, both given as text, correctly signed with the test key.
fn signed(header: &str, payload: &str) -> String {
    let key = key();
    sign_raw(header, payload, &key.encoding, key.alg)
}

fn valid_payload() -> String {
    valid_claims().to_string()
}

/// `valid_claims` as JSON text with `extra` (`"name":value` pairs) spliced in as written.
fn payload_with(extra: &str) -> String {
    let payload = valid_payload();
    format!("{},{extra}}}", &payload[..payload.len() - 1])
}

async fn expect_all(app: &Router, tokens: &[String], description: &str) {
    for token in tokens {
        let reply = get_with_token(app, "/me", token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token:.80}");
        assert_eq!(
            reply.www_authenticate(),
            challenge("tests", "invalid_token", description),
            "{token:.80}"
        );
    }
}

#[tokio::test]
async fn the_well_formed_token_used_below_is_accepted() {
    let reply = get_with_token(&app().await, "/me", &signed(HEADER, &valid_payload())).await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// `part` lengthened to 4n+1 characters, which no base64 encoding has.
fn impossible_length(part: &str) -> String {
    let mut part = part.to_owned();
    while part.len() % 4 != 1 {
        part.push('A');
    }
    part
}

#[tokio::test]
async fn bad_base64url_in_any_part_is_a_malformed_token() {
    let token = signed(HEADER, &valid_payload());
    let parts: Vec<&str> = token.split('.').collect();
    let mut tokens = Vec::new();
    for index in 0..3 {
        // Each of these keeps to b64token characters, so only the base64url decoding can fail.
        for broken in [
            format!("+{}", &parts[index][1..]),
            format!("/{}", &parts[index][1..]),
            format!("~{}", &parts[index][1..]),
            impossible_length(parts[index]),
        ] {
            let mut copy = parts.clone();
            copy[index] = &broken;
            tokens.push(copy.join("."));
        }
    }
    // Padding, allowed by b64token only at the very end.
    tokens.push(format!("{token}=="));
    // The same signature bytes with non-zero unused bits: a second spelling of one signature.
    let signature = parts[2];
    assert_eq!(
        signature.len() % 4,
        2,
        "an Ed25519 signature is 86 characters"
    );
    let last = match signature.as_bytes()[signature.len() - 1] {
        b'A' => 'B',
        b'Q' => 'R',
        b'g' => 'h',
        b'w' => 'x',
        other => panic!("{} is not canonical", other as char),
    };
    let respelt = format!("{}{last}", &signature[..signature.len() - 1]);
    tokens.push(format!("{}.{}.{respelt}", parts[0], parts[1]));
    expect_all(&app().await, &tokens, "malformed token").await;
}

#[tokio::test]
async fn padding_inside_the_token_is_invalid_request() {
    let token = signed(HEADER, &valid_payload());
    let (header, rest) = token.split_once('.').unwrap();
    let reply = get_with_token(&app().await, "/me", &format!("{header}=.{rest}")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.www_authenticate(),
        challenge("tests", "invalid_request", "malformed authorization header")
    );
}

#[tokio::test]
async fn a_header_or_payload_that_is_not_a_json_object_is_a_malformed_token() {
    let payload = valid_payload();
    let mut tokens = Vec::new();
    for bad in [
        "", "not json", "[]", "null", "1", "\"alg\"", "{", "{}{}", "{} x",
    ] {
        tokens.push(signed(bad, &payload));
        tokens.push(signed(HEADER, bad));
    }
    tokens.push(signed(HEADER, &format!("[{payload}]")));
    expect_all(&app().await, &tokens, "malformed token").await;
}

#[tokio::test]
async fn badly_typed_or_missing_header_members_are_a_malformed_token() {
    let tokens: Vec<String> = [
        r#"{"kid":"k"}"#,
        r#"{"alg":null,"kid":"k"}"#,
        r#"{"alg":256,"kid":"k"}"#,
        r#"{"alg":["EdDSA"],"kid":"k"}"#,
        r#"{"alg":"EdDSA","kid":7}"#,
        r#"{"alg":"EdDSA","kid":null}"#,
        r#"{"alg":"EdDSA","kid":"k","typ":["JWT"]}"#,
        r#"{"alg":"EdDSA","kid":"k","cty":1}"#,
        r#"{"alg":"EdDSA","kid":"k","crit":[]}"#,
        r#"{"alg":"EdDSA","kid":"k","crit":"exp"}"#,
        r#"{"alg":"EdDSA","kid":"k","b64":"false"}"#,
    ]
    .iter()
    .map(|header| signed(header, &valid_payload()))
    .collect();
    expect_all(&app().await, &tokens, "malformed token").await;
}

#[tokio::test]
async fn unknown_algorithms_are_unsupported() {
    let tokens: Vec<String> = ["ES512", "eddsa", "EDDSA", "HS256 ", "RSA-OAEP", ""]
        .iter()
        .map(|alg| {
            signed(
                &json!({"alg": alg, "kid": "k"}).to_string(),
                &valid_payload(),
            )
        })
        .collect();
    expect_all(&app().await, &tokens, "unsupported algorithm").await;
}

#[tokio::test]
async fn wrong_part_counts_and_empty_parts_are_a_malformed_token() {
    let token = signed(HEADER, &valid_payload());
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let tokens = [
        format!("{token}."),
        format!(".{token}"),
        format!("{token}.{signature}"),
        format!("{token}.a.b.c"),
        token.replacen('.', "..", 1),
        signing_input.to_owned(),
        format!("{signing_input}."),
        "..".to_owned(),
        "...".to_owned(),
        "a".to_owned(),
    ];
    expect_all(&app().await, &tokens, "malformed token").await;
}

#[tokio::test]
async fn spaces_inside_the_token_are_invalid_request() {
    let token = signed(HEADER, &valid_payload());
    let app = app().await;
    for value in [
        format!("Bearer {}", token.replacen('.', ". ", 1)),
        format!("Bearer {} ", token),
        format!("Bearer {}\u{a0}", token),
    ] {
        let reply = get_with_headers(&app, "/me", &[("authorization", value.as_bytes())]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{value:.40}");
        assert_eq!(
            reply.www_authenticate(),
            challenge("tests", "invalid_request", "malformed authorization header")
        );
    }
}

#[tokio::test]
async fn a_100_kib_token_is_refused_as_too_long() {
    let big = signed(
        HEADER,
        &payload_with(&format!(r#""pad":"{}""#, "x".repeat(100 * 1024))),
    );
    let reply = get_with_token(&app().await, "/me", &big).await;
    assert_invalid_token(&reply, "token longer than the configured maximum");
}

fn deeply_nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn deeply_nested_json_in_a_signed_payload_is_invalid_not_a_crash() {
    let app = app_with_max_len(1 << 20).await;
    let deep = deeply_nested(100_000);
    // Into `serde_json::Value`, serde_json's recursion limit stops it.
    let in_member = signed(HEADER, &payload_with(&format!(r#""deep":{deep}"#)));
    let reply = get_with_token(&app, "/me", &in_member).await;
    assert_invalid_token(&reply, "invalid claim claims");
    // In a registered claim it is a badly typed claim.
    let in_jti = signed(HEADER, &payload_with(&format!(r#""jti":{deep}"#)));
    let reply = get_with_token(&app, "/me", &in_jti).await;
    assert_invalid_token(&reply, "invalid claim jti");
    // As the whole payload, it is not an object.
    let whole = signed(HEADER, &deep);
    assert_invalid_token(
        &get_with_token(&app, "/me", &whole).await,
        "malformed token",
    );
}

#[tokio::test]
async fn deeply_nested_json_that_nobody_reads_is_skipped_safely() {
    let layer: JwtAuthLayer<RegisteredClaims> = JwtAuthLayer::builder()
        .issuer(issuer())
        .max_token_len(1 << 20)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/me", get(|_: Claims<RegisteredClaims>| async { "ok" }))
        .layer(layer);
    let deep = deeply_nested(100_000);
    let in_payload = signed(HEADER, &payload_with(&format!(r#""deep":{deep}"#)));
    let in_header = signed(
        &format!(r#"{{"alg":"EdDSA","kid":"k","x":{deep}}}"#),
        &valid_payload(),
    );
    for token in [in_payload, in_header] {
        let reply = get_with_token(&app, "/me", &token).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn invalid_utf8_in_a_signed_header_or_payload_is_a_malformed_token() {
    let key = key();
    let payload = valid_payload();
    let mut bad_payload = payload.clone().into_bytes();
    bad_payload.insert(bad_payload.len() - 1, b' ');
    let at = bad_payload.len() - 2;
    bad_payload[at] = 0xff;
    let mut bad_header = HEADER.as_bytes().to_vec();
    bad_header.insert(1, 0xc3);
    let tokens = [
        sign_bytes(HEADER.as_bytes(), &bad_payload, &key.encoding, key.alg),
        sign_bytes(&bad_header, payload.as_bytes(), &key.encoding, key.alg),
        sign_bytes(
            HEADER.as_bytes(),
            b"{\"sub\":\"\xed\xa0\x80\"}",
            &key.encoding,
            key.alg,
        ),
    ];
    expect_all(&app().await, &tokens, "malformed token").await;
}

#[tokio::test]
async fn a_header_token_with_a_byte_outside_ascii_in_any_part_is_a_malformed_header() {
    // A header token is parsed as bytes, without a UTF-8 pass: a byte above 0x7f in any of its
    // parts must fail the strict base64url decoding, and the token then be refused as malformed
    // (not as, say, a token whose signature merely fails).
    let app = app().await;
    let token = signed(HEADER, &valid_payload());
    let dots: Vec<usize> = token.match_indices('.').map(|(at, _)| at).collect();
    for at in [1, dots[0] + 2, dots[1] + 2, token.len() - 1] {
        for byte in [0x80, 0xc3, 0xff] {
            let mut spoilt = format!("Bearer {token}").into_bytes();
            spoilt["Bearer ".len() + at] = byte;
            let reply = get_with_headers(&app, "/me", &[("authorization", &spoilt)]).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "byte {byte:#x} at {at}"
            );
            assert_eq!(
                reply.www_authenticate(),
                challenge("tests", "invalid_request", "malformed authorization header"),
                "byte {byte:#x} at {at}"
            );
        }
    }
    // The token itself is fine.
    assert_eq!(
        get_with_token(&app, "/me", &token).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_wrong_or_truncated_signature_is_invalid() {
    let token = signed(HEADER, &valid_payload());
    let other = signed(HEADER, &claims_with(json!({"sub": "admin"})).to_string());
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let (_, other_signature) = other.rsplit_once('.').unwrap();
    let tokens = [
        format!("{signing_input}.{other_signature}"),
        format!("{signing_input}.{}", &signature[..signature.len() - 2]),
        format!("{signing_input}.AAAA"),
    ];
    expect_all(&app().await, &tokens, "signature invalid").await;
}
