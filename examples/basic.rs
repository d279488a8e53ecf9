//! The smallest complete service: an axum router whose `/me` route needs a valid bearer token,
//! and whose handler gets the token's claims as a typed `Claims<MyClaims>`.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example basic
//! ```
//!
//! A local `TestIssuer` stands in for your identity provider (Keycloak, Auth0, Entra ID …): it
//! serves discovery and a JWKS on 127.0.0.1, and mints the tokens the example prints.

use std::time::Duration;

use axum::{Router, routing::get};
use serde::Deserialize;
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{Claims, Issuer, JwtAuthLayer};

/// The claims this service reads; any other claim in the token is ignored.
#[derive(Debug, Deserialize)]
struct MyClaims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

async fn me(Claims(claims): Claims<MyClaims>) -> String {
    let name = claims.name.as_deref().unwrap_or("(no name)");
    format!("hello {} {name}\n", claims.sub)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::builder()
        .audience("my-api")
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await?;

    // With a real provider: `Issuer::discover("https://auth.example.com").audience("my-api")`.
    let auth = JwtAuthLayer::<MyClaims>::builder()
        .issuer(Issuer::discover(issuer.issuer()).audience("my-api"))
        .build()
        .await?;

    // `.layer` covers the routes added before it; `/` stays public.
    let app = Router::new()
        .route("/me", get(me))
        .layer(auth)
        .route("/", get(|| async { "public\n" }));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let token = issuer.token(serde_json::json!({ "sub": "alice", "name": "Alice" }));
    println!("listening on {url} (issuer {})", issuer.issuer());
    println!("try:");
    println!("  TOKEN={token}");
    println!("  curl -i {url}/me -H \"authorization: Bearer $TOKEN\"   # 200 hello alice Alice");
    println!("  curl -i {url}/me                                       # 401, no token");
    println!(
        "  curl -i {url}/me -H 'authorization: Bearer {}'   # 401 token expired",
        issuer.expired_token()
    );
    println!("  curl -i {url}/                                         # 200, public");
    axum::serve(listener, app).await?;
    Ok(())
}
