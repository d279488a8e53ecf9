//! Where a fetch may go: plain HTTP only to loopback or with the opt-in, redirects only to the same
//! origin, and a client the user supplies.

use serde_json::Value;
use tower_jwt_auth::{ConfigError, FetchError, Issuer, JwtAuthLayer, KeySource, RefreshPolicy};

use super::support::server::{IssuerServer, Mode};
use super::support::*;
use super::{app, builder_for, claims_for, layer_for};

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
