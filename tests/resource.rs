//! Protected-resource metadata (RFC 9728) and resource indicators (RFC 8707): the document, its
//! well-known paths, `resource_metadata` in every challenge, and the resource as audience.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt as _;
use tower_jwt_auth::dpop::DpopPolicy;
use tower_jwt_auth::{
    AuthError, Authorize, ConfigError, DefaultRejection, Issuer, JwtAuthLayer, KeySource,
    ProtectedResource, RequireScopes, ScopeRequirement,
};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

struct Admin;
impl ScopeRequirement for Admin {
    const SCOPES: &'static [&'static str] = &["admin"];
}

async fn layer(issuer: Issuer) -> JwtAuthLayer<Value> {
    JwtAuthLayer::<Value>::builder()
        .issuer(issuer)
        .protected_resource(
            ProtectedResource::new(RESOURCE)
                .scopes_supported(["tools:read", "admin"])
                .resource_name("Test MCP"),
        )
        .build()
        .await
        .unwrap()
}

fn plain_issuer() -> Issuer {
    Issuer::new(ISSUER).key(KeySource::shared_secret(SECRET))
}

async fn app(layer: JwtAuthLayer<Value>) -> Router {
    let metadata = layer.protected_resource().unwrap().clone();
    let rejection = DefaultRejection::default().resource_metadata(metadata.metadata_url());
    Router::new()
        .route("/mcp", get(|| async { "ok" }))
        .route("/admin", get(|_: RequireScopes<Admin>| async { "admin" }))
        .route(
            "/inherited",
            get(|| async { "ok" }).layer(Authorize::all_scopes(["admin"])),
        )
        .route(
            "/authorized",
            get(|| async { "ok" })
                .layer(Authorize::all_scopes(["admin"]).with_rejection(rejection)),
        )
        .layer(layer)
        .route_service(&metadata.well_known_path(), metadata.service())
        .route_service(tower_jwt_auth::WELL_KNOWN_PREFIX, metadata.service())
}

fn token(claims: Value) -> String {
    hs256(SECRET, None, &claims)
}

async fn get_with(app: &Router, path: &str, token: Option<&str>) -> http::Response<Body> {
    let mut request = Request::builder().uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_document_is_served_at_both_well_known_paths_with_the_issuers_filled_in() {
    let app = app(layer(plain_issuer()).await).await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = get_with(&app, path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let document: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            document,
            json!({
                "resource": RESOURCE,
                "authorization_servers": [ISSUER],
                "scopes_supported": ["tools:read", "admin"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Test MCP",
            })
        );
    }
    let post = app
        .clone()
        .oneshot(
            Request::builder()
                .method(Method::POST)
                .uri("/.well-known/oauth-protected-resource/mcp")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_document_states_the_dpop_settings() {
    let layer = JwtAuthLayer::<Value>::builder()
        .issuer(plain_issuer().dpop(DpopPolicy::Required))
        .external_url("https://mcp.example.com")
        .protected_resource(ProtectedResource::new(RESOURCE))
        .build()
        .await
        .unwrap();
    let document: Value =
        serde_json::from_str(&layer.protected_resource().unwrap().to_json()).unwrap();
    assert_eq!(
        document["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
    assert_eq!(document["dpop_bound_access_tokens_required"], json!(true));
    // Challenges carry the metadata URL beside `algs`.
    let app = Router::new()
        .route("/mcp", get(|| async { "ok" }))
        .layer(layer);
    let response = get_with(&app, "/mcp", None).await;
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        format!(r#"DPoP algs="ES256 EdDSA RS256 PS256", resource_metadata="{METADATA}""#)
    );
}

#[tokio::test]
async fn every_challenge_carries_resource_metadata() {
    let app = app(layer(plain_issuer()).await).await;
    let good = token(claims_with(json!({"aud": RESOURCE, "scope": "tools:read"})));
    let expired = token(claims_with(json!({"aud": RESOURCE, "exp": now() - 3600})));
    let cases = [
        (
            "/mcp",
            None,
            StatusCode::UNAUTHORIZED,
            format!(r#"Bearer resource_metadata="{METADATA}""#),
        ),
        (
            "/mcp",
            Some(expired.as_str()),
            StatusCode::UNAUTHORIZED,
            format!(
                r#"Bearer error="invalid_token", error_description="token expired", resource_metadata="{METADATA}""#
            ),
        ),
        (
            "/admin",
            Some(good.as_str()),
            StatusCode::FORBIDDEN,
            format!(
                r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin", resource_metadata="{METADATA}""#
            ),
        ),
        (
            "/inherited",
            Some(good.as_str()),
            StatusCode::FORBIDDEN,
            format!(
                r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin", resource_metadata="{METADATA}""#
            ),
        ),
        (
            "/authorized",
            Some(good.as_str()),
            StatusCode::FORBIDDEN,
            format!(
                r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin", resource_metadata="{METADATA}""#
            ),
        ),
    ];
    for (path, token, status, challenge) in cases {
        let response = get_with(&app, path, token).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            challenge,
            "{path}"
        );
    }
    assert_eq!(
        get_with(&app, "/mcp", Some(&good)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_resource_is_the_required_audience_unless_audiences_are_set() {
    let app = app(layer(plain_issuer()).await).await;
    let for_us = token(claims_with(json!({"aud": RESOURCE})));
    let for_another = token(claims_with(json!({"aud": "https://other.example.com/mcp"})));
    let no_aud = token(claims_with(json!({"aud": null})));
    assert_eq!(
        get_with(&app, "/mcp", Some(&for_us)).await.status(),
        StatusCode::OK
    );
    for token in [for_another, no_aud] {
        let response = get_with(&app, "/mcp", Some(&token)).await;
        assert_eq!(
            response.extensions().get::<AuthError>(),
            Some(&AuthError::AudienceNotAllowed)
        );
    }
    // Configured audiences stay the rule.
    let app = self::app(layer(plain_issuer().audience(AUDIENCE)).await).await;
    let classic = token(valid_claims());
    assert_eq!(
        get_with(&app, "/mcp", Some(&classic)).await.status(),
        StatusCode::OK
    );
    let for_us = token(claims_with(json!({"aud": RESOURCE})));
    let response = get_with(&app, "/mcp", Some(&for_us)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_resource_that_is_not_an_absolute_url_is_refused() {
    for resource in [
        "mcp",
        "https://mcp.example.com/mcp?x=1",
        "https://mcp.example.com/#f",
    ] {
        let error = JwtAuthLayer::<Value>::builder()
            .issuer(plain_issuer())
            .protected_resource(ProtectedResource::new(resource))
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::InvalidSetting {
                    name: "protected_resource",
                    ..
                }
            ),
            "{resource}: {error}"
        );
    }
}
