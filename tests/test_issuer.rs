//! `test_util::TestIssuer` driving a real layer: discovery, each key kind, the usual rejections,
//! key rotation through the unknown-`kid` refetch, outages and hangs, and the request counts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use tower_jwt_auth::test_util::{TestIssuer, TestKeyKind};
use tower_jwt_auth::{Algorithm, Claims, JwtAuthLayer, RefreshPolicy, VerifiedToken};

struct Reply {
    status: StatusCode,
    challenge: String,
    body: String,
}

/// `GET /me` with the token, through a router that answers with the token's `sub`, `kid` and
/// algorithm.
async fn call(layer: &JwtAuthLayer<Value>, token: &str) -> Reply {
    let app = Router::new()
        .route(
            "/me",
            get(
                |Claims(claims): Claims<Value>, token: VerifiedToken| async move {
                    format!(
                        "{} {} {}",
                        claims["sub"].as_str().unwrap_or("-"),
                        token.key_id().unwrap_or("-"),
                        token
                            .algorithm()
                            .map_or_else(|| "-".to_owned(), |alg| format!("{alg:?}"))
                    )
                },
            ),
        )
        .layer(layer.clone());
    let request = Request::get("/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        challenge,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

#[track_caller]
fn assert_ok(reply: &Reply, body: &str) {
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, body),
        "{}",
        reply.challenge
    );
}

#[track_caller]
fn assert_invalid_token(reply: &Reply, description: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.challenge,
        format!(
            r#"Bearer realm="tests", error="invalid_token", error_description="{description}""#
        )
    );
}

/// Refetches for every unknown `kid`, so that a test can make the layer fetch on demand.
fn eager() -> RefreshPolicy {
    RefreshPolicy::default().unknown_kid_cooldown(Duration::ZERO)
}

async fn layer(issuer: &TestIssuer, policy: RefreshPolicy) -> JwtAuthLayer<Value> {
    issuer
        .layer_builder()
        .realm("tests")
        .refresh_policy(policy)
        .build()
        .await
        .unwrap()
}

/// Polls `condition` until it holds, failing after a generous deadline; never a fixed sleep.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn discovery_and_a_valid_token_pass() {
    let issuer = TestIssuer::start().await.unwrap();
    assert_eq!(
        issuer.issuer(),
        format!("http://127.0.0.1:{}", issuer.addr().port())
    );
    let layer = layer(&issuer, RefreshPolicy::default()).await;
    assert_eq!(
        (issuer.discovery_requests(), issuer.jwks_requests()),
        (1, 1)
    );
    let status = &layer.key_sets()[0];
    assert_eq!(status.issuer.as_deref(), Some(issuer.issuer()));
    assert_eq!(status.jwks_url.as_deref(), Some(&*issuer.jwks_url()));
    assert_eq!(status.key_count, 1);

    assert_ok(
        &call(&layer, &issuer.valid_token()).await,
        "test-user es256-1 ES256",
    );
    let alice = issuer.token(json!({ "sub": "alice", "tenant": "acme" }));
    assert_ok(&call(&layer, &alice).await, "alice es256-1 ES256");
    let (claims, _) = layer.verify(&alice).await.unwrap();
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["iss"], issuer.issuer());
    assert_eq!(claims["aud"], TestIssuer::DEFAULT_AUDIENCE);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 300);
    assert_eq!(issuer.jwks_requests(), 1, "known keys need no fetch");
}

#[tokio::test]
async fn every_key_kind_signs_tokens_the_layer_accepts() {
    for (kind, kid, algorithm) in [
        (TestKeyKind::Rsa, "rs256-1", Algorithm::RS256),
        (TestKeyKind::EcP256, "es256-1", Algorithm::ES256),
        (TestKeyKind::Ed25519, "eddsa-1", Algorithm::EdDSA),
    ] {
        let issuer = TestIssuer::builder()
            .key_kind(kind)
            .audience("orders")
            .subject("bob")
            .start()
            .await
            .unwrap();
        assert_eq!(kind.algorithm(), algorithm);
        assert_eq!(issuer.kid(), kid);
        assert_eq!(issuer.jwks()["keys"][0]["alg"], format!("{algorithm:?}"));
        let layer = layer(&issuer, RefreshPolicy::default()).await;
        assert_ok(
            &call(&layer, &issuer.valid_token()).await,
            &format!("bob {kid} {algorithm:?}"),
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer, RefreshPolicy::default()).await;
    assert_invalid_token(
        &call(&layer, &issuer.expired_token()).await,
        "token expired",
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer, RefreshPolicy::default()).await;
    assert_invalid_token(
        &call(&layer, &issuer.token_for_audience("someone-else")).await,
        "audience not allowed",
    );
    // A `null` member removes the claim: a token without `aud` is refused too.
    assert_invalid_token(
        &call(&layer, &issuer.token(json!({ "aud": null }))).await,
        "audience not allowed",
    );
}

#[tokio::test]
async fn an_unknown_kid_is_refused_after_one_refetch() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer, RefreshPolicy::default()).await;
    assert_invalid_token(
        &call(&layer, &issuer.token_with_unknown_kid()).await,
        "no key for this token",
    );
    assert_eq!(issuer.jwks_requests(), 2, "one refetch for the unknown kid");
    assert_invalid_token(
        &call(&layer, &issuer.token_with_kid(json!({}), "another-kid")).await,
        "no key for this token",
    );
    assert_eq!(issuer.jwks_requests(), 2, "the cooldown holds the next one");
}

#[tokio::test]
async fn a_header_token_with_a_character_outside_b64token_fetches_nothing() {
    // The layer checks a header token's characters only when it does not accept it (an accepted
    // token is strict base64url). Nothing may be done for such a token before it is refused:
    // here, its JWS header names an unknown `kid`, which would make the layer refetch the keys.
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer, RefreshPolicy::default()).await;
    let token = issuer.token_with_unknown_kid();
    for spoilt in [
        format!("{token}!"),
        format!("{token}%41"),
        token.replacen('.', ".$", 1),
    ] {
        let reply = call(&layer, &spoilt).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{spoilt}");
        assert_eq!(
            reply.challenge,
            r#"Bearer realm="tests", error="invalid_request", error_description="malformed authorization header""#
        );
    }
    assert_eq!(
        issuer.jwks_requests(),
        1,
        "no refetch for a malformed header"
    );
    // The same token, well formed, does make one.
    assert_invalid_token(&call(&layer, &token).await, "no key for this token");
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn a_forged_signature_is_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer, RefreshPolicy::default()).await;
    let forged = issuer.token_builder().signed_by_unknown_key().sign();
    assert_invalid_token(&call(&layer, &forged).await, "signature invalid");
}

#[tokio::test]
async fn a_rotated_key_is_accepted_and_a_retired_one_refused() {
    let issuer = TestIssuer::builder()
        .key_kind(TestKeyKind::Ed25519)
        .start()
        .await
        .unwrap();
    let layer = layer(&issuer, eager()).await;
    let old_token = issuer.valid_token();
    assert_ok(&call(&layer, &old_token).await, "test-user eddsa-1 EdDSA");

    // The first token under the new key makes the layer refetch, and it is accepted.
    assert_eq!(issuer.rotate(), "eddsa-2");
    assert_eq!(issuer.published_kids(), ["eddsa-1", "eddsa-2"]);
    assert_ok(
        &call(&layer, &issuer.valid_token()).await,
        "test-user eddsa-2 EdDSA",
    );
    assert_eq!(issuer.jwks_requests(), 2);
    assert_eq!(layer.key_sets()[0].key_count, 2);
    // The old key is still published: its tokens still pass, with no fetch.
    assert_ok(&call(&layer, &old_token).await, "test-user eddsa-1 EdDSA");
    assert_eq!(issuer.jwks_requests(), 2);

    // Once retired and refetched, the old key's tokens are refused, the cached one included.
    issuer.retire_previous();
    assert_eq!(issuer.published_kids(), ["eddsa-2"]);
    assert_invalid_token(
        &call(&layer, &issuer.token_with_unknown_kid()).await,
        "no key for this token",
    );
    assert_eq!(layer.key_sets()[0].key_count, 1);
    assert_invalid_token(&call(&layer, &old_token).await, "no key for this token");
    let fresh_old = issuer.token_builder().signed_with("eddsa-1").sign();
    assert_invalid_token(&call(&layer, &fresh_old).await, "no key for this token");
    assert_ok(
        &call(&layer, &issuer.valid_token()).await,
        "test-user eddsa-2 EdDSA",
    );
}

#[tokio::test]
async fn a_rotation_may_change_the_key_kind() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer, eager()).await;
    assert_eq!(issuer.rotate_to(TestKeyKind::Rsa), "rs256-2");
    assert_ok(
        &call(&layer, &issuer.valid_token()).await,
        "test-user rs256-2 RS256",
    );
}

#[tokio::test]
async fn during_an_outage_the_last_good_keys_keep_serving() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer, eager()).await;
    let token = issuer.valid_token();
    assert_ok(&call(&layer, &token).await, "test-user es256-1 ES256");

    issuer.set_outage(true);
    let client = reqwest::Client::new();
    for url in [issuer.jwks_url(), issuer.discovery_url()] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{url}");
    }
    // A token naming an unknown kid makes the layer refetch, which fails.
    assert_invalid_token(
        &call(&layer, &issuer.token_with_unknown_kid()).await,
        "no key for this token",
    );
    eventually("the failed fetch", async || {
        layer.key_sets()[0].fetches.failed >= 1
    })
    .await;
    let status = &layer.key_sets()[0];
    assert!(status.usable && status.stale, "{status:?}");
    assert!(status.last_error.is_some());
    assert_eq!(status.key_count, 1);
    assert_ok(&call(&layer, &token).await, "test-user es256-1 ES256");

    // Back up: the next refetch succeeds and the set is fresh again.
    issuer.set_outage(false);
    issuer.rotate();
    assert_ok(
        &call(&layer, &issuer.valid_token()).await,
        "test-user es256-2 ES256",
    );
    let status = &layer.key_sets()[0];
    assert!(status.usable && !status.stale, "{status:?}");
    assert_eq!(status.last_error, None);
}

#[tokio::test]
async fn a_hanging_issuer_times_out_and_the_last_good_keys_keep_serving() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = layer(&issuer, eager().fetch_timeout(Duration::from_millis(200))).await;
    issuer.set_hang(true);
    assert_invalid_token(
        &call(&layer, &issuer.token_with_unknown_kid()).await,
        "no key for this token",
    );
    eventually("the timed-out fetch", async || {
        layer.key_sets()[0].fetches.failed >= 1
    })
    .await;
    assert!(layer.key_sets()[0].stale);
    assert_ok(
        &call(&layer, &issuer.valid_token()).await,
        "test-user es256-1 ES256",
    );
    issuer.set_hang(false);
}

#[tokio::test]
async fn jwks_requests_count_every_fetch() {
    let issuer = TestIssuer::start().await.unwrap();
    assert_eq!(
        (issuer.discovery_requests(), issuer.jwks_requests()),
        (0, 0)
    );
    let layer = layer(&issuer, eager()).await;
    assert_eq!(issuer.jwks_requests(), 1);
    for _ in 0..5 {
        assert_ok(
            &call(&layer, &issuer.valid_token()).await,
            "test-user es256-1 ES256",
        );
    }
    assert_eq!(issuer.jwks_requests(), 1);
    for expected in 2..=4 {
        call(
            &layer,
            &issuer.token_with_kid(json!({}), format!("new-{expected}")),
        )
        .await;
        assert_eq!(issuer.jwks_requests(), expected);
    }
    assert_eq!(
        issuer.discovery_requests(),
        1,
        "refetches reuse the jwks_uri"
    );
}

#[tokio::test]
async fn the_jwks_carries_an_etag_and_the_configured_max_age() {
    let issuer = TestIssuer::builder()
        .jwks_max_age(Duration::from_secs(120))
        .start()
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let response = client.get(issuer.jwks_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "max-age=120");
    let etag = response.headers()[header::ETAG].clone();
    let jwks: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(jwks, issuer.jwks());
    let key = &jwks["keys"][0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["kid"], &key["use"]),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("es256-1"),
            &json!("sig")
        )
    );

    let revalidate = |etag| {
        client
            .get(issuer.jwks_url())
            .header(header::IF_NONE_MATCH, etag)
            .send()
    };
    assert_eq!(
        revalidate(etag.clone()).await.unwrap().status(),
        StatusCode::NOT_MODIFIED
    );
    issuer.rotate();
    assert_eq!(revalidate(etag).await.unwrap().status(), StatusCode::OK);
    assert_eq!(issuer.jwks_requests(), 3);
}

#[tokio::test]
async fn the_token_builder_sets_header_and_claims() {
    let issuer = TestIssuer::start().await.unwrap();
    let layer = issuer
        .layer_builder::<Value>()
        .require_token_type("at+jwt")
        .build()
        .await
        .unwrap();
    let token = issuer
        .token_builder()
        .subject("carol")
        .scope("orders:read orders:write")
        .claim("roles", ["admin"])
        .without_claim("iat")
        .expires_in(Duration::from_secs(30))
        .token_type("at+jwt")
        .sign();
    let (claims, verified) = layer.verify(&token).await.unwrap();
    assert_eq!(claims["sub"], "carol");
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims.get("iat"), None);
    assert!(verified.has_scope("orders:write"));
    assert_eq!(verified.token_type(), Some("at+jwt"));

    let plain = issuer.valid_token();
    assert_eq!(
        layer.verify(&plain).await.unwrap_err().to_string(),
        "token type not accepted"
    );
    let no_kid = issuer
        .token_builder()
        .without_key_id()
        .token_type("at+jwt")
        .sign();
    assert_eq!(layer.verify(&no_kid).await.unwrap().1.key_id(), None);
}

#[tokio::test]
async fn dropping_the_issuer_stops_its_server() {
    let issuer = TestIssuer::start().await.unwrap();
    let addr: SocketAddr = issuer.addr();
    let url = issuer.jwks_url();
    let client = reqwest::Client::new();
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    drop(issuer);
    eventually("the port to close", async || {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
}
