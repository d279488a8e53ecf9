//! Remote keys against a real issuer on loopback: the first load, discovery, rotation through the
//! unknown-`kid` refetch (coalesced and rate-limited), outages that keep the last good keys serving,
//! `503` when no keys exist, and `Cache-Control` / `ETag` driving the background refresh.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::{Value, json};
use support::server::{IssuerServer, Mode, eventually};
use support::*;
use tokio::task::JoinSet;
use tower_jwt_auth::{
    Claims, ConfigError, FetchError, Issuer, JwtAuthBuilder, JwtAuthLayer, KeySource, RefreshPolicy,
};

/// Claims that pass a layer trusting `server`.
fn claims_for(server: &IssuerServer) -> Value {
    claims_with(json!({ "iss": server.issuer() }))
}

fn builder_for(server: &IssuerServer, policy: RefreshPolicy) -> JwtAuthBuilder<Value> {
    JwtAuthLayer::builder()
        .realm("tests")
        .issuer(
            Issuer::new(server.issuer())
                .audience(AUDIENCE)
                .key(KeySource::jwks_url(server.jwks_url())),
        )
        .refresh_policy(policy)
}

async fn layer_for(server: &IssuerServer, policy: RefreshPolicy) -> JwtAuthLayer<Value> {
    builder_for(server, policy).build().await.unwrap()
}

fn app(layer: &JwtAuthLayer<Value>) -> Router {
    Router::new()
        .route("/me", get(|_: Claims<Value>| async { "ok" }))
        .layer(layer.clone())
}

/// Refetches as often as tokens ask, so that a test can make the layer fetch on demand.
fn eager() -> RefreshPolicy {
    RefreshPolicy::default().unknown_kid_cooldown(Duration::ZERO)
}

#[tokio::test]
async fn keys_are_fetched_once_when_the_layer_is_built() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(&server, RefreshPolicy::default()).await;
    assert_eq!(server.jwks_hits(), 1);

    let app = app(&layer);
    for _ in 0..3 {
        assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
    }
    assert_eq!(server.jwks_hits(), 1, "known keys need no fetch");

    let [status] = &layer.key_sets()[..] else {
        panic!("one issuer")
    };
    assert_eq!(status.issuer.as_deref(), Some(&*server.issuer()));
    assert_eq!(status.jwks_url.as_deref(), Some(&*server.jwks_url()));
    assert_eq!(status.key_count, 1);
    assert!(status.usable && !status.stale);
    assert!(status.age.is_some());
    assert_eq!(status.fetches.ok, 1);
}

#[tokio::test]
async fn discovery_finds_the_jwks_and_pins_the_issuer() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = JwtAuthLayer::<Value>::builder()
        .realm("tests")
        .issuer(Issuer::discover(server.issuer()).audience(AUDIENCE))
        .build()
        .await
        .unwrap();
    assert_eq!((server.oidc_hits(), server.jwks_hits()), (1, 1));
    assert_eq!(
        layer.key_sets()[0].jwks_url.as_deref(),
        Some(&*server.jwks_url())
    );

    let app = app(&layer);
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
    let other_issuer = claims_with(json!({ "iss": "https://elsewhere.example" }));
    assert_invalid_token(
        &get_with_token(&app, "/me", &key.sign(&other_issuer)).await,
        "issuer not allowed",
    );
}

#[tokio::test]
async fn discovery_falls_back_to_oauth_server_metadata() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.serve_metadata(false, true);
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(server.issuer()))
        .build()
        .await
        .unwrap();
    assert_eq!(
        (server.oidc_hits(), server.oauth_hits(), server.jwks_hits()),
        (1, 1, 1)
    );
    let (_, token) = layer.verify(&key.sign(&claims_for(&server))).await.unwrap();
    assert_eq!(token.key_id(), Some("a"));
}

#[tokio::test]
async fn discovery_refuses_metadata_naming_another_issuer() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_metadata_issuer("https://evil.example");
    let error = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(server.issuer()))
        .build()
        .await
        .unwrap_err();
    match &error {
        ConfigError::KeyFetch {
            error: FetchError::Invalid(reason),
            ..
        } => assert!(reason.contains("https://evil.example"), "{reason}"),
        other => panic!("expected an issuer mismatch, got {other}"),
    }
    assert_eq!(
        server.jwks_hits(),
        0,
        "keys of a mismatched issuer are not fetched"
    );

    // The same holds for a trailing-slash difference: the comparison is exact.
    let slash = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(format!("{}/", server.issuer())))
        .build()
        .await;
    assert!(matches!(slash, Err(ConfigError::KeyFetch { .. })));
}

#[tokio::test]
async fn plain_http_is_refused_except_to_loopback_or_with_the_opt_in() {
    for url in [
        "http://issuer.example/jwks",
        "http://10.0.0.1/jwks",
        "http://localhost.evil.example/jwks",
        "ftp://issuer.example/jwks",
        "not a url",
    ] {
        let result = JwtAuthLayer::<Value>::builder()
            .issuer(Issuer::new("https://issuer.example").key(KeySource::jwks_url(url)))
            .build()
            .await;
        assert!(
            matches!(result, Err(ConfigError::UrlNotAllowed(_))),
            "{url}: {result:?}"
        );
    }
    let discovery = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover("http://issuer.example"))
        .build()
        .await;
    assert!(matches!(discovery, Err(ConfigError::UrlNotAllowed(_))));

    // With the opt-in the URL is accepted (the documentation address never answers, so the layer
    // starts without keys).
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(
            Issuer::new("https://issuer.example").key(KeySource::jwks_url("http://192.0.2.1/jwks")),
        )
        .allow_insecure_http()
        .allow_start_without_keys()
        .build()
        .await
        .unwrap();
    assert!(!layer.key_sets()[0].usable);
}

#[tokio::test]
async fn discovery_refuses_a_plain_http_jwks_uri_off_loopback_without_the_opt_in() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_metadata_jwks_uri("http://keys.example/jwks");
    let error = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(server.issuer()))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ConfigError::KeyFetch {
                error: FetchError::UrlNotAllowed(url),
                ..
            } if url.contains("http://keys.example/jwks")
        ),
        "{error}"
    );
    assert_eq!(server.oidc_hits(), 1);

    // A plain-http jwks_uri on loopback, named by a plain-http loopback issuer, is fine.
    server.set_metadata_jwks_uri(&server.keys_url());
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(server.issuer()))
        .build()
        .await
        .unwrap();
    assert_eq!(
        layer.key_sets()[0].jwks_url.as_deref(),
        Some(&*server.keys_url())
    );
}

#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    // Same server, other host name: following it would be a second hit.
    server.set_mode(Mode::Redirect(format!(
        "http://localhost:{}/jwks",
        server.addr.port()
    )));
    let error = builder_for(&server, RefreshPolicy::default())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::KeyFetch {
                error: FetchError::Status(302),
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn redirects_to_another_port_of_the_same_host_are_not_followed() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    // Another service on the same host: same scheme and address, another port.
    let elsewhere = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_mode(Mode::Redirect(elsewhere.jwks_url()));
    let error = builder_for(&server, RefreshPolicy::default())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::KeyFetch {
                error: FetchError::Status(302),
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(elsewhere.jwks_hits(), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_user_supplied_client_may_not_bring_an_answer_from_another_port() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let elsewhere = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_mode(Mode::Redirect(elsewhere.jwks_url()));
    // reqwest's default policy follows up to ten redirects anywhere.
    let error = builder_for(&server, RefreshPolicy::default())
        .http_client(tower_jwt_auth::reqwest::Client::new())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::KeyFetch {
                error: FetchError::CrossHostRedirect,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(elsewhere.jwks_hits(), 1, "the client followed the redirect");
}

#[tokio::test]
async fn same_origin_redirects_are_followed() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_mode(Mode::Redirect(server.keys_url()));
    let built_in = layer_for(&server, RefreshPolicy::default()).await;
    let user_supplied = builder_for(&server, RefreshPolicy::default())
        .http_client(tower_jwt_auth::reqwest::Client::new())
        .build()
        .await
        .unwrap();
    for layer in [built_in, user_supplied] {
        assert_eq!(layer.key_sets()[0].key_count, 1);
        assert_ok(&get_with_token(&app(&layer), "/me", &key.sign(&claims_for(&server))).await);
    }
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn a_user_supplied_client_is_used() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = builder_for(&server, RefreshPolicy::default())
        .http_client(tower_jwt_auth::reqwest::Client::new())
        .build()
        .await
        .unwrap();
    assert_ok(&get_with_token(&app(&layer), "/me", &key.sign(&claims_for(&server))).await);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_and_a_removed_one_rejected() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    let layer = layer_for(&server, eager()).await;
    let app = app(&layer);

    // The provider publishes a new key and signs with it: the first token under it is accepted,
    // after exactly one refetch.
    server.set_keys(vec![old.public_jwk.clone(), new.public_jwk.clone()]);
    assert_ok(&get_with_token(&app, "/me", &new.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 2);
    assert_ok(&get_with_token(&app, "/me", &old.sign(&claims_for(&server))).await);

    // The old key is withdrawn; once a refetch has happened, it is no longer accepted.
    server.set_keys(vec![new.public_jwk.clone()]);
    let stranger = TestKey::rs256("stranger");
    assert_invalid_token(
        &get_with_token(&app, "/me", &stranger.sign(&claims_for(&server))).await,
        "no key for this token",
    );
    assert_eq!(server.jwks_hits(), 3);
    assert_invalid_token(
        &get_with_token(&app, "/me", &old.sign(&claims_for(&server))).await,
        "no key for this token",
    );
    assert_ok(&get_with_token(&app, "/me", &new.sign(&claims_for(&server))).await);
}

#[tokio::test]
async fn verify_outside_a_request_refetches_too() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    let layer = layer_for(&server, eager()).await;
    server.set_keys(vec![new.public_jwk.clone()]);
    let (_, token) = layer.verify(&new.sign(&claims_for(&server))).await.unwrap();
    assert_eq!(token.key_id(), Some("new"));
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn a_known_kid_with_a_bad_signature_never_refetches() {
    let key = TestKey::rs256("a");
    let impostor = TestKey::rsa("rsa-b", "a", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(&server, eager()).await;
    let app = app(&layer);
    for _ in 0..5 {
        assert_invalid_token(
            &get_with_token(&app, "/me", &impostor.sign(&claims_for(&server))).await,
            "signature invalid",
        );
    }
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn a_kid_still_unknown_after_a_refetch_is_remembered_until_the_next_refresh() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(&server, eager()).await;
    let app = app(&layer);
    let x = TestKey::rs256("x");
    let y = TestKey::rs256("y");

    let unknown = |reply: Reply| assert_invalid_token(&reply, "no key for this token");
    unknown(get_with_token(&app, "/me", &x.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 2);
    unknown(get_with_token(&app, "/me", &x.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 2, "x is known to be unknown");
    unknown(get_with_token(&app, "/me", &y.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 3, "y is not");

    // After that refresh, x may be looked for again: the provider may have published it since.
    server.set_keys(vec![key.public_jwk.clone(), x.public_jwk.clone()]);
    assert_ok(&get_with_token(&app, "/me", &x.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 4);
}

#[tokio::test]
async fn a_thousand_concurrent_requests_with_a_new_kid_cause_one_fetch() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    // A long wait, so that a slow machine can't time the waiting requests out.
    let layer = layer_for(
        &server,
        RefreshPolicy::default().unknown_kid_wait(Duration::from_secs(120)),
    )
    .await;
    let app = app(&layer);
    server.set_keys(vec![old.public_jwk.clone(), new.public_jwk.clone()]);

    // Hold the refetch in flight while the requests pile up behind it.
    server.close_gate();
    let token = new.sign(&claims_for(&server));
    let mut requests = JoinSet::new();
    for _ in 0..1000 {
        let (app, token) = (app.clone(), token.clone());
        requests.spawn(async move { get_with_token(&app, "/me", &token).await.status });
    }
    eventually("the refetch to reach the server", async || {
        server.jwks_hits() == 2
    })
    .await;
    server.open_gate();
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(server.jwks_hits(), 2, "one fetch at build, one refetch");
}

#[tokio::test]
async fn random_unknown_kids_cause_at_most_one_fetch_per_cooldown() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(
        &server,
        RefreshPolicy::default().unknown_kid_cooldown(Duration::from_secs(3600)),
    )
    .await;
    let app = app(&layer);
    let mut requests = JoinSet::new();
    for i in 0..1000 {
        let app = app.clone();
        let token = key.sign_with_header(
            &json!({"alg": "RS256", "kid": format!("random-{i}-{}", fastrand::u64(..))}),
            &claims_for(&server),
        );
        requests.spawn(async move { get_with_token(&app, "/me", &token).await });
    }
    while let Some(reply) = requests.join_next().await {
        assert_invalid_token(&reply.unwrap(), "no key for this token");
    }
    assert!(
        server.jwks_hits() <= 2,
        "{} fetches for one cooldown",
        server.jwks_hits()
    );
    // The real key still works, with no fetch.
    let before = server.jwks_hits();
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), before);
}

/// Builds a layer, breaks the server as `breakage` says, makes the layer refetch, and checks
/// that the last good keys keep serving while the failure is visible in the status.
async fn old_keys_keep_serving(
    policy: RefreshPolicy,
    breakage: impl AsyncFnOnce(&mut IssuerServer),
) {
    let key = TestKey::rs256("a");
    let mut server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let layer = layer_for(&server, policy).await;
    let app = app(&layer);
    let claims = claims_for(&server);
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims)).await);

    breakage(&mut server).await;
    // A token naming an unknown kid makes the layer refetch (the cooldown is zero here).
    let stranger = TestKey::rs256("stranger");
    assert_invalid_token(
        &get_with_token(&app, "/me", &stranger.sign(&claims)).await,
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
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims)).await);
}

#[tokio::test]
async fn old_keys_keep_serving_when_the_server_is_down() {
    old_keys_keep_serving(eager(), async |server| server.stop().await).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_a_server_error() {
    old_keys_keep_serving(eager(), async |server| server.set_mode(Mode::Status(500))).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_a_timeout() {
    let policy = eager().fetch_timeout(Duration::from_millis(200));
    old_keys_keep_serving(policy, async |server| server.set_mode(Mode::Hang)).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_a_slow_body() {
    let policy = eager().fetch_timeout(Duration::from_millis(200));
    old_keys_keep_serving(policy, async |server| server.set_mode(Mode::SlowBody)).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_malformed_json() {
    old_keys_keep_serving(eager(), async |server| server.set_mode(Mode::Malformed)).await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_a_jwks_without_usable_keys() {
    old_keys_keep_serving(eager(), async |server| {
        server.set_keys(vec![
            json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        ]);
    })
    .await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_an_oversized_body() {
    old_keys_keep_serving(eager(), async |server| {
        server.set_mode(Mode::Oversized(2 * 1024 * 1024));
    })
    .await;
}

#[tokio::test]
async fn old_keys_keep_serving_on_an_oversized_chunked_body() {
    let policy = eager().max_response_size(16 * 1024);
    old_keys_keep_serving(policy, async |server| {
        server.set_mode(Mode::OversizedChunked(64 * 1024));
    })
    .await;
}

#[tokio::test]
async fn without_keys_requests_get_503_until_keys_arrive() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_mode(Mode::Status(500));

    // By default a layer whose keys can't be fetched is not built.
    let error = layer_for_result(&server).await.unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::KeyFetch {
                error: FetchError::Status(500),
                ..
            }
        ),
        "{error}"
    );

    let layer = builder_for(&server, RefreshPolicy::default())
        .allow_start_without_keys()
        .build()
        .await
        .unwrap();
    let app = app(&layer);
    let token = key.sign(&claims_for(&server));
    eventually("a first failed fetch", async || {
        layer.key_sets()[0].fetches.failed >= 1
    })
    .await;
    let reply = get_with_token(&app, "/me", &token).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert!(!layer.key_sets()[0].usable);

    // The background retries pick the keys up once the server recovers.
    server.set_mode(Mode::Serve);
    eventually("the keys to arrive", async || {
        get_with_token(&app, "/me", &token).await.status == StatusCode::OK
    })
    .await;
    assert!(layer.key_sets()[0].usable);
}

async fn layer_for_result(server: &IssuerServer) -> Result<JwtAuthLayer<Value>, ConfigError> {
    builder_for(server, RefreshPolicy::default()).build().await
}

#[tokio::test]
async fn zero_staleness_fails_closed_once_a_refresh_is_missed() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.set_cache_control("max-age=0");
    let policy = RefreshPolicy::default()
        .min_interval(Duration::from_millis(50))
        .max_staleness(Duration::ZERO);
    let layer = layer_for(&server, policy).await;
    let app = app(&layer);
    let token = key.sign(&claims_for(&server));
    assert_ok(&get_with_token(&app, "/me", &token).await);

    server.set_mode(Mode::Status(503));
    eventually("the layer to fail closed", async || {
        get_with_token(&app, "/me", &token).await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(!layer.key_sets()[0].usable);
}

#[tokio::test]
async fn the_refresh_follows_max_age_and_drops_withdrawn_keys() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone(), new.public_jwk.clone()]).await;
    server.set_cache_control("public, max-age=1");
    // Without max-age the next refresh would be an hour away.
    let policy = RefreshPolicy::default()
        .min_interval(Duration::from_millis(1))
        .fallback_interval(Duration::from_secs(3600))
        .unknown_kid_cooldown(Duration::from_secs(3600));
    let layer = layer_for(&server, policy).await;
    let app = app(&layer);
    assert_ok(&get_with_token(&app, "/me", &old.sign(&claims_for(&server))).await);

    server.set_keys(vec![new.public_jwk.clone()]);
    eventually("the background refresh", async || server.jwks_hits() >= 2).await;
    eventually("the withdrawn key to be refused", async || {
        get_with_token(&app, "/me", &old.sign(&claims_for(&server)))
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_ok(&get_with_token(&app, "/me", &new.sign(&claims_for(&server))).await);
}

#[tokio::test]
async fn an_endless_max_age_and_settings_at_duration_max_neither_panic_nor_stop_the_keys() {
    let old = TestKey::rs256("old");
    let new = TestKey::rsa("rsa-b", "new", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![old.public_jwk.clone()]).await;
    server.set_cache_control("public, max-age=18446744073709551615");
    // "Never refresh on schedule, serve stale keys forever, wait as long as it takes."
    let policy = RefreshPolicy::default()
        .min_interval(Duration::MAX)
        .max_interval(Duration::MAX)
        .fallback_interval(Duration::MAX)
        .unknown_kid_cooldown(Duration::MAX)
        .unknown_kid_wait(Duration::MAX)
        .max_staleness(Duration::MAX)
        .max_backoff(Duration::MAX)
        .connect_timeout(Duration::MAX)
        .fetch_timeout(Duration::MAX);
    let layer = layer_for(&server, policy).await;
    let app = app(&layer);
    assert_ok(&get_with_token(&app, "/me", &old.sign(&claims_for(&server))).await);

    // The first unknown kid still refetches (no refetch has happened, so no cooldown runs) ...
    server.set_keys(vec![old.public_jwk.clone(), new.public_jwk.clone()]);
    assert_ok(&get_with_token(&app, "/me", &new.sign(&claims_for(&server))).await);
    assert_eq!(server.jwks_hits(), 2);
    // ... and the endless cooldown holds every later one back.
    let stranger = TestKey::rs256("stranger");
    assert_invalid_token(
        &get_with_token(&app, "/me", &stranger.sign(&claims_for(&server))).await,
        "no key for this token",
    );
    assert_eq!(server.jwks_hits(), 2);

    let status = &layer.key_sets()[0];
    assert!(status.usable && !status.stale, "{status:?}");
    assert_eq!((status.key_count, status.fetches.ok), (2, 2));
}

#[tokio::test]
async fn etag_revalidation_keeps_the_set_on_304() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    server.enable_etag();
    server.set_cache_control("max-age=1");
    let policy = RefreshPolicy::default().min_interval(Duration::from_millis(1));
    let layer = layer_for(&server, policy).await;
    let app = app(&layer);

    eventually("two revalidations", async || {
        server.not_modified_hits() >= 2
    })
    .await;
    eventually("the status to count them", async || {
        layer.key_sets()[0].fetches.not_modified >= 2
    })
    .await;
    let status = &layer.key_sets()[0];
    assert_eq!((status.fetches.ok, status.key_count), (1, 1));
    assert!(status.usable && !status.stale);
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
}

#[tokio::test]
async fn unusable_keys_in_a_fetched_set_are_skipped_one_by_one() {
    let key = TestKey::rs256("good");
    let weak = TestKey::rsa("rsa-1024", "weak", jsonwebtoken::Algorithm::RS256);
    let server = IssuerServer::start(vec![
        json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": key.public_jwk["n"], "e": "AQAB"}),
        weak.public_jwk.clone(),
        json!({"kty": "OKP", "crv": "X448", "kid": "x448", "x": "AAAA"}),
        json!({"kty": "whatever", "kid": "unknown"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "broken", "x": "!!", "y": 7}),
        json!({"kty": "oct", "kid": "secret", "k": b64url(SECRET)}),
        key.public_jwk.clone(),
    ])
    .await;
    let layer = layer_for(&server, RefreshPolicy::default()).await;
    assert_eq!(layer.key_sets()[0].key_count, 1);
    let app = app(&layer);
    assert_ok(&get_with_token(&app, "/me", &key.sign(&claims_for(&server))).await);
    // The 1024-bit key can't sign here; a token naming its kid shows it was skipped (had it been
    // kept, the answer would be "signature invalid").
    let naming_weak = TestKey::rs256("weak").sign(&claims_for(&server));
    assert_invalid_token(
        &get_with_token(&app, "/me", &naming_weak).await,
        "no key for this token",
    );
    // A shared secret published in a JWKS is never trusted: anyone can read it.
    let forged = hs256(SECRET, Some("secret"), &claims_for(&server));
    assert_eq!(
        get_with_token(&app, "/me", &forged).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn each_issuer_verifies_only_with_its_own_fetched_keys() {
    let key_a = TestKey::rs256("a");
    let key_b = TestKey::ec("ec-p256", "b");
    let server_a = IssuerServer::start(vec![key_a.public_jwk.clone()]).await;
    let server_b = IssuerServer::start(vec![key_b.public_jwk.clone()]).await;
    let layer = JwtAuthLayer::<Value>::builder()
        .realm("tests")
        .issuer(Issuer::discover(server_a.issuer()).audience(AUDIENCE))
        .issuer(Issuer::discover(server_b.issuer()).audience(AUDIENCE))
        .refresh_policy(eager())
        .build()
        .await
        .unwrap();
    let app = app(&layer);
    assert_eq!(layer.key_sets().len(), 2);
    assert_ok(&get_with_token(&app, "/me", &key_a.sign(&claims_for(&server_a))).await);
    assert_ok(&get_with_token(&app, "/me", &key_b.sign(&claims_for(&server_b))).await);

    // A token claiming issuer A but signed with B's key: A's keys don't have it, even after a
    // refetch from A; B is never asked.
    let b_hits = server_b.jwks_hits();
    assert_invalid_token(
        &get_with_token(&app, "/me", &key_b.sign(&claims_for(&server_a))).await,
        "no key for this token",
    );
    assert_eq!(server_b.jwks_hits(), b_hits);
}

#[tokio::test]
async fn remote_settings_are_checked() {
    let key = TestKey::rs256("a");
    let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
    let zero_interval = builder_for(
        &server,
        RefreshPolicy::default().min_interval(Duration::ZERO),
    )
    .build()
    .await;
    assert!(matches!(
        zero_interval,
        Err(ConfigError::InvalidSetting { .. })
    ));

    let two_remotes = JwtAuthLayer::<Value>::builder()
        .issuer(Issuer::discover(server.issuer()).key(KeySource::jwks_url(server.jwks_url())))
        .build()
        .await;
    assert!(matches!(
        two_remotes,
        Err(ConfigError::MultipleRemoteSources(_))
    ));
    assert_eq!(server.jwks_hits(), 0);
}
