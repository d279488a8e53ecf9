//! Remote keys against a real issuer on loopback: the first load, discovery, rotation through the
//! unknown-`kid` refetch (coalesced and rate-limited), outages that keep the last good keys serving,
//! `503` when no keys exist, and `Cache-Control` / `ETag` driving the background refresh.

#[path = "../support/mod.rs"]
mod support;

mod first_load;
mod outages;
mod refresh;
mod rotation;
mod transport;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use support::server::IssuerServer;
use support::*;
use tower_jwt_auth::{Claims, Issuer, JwtAuthBuilder, JwtAuthLayer, KeySource, RefreshPolicy};

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
