//! Routes that serve anonymous callers and signed-in users alike: the layer in optional mode lets
//! a request without a token through (the handler gets `None`), and still rejects a bad token.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example optional_auth
//! ```

use std::time::Duration;

use axum::{Router, routing::get};
use serde::Deserialize;
use tower_jwt_auth::Claims;
use tower_jwt_auth::test_util::TestIssuer;

#[derive(Debug, Deserialize)]
struct MyClaims {
    sub: String,
}

/// `Option<Claims<T>>`: `None` for a request without a token.
async fn greet(claims: Option<Claims<MyClaims>>) -> String {
    match claims {
        Some(Claims(claims)) => format!("hello {}\n", claims.sub),
        None => "hello stranger\n".to_owned(),
    }
}

/// `Claims<T>` still requires a token: without one this route answers `401`.
async fn account(Claims(claims): Claims<MyClaims>) -> String {
    format!("account of {}\n", claims.sub)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::builder()
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await?;
    // `layer_builder` trusts the test issuer; with a real provider, use `JwtAuthLayer::builder()`
    // and `.issuer(Issuer::discover("https://auth.example.com").audience("my-api"))`.
    let auth = issuer.layer_builder::<MyClaims>().build().await?.optional();

    let app = Router::new()
        .route("/", get(greet))
        .route("/account", get(account))
        .layer(auth);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("listening on {url}");
    println!("try:");
    println!(
        "  TOKEN={}",
        issuer.token(serde_json::json!({ "sub": "alice" }))
    );
    println!("  curl -i {url}/                                          # 200 hello stranger");
    println!("  curl -i {url}/ -H \"authorization: Bearer $TOKEN\"        # 200 hello alice");
    println!(
        "  curl -i {url}/ -H 'authorization: Bearer {}'   # 401 token expired: a bad token is never anonymous",
        issuer.expired_token()
    );
    println!(
        "  curl -i {url}/account                                   # 401, this route needs a token"
    );
    println!("  curl -i {url}/account -H \"authorization: Bearer $TOKEN\" # 200 account of alice");
    axum::serve(listener, app).await?;
    Ok(())
}
