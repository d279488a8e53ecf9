//! The background refresh: `Cache-Control` `max-age` drives it, extreme durations neither panic nor
//! stop it, and an `ETag` revalidation keeps the set on `304`.

use std::time::Duration;

use http::StatusCode;
use tower_jwt_auth::RefreshPolicy;

use super::support::server::{IssuerServer, eventually};
use super::support::*;
use super::{app, claims_for, layer_for};

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
