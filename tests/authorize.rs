//! Authorization after authentication: scopes (all of, any of) from `scope` or `scp`, roles at a
//! JSON pointer, predicates on the token or the typed claims, and the `RequireScopes` extractor;
//! every refusal is `403 insufficient_scope` naming what is missing.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use support::*;
use tower_jwt_auth::{
    Authorize, DefaultRejection, Issuer, JwtAuthLayer, KEYCLOAK_REALM_ROLES, KeySource,
    RequireScopes, ScopeRequirement, VerifiedToken,
};

async fn layer() -> JwtAuthLayer<Value> {
    JwtAuthLayer::builder()
        .realm("tests")
        .issuer(
            Issuer::new(ISSUER)
                .audience(AUDIENCE)
                .key(KeySource::shared_secret(SECRET)),
        )
        .build()
        .await
        .unwrap()
}

fn token(changes: Value) -> String {
    hs256(SECRET, None, &claims_with(changes))
}

fn guarded(authorize: Authorize<DefaultRejection>) -> Router {
    Router::new()
        .route("/guarded", get(|| async { "ok" }))
        .route_layer(authorize.with_rejection(DefaultRejection::with_realm("tests")))
}

#[track_caller]
fn assert_insufficient_scope(reply: &Reply, scope: &str) {
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.www_authenticate(),
        format!(
            r#"Bearer realm="tests", error="insufficient_scope", error_description="insufficient scope", scope="{scope}""#
        )
    );
}

#[tokio::test]
async fn all_scopes_are_required_from_scope_or_scp() {
    let app = guarded(Authorize::all_scopes(["orders:read", "orders:write"])).layer(layer().await);
    for granted in [
        json!({"scope": "orders:read orders:write profile"}),
        json!({"scp": ["orders:write", "orders:read"]}),
        json!({"scp": "orders:read orders:write"}),
    ] {
        let reply = get_with_token(&app, "/guarded", &token(granted.clone())).await;
        assert_eq!(reply.status, StatusCode::OK, "{granted}");
    }
    for lacking in [
        json!({"scope": "orders:read"}),
        json!({"scp": ["orders:read"]}),
        json!({}),
        // Scopes are whole words: a prefix or a differently cased scope is another scope.
        json!({"scope": "orders:read orders:writer ORDERS:WRITE"}),
    ] {
        let reply = get_with_token(&app, "/guarded", &token(lacking.clone())).await;
        assert_insufficient_scope(&reply, "orders:read orders:write");
    }
}

#[tokio::test]
async fn any_scope_needs_one_of_them() {
    let app = guarded(Authorize::any_scope(["reports", "admin"])).layer(layer().await);
    let ok = get_with_token(&app, "/guarded", &token(json!({"scope": "admin"}))).await;
    assert_eq!(ok.status, StatusCode::OK);
    let refused = get_with_token(&app, "/guarded", &token(json!({"scope": "profile"}))).await;
    assert_insufficient_scope(&refused, "reports admin");
}

#[tokio::test]
async fn a_scope_claim_of_the_wrong_type_is_an_invalid_token() {
    let app = guarded(Authorize::any_scope(["admin"])).layer(layer().await);
    for bad in [json!({"scope": ["admin"]}), json!({"scp": 7})] {
        let reply = get_with_token(&app, "/guarded", &token(bad)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn roles_are_read_at_a_json_pointer() {
    let keycloak = guarded(Authorize::role(KEYCLOAK_REALM_ROLES, "admin")).layer(layer().await);
    let admin = json!({"realm_access": {"roles": ["user", "admin"]}});
    assert_eq!(
        get_with_token(&keycloak, "/guarded", &token(admin))
            .await
            .status,
        StatusCode::OK
    );
    let user = json!({"realm_access": {"roles": ["user"]}});
    assert_insufficient_scope(
        &get_with_token(&keycloak, "/guarded", &token(user)).await,
        "admin",
    );
    // A role claim that is not a list or a string grants nothing.
    let odd = json!({"realm_access": {"roles": {"admin": true}}});
    assert_insufficient_scope(
        &get_with_token(&keycloak, "/guarded", &token(odd)).await,
        "admin",
    );

    // An Auth0-style namespaced claim: `/` in the name is `~1` in the pointer.
    let auth0 =
        guarded(Authorize::role("/https:~1~1example.com~1roles", "editor")).layer(layer().await);
    let editor = json!({"https://example.com/roles": ["editor"]});
    assert_eq!(
        get_with_token(&auth0, "/guarded", &token(editor))
            .await
            .status,
        StatusCode::OK
    );
}

#[derive(Deserialize)]
struct TenantClaims {
    tenant: String,
}

#[tokio::test]
async fn predicates_on_the_token_or_the_typed_claims() {
    let typed = JwtAuthLayer::<TenantClaims>::builder()
        .issuer(Issuer::new(ISSUER).key(KeySource::shared_secret(SECRET)))
        .build()
        .await
        .unwrap();
    let app = guarded(Authorize::claims("tenant:acme", |claims: &TenantClaims| {
        claims.tenant == "acme"
    }))
    .layer(typed);
    let acme = get_with_token(&app, "/guarded", &token(json!({"tenant": "acme"}))).await;
    assert_eq!(acme.status, StatusCode::OK);
    let other = get_with_token(&app, "/guarded", &token(json!({"tenant": "umbrella"}))).await;
    assert_insufficient_scope(&other, "tenant:acme");

    let verified_only = guarded(Authorize::token(
        "email_verified",
        |token: &VerifiedToken| token.claim("/email_verified") == Some(json!(true)),
    ))
    .layer(layer().await);
    let verified = token(json!({"email_verified": true}));
    assert_eq!(
        get_with_token(&verified_only, "/guarded", &verified)
            .await
            .status,
        StatusCode::OK
    );
    assert_insufficient_scope(
        &get_with_token(&verified_only, "/guarded", &token(json!({}))).await,
        "email_verified",
    );
}

#[tokio::test]
async fn anonymous_requests_get_401_and_a_missing_layer_500() {
    let optional = guarded(Authorize::any_scope(["admin"])).layer(layer().await.optional());
    let request = Request::get("/guarded").body(Body::empty()).unwrap();
    let reply = send(&optional, request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.www_authenticate(), r#"Bearer realm="tests""#);

    let no_layer = guarded(Authorize::any_scope(["admin"]));
    let request = Request::get("/guarded").body(Body::empty()).unwrap();
    let reply = send(&no_layer, request).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.www_authenticate(), "");
}

struct WriteOrders;
impl ScopeRequirement for WriteOrders {
    const SCOPES: &'static [&'static str] = &["orders:write"];
}

#[tokio::test]
async fn the_require_scopes_extractor_answers_403_the_way_the_layer_would() {
    let app = Router::new()
        .route(
            "/orders",
            get(
                |RequireScopes(token, ..): RequireScopes<WriteOrders>| async move {
                    token.registered_claims().sub.clone().unwrap_or_default()
                },
            ),
        )
        .layer(layer().await);
    let ok = get_with_token(&app, "/orders", &token(json!({"scope": "orders:write"}))).await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "user-1"));
    let refused = get_with_token(&app, "/orders", &token(json!({"scope": "orders:read"}))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // With the layer's realm: an extractor's refusal is the layer's rejection.
    assert_eq!(
        refused.www_authenticate(),
        r#"Bearer realm="tests", error="insufficient_scope", error_description="insufficient scope", scope="orders:write""#
    );
}
