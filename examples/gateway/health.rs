//! The gateway's own endpoints: `/healthz` (public: only `ok` or `unavailable`; on the admin
//! listener: each key set's state) and `/metrics`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tower_jwt_auth::{FailureMode, JwtAuthLayer};

use crate::app::AppState;
use crate::metrics;

/// The public health check: `200 ok` when every issuer's keys can verify tokens (and the
/// revocation list, if any, is current or fails open), `503 unavailable` before they are loaded,
/// when a key set is unusable or when a stale revocation list refuses requests. The details are
/// on the admin listener only.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response<Body> {
    let healthy = state.layer.get().is_some_and(|layer| {
        let sets = layer.key_sets();
        !sets.is_empty() && sets.iter().all(|set| set.usable) && revocation_serves(layer)
    });
    let (status, text) = if healthy {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n")
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The admin health check: the same status, with each key set's state as JSON.
pub async fn healthz_details(State(state): State<Arc<AppState>>) -> Response<Body> {
    let Some(layer) = state.layer.get() else {
        let body = json!({"status": "starting"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    let sets = layer.key_sets();
    let keys_usable = !sets.is_empty() && sets.iter().all(|set| set.usable);
    let healthy = keys_usable && revocation_serves(layer);
    let issuers: Vec<Value> = sets
        .iter()
        .map(|set| {
            json!({
                "issuer": set.issuer,
                "jwks_url": set.jwks_url,
                "keys": set.key_count,
                "usable": set.usable,
                "stale": set.stale,
                "age_secs": set.age.map(|age| age.as_secs()),
                "last_error": set.last_error,
            })
        })
        .collect();
    let (status, text) = if healthy {
        (StatusCode::OK, "ok")
    } else if keys_usable {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "revocation list unavailable",
        )
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "keys unavailable")
    };
    let mut body = json!({"status": text, "issuers": issuers});
    if let Some(list) = layer.revocation() {
        let revocation = list.status();
        body["revocation"] = json!({
            "entries": revocation.entries,
            "age_secs": revocation.age.map(|age| age.as_secs()),
            "usable": revocation.usable,
            "fail_open": list.failure_mode() == FailureMode::FailOpen,
        });
    }
    (status, Json(body)).into_response()
}

/// Whether the revocation list lets requests through: no list, a current one, or one that
/// fails open.
fn revocation_serves(layer: &JwtAuthLayer<Value>) -> bool {
    layer
        .revocation()
        .is_none_or(|list| list.status().usable || list.failure_mode() == FailureMode::FailOpen)
}

pub async fn metrics_text(State(state): State<Arc<AppState>>) -> Response<Body> {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}
