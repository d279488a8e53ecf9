//! The token's binding to a key (`cnf`): a proof by the bound key passes for every default
//! algorithm, a proof by another key or none at all does not, a malformed `cnf`, certificate-bound
//! tokens (RFC 8705), a decision that waits for keys, and the test issuer's bound tokens.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower_jwt_auth::dpop::DpopPolicy;
use tower_jwt_auth::{AuthError, ClientCertificate, JwtAuthLayer};

use super::support::*;
use super::{
    ClientKey, EXTERNAL, URL, app, app_with, assert_invalid_proof, bearer_request, body, builder,
    dpop_request, error, send,
};

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
