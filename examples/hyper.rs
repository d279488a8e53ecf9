//! No axum: a plain hyper 1 server whose tower service is wrapped in a `JwtAuthLayer`. The
//! service reads the verified `Claims<T>` from the request extensions, where the layer put them.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example hyper
//! ```

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tower::{ServiceBuilder, service_fn};
use tower_jwt_auth::Claims;
use tower_jwt_auth::test_util::TestIssuer;

#[derive(Debug, Deserialize)]
struct MyClaims {
    sub: String,
}

/// Only ever called for requests the layer accepted, so the claims are there.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match request.extensions().get::<Claims<MyClaims>>() {
        Some(claims) => Response::new(Full::from(format!("hello {}\n", claims.sub))),
        None => {
            let mut response = Response::new(Full::from("no claims: is the layer missing?\n"));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    };
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::builder()
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await?;
    let auth = issuer.layer_builder::<MyClaims>().build().await?;

    // The layer works on any `tower::Service<http::Request<B>>`; rejections get an empty body.
    let service = ServiceBuilder::new()
        .layer(auth)
        .service(service_fn(handle));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("listening on {url}");
    println!("try:");
    println!(
        "  TOKEN={}",
        issuer.token(serde_json::json!({ "sub": "alice" }))
    );
    println!("  curl -i {url}/ -H \"authorization: Bearer $TOKEN\"   # 200 hello alice");
    println!(
        "  curl -i {url}/                                     # 401, WWW-Authenticate: Bearer"
    );
    println!("  curl -i {url}/ -H 'authorization: Bearer nonsense' # 401 malformed token");

    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
