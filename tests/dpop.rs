//! DPoP (RFC 9449) and certificate-bound tokens (RFC 8705) through the layer. Every proof here
//! is made by `jsonwebtoken` (a second, independent JOSE implementation), never by this crate.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt as _;
use tower_jwt_auth::dpop::{DpopConfig, DpopPolicy, OriginalRequest, RotatingNonces};
use tower_jwt_auth::{
    Algorithm, AuthError, ClientCertificate, Clock, ConfigError, Issuer, JwtAuthBuilder,
    JwtAuthLayer, KeySource, VerifiedToken,
};

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

#[tokio::test]
async fn a_bound_token_with_a_valid_proof_passes_for_every_default_algorithm() {
    let app = app(DpopPolicy::Required).await;
    for key in [
        ClientKey::es256(),
        ClientKey::new(TestKey::ed25519("client")),
        ClientKey::new(TestKey::rsa(
            "rsa-a",
            "client",
            jsonwebtoken::Algorithm::RS256,
        )),
        ClientKey::new(TestKey::rsa(
            "rsa-b",
            "client",
            jsonwebtoken::Algorithm::PS256,
        )),
    ] {
        let token = key.token();
        let proof = key.proof("GET", URL, &token);
        let response = send(
            &app,
            dpop_request(Method::GET, "/orders", &token, &[&proof]),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{:?}", key.key.alg);
        // The handler sees the confirmation: the thumbprint jsonwebtoken computed.
        assert_eq!(body(response).await, key.jkt, "{:?}", key.key.alg);
    }
    // POST: `htm` is the method.
    let key = ClientKey::es256();
    let token = key.token();
    let proof = key.proof("POST", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::POST, "/orders", &token, &[&proof]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_header_check_of_section_4_3_refuses_a_bad_proof() {
    let app = app(DpopPolicy::Required).await;
    let key = ClientKey::es256();
    let other = ClientKey::new(TestKey::ec("ec-p384", "other"));
    let token = key.token();
    let claims = key.claims("GET", URL, &token);
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = json!("AAAA");
    let mut pinned_jwk = key.jwk.clone();
    pinned_jwk["alg"] = json!("ES384");
    let hs_token = hs256(SECRET, None, &claims);
    let hs_proof = {
        let (_, rest) = hs_token.split_once('.').unwrap();
        let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk});
        format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(header.to_string().as_bytes())
        )
    };
    let good = key.proof("GET", URL, &token);
    let (signing_input, _) = good.rsplit_once('.').unwrap();
    let forged_signature = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([1u8; 64]));
    let unsecured = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let cases: Vec<(&str, String, &str)> =
        vec![
        (
            "typ missing",
            key.sign(&json!({"alg": "ES256", "jwk": key.jwk}), &claims),
            "typ is not dpop+jwt",
        ),
        (
            "typ JWT",
            key.sign(&json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk}), &claims),
            "typ is not dpop+jwt",
        ),
        (
            "ES384 is not in the default list",
            other.proof("GET", URL, &token),
            "alg not allowed",
        ),
        ("HS256 proof", hs_proof, "alg not allowed"),
        ("alg none", unsecured, "unsecured proof"),
        (
            "no jwk",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &claims),
            "no jwk in the header",
        ),
        (
            "jwk with a private member",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private_jwk}), &claims),
            "jwk holds private key material",
        ),
        (
            "jwk pinned to another alg",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": pinned_jwk}), &claims),
            "jwk alg differs from the proof's alg",
        ),
        (
            "jwk is a symmetric key",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "AAAA"}}),
                &claims,
            ),
            "jwk holds private key material",
        ),
        ("forged signature", forged_signature, "signature invalid"),
        ("not a JWS", "a.b".to_owned(), "malformed proof"),
        (
            "crit",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk, "crit": ["x"], "x": 1}),
                &claims,
            ),
            "unsupported crit",
        ),
    ];
    for (case, proof, reason) in cases {
        let response = send(
            &app,
            dpop_request(Method::GET, "/orders", &token, &[&proof]),
        )
        .await;
        assert_invalid_proof(&response, reason, case);
    }
    // A proof signed by one key that names another in `jwk` fails its signature check.
    let p384 = ClientKey::new(TestKey::ec("ec-p384", "p384"));
    let mismatched = p384.key.sign_with_header(
        &json!({"typ": "dpop+jwt", "alg": "ES384", "jwk": key.jwk}),
        &claims,
    );
    let app384 = app_with(
        builder(DpopPolicy::Required)
            .dpop(DpopConfig::default().algorithms([Algorithm::ES256, Algorithm::ES384])),
    )
    .await;
    let response = send(
        &app384,
        dpop_request(Method::GET, "/orders", &token, &[&mismatched]),
    )
    .await;
    assert_invalid_proof(
        &response,
        "jwk is not a usable key for the proof's alg",
        "mislabelled",
    );
    let ed = ClientKey::new(TestKey::ed25519("ed"));
    let foreign = ed.key.sign_with_header(
        &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ClientKey::new(TestKey::ed25519("e2")).jwk}),
        &claims,
    );
    // Same Ed25519 key file, so it verifies; flip a signature byte to make it another signer's.
    let (input, signature) = foreign.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 1;
    let foreign = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&foreign]),
    )
    .await;
    assert_invalid_proof(&response, "signature invalid", "other signer");
}

#[tokio::test]
async fn every_claim_check_of_section_4_3_refuses_a_bad_proof() {
    let start = now();
    let clock = ManualClock::at(start);
    let app = app_with(builder(DpopPolicy::Required).clock(Arc::clone(&clock))).await;
    let key = ClientKey::es256();
    let token = key.token();
    let with = |changes: Value| {
        let mut claims = key.claims("GET", URL, &token);
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        key.sign(&key.header(), &claims)
    };
    let cases = [
        (
            "htm",
            json!({"htm": "POST"}),
            "htm does not match the request method",
        ),
        (
            "htm case",
            json!({"htm": "get"}),
            "htm does not match the request method",
        ),
        (
            "htu host",
            json!({"htu": "https://evil.example.com/orders"}),
            "htu does not match the request URL",
        ),
        (
            "htu path",
            json!({"htu": "https://api.example.com/admin"}),
            "htu does not match the request URL",
        ),
        (
            "htu scheme",
            json!({"htu": "http://api.example.com/orders"}),
            "htu does not match the request URL",
        ),
        (
            "htu port",
            json!({"htu": "https://api.example.com:8443/orders"}),
            "htu does not match the request URL",
        ),
        (
            "htu relative",
            json!({"htu": "/orders"}),
            "htu does not match the request URL",
        ),
        (
            "iat old",
            json!({"iat": start - 61}),
            "iat outside the accepted window",
        ),
        (
            "iat future",
            json!({"iat": start + 61}),
            "iat outside the accepted window",
        ),
        (
            "iat string",
            json!({"iat": start.to_string()}),
            "iat is not a date",
        ),
        ("no iat", json!({"iat": null}), "no iat"),
        ("no jti", json!({"jti": null}), "no jti"),
        ("empty jti", json!({"jti": ""}), "jti is empty or too long"),
        ("no htm", json!({"htm": null}), "no htm"),
        ("no htu", json!({"htu": null}), "no htu"),
        (
            "no ath",
            json!({"ath": null}),
            "ath does not match the access token",
        ),
        (
            "ath of another token",
            json!({"ath": ath("other")}),
            "ath does not match the access token",
        ),
    ];
    for (case, changes, reason) in cases {
        let response = send(
            &app,
            dpop_request(Method::GET, "/orders", &token, &[&with(changes)]),
        )
        .await;
        assert_invalid_proof(&response, reason, case);
    }
    // Within the window on either side, a normalised `htu` and a query are fine.
    for (case, changes) in [
        ("iat 60 s old", json!({"iat": start - 60})),
        ("iat 60 s ahead", json!({"iat": start + 60})),
        (
            "htu normalised",
            json!({"htu": "HTTPS://API.Example.COM:443/orders?page=2#top"}),
        ),
    ] {
        let response = send(
            &app,
            dpop_request(Method::GET, "/orders?page=2", &token, &[&with(changes)]),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{case}");
    }
    // The window is read on the layer's clock.
    let proof = with(json!({}));
    clock.set(start + 120);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_invalid_proof(&response, "iat outside the accepted window", "clock moved");
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let app = app(DpopPolicy::Required).await;
    let key = ClientKey::es256();
    let token = key.token();
    let proof = key.proof("GET", URL, &token);
    let first = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let again = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_invalid_proof(&again, "proof replayed", "replay");
    // A fresh proof passes.
    let fresh = key.proof("GET", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&fresh]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_proof_by_another_key_than_the_bound_one_is_refused() {
    let app = app(DpopPolicy::Required).await;
    let bound = ClientKey::es256();
    let thief = ClientKey::new(TestKey::ed25519("thief"));
    let token = bound.token();
    let proof = thief.proof("GET", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_invalid_proof(
        &response,
        "proof key does not match the token's cnf.jkt",
        "thief",
    );
}

#[tokio::test]
async fn exactly_one_proof_header_is_required() {
    let app = app(DpopPolicy::Required).await;
    let key = ClientKey::es256();
    let token = key.token();
    let a = key.proof("GET", URL, &token);
    let b = key.proof("GET", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&a, &b]),
    )
    .await;
    assert_invalid_proof(&response, "more than one DPoP header", "two proofs");
    let response = send(&app, dpop_request(Method::GET, "/orders", &token, &[])).await;
    assert_invalid_proof(&response, "no DPoP proof", "no proof");
}

#[tokio::test]
async fn a_bound_token_sent_as_bearer_is_refused_under_every_policy() {
    let key = ClientKey::es256();
    let token = key.token();
    for policy in [
        DpopPolicy::Disabled,
        DpopPolicy::Allowed,
        DpopPolicy::Required,
    ] {
        let app = app(policy).await;
        let response = send(&app, bearer_request(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{policy:?}");
        assert_eq!(
            error(&response),
            AuthError::TokenBinding("DPoP-bound token sent as a bearer token"),
            "{policy:?}"
        );
    }
}

#[tokio::test]
async fn required_refuses_plain_bearer_tokens_and_allowed_takes_both() {
    let plain = hs256(SECRET, None, &valid_claims());
    let key = ClientKey::es256();
    let bound = key.token();

    let required = app(DpopPolicy::Required).await;
    let response = send(&required, bearer_request(&plain)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        error(&response),
        AuthError::TokenBinding("DPoP proof required")
    );
    // Only a DPoP challenge: bearer tokens are not accepted at all.
    assert_eq!(
        challenges(&response),
        [
            r#"DPoP error="invalid_token", error_description="token binding: DPoP proof required", algs="ES256 EdDSA RS256 PS256""#
        ]
    );
    let anonymous = send(
        &required,
        Request::get("/orders").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        challenges(&anonymous),
        [r#"DPoP algs="ES256 EdDSA RS256 PS256""#]
    );

    let allowed = app(DpopPolicy::Allowed).await;
    assert_eq!(
        send(&allowed, bearer_request(&plain)).await.status(),
        StatusCode::OK
    );
    let proof = key.proof("GET", URL, &bound);
    let response = send(
        &allowed,
        dpop_request(Method::GET, "/orders", &bound, &[&proof]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let anonymous = send(
        &allowed,
        Request::get("/orders").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        challenges(&anonymous),
        [r#"DPoP algs="ES256 EdDSA RS256 PS256""#, "Bearer"]
    );
    // A proof error goes on the DPoP challenge only.
    let response = send(&allowed, dpop_request(Method::GET, "/orders", &bound, &[])).await;
    let sent = challenges(&response);
    assert!(
        sent[0].starts_with(r#"DPoP error="invalid_dpop_proof""#),
        "{sent:?}"
    );
    assert_eq!(sent[1], "Bearer");

    // An unbound token under the DPoP scheme is refused.
    let proof = key.proof("GET", URL, &plain);
    let response = send(
        &allowed,
        dpop_request(Method::GET, "/orders", &plain, &[&proof]),
    )
    .await;
    assert_eq!(
        error(&response),
        AuthError::TokenBinding("token is not DPoP-bound")
    );

    // Without DPoP, the scheme is not read: a DPoP request carries no token, as before.
    let disabled = app(DpopPolicy::Disabled).await;
    let response = send(
        &disabled,
        dpop_request(Method::GET, "/orders", &bound, &[&proof]),
    )
    .await;
    assert_eq!(error(&response), AuthError::MissingToken);
    assert_eq!(challenges(&response), ["Bearer"]);
}

#[tokio::test]
async fn dpop_is_per_issuer() {
    const OTHER: &str = "https://other.test/";
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(issuer(DpopPolicy::Disabled))
        .issuer(
            Issuer::new(OTHER)
                .audience(AUDIENCE)
                .key(KeySource::shared_secret(
                    b"another secret of at least 32 bytes",
                ))
                .dpop(DpopPolicy::Required),
        )
        .external_url(EXTERNAL);
    let app = app_with(layer).await;
    let key = ClientKey::es256();
    // The first issuer takes bearer tokens and no DPoP.
    let plain = hs256(SECRET, None, &valid_claims());
    assert_eq!(
        send(&app, bearer_request(&plain)).await.status(),
        StatusCode::OK
    );
    let bound = key.token();
    let proof = key.proof("GET", URL, &bound);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &bound, &[&proof]),
    )
    .await;
    assert_eq!(
        error(&response),
        AuthError::TokenBinding("DPoP not accepted for this issuer")
    );
    // The second requires DPoP.
    let other_plain = hs256(
        b"another secret of at least 32 bytes",
        None,
        &claims_with(json!({"iss": OTHER})),
    );
    let response = send(&app, bearer_request(&other_plain)).await;
    assert_eq!(
        error(&response),
        AuthError::TokenBinding("DPoP proof required")
    );
    let other_bound = hs256(
        b"another secret of at least 32 bytes",
        None,
        &claims_with(json!({"iss": OTHER, "cnf": {"jkt": key.jkt}})),
    );
    let proof = key.proof("GET", URL, &other_bound);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &other_bound, &[&proof]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_server_nonce_flow() {
    let clock = ManualClock::at(now());
    let app = app_with(
        builder(DpopPolicy::Required)
            .clock(Arc::clone(&clock))
            .dpop(DpopConfig::default().nonces(RotatingNonces::new(Duration::from_secs(300)))),
    )
    .await;
    let key = ClientKey::es256();
    let token = key.token();
    // No nonce: 401 use_dpop_nonce with the nonce to use.
    let proof = key.proof("GET", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(matches!(error(&response), AuthError::UseDpopNonce { .. }));
    assert!(challenges(&response)[0].starts_with(r#"DPoP error="use_dpop_nonce""#));
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    // With it: accepted.
    let with_nonce = |nonce: &str| {
        let mut claims = key.claims("GET", URL, &token);
        claims["nonce"] = json!(nonce);
        claims["iat"] = json!(clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs());
        key.sign(&key.header(), &claims)
    };
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&with_nonce(&nonce)]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // A made-up nonce is refused the same way.
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&with_nonce("made-up")]),
    )
    .await;
    assert!(matches!(error(&response), AuthError::UseDpopNonce { .. }));
    // After two rotations the old nonce is stale; the answer carries the new one.
    clock.set(now() + 600);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&with_nonce(&nonce)]),
    )
    .await;
    assert!(matches!(error(&response), AuthError::UseDpopNonce { .. }));
    let rotated = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated, nonce);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&with_nonce(&rotated)]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn htu_is_the_external_url_behind_a_proxy() {
    // The proxy publishes the service at https://public.example.com/api and strips `/api`.
    let app = app_with(
        JwtAuthLayer::<Value>::builder()
            .issuer(issuer(DpopPolicy::Required))
            .external_url("https://Public.Example.com:443/api/"),
    )
    .await;
    let key = ClientKey::es256();
    let token = key.token();
    let public = key.proof("GET", "https://public.example.com/api/orders", &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&public]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // A proof for the internal address (what the service itself sees) is refused.
    let internal = key.proof("GET", "http://10.0.0.7:8080/orders", &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&internal]),
    )
    .await;
    assert_invalid_proof(&response, "htu does not match the request URL", "internal");
}

#[tokio::test]
async fn a_forward_auth_endpoint_checks_the_proof_against_the_original_request() {
    let layer = builder(DpopPolicy::Required).build().await.unwrap();
    // Trusted code in front of the layer sets the original method and URL (as a forward-auth
    // endpoint does from X-Forwarded-*).
    let app = Router::new()
        .route("/auth", get(|| async { "ok" }))
        .layer(layer)
        .layer(axum::middleware::map_request(
            |mut request: Request<Body>| async move {
                let original =
                    OriginalRequest::new(Method::DELETE, "https://shop.example.com/carts/7?x=1")
                        .unwrap();
                request.extensions_mut().insert(original);
                request
            },
        ));
    let key = ClientKey::es256();
    let token = key.token();
    let proof = key.proof("DELETE", "https://shop.example.com/carts/7", &token);
    let response = send(&app, dpop_request(Method::GET, "/auth", &token, &[&proof])).await;
    assert_eq!(response.status(), StatusCode::OK);
    // A proof for the auth endpoint itself is not one for the original request.
    let proof = key.proof("GET", "https://api.example.com/auth", &token);
    let response = send(&app, dpop_request(Method::GET, "/auth", &token, &[&proof])).await;
    assert_invalid_proof(
        &response,
        "htm does not match the request method",
        "auth endpoint",
    );
}

#[tokio::test]
async fn dpop_settings_are_checked_when_the_layer_is_built() {
    let error = JwtAuthLayer::<Value>::builder()
        .issuer(issuer(DpopPolicy::Allowed))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::InvalidSetting {
                name: "external_url",
                ..
            }
        ),
        "{error}"
    );
    let error = builder(DpopPolicy::Allowed)
        .dpop(DpopConfig::default().algorithms([Algorithm::ES256, Algorithm::HS256]))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConfigError::InvalidSetting { name: "dpop", .. }),
        "{error}"
    );
    let error = builder(DpopPolicy::Allowed)
        .external_url("https://api.example.com/?q=1")
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::InvalidSetting {
                name: "external_url",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_bound_token_is_refused_where_no_request_can_prove_possession() {
    let layer = builder(DpopPolicy::Allowed).build().await.unwrap();
    let key = ClientKey::es256();
    assert_eq!(
        layer.verify(&key.token()).await.unwrap_err(),
        AuthError::TokenBinding("sender-constrained token checked without its request")
    );
    assert!(
        layer
            .verify(&hs256(SECRET, None, &valid_claims()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_malformed_cnf_is_an_invalid_claim() {
    let app = app(DpopPolicy::Allowed).await;
    for cnf in [json!("jkt"), json!({"jkt": 7}), json!({"x5t#S256": ["a"]})] {
        let token = hs256(SECRET, None, &claims_with(json!({"cnf": cnf})));
        let response = send(&app, bearer_request(&token)).await;
        assert_eq!(
            error(&response),
            AuthError::InvalidClaim("cnf".into()),
            "{cnf}"
        );
    }
}

#[tokio::test]
async fn a_certificate_bound_token_needs_the_matching_client_certificate() {
    let layer = builder(DpopPolicy::Disabled).build().await.unwrap();
    let certificate = rcgen::generate_simple_self_signed(vec!["client".to_owned()]).unwrap();
    let der = certificate.cert.der().to_vec();
    let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()])
        .unwrap()
        .cert
        .der()
        .to_vec();
    let x5t = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der));
    let token = hs256(
        SECRET,
        None,
        &claims_with(json!({"cnf": {"x5t#S256": x5t}})),
    );
    let app = |presented: Option<Vec<u8>>| {
        Router::new()
            .route("/orders", get(|| async { "ok" }))
            .layer(layer.clone())
            .layer(axum::middleware::map_request(
                move |mut request: Request<Body>| {
                    let presented = presented.clone();
                    async move {
                        if let Some(der) = presented {
                            request.extensions_mut().insert(ClientCertificate::new(der));
                        }
                        request
                    }
                },
            ))
    };
    let response = send(&app(Some(der)), bearer_request(&token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = send(&app(Some(other)), bearer_request(&token)).await;
    assert_eq!(
        error(&response),
        AuthError::TokenBinding("client certificate does not match the token")
    );
    let response = send(&app(None), bearer_request(&token)).await;
    assert_eq!(
        error(&response),
        AuthError::TokenBinding("client certificate required")
    );
}

#[tokio::test]
async fn test_util_mints_bound_tokens_and_proofs_that_pass() {
    use tower_jwt_auth::test_util::{DpopKey, TestIssuer};
    let issuer = TestIssuer::start().await.unwrap();
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(issuer.issuer_config().dpop(DpopPolicy::Required))
        .external_url(EXTERNAL)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/orders", get(|| async { "ok" }))
        .layer(layer);
    let key = DpopKey::generate();
    let token = issuer.token_builder().dpop_bound(&key).sign();
    let proof = key.proof("GET", URL).access_token(&token).sign();
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        tower_jwt_auth::dpop::jwk_thumbprint(&key.public_jwk().to_string()).as_deref(),
        Some(key.thumbprint())
    );
}

#[tokio::test]
async fn the_binding_is_checked_when_a_decision_has_to_wait_too() {
    // An async check makes every decision pending; the proof is checked after it.
    let app =
        app_with(builder(DpopPolicy::Required).validate_async(|_claims, _token| async { Ok(()) }))
            .await;
    let key = ClientKey::es256();
    let token = key.token();
    let proof = key.proof("GET", URL, &token);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = send(
        &app,
        dpop_request(Method::GET, "/orders", &token, &[&proof]),
    )
    .await;
    assert_invalid_proof(&response, "proof replayed", "pending replay");
    let response = send(&app, bearer_request(&token)).await;
    assert_eq!(
        error(&response),
        AuthError::TokenBinding("DPoP-bound token sent as a bearer token")
    );
}

#[tokio::test]
async fn a_known_proof_key_still_checks_every_proofs_signature() {
    let app = app(DpopPolicy::Required).await;
    let key = ClientKey::es256();
    let token = key.token();
    let request = |proof: &str| dpop_request(Method::GET, "/orders", &token, &[proof]);
    // The first proof prepares the key from its header, which is then kept.
    let first = key.proof("GET", URL, &token);
    assert_eq!(send(&app, request(&first)).await.status(), StatusCode::OK);
    let second = key.proof("GET", URL, &token);
    let (signing_input, signature) = second.rsplit_once('.').unwrap();
    assert_eq!(
        first.split_once('.').unwrap().0,
        second.split_once('.').unwrap().0,
        "one client key, one header"
    );
    // The known header with a signature that is not its key's: refused.
    let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([1u8; 64]));
    assert_invalid_proof(
        &send(&app, request(&forged)).await,
        "signature invalid",
        "forged, known header",
    );
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 1;
    let flipped = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(bytes));
    assert_invalid_proof(
        &send(&app, request(&flipped)).await,
        "signature invalid",
        "one bit off, known header",
    );
    // The known header over other claims, signed for those: its signature still decides.
    let replayed_input = format!("{}.{}", first.split_once('.').unwrap().0, {
        let claims = key.claims("GET", URL, &token);
        URL_SAFE_NO_PAD.encode(claims.to_string())
    });
    let spliced = format!("{replayed_input}.{signature}");
    assert_invalid_proof(
        &send(&app, request(&spliced)).await,
        "signature invalid",
        "another proof's signature, known header",
    );
    // A genuine proof with the known header passes, its kept thumbprint matched to `cnf.jkt`.
    let response = send(&app, request(&second)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(body, key.jkt.as_bytes());
}
