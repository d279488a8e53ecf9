//! Getting the token out of a request, through a router with the layer: the `Authorization: Bearer`
//! framing of RFC 6750 §2.1, the opt-in cookie/header/query sources, one token per request, the
//! size cap, and the challenges each failure answers with.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderName, Request, StatusCode};
use serde_json::Value;
use support::*;
use tower_jwt_auth::{Claims, Issuer, JwtAuthBuilder, JwtAuthLayer, KeySource};

async fn whoami(Claims(claims): Claims<Value>) -> String {
    claims["sub"].as_str().unwrap_or("-").to_owned()
}

fn token() -> String {
    key().sign(&valid_claims())
}

async fn app_with(
    configure: impl FnOnce(JwtAuthBuilder<Value>) -> JwtAuthBuilder<Value>,
) -> Router {
    let builder = JwtAuthLayer::builder().issuer(
        Issuer::new(ISSUER)
            .audience(AUDIENCE)
            .key(KeySource::jwks_json(jwks(&[&key()]))),
    );
    let layer = configure(builder).build().await.unwrap();
    Router::new().route("/me", get(whoami)).layer(layer)
}

/// Only `Authorization: Bearer`, realm `tests`.
async fn plain_app() -> Router {
    app_with(|b| b.realm("tests")).await
}

/// Every opt-in source turned on, realm `tests`.
async fn all_sources_app() -> Router {
    app_with(|b| {
        b.realm("tests")
            .token_from_cookie("session")
            .token_from_header(HeaderName::from_static("x-access-token"))
            .token_from_query("access_token")
    })
    .await
}

async fn get_path(app: &Router, path: &str) -> Reply {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

#[track_caller]
fn assert_bare_challenge(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.www_authenticate(), r#"Bearer realm="tests""#);
}

#[tokio::test]
async fn accepts_the_bearer_scheme_in_any_case_and_after_several_spaces() {
    let app = plain_app().await;
    let token = token();
    for value in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("bEaReR {token}"),
        format!("Bearer    {token}"),
    ] {
        let reply = get_with_headers(&app, "/me", &[("authorization", value.as_bytes())]).await;
        assert_eq!(reply.status, StatusCode::OK, "{value}");
        assert_eq!(reply.body, "user-1");
    }
}

#[tokio::test]
async fn another_scheme_is_no_token_and_gets_a_bare_challenge() {
    let app = plain_app().await;
    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        format!("Token {}", token()),
        format!("Bearertoken {}", token()),
        format!("DPoP {}", token()),
    ] {
        let reply = get_with_headers(&app, "/me", &[("authorization", value.as_bytes())]).await;
        assert_bare_challenge(&reply);
        assert_eq!(reply.body, "");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_request() {
    let app = plain_app().await;
    let bearer = format!("Bearer {}", token());
    for second in [
        bearer.as_str(),
        "Bearer other.token.here",
        "Basic dXNlcjpwYXNz",
    ] {
        let reply = get_with_headers(
            &app,
            "/me",
            &[
                ("authorization", bearer.as_bytes()),
                ("authorization", second.as_bytes()),
            ],
        )
        .await;
        assert_invalid_request(&reply, "more than one token in the request");
    }
}

#[tokio::test]
async fn anything_but_exactly_one_token_after_bearer_is_invalid_request() {
    let app = plain_app().await;
    let token = token();
    for value in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer a b".to_owned(),
        format!("Bearer {token} {token}"),
        format!("Bearer {token} realm=\"tests\""),
        format!("Bearer {token}, error=\"x\""),
        format!("Bearer {token},"),
        format!("Bearer {token} "),
        format!("Bearer\t{token}"),
        format!("Bearer \"{token}\""),
        "Bearer ===".to_owned(),
    ] {
        let reply = get_with_headers(&app, "/me", &[("authorization", value.as_bytes())]).await;
        assert_invalid_request(&reply, "malformed authorization header");
    }
}

#[tokio::test]
async fn a_token_over_max_token_len_is_refused_without_being_decoded() {
    let app = app_with(|b| b.realm("tests").max_token_len(64)).await;
    // A valid token longer than the cap is refused as too long…
    let valid = get_with_token(&app, "/me", &token()).await;
    // …and so is garbage: had it been decoded, the answer would say "malformed token".
    let garbage = get_with_token(&app, "/me", &"x".repeat(65)).await;
    for reply in [valid, garbage] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.www_authenticate(),
            challenge(
                "tests",
                "invalid_token",
                "token longer than the configured maximum"
            )
        );
    }
    let at_cap = get_with_token(&app, "/me", &"x".repeat(64)).await;
    assert_eq!(
        at_cap.www_authenticate(),
        challenge("tests", "invalid_token", "malformed token")
    );
}

#[tokio::test]
async fn the_default_cap_is_8_kib() {
    let app = plain_app().await;
    let over = get_with_token(&app, "/me", &"x".repeat(8 * 1024 + 1)).await;
    assert_eq!(
        over.www_authenticate(),
        challenge(
            "tests",
            "invalid_token",
            "token longer than the configured maximum"
        )
    );
    let at_cap = get_with_token(&app, "/me", &"x".repeat(8 * 1024)).await;
    assert_eq!(
        at_cap.www_authenticate(),
        challenge("tests", "invalid_token", "malformed token")
    );
}

#[tokio::test]
async fn the_size_cap_applies_to_opt_in_sources_too() {
    let app = app_with(|b| {
        b.realm("tests")
            .max_token_len(64)
            .token_from_cookie("session")
    })
    .await;
    let cookie = format!("session={}", "x".repeat(65));
    let reply = get_with_headers(&app, "/me", &[("cookie", cookie.as_bytes())]).await;
    assert_eq!(
        reply.www_authenticate(),
        challenge(
            "tests",
            "invalid_token",
            "token longer than the configured maximum"
        )
    );
}

#[tokio::test]
async fn opt_in_sources_deliver_the_token() {
    let app = all_sources_app().await;
    let token = token();
    let cookie = format!("theme=dark; session={token}; lang=en");
    let quoted_cookie = format!("session=\"{token}\"");
    let replies = [
        get_with_headers(&app, "/me", &[("cookie", cookie.as_bytes())]).await,
        get_with_headers(&app, "/me", &[("cookie", quoted_cookie.as_bytes())]).await,
        get_with_headers(&app, "/me", &[("x-access-token", token.as_bytes())]).await,
        get_path(&app, &format!("/me?x=1&access_token={token}")).await,
    ];
    for reply in replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.www_authenticate());
        assert_eq!(reply.body, "user-1");
    }
}

#[tokio::test]
async fn another_authorization_scheme_does_not_hide_an_opt_in_source() {
    let app = all_sources_app().await;
    let cookie = format!("session={}", token());
    let reply = get_with_headers(
        &app,
        "/me",
        &[
            ("authorization", b"Basic dXNlcjpwYXNz"),
            ("cookie", cookie.as_bytes()),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_in_two_places_is_invalid_request() {
    let app = all_sources_app().await;
    let token = token();
    let bearer = format!("Bearer {token}");
    let cookie = format!("session={token}");
    let two_cookies = format!("session={token}; session={token}");
    let query = format!("/me?access_token={token}");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>);
    let cases: [Case<'_>; 6] = [
        (
            "/me",
            vec![
                ("authorization", bearer.as_bytes()),
                ("cookie", cookie.as_bytes()),
            ],
        ),
        (
            "/me",
            vec![
                ("authorization", bearer.as_bytes()),
                ("x-access-token", token.as_bytes()),
            ],
        ),
        (&query, vec![("authorization", bearer.as_bytes())]),
        (&query, vec![("cookie", cookie.as_bytes())]),
        ("/me", vec![("cookie", two_cookies.as_bytes())]),
        (
            "/me",
            vec![
                ("x-access-token", token.as_bytes()),
                ("x-access-token", token.as_bytes()),
            ],
        ),
    ];
    for (path, headers) in cases {
        let reply = get_with_headers(&app, path, &headers).await;
        assert_invalid_request(&reply, "more than one token in the request");
    }
    let twice = get_path(
        &app,
        &format!("/me?access_token={token}&access_token={token}"),
    )
    .await;
    assert_invalid_request(&twice, "more than one token in the request");
}

#[tokio::test]
async fn sources_that_are_not_opted_in_are_ignored() {
    let app = plain_app().await;
    let token = token();
    let cookie = format!("session={token}");
    let replies = [
        get_path(&app, &format!("/me?access_token={token}")).await,
        get_with_headers(&app, "/me", &[("cookie", cookie.as_bytes())]).await,
        get_with_headers(&app, "/me", &[("x-access-token", token.as_bytes())]).await,
    ];
    for reply in replies {
        assert_bare_challenge(&reply);
    }
}

#[tokio::test]
async fn the_realm_appears_in_every_challenge_and_is_omitted_when_unset() {
    let with_realm = plain_app().await;
    assert_bare_challenge(&get_path(&with_realm, "/me").await);
    let bad = get_with_token(&with_realm, "/me", &"x".repeat(10)).await;
    assert!(
        bad.www_authenticate()
            .starts_with(r#"Bearer realm="tests", "#)
    );

    let without = app_with(|b| b).await;
    let missing = get_path(&without, "/me").await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.www_authenticate(), "Bearer");
    let malformed = get_with_headers(&without, "/me", &[("authorization", b"Bearer a b")]).await;
    assert_eq!(
        malformed.www_authenticate(),
        r#"Bearer error="invalid_request", error_description="malformed authorization header""#
    );
}

#[tokio::test]
async fn non_ascii_bytes_in_token_headers_are_invalid_request_not_500() {
    let app = all_sources_app().await;
    let token = token();
    let mut latin1 = format!("Bearer {token}").into_bytes();
    latin1.push(0xe9);
    let mut utf8_token = b"Bearer ".to_vec();
    utf8_token.extend("tökén".as_bytes());
    for value in [latin1, utf8_token, b"Bearer \xff\xfe".to_vec()] {
        let reply = get_with_headers(&app, "/me", &[("authorization", &value)]).await;
        assert_invalid_request(&reply, "malformed authorization header");
    }
    let mut custom = token.into_bytes();
    custom.push(0x80);
    let reply = get_with_headers(&app, "/me", &[("x-access-token", &custom)]).await;
    assert_invalid_request(&reply, "malformed authorization header");
}
