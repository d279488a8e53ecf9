//! Authorization on top of authentication: per-route scope and role requirements with
//! `Authorize` layers, and a handler-side requirement with the `RequireScopes` extractor. A token
//! that lacks what a route requires gets `403` with
//! `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example scopes
//! ```

use std::time::Duration;

use axum::{
    Router,
    routing::{get, post},
};
use serde_json::{Value, json};
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{Authorize, KEYCLOAK_REALM_ROLES, RequireScopes, ScopeRequirement};

/// What `GET /reports` requires, checked by the extractor.
struct ReadReports;

impl ScopeRequirement for ReadReports {
    const SCOPES: &'static [&'static str] = &["reports:read"];
}

async fn reports(RequireScopes(token, ..): RequireScopes<ReadReports>) -> String {
    let sub = token.registered_claims().sub.as_deref().unwrap_or("?");
    format!("reports for {sub}\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::builder()
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await?;
    let auth = issuer.layer_builder::<Value>().build().await?;

    // A route layer guards only its own route; the `JwtAuthLayer` goes around all of them.
    let app = Router::new()
        .route(
            "/orders",
            get(|| async { "orders\n" })
                .route_layer(Authorize::any_scope(["orders:read", "admin"])),
        )
        .route(
            "/orders",
            post(|| async { "created\n" }).route_layer(Authorize::all_scopes(["orders:write"])),
        )
        .route(
            "/admin",
            get(|| async { "admin area\n" })
                .route_layer(Authorize::role(KEYCLOAK_REALM_ROLES, "admin")),
        )
        .route("/reports", get(reports))
        .layer(auth);

    let reader = issuer.token(json!({ "sub": "reader", "scope": "orders:read" }));
    let writer = issuer.token(json!({
        "sub": "writer",
        "scope": "orders:read orders:write reports:read",
    }));
    let admin = issuer.token(json!({ "sub": "admin", "realm_access": { "roles": ["admin"] } }));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("listening on {url}");
    println!("try:");
    println!("  READER={reader}");
    println!("  WRITER={writer}");
    println!("  ADMIN={admin}");
    println!("  curl -i {url}/orders -H \"authorization: Bearer $READER\"          # 200");
    println!(
        "  curl -i -X POST {url}/orders -H \"authorization: Bearer $READER\"  # 403 insufficient_scope, scope=\"orders:write\""
    );
    println!("  curl -i -X POST {url}/orders -H \"authorization: Bearer $WRITER\"  # 200 created");
    println!(
        "  curl -i {url}/reports -H \"authorization: Bearer $READER\"         # 403, scope=\"reports:read\""
    );
    println!(
        "  curl -i {url}/reports -H \"authorization: Bearer $WRITER\"         # 200 reports for writer"
    );
    println!(
        "  curl -i {url}/admin -H \"authorization: Bearer $WRITER\"           # 403, scope=\"admin\""
    );
    println!(
        "  curl -i {url}/admin -H \"authorization: Bearer $ADMIN\"            # 200 admin area"
    );
    axum::serve(listener, app).await?;
    Ok(())
}
