//! One layer trusting two issuers, e.g. your staff's identity provider and your partners'. Each
//! token is routed to its issuer by its `iss` and checked only with that issuer's keys and
//! audiences, so one issuer's keys can never vouch for the other's users.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example multi_issuer
//! ```

use std::time::Duration;

use axum::{Router, routing::get};
use serde_json::json;
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{Claims, JwtAuthLayer, RegisteredClaims};

async fn me(Claims(claims): Claims<RegisteredClaims>) -> String {
    format!(
        "{} from {}\n",
        claims.sub.as_deref().unwrap_or("?"),
        claims.iss.as_deref().unwrap_or("?")
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hour = Duration::from_secs(3600);
    let staff = TestIssuer::builder()
        .audience("my-api")
        .token_lifetime(hour)
        .start()
        .await?;
    let partners = TestIssuer::builder()
        .audience("my-api")
        .token_lifetime(hour)
        .start()
        .await?;
    // Not trusted by the layer: its tokens are refused.
    let stranger = TestIssuer::builder()
        .audience("my-api")
        .token_lifetime(hour)
        .start()
        .await?;

    // `issuer_config()` is `Issuer::discover(url).audience(aud)` for the test issuer.
    let auth = JwtAuthLayer::<RegisteredClaims>::builder()
        .issuer(staff.issuer_config())
        .issuer(partners.issuer_config())
        .build()
        .await?;
    let app = Router::new().route("/me", get(me)).layer(auth);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("listening on {url}");
    println!("  staff issuer:    {}", staff.issuer());
    println!("  partners issuer: {}", partners.issuer());
    println!("try:");
    println!("  STAFF={}", staff.token(json!({ "sub": "alice" })));
    println!("  PARTNER={}", partners.token(json!({ "sub": "bob" })));
    println!("  STRANGER={}", stranger.token(json!({ "sub": "mallory" })));
    println!(
        "  curl -i {url}/me -H \"authorization: Bearer $STAFF\"     # 200 alice from the staff issuer"
    );
    println!(
        "  curl -i {url}/me -H \"authorization: Bearer $PARTNER\"   # 200 bob from the partners issuer"
    );
    println!("  curl -i {url}/me -H \"authorization: Bearer $STRANGER\"  # 401 issuer not allowed");
    axum::serve(listener, app).await?;
    Ok(())
}
