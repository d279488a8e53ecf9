//! The gateway end to end: started on an ephemeral port against a JWKS server and an upstream
//! that each test starts on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use crate::app::{self, Gateway};
use crate::config::{self, Args};
use crate::demo::{self, DemoIssuer};

const ISS: &str = "https://issuer.test/";
const AUDIENCE: &str = "orders-api";
/// A bound on every wait, so that a broken test fails instead of hanging. No assertion depends
/// on it.
const DEADLINE: Duration = Duration::from_secs(20);

async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .expect("timed out")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the test upstream shares with the test: a hold that `/hold` waits on, and a channel
/// telling the test a request reached it.
struct Hold {
    entered: mpsc::UnboundedSender<()>,
    release: Notify,
}

/// The servers a gateway runs against: a JWKS server for `issuer`'s key and an upstream.
struct Env {
    issuer: Arc<DemoIssuer>,
    jwks_url: String,
    upstream: SocketAddr,
    hold: Arc<Hold>,
    entered: mpsc::UnboundedReceiver<()>,
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn upstream_router(hold: Arc<Hold>) -> Router {
    Router::new()
        // Never answers: for the upstream timeout.
        .route("/base/slow", get(std::future::pending::<()>))
        .route(
            "/base/hold",
            get(|State(hold): State<Arc<Hold>>| async move {
                hold.entered.send(()).unwrap();
                hold.release.notified().await;
                "released"
            }),
        )
        .route(
            "/base/hop-by-hop",
            get(|| async {
                (
                    [("proxy-authenticate", "Basic"), ("x-upstream", "yes")],
                    "hop",
                )
            }),
        )
        .fallback(demo::echo)
        .with_state(hold)
}

async fn env() -> Env {
    let issuer = Arc::new(DemoIssuer::generate(ISS.to_owned(), AUDIENCE.to_owned()).unwrap());
    let jwks = issuer.jwks();
    let jwks_addr = serve(Router::new().route(
        "/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move { Json(jwks) }
        }),
    ))
    .await;
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let hold = Arc::new(Hold {
        entered: entered_tx,
        release: Notify::new(),
    });
    let upstream = serve(upstream_router(Arc::clone(&hold))).await;
    Env {
        issuer,
        jwks_url: format!("http://{jwks_addr}/jwks.json"),
        upstream,
        hold,
        entered,
    }
}

impl Env {
    /// The usual settings, plus `extra` flags.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "gateway",
            "--upstream",
            &format!("http://{}/base", self.upstream),
            "--issuer",
            ISS,
            "--jwks-url",
            &self.jwks_url,
            "--audience",
            AUDIENCE,
            "--public-path=/public",
            "--scope-rule=/admin=admin",
            "--claim-header=email=x-auth-email",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    }

    async fn gateway(&self, extra: &[&str]) -> Gateway {
        start_gateway(self.args(extra)).await
    }

    fn token(&self, extra: Value) -> String {
        self.token_typed(Some("at+jwt"), extra)
    }

    fn token_typed(&self, typ: Option<&str>, extra: Value) -> String {
        let mut claims = json!({
            "iss": ISS,
            "sub": "alice",
            "aud": AUDIENCE,
            "exp": now() + 600,
            "iat": now(),
            "scope": "read write",
            "email": "alice@example.com",
        });
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        self.issuer.sign(typ, &claims).unwrap()
    }
}

async fn start_gateway(args: Vec<String>) -> Gateway {
    let config = config::resolve(&Args::try_parse_from(args).unwrap(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    within(app::start(config, listener)).await.unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn challenge(&self) -> &str {
        self.headers[header::WWW_AUTHENTICATE].to_str().unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(request: Request<Body>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let response = within(client.request(request)).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = within(body.collect()).await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn request(addr: SocketAddr, path: &str, token: Option<&str>) -> http::request::Builder {
    let builder = Request::get(format!("http://{addr}{path}"));
    match token {
        Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => builder,
    }
}

async fn get_path(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    send(request(addr, path, token).body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn forwards_with_claims_and_forwarded_headers() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();
    let token = env.token(json!({}));
    let answer = send(
        request(addr, "/api/items?x=1", Some(&token))
            .method("POST")
            .header("x-auth-sub", "mallory")
            .header("x-auth-scope", "admin")
            .header("x-auth-email", "mallory@example.com")
            .header("x-forwarded-for", "10.1.2.3")
            .header("x-forwarded-proto", "https")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("te", "trailers")
            .header("x-custom", "kept")
            .body(Body::from("hello upstream"))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let echo = answer.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/base/api/items?x=1");
    assert_eq!(echo["body"], "hello upstream");
    let headers = &echo["headers"];
    assert_eq!(headers["x-auth-sub"], "alice");
    assert_eq!(headers["x-auth-iss"], ISS);
    assert_eq!(headers["x-auth-scope"], "read write");
    assert_eq!(headers["x-auth-email"], "alice@example.com");
    assert_eq!(headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], addr.to_string());
    assert_eq!(headers["host"], env.upstream.to_string());
    assert_eq!(headers["x-custom"], "kept");
    for gone in ["authorization", "x-hop", "te"] {
        assert!(headers.get(gone).is_none(), "{gone} forwarded: {headers}");
    }
    // Hop-by-hop headers of the response stay with the upstream too.
    let answer = get_path(addr, "/hop-by-hop", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-upstream"], "yes");
    assert!(answer.headers.get("proxy-authenticate").is_none());
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    // Larger than any buffer on the way, sent in chunks without a content-length.
    let chunk = "0123456789abcdef".repeat(1024);
    let body = Body::new(Chunks((0..3).map(|_| Bytes::from(chunk.clone())).collect()));
    let answer = send(
        request(gateway.local_addr(), "/upload", Some(&env.token(json!({}))))
            .method("PUT")
            .body(body)
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json()["body"].as_str().unwrap().len(),
        3 * chunk.len()
    );
    gateway.shutdown().await.unwrap();
}

/// A body sent in chunks, with no known length (so it goes chunked).
struct Chunks(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.0
                .pop_front()
                .map(|chunk| Ok(hyper::body::Frame::data(chunk))),
        )
    }
}

#[tokio::test]
async fn spoofed_claim_headers_are_removed_on_public_paths_too() {
    let env = env().await;
    let gateway = env.gateway(&["--claims-header=x-auth-claims"]).await;
    let answer = send(
        request(gateway.local_addr(), "/public/docs", None)
            .header("x-auth-sub", "admin")
            .header("x-auth-iss", ISS)
            .header("x-auth-claims", "e30")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let headers = &answer.json()["headers"];
    for gone in ["x-auth-sub", "x-auth-iss", "x-auth-claims"] {
        assert!(headers.get(gone).is_none(), "{gone} forwarded: {headers}");
    }
    // With a token, the payload header carries the verified claims.
    let answer = get_path(gateway.local_addr(), "/x", Some(&env.token(json!({})))).await;
    let payload = answer.json()["headers"]["x-auth-claims"]
        .as_str()
        .unwrap()
        .to_owned();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims["sub"], "alice");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn authorization_is_forwarded_only_when_asked() {
    let env = env().await;
    let gateway = env.gateway(&["--forward-authorization"]).await;
    let token = env.token(json!({}));
    let answer = get_path(gateway.local_addr(), "/x", Some(&token)).await;
    assert_eq!(
        answer.json()["headers"]["authorization"],
        format!("Bearer {token}")
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn rejections_follow_rfc_6750() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();

    let answer = get_path(addr, "/x", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), "Bearer");

    // A signature with one character changed in its middle (the last one may carry padding bits).
    let token = env.token(json!({}));
    let at = token.rfind('.').unwrap() + 20;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    for (token, description) in [
        (tampered, "signature invalid"),
        (env.token(json!({"exp": now() - 3600})), "token expired"),
        (
            env.token(json!({"aud": "other-api"})),
            "audience not allowed",
        ),
        (
            env.token(json!({"iss": "https://evil.test/"})),
            "issuer not allowed",
        ),
    ] {
        let answer = get_path(addr, "/x", Some(&token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{description}");
        assert_eq!(
            answer.challenge(),
            format!(r#"Bearer error="invalid_token", error_description="{description}""#)
        );
    }

    // Scope rules: `scope` as a string or `scp` as an array.
    let answer = get_path(addr, "/admin/users", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.challenge(),
        r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin""#
    );
    for claims in [
        json!({"scope": "read admin"}),
        json!({"scope": null, "scp": ["admin"]}),
    ] {
        let answer = get_path(addr, "/admin/users", Some(&env.token(claims))).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    // The rules match on the decoded path and segment boundaries.
    let token = env.token(json!({}));
    let answer = get_path(addr, "/%61dmin", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = get_path(addr, "/administrator", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = get_path(addr, "/publicity", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = get_path(addr, "/public/%2e%2e/admin", None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn token_type_and_required_claims_are_enforced() {
    let env = env().await;
    let gateway = env
        .gateway(&["--require-typ", "at+jwt", "--required-claim", "tenant"])
        .await;
    let addr = gateway.local_addr();
    let answer = get_path(addr, "/x", Some(&env.token(json!({"tenant": "t1"})))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = get_path(addr, "/x", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.challenge().contains("missing required claim tenant"));
    let id_token = env.token_typed(Some("JWT"), json!({"tenant": "t1"}));
    let answer = get_path(addr, "/x", Some(&id_token)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.challenge().contains("token type not accepted"));
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn upstream_down_is_502() {
    let env = env().await;
    // A port that was just free: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut args = env.args(&[]);
    args[2] = format!("http://{closed}");
    let gateway = start_gateway(args).await;
    let answer = get_path(gateway.local_addr(), "/x", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let metrics = get_path(gateway.local_addr(), "/metrics", None)
        .await
        .text();
    assert!(
        metrics.contains("gateway_upstream_failures_total{kind=\"unreachable\"} 1"),
        "{metrics}"
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn upstream_timeout_is_504() {
    let env = env().await;
    let gateway = env.gateway(&["--upstream-timeout=200ms"]).await;
    let answer = get_path(gateway.local_addr(), "/slow", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    let metrics = get_path(gateway.local_addr(), "/metrics", None)
        .await
        .text();
    assert!(
        metrics.contains("gateway_upstream_failures_total{kind=\"timeout\"} 1"),
        "{metrics}"
    );
    gateway.shutdown().await.unwrap();
}

#[path = "tests_operations.rs"]
mod operations;

#[path = "tests_security.rs"]
mod security;

#[path = "tests_forward_auth.rs"]
mod forward_auth;

#[path = "tests_upstreams.rs"]
mod upstreams;

#[path = "tests_http1_pool.rs"]
mod http1_pool;

#[path = "tests_inspect.rs"]
mod inspect;

#[path = "tests_sender.rs"]
mod sender;

#[path = "tests_revocation.rs"]
mod revocation;

#[path = "tests_introspection.rs"]
mod introspection;

#[path = "tests_server.rs"]
mod server;
