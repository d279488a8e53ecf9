//! The catalogue of known attacks on JWT verifiers (RFC 8725 and the CVEs that followed), one test
//! per family. Each builds the attack against a real layer and asserts the exact rejection, so it
//! fails if the attack passes; most also check that the honest token next to it is accepted, so a
//! rejection can't come from a broken fixture.
//!
//! Policy choices made where a specification leaves room (documented in SECURITY.md): duplicate
//! JSON member names, any `crit`, `b64: false`, nested JWTs and non-canonical base64url are all
//! refused.

#[path = "../support/mod.rs"]
mod support;

mod claims;
mod keys;
mod parsing;
mod requests;
mod signatures;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::Value;
use support::*;
use tower_jwt_auth::{Claims, Issuer, JwtAuthBuilder, JwtAuthLayer, KeySource};

type Builder = JwtAuthBuilder<Value>;

async fn app_with(issuers: Vec<Issuer>, configure: impl FnOnce(Builder) -> Builder) -> Router {
    let mut builder = JwtAuthLayer::<Value>::builder().realm("tests");
    for issuer in issuers {
        builder = builder.issuer(issuer);
    }
    let layer = configure(builder).build().await.unwrap();
    Router::new()
        .route("/me", get(|_: Claims<Value>| async { "ok" }))
        .layer(layer)
}

/// One issuer whose JWKS holds an Ed25519 (`ed`), an RSA (`rsa`) and a P-256 (`ec`) key.
async fn app() -> Router {
    let keys = jwks(&[
        &TestKey::ed25519("ed"),
        &TestKey::rs256("rsa"),
        &TestKey::ec("ec-p256", "ec"),
    ]);
    app_with(vec![issuer_with(KeySource::jwks_json(keys))], |b| b).await
}

/// Sends each token and asserts the `401 invalid_token` with `description`.
async fn expect_invalid(app: &Router, tokens: &[String], description: &str) {
    for token in tokens {
        let reply = get_with_token(app, "/me", token).await;
        assert_eq!(
            (reply.status, reply.www_authenticate()),
            (
                StatusCode::UNAUTHORIZED,
                challenge("tests", "invalid_token", description).as_str()
            ),
            "{token:.120}"
        );
    }
}

fn ed() -> TestKey {
    TestKey::ed25519("ed")
}

/// The three parts of a signed token, base64url-encoded.
fn parts(token: &str) -> [String; 3] {
    let mut split = token.split('.').map(str::to_owned);
    [(); 3].map(|()| split.next().unwrap())
}
