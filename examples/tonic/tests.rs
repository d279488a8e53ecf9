//! The greeter over real gRPC on 127.0.0.1: a tonic client against the server, with a token
//! granting the scope, without a token, with a bad token, and without the scope.

use serde_json::json;
use tokio::net::TcpListener;
use tonic::Code;
use tower_jwt_auth::AuthError;
use tower_jwt_auth::test_util::TestIssuer;

use super::greeter::GreeterClient;
use super::{MyClaims, SCOPE, grpc_rejection, hello, serve};

/// Starts the server on an ephemeral port, trusting `issuer`, and connects a client to it.
async fn start(issuer: &TestIssuer) -> GreeterClient {
    let auth = issuer.layer_builder::<MyClaims>().build().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, auth));
    GreeterClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_with_the_scope_is_served() {
    let issuer = TestIssuer::start().await.unwrap();
    let mut client = start(&issuer).await;
    let token = issuer.token(json!({ "sub": "alice", "scope": format!("openid {SCOPE}") }));
    let reply = client
        .say_hello(hello("Alice", Some(&token)).unwrap())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().message, "hello Alice, signed in as alice");
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated() {
    let issuer = TestIssuer::start().await.unwrap();
    let mut client = start(&issuer).await;
    let status = client
        .say_hello(hello("Alice", None).unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "no bearer token in the request");
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated_with_its_cause() {
    let issuer = TestIssuer::start().await.unwrap();
    let mut client = start(&issuer).await;
    for (token, message) in [
        (issuer.expired_token(), "token expired"),
        (
            issuer.token_for_audience("other-api"),
            "audience not allowed",
        ),
        (issuer.token_with_unknown_kid(), "no key for this token"),
    ] {
        let status = client
            .say_hello(hello("Alice", Some(&token)).unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unauthenticated, message)
        );
    }
}

#[tokio::test]
async fn a_token_without_the_scope_is_permission_denied() {
    let issuer = TestIssuer::start().await.unwrap();
    let mut client = start(&issuer).await;
    let token = issuer.token(json!({ "sub": "bob", "scope": "openid" }));
    let status = client
        .say_hello(hello("Bob", Some(&token)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "insufficient scope");
}

#[test]
fn rejections_are_grpc_responses() {
    let cases = [
        (
            AuthError::MissingToken,
            "16",
            "no bearer token in the request",
        ),
        (AuthError::Expired, "16", "token expired"),
        (
            AuthError::InsufficientScope {
                required: SCOPE.into(),
            },
            "7",
            "insufficient scope",
        ),
        (
            AuthError::KeysUnavailable {
                retry_after: std::time::Duration::from_secs(5),
            },
            "14",
            "signing keys unavailable",
        ),
    ];
    for (error, code, message) in cases {
        let response = grpc_rejection(&error);
        assert_eq!(response.status(), http::StatusCode::OK, "{error}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], code, "{error}");
        // `grpc-message` is percent-encoded: spaces become `%20`.
        assert_eq!(
            headers["grpc-message"],
            message.replace(' ', "%20"),
            "{error}"
        );
    }
}
