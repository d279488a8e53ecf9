//! The gateway itself: `/healthz` and `/metrics`, and for every other path the public-path check,
//! the JWT layer, the scope rules and the forwarding.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;
use tower_jwt_auth::{AuthError, Claims, JwtAuthLayer, www_authenticate};

use crate::config::{Config, IssuerConfig, Mode, RouteRules, Upstream};
use crate::demo::{Demo, DemoError};
use crate::metrics::{self, Metrics, Outcome};
use crate::proxy::{Forwarder, UpstreamFailure};
use crate::routes::CheckedPath;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Demo(#[from] DemoError),
    #[error("cannot set up token verification: {error}{hint}")]
    Auth {
        #[source]
        error: tower_jwt_auth::ConfigError,
        hint: &'static str,
    },
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot read the listener's address: {0}")]
    Listener(#[source] std::io::Error),
}

impl From<tower_jwt_auth::ConfigError> for StartError {
    fn from(error: tower_jwt_auth::ConfigError) -> Self {
        let hint = match &error {
            tower_jwt_auth::ConfigError::UrlNotAllowed(_) => {
                " (plain http to a non-loopback host needs --allow-insecure-http, for trusted \
                 networks only)"
            }
            tower_jwt_auth::ConfigError::KeyFetch { .. } => {
                " (check --issuer/--jwks-url, or use --start-without-keys to start anyway and \
                 keep retrying)"
            }
            _ => "",
        };
        Self::Auth { error, hint }
    }
}

/// What the gateway needs once its keys are loaded.
struct Ready {
    /// The router behind the JWT layer: scope rules, then forwarding.
    protected: Router,
    forwarder: Arc<Forwarder>,
    routes: Arc<RouteRules>,
}

/// Shared by every request.
struct AppState {
    ready: OnceLock<Ready>,
    layer: Arc<OnceLock<JwtAuthLayer<Value>>>,
    metrics: Metrics,
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    demo: Option<Demo>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The demo issuer, echo upstream and token, in demo mode.
    pub fn demo(&self) -> Option<&Demo> {
        self.demo.as_ref()
    }

    /// Stops accepting connections; requests in flight go on. Idempotent.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits until the server has stopped (after [`begin_shutdown`](Self::begin_shutdown), once
    /// every request in flight is answered), then stops the demo servers.
    pub async fn wait(mut self) -> std::io::Result<()> {
        let result = match (&mut self.server).await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(join)),
        };
        if let Some(demo) = &self.demo {
            for task in &demo.tasks {
                task.abort();
            }
        }
        result
    }

    /// Begins the shutdown and waits for it.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.begin_shutdown();
        self.wait().await
    }
}

/// Starts serving on `listener` at once (`/healthz` answers `503` until the keys are loaded),
/// then sets up the demo or the issuers, and returns when the gateway is ready.
pub async fn start(config: Config, listener: TcpListener) -> Result<Gateway, StartError> {
    let addr = listener.local_addr().map_err(StartError::Listener)?;
    let layer_cell = Arc::new(OnceLock::new());
    let state = Arc::new(AppState {
        ready: OnceLock::new(),
        layer: Arc::clone(&layer_cell),
        metrics: Metrics::new(layer_cell),
    });
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(dispatch)
        .with_state(Arc::clone(&state));
    // Demo mode only: the page at `/` (and `/_demo/…`), served once the demo is up.
    let page = crate::demo::page::Page::default();
    if matches!(config.mode, Mode::Demo { .. }) {
        app = app.merge(page.routes());
    }
    let (shutdown, signal) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = signal.await;
        })
        .await
    });
    let mut gateway = Gateway {
        addr,
        demo: None,
        shutdown: Some(shutdown),
        server,
    };
    match prepare(&config, &mut gateway).await {
        Ok((layer, ready)) => {
            if let Some(demo) = &gateway.demo {
                page.open(demo, &config);
            }
            let _ = state.layer.set(layer);
            let _ = state.ready.set(ready);
            Ok(gateway)
        }
        Err(err) => {
            let _ = gateway.shutdown().await;
            Err(err)
        }
    }
}

/// Builds the layer (fetching the keys) and the forwarding for `config`.
async fn prepare(
    config: &Config,
    gateway: &mut Gateway,
) -> Result<(JwtAuthLayer<Value>, Ready), StartError> {
    let (upstream, issuers) = match &config.mode {
        Mode::Demo { audience } => {
            let demo = Demo::start(audience.clone()).await?;
            let upstream = Upstream::parse(&format!("http://{}", demo.echo_addr), "demo echo")?;
            let issuers = vec![IssuerConfig {
                iss: Some(demo.issuer.url.clone()),
                jwks_url: None,
                audiences: vec![audience.clone()],
            }];
            gateway.demo = Some(demo);
            (upstream, issuers)
        }
        Mode::Proxy { upstream, issuers } => (upstream.clone(), issuers.clone()),
    };
    let layer = build_layer(config, &issuers).await?;
    let forwarder = Arc::new(Forwarder::new(
        upstream.clone(),
        config.upstream_timeout,
        &config.forwarding,
    ));
    let routes = Arc::new(config.routes.clone());
    let protected = Router::new()
        .fallback(protected)
        .with_state(Protected {
            forwarder: Arc::clone(&forwarder),
            routes: Arc::clone(&routes),
            realm: config.auth.realm.clone().map(Arc::from),
        })
        .layer(layer.clone());
    tracing::info!(
        listen = %gateway.addr,
        upstream = %upstream.display(),
        issuers = ?issuers.iter().map(IssuerConfig::name).collect::<Vec<_>>(),
        demo = gateway.demo.is_some(),
        "gateway ready"
    );
    Ok((
        layer,
        Ready {
            protected,
            forwarder,
            routes,
        },
    ))
}

async fn build_layer(
    config: &Config,
    issuers: &[IssuerConfig],
) -> Result<JwtAuthLayer<Value>, StartError> {
    let auth = &config.auth;
    let mut builder = JwtAuthLayer::<Value>::builder();
    for issuer in issuers {
        builder = builder.issuer(issuer.to_issuer());
    }
    if let Some(typ) = &auth.require_typ {
        builder = builder.require_token_type(typ.clone());
    }
    for claim in &auth.required_claims {
        builder = builder.require_claim(claim.clone());
    }
    if let Some(leeway) = auth.leeway {
        builder = builder.leeway(leeway);
    }
    if let Some(realm) = &auth.realm {
        builder = builder.realm(realm.clone());
    }
    if auth.allow_insecure_http {
        builder = builder.allow_insecure_http();
    }
    if auth.start_without_keys {
        builder = builder.allow_start_without_keys();
    }
    Ok(builder.build().await?)
}

/// `200` when every issuer's keys can verify tokens, `503` before they are loaded or when a
/// key set is unusable; the body gives each key set's state.
async fn healthz(State(state): State<Arc<AppState>>) -> Response<Body> {
    let Some(layer) = state.layer.get() else {
        let body = json!({"status": "starting"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    let sets = layer.key_sets();
    let healthy = !sets.is_empty() && sets.iter().all(|set| set.usable);
    let issuers: Vec<Value> = sets
        .iter()
        .map(|set| {
            json!({
                "issuer": set.issuer,
                "jwks_url": set.jwks_url,
                "keys": set.key_count,
                "usable": set.usable,
                "stale": set.stale,
                "age_secs": set.age.map(|age| age.as_secs()),
                "last_error": set.last_error,
            })
        })
        .collect();
    let (status, text) = if healthy {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "keys unavailable")
    };
    (status, Json(json!({"status": text, "issuers": issuers}))).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response<Body> {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// Every path but `/healthz` and `/metrics`: checked, authenticated unless public, forwarded.
async fn dispatch(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (response, outcome) = handle(&state, request).await;
    let elapsed = started.elapsed();
    state.metrics.record(outcome, elapsed);
    if let Some(failure) = response.extensions().get::<UpstreamFailure>() {
        state.metrics.upstream_failure(failure.label());
    }
    let cause = match outcome {
        Outcome::Rejected(cause) => Some(cause),
        _ => None,
    };
    tracing::info!(
        target: "gateway::access",
        %method,
        path,
        status = response.status().as_u16(),
        outcome = outcome.name(),
        cause,
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

async fn handle(state: &AppState, mut request: Request<Body>) -> (Response<Body>, Outcome) {
    let Some(ready) = state.ready.get() else {
        let mut response = Response::new(Body::from("starting: signing keys not loaded yet\n"));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return (response, Outcome::NotReady);
    };
    let path = match CheckedPath::new(request.uri().path()) {
        Ok(path) => path,
        Err(reason) => {
            tracing::debug!(reason, "request refused: path");
            let mut response = Response::new(Body::from(format!("bad request: {reason}\n")));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return (response, Outcome::BadRequest);
        }
    };
    if ready.routes.is_public(&path) {
        return (
            ready.forwarder.forward(request, None).await,
            Outcome::Public,
        );
    }
    request.extensions_mut().insert(path);
    let response = match ready.protected.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let outcome = match response.extensions().get::<AuthError>() {
        Some(error) => Outcome::Rejected(error.cause()),
        None => Outcome::Accepted,
    };
    (response, outcome)
}

/// What the handler behind the layer needs.
#[derive(Clone)]
struct Protected {
    forwarder: Arc<Forwarder>,
    routes: Arc<RouteRules>,
    realm: Option<Arc<str>>,
}

/// Behind the layer: the token is valid. Checks the path's scope rule, then forwards.
async fn protected(State(protected): State<Protected>, request: Request<Body>) -> Response<Body> {
    let Some(Claims(claims)) = request.extensions().get::<Claims<Value>>().cloned() else {
        // The layer always inserts the claims before calling this handler.
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let rule = request
        .extensions()
        .get::<CheckedPath>()
        .and_then(|path| protected.routes.scope_rule(path));
    if let Some(rule) = rule {
        let granted = crate::proxy::scopes(&claims);
        if !rule
            .scopes
            .iter()
            .all(|scope| granted.contains(&scope.as_str()))
        {
            let error = AuthError::InsufficientScope {
                required: Cow::Owned(rule.scopes.join(" ")),
            };
            tracing::debug!(cause = error.cause(), required = %rule.scopes.join(" "), "request rejected");
            let mut response = Response::new(Body::empty());
            *response.status_mut() = error.status();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                www_authenticate(&error, protected.realm.as_deref()),
            );
            response.extensions_mut().insert(error);
            return response;
        }
    }
    protected.forwarder.forward(request, Some(&claims)).await
}
