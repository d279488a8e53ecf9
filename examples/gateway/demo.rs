//! Demo mode: an in-process issuer with fresh keys (JWKS, discovery document and a `POST /login`
//! for demo users), an echo upstream that answers with the request it got, and a page at the
//! gateway's `/` that shows the whole flow in a browser ([`page`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SecureRandom as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long demo tokens are valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The shortest lifetime `POST /login` grants (with `"ttl"`): a token to watch expire.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(5);
/// Echoed request bodies are cut at this size.
const ECHO_BODY_LIMIT: usize = 64 * 1024;

/// A demo user and the scopes their tokens carry.
#[derive(Debug, Clone)]
pub struct DemoUser {
    pub username: &'static str,
    pub scope: &'static str,
    pub name: &'static str,
    pub email: &'static str,
}

pub const USERS: [DemoUser; 2] = [
    DemoUser {
        username: "demo",
        scope: "read",
        name: "Demo User",
        email: "demo@example.com",
    },
    DemoUser {
        username: "admin",
        scope: "read admin",
        name: "Demo Admin",
        email: "admin@example.com",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the demo {what} on 127.0.0.1: {source}")]
    Bind {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the demo signing key")]
    KeyGeneration,
    #[error("cannot sign a demo token: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

#[path = "demo_page.rs"]
pub mod page;
#[cfg(test)]
#[path = "tests_browser.rs"]
mod tests_browser;

/// The demo issuer: its URL (the `iss`), its key, the audience of its tokens, and the password
/// of its users (fresh on every start).
pub struct DemoIssuer {
    pub url: String,
    pub audience: String,
    pub password: String,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for DemoIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoIssuer")
            .field("url", &self.url)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
    /// The token's lifetime in seconds, from [`MIN_TOKEN_LIFETIME`] to [`TOKEN_LIFETIME`]
    /// (the default).
    #[serde(default)]
    ttl: Option<u64>,
}

impl DemoIssuer {
    /// An issuer at `url` with a fresh ES256 key.
    pub fn generate(url: String, audience: String) -> Result<Self, DemoError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| DemoError::KeyGeneration)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| DemoError::KeyGeneration)?;
        // An uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(DemoError::KeyGeneration);
        }
        let mut random = [0u8; 12];
        rng.fill(&mut random)
            .map_err(|_| DemoError::KeyGeneration)?;
        let password = URL_SAFE_NO_PAD.encode(&random[..9]);
        let kid = format!("demo-{}", URL_SAFE_NO_PAD.encode(&random[9..]));
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        Ok(Self {
            url,
            audience,
            password,
            kid,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        })
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.url)
    }

    /// A signed RFC 9068 access token for `user`, valid [`TOKEN_LIFETIME`].
    pub fn token_for(&self, user: &DemoUser) -> Result<String, DemoError> {
        self.token_valid_for(user, TOKEN_LIFETIME)
    }

    /// A signed RFC 9068 access token for `user`, valid `lifetime`.
    pub fn token_valid_for(
        &self,
        user: &DemoUser,
        lifetime: Duration,
    ) -> Result<String, DemoError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let mut jti = [0u8; 12];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| DemoError::KeyGeneration)?;
        let claims = json!({
            "iss": self.url,
            "sub": user.username,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime.as_secs(),
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "client_id": "gateway-demo",
            "scope": user.scope,
            "name": user.name,
            "email": user.email,
        });
        self.sign(Some("at+jwt"), &claims)
    }

    /// Signs `claims` with the issuer's key, with this `typ` in the header.
    pub fn sign(&self, typ: Option<&str>, claims: &Value) -> Result<String, DemoError> {
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }

    /// The issuer's JWK Set.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    fn check_login(&self, login: &Login) -> Option<&'static DemoUser> {
        let user = USERS.iter().find(|user| user.username == login.username)?;
        aws_lc_rs::constant_time::verify_slices_are_equal(
            login.password.as_bytes(),
            self.password.as_bytes(),
        )
        .ok()?;
        Some(user)
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .route("/login", post(login))
            .with_state(self)
    }
}

async fn discovery(State(issuer): State<Arc<DemoIssuer>>) -> Json<Value> {
    Json(json!({
        "issuer": issuer.url,
        "jwks_uri": issuer.jwks_url(),
        "token_endpoint": format!("{}/login", issuer.url),
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    }))
}

async fn jwks(State(issuer): State<Arc<DemoIssuer>>) -> Response {
    let mut response = Json(issuer.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn login(
    State(issuer): State<Arc<DemoIssuer>>,
    body: Result<Json<Login>, JsonRejection>,
) -> Response {
    let Json(login) = match body {
        Ok(body) => body,
        Err(rejection) => {
            let body = json!({
                "error": "invalid_request",
                "error_description": format!(
                    "expected a JSON body {{\"username\": …, \"password\": …}}: {}",
                    rejection.body_text()
                ),
            });
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let lifetime = login.ttl.map_or(TOKEN_LIFETIME, Duration::from_secs);
    if !(MIN_TOKEN_LIFETIME..=TOKEN_LIFETIME).contains(&lifetime) {
        let body = json!({
            "error": "invalid_request",
            "error_description": format!(
                "ttl must be from {} to {} seconds",
                MIN_TOKEN_LIFETIME.as_secs(),
                TOKEN_LIFETIME.as_secs()
            ),
        });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let Some(user) = issuer.check_login(&login) else {
        tracing::info!(username = %login.username, "demo login refused");
        let body = json!({
            "error": "invalid_credentials",
            "error_description": "unknown user or wrong password",
        });
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    };
    match issuer.token_valid_for(user, lifetime) {
        Ok(token) => {
            tracing::info!(username = user.username, "demo login");
            let mut response = Json(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": lifetime.as_secs(),
                "scope": user.scope,
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot sign a demo token");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Answers with the request it got, as JSON: method, path (with query), headers, and body.
pub async fn echo(request: Request<Body>) -> Json<Value> {
    let (parts, body) = request.into_parts();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let value = match <[Value; 1]>::try_from(values) {
            Ok([one]) => one,
            Err(many) => Value::Array(many),
        };
        headers.insert(name.as_str().to_owned(), value);
    }
    let body = match axum::body::to_bytes(body, ECHO_BODY_LIMIT).await {
        Ok(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => Value::Null,
    };
    Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        "headers": headers,
        "body": body,
    }))
}

/// The echo upstream's routes.
pub fn echo_router() -> Router {
    Router::new().fallback(echo)
}

/// Serves `router` on an ephemeral port of 127.0.0.1.
pub async fn serve_local(
    what: &'static str,
    router: Router,
) -> Result<(SocketAddr, JoinHandle<()>), DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| DemoError::Bind { what, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DemoError::Bind { what, source })?;
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(what, error = %err, "demo server stopped");
        }
    });
    Ok((addr, task))
}

/// The running demo: the issuer, the echo upstream, and a token for the demo user.
#[derive(Debug)]
pub struct Demo {
    pub issuer: Arc<DemoIssuer>,
    pub echo_addr: SocketAddr,
    pub token: String,
    pub tasks: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Starts the issuer and the echo upstream on ephemeral ports of 127.0.0.1.
    pub async fn start(audience: String) -> Result<Self, DemoError> {
        let listener =
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| DemoError::Bind {
                    what: "issuer",
                    source,
                })?;
        let issuer_addr = listener.local_addr().map_err(|source| DemoError::Bind {
            what: "issuer",
            source,
        })?;
        let issuer = Arc::new(DemoIssuer::generate(
            format!("http://{issuer_addr}"),
            audience,
        )?);
        let router = Arc::clone(&issuer).router();
        let issuer_task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, "demo issuer stopped");
            }
        });
        let (echo_addr, echo_task) = serve_local("echo upstream", echo_router()).await?;
        let token = issuer.token_for(&USERS[0])?;
        Ok(Self {
            issuer,
            echo_addr,
            token,
            tasks: vec![issuer_task, echo_task],
        })
    }

    /// What is printed at start: where everything is, a token, and commands to try.
    pub fn banner(&self, gateway: SocketAddr) -> String {
        let gw = format!("http://{gateway}");
        let issuer = &self.issuer.url;
        let token = &self.token;
        let user = &USERS[0];
        let password = &self.issuer.password;
        let minutes = TOKEN_LIFETIME.as_secs() / 60;
        let lines = [
            format!(
                "open {}  (the demo in a browser; log in as demo or admin, password {password})",
                page::url(gateway)
            ),
            String::new(),
            "tower-jwt-auth gateway: demo mode (no upstream or issuer configured; see --help)"
                .to_owned(),
            String::new(),
            format!("  gateway   {gw}"),
            format!(
                "  issuer    {issuer}  (discovery: /.well-known/openid-configuration, keys: /jwks.json)"
            ),
            format!(
                "  upstream  http://{}  (built-in echo: answers with the request it got)",
                self.echo_addr
            ),
            String::new(),
            format!(
                "A token for user \"{}\" (scope \"{}\", valid {minutes} minutes):",
                user.username, user.scope
            ),
            String::new(),
            format!("TOKEN={token}"),
            String::new(),
            "Ready to run (200: the echo upstream shows the request it got, x-auth-* headers added):"
                .to_owned(),
            String::new(),
            format!("  curl -i -H 'Authorization: Bearer {token}' {gw}/hello"),
            String::new(),
            "More to try (paste the TOKEN=... line above first):".to_owned(),
            String::new(),
        ];
        let more = [
            (format!("curl -i {gw}/hello"), "401: no token"),
            (
                format!("curl -i -H \"Authorization: Bearer $TOKEN\" {gw}/admin"),
                "403: /admin needs scope admin",
            ),
            (format!("curl -i {gw}/public/hello"), "200: public path"),
            (format!("curl {gw}/healthz"), "200 once the keys are loaded"),
            (format!("curl {gw}/metrics"), "Prometheus metrics"),
        ];
        let width = more
            .iter()
            .map(|(command, _)| command.len())
            .max()
            .unwrap_or(0);
        let more = more
            .iter()
            .map(|(command, note)| format!("  {command:width$}  # {note}"));
        let login = [
            String::new(),
            format!("Log in for a fresh token (users: demo, admin; password: {password}):"),
            String::new(),
            format!("  curl -s -X POST {issuer}/login -H 'content-type: application/json' \\"),
            format!("       -d '{{\"username\":\"admin\",\"password\":\"{password}\"}}'"),
            String::new(),
            "Stop with Ctrl-C.".to_owned(),
        ];
        lines
            .into_iter()
            .chain(more)
            .chain(login)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
