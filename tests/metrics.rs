//! With the `metrics` feature: requests by outcome and cause, cache hits and misses, JWKS fetches
//! by result and the key-set gauges reach the `metrics` recorder, with no token in any label.
#![cfg(feature = "metrics")]

mod support;

use axum::Router;
use axum::routing::get;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::{Value, json};
use support::server::IssuerServer;
use support::*;
use tower_jwt_auth::{Authorize, Claims, Issuer, JwtAuthLayer, KeySource};

#[test]
fn requests_cache_and_fetches_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (issuer, token) = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let key = TestKey::rs256("a");
            let server = IssuerServer::start(vec![key.public_jwk.clone()]).await;
            let layer = JwtAuthLayer::<Value>::builder()
                .realm("tests")
                .issuer(Issuer::new(server.issuer()).key(KeySource::jwks_url(server.jwks_url())))
                .build()
                .await
                .unwrap();
            let app = Router::new()
                .route("/me", get(|_: Claims<Value>| async { "ok" }))
                .route(
                    "/admin",
                    get(|| async { "admin" }).route_layer(Authorize::all_scopes(["admin"])),
                )
                .layer(layer.clone())
                .merge(
                    Router::new()
                        .route("/open", get(|_: Claims<Value>| async { "ok" }))
                        .layer(layer.optional()),
                );
            let token = key.sign(&claims_with(json!({"iss": server.issuer()})));
            for _ in 0..3 {
                get_with_token(&app, "/me", &token).await;
            }
            let expired = key.sign(&claims_with(json!({"iss": server.issuer(), "exp": 1})));
            get_with_token(&app, "/me", &expired).await;
            get_with_token(&app, "/me", "not-a-token").await;
            // Refused after the layer: by `Authorize`, and by the extractor behind an optional
            // layer. Both count as rejections (the layer let them through: accepted too).
            get_with_token(&app, "/admin", &token).await;
            let anonymous = axum::http::Request::get("/open")
                .body(axum::body::Body::empty())
                .unwrap();
            send(&app, anonymous).await;
            (server.issuer(), token)
        })
    });

    // Snapshots drain counters, so everything is read from one snapshot.
    let snapshot: Vec<_> = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let mut found: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
            found.sort_unstable();
            let mut wanted = labels.to_vec();
            wanted.sort_unstable();
            (key.name() == name && found == wanted).then_some(value)
        })
    };
    assert_eq!(
        find(
            "jwt_auth_requests_total",
            &[("outcome", "accepted"), ("cause", "none")]
        ),
        Some(&DebugValue::Counter(5))
    );
    assert_eq!(
        find(
            "jwt_auth_requests_total",
            &[("outcome", "rejected"), ("cause", "expired")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(
            "jwt_auth_requests_total",
            &[("outcome", "rejected"), ("cause", "malformed_token")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(
            "jwt_auth_requests_total",
            &[("outcome", "rejected"), ("cause", "insufficient_scope")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(
            "jwt_auth_requests_total",
            &[("outcome", "rejected"), ("cause", "missing_token")]
        ),
        Some(&DebugValue::Counter(1))
    );
    // The valid token is used four times: it misses twice (admitted to the cache on its second
    // sighting) and then hits twice; the expired token and the malformed one miss too (the cache
    // is looked up before anything is parsed).
    assert_eq!(
        find("jwt_auth_token_cache_total", &[("result", "hit")]),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        find("jwt_auth_token_cache_total", &[("result", "miss")]),
        Some(&DebugValue::Counter(4))
    );
    assert_eq!(
        find(
            "jwt_auth_jwks_fetches_total",
            &[("issuer", issuer.as_str()), ("result", "ok")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert!(matches!(
        find("jwt_auth_key_set_keys", &[("issuer", issuer.as_str())]),
        Some(DebugValue::Gauge(keys)) if keys.into_inner() == 1.0
    ));
    assert!(
        find(
            "jwt_auth_key_set_last_success_seconds",
            &[("issuer", issuer.as_str())]
        )
        .is_some()
    );
    // No label anywhere carries the token.
    for (key, _, _, _) in &snapshot {
        for label in key.key().labels() {
            assert!(!token.contains(label.value()) || label.value().len() < 8);
        }
    }
}
