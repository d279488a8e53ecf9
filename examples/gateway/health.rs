//! The gateway's own endpoints: `/healthz` (public: only `ok` or `unavailable`; on the admin
//! listener: each key set's state) and `/metrics`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::metrics;

/// The public health check: `200 ok` when every issuer's keys can verify tokens, `503
/// unavailable` before they are loaded or when a key set is unusable. The details are on the
/// admin listener only.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response<Body> {
    let healthy = state.layer.get().is_some_and(|layer| {
        let sets = layer.key_sets();
        !sets.is_empty() && sets.iter().all(|set| set.usable)
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
    let healthy = !sets.is_empty() && sets.iter().all(|set| set.usable);
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
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "keys unavailable")
    };
    (status, Json(json!({"status": text, "issuers": issuers}))).into_response()
}

pub async fn metrics_text(State(state): State<Arc<AppState>>) -> Response<Body> {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}
