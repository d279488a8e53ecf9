//! A JSON-RPC endpoint protected the way the MCP authorization spec asks: the protected-resource
//! metadata of RFC 9728 at `/.well-known/oauth-protected-resource/mcp`, `401` with
//! `WWW-Authenticate: Bearer resource_metadata="…"` so that a client finds the authorization
//! server, tokens whose audience is the resource (RFC 8707), and `403 insufficient_scope` naming
//! the scope to step up to when a tool needs more.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example mcp_server
//! ```

use std::time::Duration;

use axum::extract::Json;
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::post};
use serde_json::{Value, json};
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{
    AuthError, DefaultRejection, JwtAuthLayer, ProtectedResource, RejectionResponse, VerifiedToken,
    WELL_KNOWN_PREFIX,
};

/// The scope each JSON-RPC method needs.
fn required_scope(method: &str) -> Option<&'static str> {
    match method {
        "tools/list" => Some("tools:read"),
        "tools/call" => Some("tools:call"),
        _ => None,
    }
}

/// `POST /mcp`: a tiny JSON-RPC server with one tool.
async fn mcp(
    token: VerifiedToken,
    rejection: axum::extract::State<DefaultRejection>,
    Json(request): Json<Value>,
) -> Response {
    let method = request["method"].as_str().unwrap_or_default();
    if let Some(scope) = required_scope(method)
        && !token.has_scope(scope)
    {
        // 403 with the scope to step up to, and the metadata URL, like the layer's challenges.
        let error = AuthError::InsufficientScope {
            required: scope.into(),
        };
        return RejectionResponse::<axum::body::Body>::reject(&rejection.0, &error).into_response();
    }
    let result = match method {
        "initialize" => json!({
            "protocolVersion": "2025-06-18",
            "serverInfo": { "name": "example", "version": "0.1.0" },
            "capabilities": { "tools": {} },
        }),
        "tools/list" => {
            json!({ "tools": [{ "name": "echo", "inputSchema": { "type": "object" } }] })
        }
        "tools/call" => json!({
            "content": [{ "type": "text", "text": request["params"]["arguments"].to_string() }],
        }),
        _ => {
            return Json(json!({
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": { "code": -32601, "message": "method not found" },
            }))
            .into_response();
        }
    };
    Json(json!({ "jsonrpc": "2.0", "id": request["id"], "result": result })).into_response()
}

/// The server for the resource `resource` (its public URL), trusting `issuer`.
async fn app(issuer: &TestIssuer, resource: &str) -> Result<Router, tower_jwt_auth::ConfigError> {
    let auth = JwtAuthLayer::<Value>::builder()
        // The resource becomes the required audience, since the issuer sets none.
        .issuer(
            tower_jwt_auth::Issuer::new(issuer.issuer())
                .key(tower_jwt_auth::KeySource::jwks_url(issuer.jwks_url())),
        )
        .protected_resource(
            ProtectedResource::new(resource)
                .scopes_supported(["tools:read", "tools:call"])
                .resource_name("Example MCP server"),
        )
        .build()
        .await?;
    let metadata = auth
        .protected_resource()
        .cloned()
        .ok_or(tower_jwt_auth::ConfigError::NoIssuer)?;
    let rejection = DefaultRejection::default().resource_metadata(metadata.metadata_url());
    Ok(Router::new()
        .route("/mcp", post(mcp).layer(auth))
        .with_state(rejection)
        // RFC 9728 §3.1, and the root form older clients try.
        .route_service(&metadata.well_known_path(), metadata.service())
        .route_service(WELL_KNOWN_PREFIX, metadata.service()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::builder()
        .token_lifetime(Duration::from_secs(3600))
        .start()
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let resource = format!("{url}/mcp");
    let app = app(&issuer, &resource).await?;

    let reader = issuer.token(json!({ "sub": "reader", "aud": resource, "scope": "tools:read" }));
    let caller = issuer.token(json!({
        "sub": "caller", "aud": resource, "scope": "tools:read tools:call",
    }));
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":1}}}"#;
    println!("listening on {url}");
    println!("try:");
    println!("  curl -i {url}/.well-known/oauth-protected-resource/mcp");
    println!("  curl -i -X POST {url}/mcp -d '{{}}'   # 401, resource_metadata=…");
    println!("  READER={reader}");
    println!("  CALLER={caller}");
    println!(
        "  curl -i -X POST {url}/mcp -H \"authorization: Bearer $READER\" -H 'content-type: application/json' -d '{call}'   # 403, scope=\"tools:call\""
    );
    println!(
        "  curl -i -X POST {url}/mcp -H \"authorization: Bearer $CALLER\" -H 'content-type: application/json' -d '{call}'   # 200"
    );
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Request, StatusCode, header};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    const RESOURCE: &str = "https://mcp.example.com/mcp";
    const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    fn rpc(token: Option<&str>, method: &str) -> Request<Body> {
        let mut request = Request::post("/mcp").header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request
            .body(Body::from(
                json!({"jsonrpc": "2.0", "id": 1, "method": method}).to_string(),
            ))
            .unwrap()
    }

    #[tokio::test]
    async fn a_client_finds_the_issuer_then_steps_up_its_scope() {
        let issuer = TestIssuer::start().await.unwrap();
        let app = app(&issuer, RESOURCE).await.unwrap();

        // 1. No token: 401 pointing at the metadata.
        let response = app.clone().oneshot(rpc(None, "initialize")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            format!(r#"Bearer resource_metadata="{METADATA}""#)
        );
        // 2. The metadata names the issuer and the scopes.
        let response = app
            .clone()
            .oneshot(
                Request::get("/.well-known/oauth-protected-resource/mcp")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let document: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["resource"], RESOURCE);
        assert_eq!(document["authorization_servers"], json!([issuer.issuer()]));
        assert_eq!(
            document["scopes_supported"],
            json!(["tools:read", "tools:call"])
        );
        // 3. A token for another resource is refused.
        let elsewhere =
            issuer.token(json!({"aud": "https://other.example.com/mcp", "scope": "tools:read"}));
        let response = app
            .clone()
            .oneshot(rpc(Some(&elsewhere), "tools/list"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        // 4. A reader may list tools but must step up to call one.
        let reader = issuer.token(json!({"aud": RESOURCE, "scope": "tools:read"}));
        let response = app
            .clone()
            .oneshot(rpc(Some(&reader), "tools/list"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let response = app
            .clone()
            .oneshot(rpc(Some(&reader), "tools/call"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            format!(
                r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="tools:call", resource_metadata="{METADATA}""#
            )
        );
        let caller = issuer.token(json!({"aud": RESOURCE, "scope": "tools:read tools:call"}));
        let response = app
            .clone()
            .oneshot(rpc(Some(&caller), "tools/call"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
