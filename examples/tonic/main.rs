//! A gRPC service behind the same `JwtAuthLayer`: tonic's server takes tower layers, so the layer
//! (and an `Authorize` scope requirement) go in front of the gRPC routes. Rejections become gRPC
//! statuses through the error hook, `with_rejection`: `UNAUTHENTICATED` (16) for a missing or bad
//! token, `PERMISSION_DENIED` (7) for a missing scope, `UNAVAILABLE` (14) when no keys can be had.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example tonic
//! cargo test --example tonic
//! ```
//!
//! No `protoc` is needed: `greeter.rs` holds, written by hand, what `tonic-build` would generate
//! from `greeter.proto`.

mod greeter;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tonic::metadata::errors::InvalidMetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{AuthError, Authorize, Claims, JwtAuthLayer};

use greeter::{Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest};

#[derive(Debug, Deserialize)]
struct MyClaims {
    sub: String,
}

/// The scope every call needs.
const SCOPE: &str = "greeter:hello";

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // The layer put the verified claims into the request's extensions.
        let sub = match request.extensions().get::<Claims<MyClaims>>() {
            Some(claims) => claims.sub.clone(),
            None => return Err(Status::internal("no claims: is the layer missing?")),
        };
        let message = format!("hello {}, signed in as {sub}", request.get_ref().name);
        Ok(Response::new(HelloReply { message }))
    }
}

/// The error hook: each rejection as a gRPC status, that is HTTP `200` with
/// `content-type: application/grpc`, `grpc-status` and `grpc-message`.
fn grpc_rejection(error: &AuthError) -> http::Response<tonic::body::Body> {
    let message = error.description();
    let status = match error {
        AuthError::InsufficientScope { .. } => Status::permission_denied(message),
        // Keys, the revocation list or the introspection endpoint unavailable: retry later.
        _ if error.retry_after().is_some() => Status::unavailable(message),
        AuthError::AuthorizationWithoutAuthentication => Status::internal(message),
        _ => Status::unauthenticated(message),
    };
    status.into_http()
}

/// Serves the greeter on `listener`: every call needs a valid token granting [`SCOPE`].
async fn serve(
    listener: TcpListener,
    auth: JwtAuthLayer<MyClaims>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .layer(auth.with_rejection(grpc_rejection))
        .layer(Authorize::all_scopes([SCOPE]).with_rejection(grpc_rejection))
        .add_service(GreeterServer::new(MyGreeter))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
}

/// A `SayHello` request carrying `token` as `authorization: Bearer` metadata.
fn hello(name: &str, token: Option<&str>) -> Result<Request<HelloRequest>, InvalidMetadataValue> {
    let mut request = Request::new(HelloRequest {
        name: name.to_owned(),
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    Ok(request)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::builder()
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await?;
    let auth = issuer.layer_builder::<MyClaims>().build().await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, auth));

    // Call it once with a tonic client, with and without a token.
    let token = issuer.token(json!({ "sub": "alice", "scope": SCOPE }));
    let mut client = GreeterClient::connect(format!("http://{addr}")).await?;
    let reply = client.say_hello(hello("Alice", Some(&token))?).await?;
    println!("SayHello with a token:    {}", reply.get_ref().message);
    let refused = client.say_hello(hello("Alice", None)?).await;
    if let Err(status) = refused {
        println!(
            "SayHello without a token: {:?}: {}",
            status.code(),
            status.message()
        );
    }

    let no_scope = issuer.token(json!({ "sub": "bob" }));
    println!("listening on {addr} (gRPC, plaintext HTTP/2)");
    println!("try:");
    println!("  TOKEN={token}");
    println!("  NO_SCOPE={no_scope}");
    println!(
        "  grpcurl -plaintext -proto examples/tonic/greeter.proto -H \"authorization: Bearer $TOKEN\" -d '{{\"name\":\"Alice\"}}' {addr} greeter.Greeter/SayHello     # OK"
    );
    println!(
        "  grpcurl -plaintext -proto examples/tonic/greeter.proto -H \"authorization: Bearer $NO_SCOPE\" -d '{{\"name\":\"Bob\"}}' {addr} greeter.Greeter/SayHello    # PermissionDenied"
    );
    println!("or, without grpcurl (a raw gRPC frame for HelloRequest {{ name: \"Alice\" }}):");
    println!(
        "  printf '\\0\\0\\0\\0\\7\\n\\5Alice' | curl -s --http2-prior-knowledge -X POST http://{addr}/greeter.Greeter/SayHello -H 'content-type: application/grpc' -H 'te: trailers' -H \"authorization: Bearer $TOKEN\" --data-binary @- -D - -o /dev/null   # grpc-status: 0 (in the trailers)"
    );
    println!(
        "  printf '\\0\\0\\0\\0\\7\\n\\5Alice' | curl -s --http2-prior-knowledge -X POST http://{addr}/greeter.Greeter/SayHello -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- -D - -o /dev/null   # grpc-status: 16"
    );
    server.await??;
    Ok(())
}
