//! The gateway itself: `/healthz` and `/metrics`, and for every other path the path check, the
//! public-path check, the JWT layer, the scope rules, and the forwarding (or, in forward-auth
//! mode, the answer to the proxy's check).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::future::Either;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::Layer as _;
use tower_jwt_auth::{Authorize, DefaultRejection, JwtAuth, JwtAuthLayer};

use crate::config::{Config, IssuerConfig, Mode, RouteRules, Upstream};
use crate::demo::page::Page;
use crate::demo::{Demo, DemoError};
use crate::dispatch;
use crate::forward_auth;
use crate::gate::{Gate, OwnPaths};
use crate::headers::ClaimHeaders;
use crate::health;
use crate::metrics::Metrics;
use crate::protected::Protected;
use crate::proxy::Forwarder;
use crate::routes::CheckedPath;
use crate::upstream::TlsError;
use crate::workers::{self, Sharing, Workers};

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
    #[error("cannot start the {workers} worker threads (--workers): {source}")]
    Workers {
        workers: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (--admin-listen): {source}")]
    AdminListener {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("cannot load the revocation list (--redis-url): {0}")]
    Revocation(#[from] tower_jwt_auth::RevocationError),
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

/// What a worker needs once the keys are loaded.
pub(crate) struct Ready {
    /// The JWT layer around the scope rules and the target, called in place (locked only by
    /// this worker's thread): a clone per request would count references up and down on `Arc`s
    /// that every worker shares (the layer's settings, its rejection, the route rules), and
    /// each such count moves its cache line between the workers' cores.
    pub(crate) protected: Mutex<JwtAuth<Protected, Value, DefaultRejection>>,
    pub(crate) target: Target,
    pub(crate) routes: Arc<RouteRules>,
    pub(crate) token_from_websocket_protocol: bool,
    pub(crate) sender: crate::sender::SenderSettings,
}

/// What [`prepare`] sets up once for every worker; each worker's [`Ready`] is made from it.
struct Prepared {
    layer: JwtAuthLayer<Value>,
    target: Target,
    routes: Arc<RouteRules>,
    /// The check of each scope rule, by the rule's index.
    authorizers: Arc<Vec<Authorize<DefaultRejection>>>,
    token_from_websocket_protocol: bool,
    sender: crate::sender::SenderSettings,
}

impl Prepared {
    /// A worker's handling: the same layer (and so the same keys and token cache), with
    /// upstream connection pools of the worker's own.
    fn ready_for_worker(&self) -> Ready {
        let target = self.target.for_worker();
        let protected = self.layer.layer(Protected {
            target: target.clone(),
            routes: Arc::clone(&self.routes),
            authorizers: Arc::clone(&self.authorizers),
        });
        Ready {
            protected: Mutex::new(protected),
            target,
            routes: Arc::clone(&self.routes),
            token_from_websocket_protocol: self.token_from_websocket_protocol,
            sender: self.sender.clone(),
        }
    }
}

/// What an allowed request gets: forwarded to the upstream, or, in forward-auth mode, a `200` for
/// the proxy that asked.
#[derive(Clone)]
pub(crate) enum Target {
    Proxy(Arc<Forwarder>),
    ForwardAuth(Arc<ClaimHeaders>),
}

impl Target {
    /// The same target with upstream connection pools of its own, for one worker.
    fn for_worker(&self) -> Self {
        match self {
            Self::Proxy(forwarder) => Self::Proxy(Arc::new(forwarder.with_own_pools())),
            Self::ForwardAuth(claim_headers) => Self::ForwardAuth(Arc::clone(claim_headers)),
        }
    }

    /// Answers `request` for the canonical `path`; with `authenticated`, the token and claims the
    /// layer verified (in the request's extensions) go to the upstream or the proxy as headers.
    /// The request is read before the future is first polled, which owns what it needs.
    pub(crate) fn respond(
        &self,
        request: Request<Body>,
        path: &CheckedPath,
        authenticated: bool,
    ) -> impl Future<Output = Response<Body>> + Send + use<> {
        match self {
            Self::Proxy(forwarder) => Either::Left(forwarder.forward(request, path, authenticated)),
            Self::ForwardAuth(claim_headers) => Either::Right(std::future::ready(
                forward_auth::allow(claim_headers, request.extensions(), authenticated),
            )),
        }
    }
}

/// Shared by every request of one worker (the layer by every worker; a scrape of the metrics
/// reads every worker's counts).
pub(crate) struct AppState {
    pub(crate) ready: OnceLock<Ready>,
    pub(crate) layer: Arc<OnceLock<JwtAuthLayer<Value>>>,
    pub(crate) metrics: Metrics,
    pub(crate) forward_auth: bool,
    pub(crate) access_log: bool,
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    demo: Option<Demo>,
    workers: Workers,
    admin: Option<JoinHandle<std::io::Result<()>>>,
}

impl Gateway {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when `--admin-listen` is set.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The demo issuer, echo upstream and token, in demo mode.
    pub fn demo(&self) -> Option<&Demo> {
        self.demo.as_ref()
    }

    /// How the workers share the listening address.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn sharing(&self) -> Sharing {
        self.workers.sharing()
    }

    /// Stops accepting connections; requests in flight go on. Idempotent.
    pub fn begin_shutdown(&mut self) {
        self.workers.begin_shutdown();
    }

    /// Waits until every worker has stopped (after [`begin_shutdown`](Self::begin_shutdown), once
    /// every request in flight is answered), then stops the demo servers.
    pub async fn wait(mut self) -> std::io::Result<()> {
        let result = self.workers.wait().await;
        if let Some(demo) = &self.demo {
            for task in &demo.tasks {
                task.abort();
            }
        }
        if let Some(admin) = &self.admin {
            admin.abort();
        }
        result
    }

    /// Begins the shutdown and waits for it.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.begin_shutdown();
        self.wait().await
    }
}

/// Starts serving on `listener` with `config.workers` worker threads (see [`crate::workers`];
/// bind it with [`crate::workers::bind`] for a listener per worker), and the admin listener if
/// configured, at once (`/healthz` answers `503` until the keys are loaded), then sets up the
/// demo or the issuers, and returns when the gateway is ready.
pub async fn start(config: Config, listener: TcpListener) -> Result<Gateway, StartError> {
    let addr = listener.local_addr().map_err(StartError::Listener)?;
    let admin_listener =
        match config.admin_listen {
            None => None,
            Some(admin) => Some(TcpListener::bind(admin).await.map_err(|source| {
                StartError::AdminListener {
                    addr: admin,
                    source,
                }
            })?),
        };
    let layer_cell = Arc::new(OnceLock::new());
    let metrics = Metrics::new(Arc::clone(&layer_cell), config.workers);
    // One state per worker: its `Ready` holds its own upstream connection pools, its metrics
    // handle records into counts of its own.
    let states: Vec<Arc<AppState>> = (0..config.workers)
        .map(|worker| {
            Arc::new(AppState {
                ready: OnceLock::new(),
                layer: Arc::clone(&layer_cell),
                metrics: metrics.for_worker(worker),
                forward_auth: matches!(config.mode, Mode::ForwardAuth { .. }),
                access_log: config.access_log,
            })
        })
        .collect();
    // Demo mode only: the page at `/` (and `/_demo/…`), served once the demo is up.
    let page = Page::default();
    let gates = states
        .iter()
        .map(|state| gate(&config, admin_listener.is_some(), state, &page))
        .collect();
    let workers = workers::start(listener, gates).map_err(|source| StartError::Workers {
        workers: config.workers,
        source,
    })?;
    let mut admin_addr = None;
    let admin = match (admin_listener, states.first()) {
        (Some(listener), Some(state)) => {
            admin_addr = Some(listener.local_addr().map_err(StartError::Listener)?);
            let admin = Router::new()
                .route("/healthz", get(health::healthz_details))
                .route("/metrics", get(health::metrics_text))
                .with_state(Arc::clone(state));
            Some(tokio::spawn(
                async move { axum::serve(listener, admin).await },
            ))
        }
        _ => None,
    };
    tracing::debug!(workers = config.workers, sharing = ?workers.sharing(), "workers started");
    let mut gateway = Gateway {
        addr,
        admin_addr,
        demo: None,
        workers,
        admin,
    };
    match prepare(&config, &mut gateway).await {
        Ok(prepared) => {
            if let Some(demo) = &gateway.demo {
                page.open(demo, &config);
            }
            let _ = layer_cell.set(prepared.layer.clone());
            for state in &states {
                let _ = state.ready.set(prepared.ready_for_worker());
            }
            Ok(gateway)
        }
        Err(err) => {
            let _ = gateway.shutdown().await;
            Err(err)
        }
    }
}

/// The service of one worker: its router (`/healthz`, the RFC 9728 document, `/metrics` unless
/// on the admin listener, the demo page in demo mode), and [`dispatch`](dispatch::dispatch) for
/// every other path.
fn gate(config: &Config, admin_listener: bool, state: &Arc<AppState>, page: &Page) -> Gate {
    let mut own = OwnPaths::default();
    let mut app = Router::new().route("/healthz", get(health::healthz));
    own.exact("/healthz");
    // The RFC 9728 document, public, at its well-known path and the root form.
    if let Some(resource) = &config.auth.sender.resource {
        let path = tower_jwt_auth::ProtectedResource::new(resource.clone()).well_known_path();
        app = app.route(&path, get(resource_metadata));
        if path != tower_jwt_auth::WELL_KNOWN_PREFIX {
            app = app.route(tower_jwt_auth::WELL_KNOWN_PREFIX, get(resource_metadata));
        }
        own.exact(path);
        own.exact(tower_jwt_auth::WELL_KNOWN_PREFIX);
    }
    if !admin_listener {
        app = app.route("/metrics", get(health::metrics_text));
        own.exact("/metrics");
    }
    let app = app
        .fallback(dispatch::fallback)
        .with_state(Arc::clone(state));
    let app = if matches!(config.mode, Mode::Demo { .. }) {
        own.exact("/");
        own.prefix(crate::demo::page::PREFIX);
        app.merge(page.routes())
    } else {
        app
    };
    Gate::new(app, Arc::clone(state), own)
}

/// Builds the layer (fetching the keys) and the forwarding for `config`.
async fn prepare(config: &Config, gateway: &mut Gateway) -> Result<Prepared, StartError> {
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
            (Some(upstream), issuers)
        }
        Mode::Proxy { upstream, issuers } => (Some(upstream.clone()), issuers.clone()),
        Mode::ForwardAuth { issuers } => (None, issuers.clone()),
    };
    let layer = build_layer(config, &issuers).await?;
    let target = match &upstream {
        Some(upstream) => Target::Proxy(Arc::new(Forwarder::new(
            upstream.clone(),
            config.upstream_timeout,
            &config.forwarding,
        )?)),
        None => Target::ForwardAuth(Arc::new(ClaimHeaders::new(&config.forwarding))),
    };
    let routes = Arc::new(config.routes.clone());
    let mut rejection = match &config.auth.realm {
        Some(realm) => DefaultRejection::with_realm(realm.as_str()),
        None => DefaultRejection::default(),
    };
    // The 403s of the scope rules challenge like the layer's 401s.
    if let Some(resource) = layer.protected_resource() {
        rejection = rejection.resource_metadata(resource.metadata_url());
    }
    rejection = config.auth.sender.challenge(rejection);
    // The crate's own scope check and 403, one per rule.
    let authorizers = routes
        .scope_rules
        .iter()
        .map(|rule| Authorize::all_scopes(rule.scopes.clone()).with_rejection(rejection.clone()))
        .collect();
    tracing::info!(
        listen = %gateway.addr,
        admin = ?gateway.admin_addr,
        upstream = %upstream.as_ref().map_or_else(|| "none (forward-auth)".to_owned(), Upstream::display),
        issuers = ?issuers.iter().map(IssuerConfig::name).collect::<Vec<_>>(),
        demo = gateway.demo.is_some(),
        "gateway ready"
    );
    Ok(Prepared {
        layer,
        target,
        routes,
        authorizers: Arc::new(authorizers),
        token_from_websocket_protocol: config.auth.token_from_websocket_protocol,
        sender: config.auth.sender.clone(),
    })
}

async fn build_layer(
    config: &Config,
    issuers: &[IssuerConfig],
) -> Result<JwtAuthLayer<Value>, StartError> {
    let auth = &config.auth;
    let mut builder = JwtAuthLayer::<Value>::builder();
    for (index, issuer) in issuers.iter().enumerate() {
        let mut issuer = issuer.to_issuer().dpop(auth.sender.dpop);
        // The top-level issuer, always the first, is the one the introspection flags name.
        if let (0, Some(introspection)) = (index, &auth.introspection) {
            issuer = issuer.introspection(
                introspection.url.clone(),
                tower_jwt_auth::ClientCredentials::basic(
                    introspection.client_id.clone(),
                    introspection.client_secret.clone(),
                ),
            );
        }
        builder = builder.issuer(issuer);
    }
    builder = auth.sender.apply(builder);
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
    if let Some(bytes) = auth.token_cache_bytes {
        builder = builder.token_cache_bytes(bytes);
    }
    if let Some(dir) = &auth.key_snapshot_dir {
        builder = builder
            .refresh_policy(tower_jwt_auth::RefreshPolicy::default().snapshot_dir(dir.clone()));
    }
    if let Some(revocation) = &auth.revocation {
        let mut list = tower_jwt_auth::RevocationList::builder();
        if revocation.fail_open {
            list = list.fail_open();
        }
        builder = builder.revocation(list.redis(&revocation.redis_url).await?);
    }
    Ok(builder.build().await?)
}

/// The RFC 9728 document of `--resource`, completed by the layer (`503` until it is built).
async fn resource_metadata(State(state): State<Arc<AppState>>) -> Response<Body> {
    match state.layer.get().and_then(JwtAuthLayer::protected_resource) {
        Some(resource) => (
            [(header::CONTENT_TYPE, "application/json")],
            resource.to_json(),
        )
            .into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
