//! How a token is read: non-canonical base64url, duplicate JSON member names, `crit` and `b64`,
//! JWEs and nested JWTs, oversized tokens and deep JSON, extra dots and whitespace, and the size
//! cap at every entry point.

use serde_json::{Value, json};
use tower_jwt_auth::{Algorithm, AuthError, JwtAuthLayer, KeySource, SignatureVerifier};

use super::support::*;
use super::{app, app_with, ed, expect_invalid, parts};

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
