//! DPoP policies and settings: `Required` and `Allowed`, a policy per issuer, and settings checked
//! when the layer is built.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower_jwt_auth::dpop::{DpopConfig, DpopPolicy};
use tower_jwt_auth::{Algorithm, AuthError, ConfigError, Issuer, JwtAuthLayer, KeySource};

use super::support::*;
use super::{
    ClientKey, EXTERNAL, URL, app, app_with, bearer_request, builder, challenges, dpop_request,
    error, issuer, send,
};

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
