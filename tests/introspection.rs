//! Introspection (RFC 7662) against the test issuer's endpoint: opaque tokens reach handlers as
//! the same `Claims<T>` and `VerifiedToken`; inactive tokens and bad claims are refused; answers
//! are cached (inactive ones too); 1,000 concurrent requests make one call; an outage is a `503`
//! with `Retry-After`; both client authentication methods; JWTs introspected on request.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use support::ManualClock;
use tower::ServiceExt as _;
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{
    AuthError, Claims, ClientCredentials, Issuer, JwtAuthLayer, RevocationList, VerifiedToken,
};

async fn layer(issuer: &TestIssuer) -> JwtAuthLayer<Value> {
    JwtAuthLayer::<Value>::builder()
        .issuer(issuer.introspection_issuer_config())
        .build()
        .await
        .unwrap()
}

/// Polls `condition` every 5 ms until it holds; fails the test after 30 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_opaque_token_reaches_the_handler_with_the_same_claims_and_token() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = axum::Router::new()
        .route(
            "/me",
            axum::routing::get(
                |Claims(claims): Claims<Value>, token: VerifiedToken| async move {
                    format!(
                        "{} {} {} {}",
                        claims["sub"].as_str().unwrap_or("-"),
                        token.registered_claims().sub.as_deref().unwrap_or("-"),
                        token.has_scope("orders:read"),
                        token.is_introspected()
                    )
                },
            ),
        )
        .layer(layer(&issuer).await);
    let token = issuer.opaque_token(json!({ "sub": "alice", "scope": "orders:read" }));
    let response = app
        .oneshot(
            Request::get("/me")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"alice alice true true");
}

#[tokio::test]
async fn an_inactive_token_is_401_and_its_answer_is_cached_briefly() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer).await;
    let token = issuer.opaque_token(json!({}));
    issuer.deactivate(&token);
    let error = layer.verify(&token).await.unwrap_err();
    assert_eq!(error, AuthError::InactiveToken);
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error.cause(), "inactive_token");
    // An unknown token too; and the negative answer is kept.
    assert_eq!(
        layer.verify("not-a-token-it-knows").await.unwrap_err(),
        AuthError::InactiveToken
    );
    let calls = issuer.introspection_requests();
    assert_eq!(
        layer.verify(&token).await.unwrap_err(),
        AuthError::InactiveToken
    );
    assert_eq!(issuer.introspection_requests(), calls);
}

/// `GET /me` through `app` with this `Authorization` header value.
async fn status_of(app: &axum::Router, authorization: &str) -> StatusCode {
    let request = Request::get("/me")
        .header("authorization", authorization)
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn an_opaque_token_outside_b64token_is_never_sent_to_the_endpoint() {
    // A header token's characters are checked only when the layer does not accept the token,
    // but before it asks the endpoint anything.
    let issuer = TestIssuer::start().await.unwrap();
    let app = axum::Router::new()
        .route("/me", axum::routing::get(|| async { "ok" }))
        .layer(layer(&issuer).await);
    let token = issuer.opaque_token(json!({ "sub": "alice" }));
    for value in [format!("Bearer {token}!"), format!("Bearer {token}\u{e9}")] {
        assert_eq!(
            status_of(&app, &value).await,
            StatusCode::BAD_REQUEST,
            "{value}"
        );
    }
    assert_eq!(issuer.introspection_requests(), 0);
    // The well-formed token is asked for, and accepted.
    assert_eq!(
        status_of(&app, &format!("Bearer {token}")).await,
        StatusCode::OK
    );
    assert_eq!(issuer.introspection_requests(), 1);
}

#[tokio::test]
async fn active_answers_are_cached_and_their_claims_checked_on_every_request() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer).await;
    let token = issuer.opaque_token(json!({ "jti": "op-1" }));
    layer.verify(&token).await.unwrap();
    layer.verify(&token).await.unwrap();
    assert_eq!(
        issuer.introspection_requests(),
        1,
        "the second came from the cache"
    );
    // The claims of an answer are checked like a JWT's.
    for (claims, expected) in [
        (json!({ "exp": 1_000 }), AuthError::Expired),
        (json!({ "aud": "other-api" }), AuthError::AudienceNotAllowed),
        (
            json!({ "iss": "https://evil.test/" }),
            AuthError::IssuerNotAllowed,
        ),
        (json!({ "nbf": 4_000_000_000_i64 }), AuthError::NotYetValid),
    ] {
        let token = issuer.opaque_token(claims.clone());
        assert_eq!(
            layer.verify(&token).await.unwrap_err(),
            expected,
            "{claims}"
        );
    }
}

#[tokio::test]
async fn a_thousand_concurrent_requests_make_one_introspection_call() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = Arc::new(layer(&issuer).await);
    let token = Arc::new(issuer.opaque_token(json!({})));
    // The endpoint holds its answer until every request is waiting.
    issuer.set_hang(true);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (layer, token) = (Arc::clone(&layer), Arc::clone(&token));
        requests.spawn(async move { layer.verify(&token).await.map(|_| ()) });
    }
    eventually("the first call to reach the endpoint", || {
        issuer.introspection_requests() >= 1
    })
    .await;
    // Let every request reach the point where it waits (they run on this thread).
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    issuer.set_hang(false);
    while let Some(result) = requests.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(issuer.introspection_requests(), 1);
}

#[tokio::test]
async fn an_endpoint_outage_is_503_with_retry_after_never_500() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer).await;
    issuer.set_outage(true);
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(layer.clone());
    let token = issuer.opaque_token(json!({}));
    let response = app
        .oneshot(
            Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let error = layer.verify(&token).await.unwrap_err();
    assert_eq!(error.cause(), "introspection_unavailable");
    // Failures are not cached: the endpoint back, the token passes.
    issuer.set_outage(false);
    layer.verify(&token).await.unwrap();
}

#[tokio::test]
async fn client_secret_post_works_and_wrong_credentials_are_503() {
    let issuer = TestIssuer::start().await.unwrap();
    let with = |credentials| {
        JwtAuthLayer::<Value>::builder()
            .issuer(
                Issuer::new(issuer.issuer())
                    .audience(issuer.audience())
                    .introspection(issuer.introspection_url(), credentials),
            )
            .build()
    };
    let post = with(ClientCredentials::post(
        TestIssuer::INTROSPECTION_CLIENT_ID,
        TestIssuer::INTROSPECTION_CLIENT_SECRET,
    ))
    .await
    .unwrap();
    let token = issuer.opaque_token(json!({}));
    post.verify(&token).await.unwrap();
    let wrong = with(ClientCredentials::basic(
        TestIssuer::INTROSPECTION_CLIENT_ID,
        "wrong",
    ))
    .await
    .unwrap();
    let error = wrong.verify(&token).await.unwrap_err();
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn jwts_are_introspected_only_when_asked_and_after_their_signature() {
    let issuer = TestIssuer::start().await.unwrap();
    let token = issuer.token(json!({ "jti": "j-1" }));
    issuer.deactivate(&token);
    // By default a JWT is verified locally only.
    layer(&issuer).await.verify(&token).await.unwrap();
    assert_eq!(issuer.introspection_requests(), 0);
    let strict = JwtAuthLayer::<Value>::builder()
        .issuer(issuer.introspection_issuer_config().introspect_jwts())
        .build()
        .await
        .unwrap();
    assert_eq!(
        strict.verify(&token).await.unwrap_err(),
        AuthError::InactiveToken
    );
    strict.verify(&issuer.token(json!({}))).await.unwrap();
    // A forged JWT never reaches the endpoint.
    let calls = issuer.introspection_requests();
    let forged = issuer.token_builder().signed_by_unknown_key().sign();
    assert_eq!(
        strict.verify(&forged).await.unwrap_err(),
        AuthError::InvalidSignature
    );
    assert_eq!(issuer.introspection_requests(), calls);
}

#[tokio::test]
async fn the_revocation_list_applies_to_introspected_tokens() {
    let issuer = TestIssuer::start().await.unwrap();
    let list = RevocationList::memory();
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(issuer.introspection_issuer_config())
        .revocation(list.clone())
        .build()
        .await
        .unwrap();
    let token = issuer.opaque_token(json!({ "jti": "op-revoked" }));
    layer.verify(&token).await.unwrap();
    list.revoke_token("op-revoked", 4_000_000_000)
        .await
        .unwrap();
    assert_eq!(layer.verify(&token).await.unwrap_err(), AuthError::Revoked);
}

#[tokio::test]
async fn only_one_issuer_may_introspect_and_an_issuer_may_have_only_introspection() {
    let issuer = TestIssuer::start().await.unwrap();
    let credentials = || ClientCredentials::basic("a", "b");
    let error = JwtAuthLayer::<Value>::builder()
        .issuer(
            Issuer::new("https://a.test/").introspection(issuer.introspection_url(), credentials()),
        )
        .issuer(
            Issuer::new("https://b.test/").introspection(issuer.introspection_url(), credentials()),
        )
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("introspection"), "{error}");
    let opaque_only = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::new(issuer.issuer()).introspection(
            issuer.introspection_url(),
            ClientCredentials::basic(
                TestIssuer::INTROSPECTION_CLIENT_ID,
                TestIssuer::INTROSPECTION_CLIENT_SECRET,
            ),
        ))
        .build()
        .await
        .unwrap();
    opaque_only
        .verify(&issuer.opaque_token(json!({})))
        .await
        .unwrap();
    // The secret never shows in a debug dump.
    assert!(!format!("{:?}", ClientCredentials::basic("id", "s3cr3t")).contains("s3cr3t"));
}

#[tokio::test]
async fn a_cached_answer_is_read_once_but_its_time_claims_and_validators_run_on_every_request() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let issuer = TestIssuer::start().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let clock = ManualClock::at(now);
    let deny = Arc::new(AtomicBool::new(false));
    let validations = Arc::new(AtomicUsize::new(0));
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(issuer.introspection_issuer_config())
        .clock(Arc::clone(&clock))
        .leeway(Duration::ZERO)
        .validate({
            let (deny, validations) = (Arc::clone(&deny), Arc::clone(&validations));
            move |_: &Value| {
                validations.fetch_add(1, Ordering::SeqCst);
                if deny.load(Ordering::SeqCst) {
                    Err("denied".into())
                } else {
                    Ok(())
                }
            }
        })
        .build()
        .await
        .unwrap();
    let token = issuer.opaque_token(json!({ "exp": now + 60, "iat": now }));
    let first = layer.verify(&token).await.unwrap();
    let second = layer.verify(&token).await.unwrap();
    // The second request got the claims read for the first, not a second reading.
    assert!(Arc::ptr_eq(&first.0.0, &second.0.0));
    assert_eq!(issuer.introspection_requests(), 1);
    assert_eq!(
        validations.load(Ordering::SeqCst),
        2,
        "validators run per request"
    );

    deny.store(true, Ordering::SeqCst);
    assert!(matches!(
        layer.verify(&token).await.unwrap_err(),
        AuthError::ClaimsRejected(_)
    ));
    deny.store(false, Ordering::SeqCst);
    clock.set(now + 61);
    assert_eq!(layer.verify(&token).await.unwrap_err(), AuthError::Expired);
    assert_eq!(
        issuer.introspection_requests(),
        1,
        "all from the cached answer"
    );
}
