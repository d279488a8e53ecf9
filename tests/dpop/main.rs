//! DPoP (RFC 9449) and certificate-bound tokens (RFC 8705) through the layer. Every proof here
//! is made by `jsonwebtoken` (a second, independent JOSE implementation), never by this crate.

#[path = "../support/mod.rs"]
mod support;

mod binding;
mod checks;
mod nonces_and_urls;
mod policy;

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt as _;
use tower_jwt_auth::dpop::DpopPolicy;
use tower_jwt_auth::{AuthError, Issuer, JwtAuthBuilder, JwtAuthLayer, KeySource, VerifiedToken};

const EXTERNAL: &str = "https://api.example.com";
const URL: &str = "https://api.example.com/orders";

fn issuer(policy: DpopPolicy) -> Issuer {
    Issuer::new(ISSUER)
        .audience(AUDIENCE)
        .key(KeySource::shared_secret(SECRET))
        .dpop(policy)
}

fn builder(policy: DpopPolicy) -> JwtAuthBuilder<Value> {
    JwtAuthLayer::<Value>::builder()
        .issuer(issuer(policy))
        .external_url(EXTERNAL)
}

async fn app_with(builder: JwtAuthBuilder<Value>) -> Router {
    let layer = builder.build().await.unwrap();
    Router::new()
        .route(
            "/orders",
            get(|token: VerifiedToken| async move {
                token.confirmation().jkt().unwrap_or("-").to_owned()
            })
            .post(|| async { "posted" }),
        )
        .layer(layer)
}

async fn app(policy: DpopPolicy) -> Router {
    app_with(builder(policy)).await
}

/// A client key, with the proof header members made by `jsonwebtoken`.
struct ClientKey {
    key: TestKey,
    /// The public JWK, without `kid`.
    jwk: Value,
    /// RFC 7638 thumbprint, computed by `jsonwebtoken`.
    jkt: String,
}

impl ClientKey {
    fn new(key: TestKey) -> Self {
        let mut jwk = key.public_jwk.clone();
        jwk.as_object_mut().unwrap().remove("kid");
        let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
        let jkt = parsed
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .unwrap();
        Self { key, jwk, jkt }
    }

    fn es256() -> Self {
        Self::new(TestKey::ec("ec-p256", "client"))
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": alg_name(self.key.alg), "jwk": self.jwk})
    }

    /// A proof with exactly `header` and `claims`, signed with this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.key.sign_with_header(header, claims)
    }

    fn claims(&self, method: &str, url: &str, token: &str) -> Value {
        json!({
            "jti": URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                format!("{}{}", now(), fastrand()).as_bytes()
            )),
            "htm": method,
            "htu": url,
            "iat": now(),
            "ath": ath(token),
        })
    }

    fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.sign(&self.header(), &self.claims(method, url, token))
    }

    fn token(&self) -> String {
        hs256(
            SECRET,
            None,
            &claims_with(json!({"cnf": {"jkt": self.jkt}})),
        )
    }
}

fn fastrand() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

fn dpop_request(method: Method, path: &str, token: &str, proofs: &[&str]) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("DPoP {token}"));
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    request.body(Body::empty()).unwrap()
}

fn bearer_request(token: &str) -> Request<Body> {
    Request::builder()
        .uri("/orders")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

async fn body(response: Response<Body>) -> String {
    use http_body_util::BodyExt as _;
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn error(response: &Response<Body>) -> AuthError {
    response
        .extensions()
        .get::<AuthError>()
        .cloned()
        .expect("a rejection carries its AuthError")
}

fn challenges(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Asserts a `401 invalid_dpop_proof` for `reason`.
#[track_caller]
fn assert_invalid_proof(response: &Response<Body>, reason: &str, case: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    match error(response) {
        AuthError::InvalidDpopProof(got) => assert_eq!(got, reason, "{case}"),
        other => panic!("{case}: {other:?}"),
    }
    let first = &challenges(response)[0];
    assert!(
        first.starts_with("DPoP ") && first.contains(r#"error="invalid_dpop_proof""#),
        "{case}: {first}"
    );
}
