//! Each request runs in a `jwt_auth` span whose `outcome` and `cause` fields say what happened,
//! and nothing the layer records carries the token.

mod support;

use std::fmt;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use support::*;
use tower_jwt_auth::{Claims, Issuer, JwtAuthLayer, KeySource};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::{Layer, Registry};

/// Every field recorded on `jwt_auth` spans, and every event message's fields, as text.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, String)>>>);

impl Visit for Recorded {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .lock()
            .unwrap()
            .push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .lock()
            .unwrap()
            .push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorded {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        attrs.record(&mut self.clone());
    }

    fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
        values.record(&mut self.clone());
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        event.record(&mut self.clone());
    }
}

#[test]
fn the_span_records_outcome_and_cause_and_never_the_token() {
    let recorded = Recorded::default();
    let subscriber = Registry::default().with(recorded.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (good, expired) = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let layer = JwtAuthLayer::<Value>::builder()
                .realm("tests")
                .issuer(
                    Issuer::new(ISSUER)
                        .audience(AUDIENCE)
                        .key(KeySource::shared_secret(SECRET)),
                )
                .build()
                .await
                .unwrap();
            let app = Router::new()
                .route("/me", get(|_: Claims<Value>| async { "ok" }))
                .layer(layer);
            let good = hs256(SECRET, None, &valid_claims());
            let expired = hs256(SECRET, None, &claims_with(json!({"exp": 1})));
            get_with_token(&app, "/me", &good).await;
            get_with_token(&app, "/me", &expired).await;
            (good, expired)
        })
    });
    let fields = recorded.0.lock().unwrap().clone();
    let has = |name: &str, value: &str| fields.iter().any(|(n, v)| n == name && v == value);
    assert!(has("outcome", "accepted"), "{fields:?}");
    assert!(has("outcome", "rejected"), "{fields:?}");
    assert!(has("cause", "expired"), "{fields:?}");
    for (name, value) in &fields {
        for token in [&good, &expired] {
            let (_, signature) = token.rsplit_once('.').unwrap();
            assert!(!value.contains(signature), "{name} carries the token");
        }
    }
}
