//! A real issuer for the tests: an axum server on 127.0.0.1 (ephemeral port) serving a JWKS and the
//! discovery documents, counting the requests it gets, and able to misbehave on demand.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How the JWKS endpoint answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// The current keys, with `ETag` and `Cache-Control` as configured.
    Serve,
    /// An empty response with this status.
    Status(u16),
    /// `200` with a body that is not JSON.
    Malformed,
    /// `200` with a body of this many bytes, announced by `Content-Length`.
    Oversized(usize),
    /// `200` with a body of this many bytes, streamed in chunks without a length.
    OversizedChunked(usize),
    /// Never answers.
    Hang,
    /// Sends the headers and the first bytes of the body, then stalls.
    SlowBody,
    /// Redirects (`302`) to this URL.
    Redirect(String),
}

struct Config {
    keys: Vec<Value>,
    version: u64,
    mode: Mode,
    cache_control: Option<String>,
    etag: bool,
    /// The `issuer` of the discovery documents (`None`: the server's own base URL).
    metadata_issuer: Option<String>,
    /// The `jwks_uri` of the discovery documents (`None`: the server's own `/jwks`).
    metadata_jwks_uri: Option<String>,
    serve_oidc: bool,
    serve_oauth: bool,
}

struct Shared {
    config: Mutex<Config>,
    jwks_hits: AtomicUsize,
    not_modified: AtomicUsize,
    oidc_hits: AtomicUsize,
    oauth_hits: AtomicUsize,
    base_url: String,
    /// While `false`, JWKS requests wait (to hold a fetch in flight).
    open: watch::Sender<bool>,
}

/// The running server. Dropping it stops it.
pub struct IssuerServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl IssuerServer {
    /// Starts serving `keys` (public JWKs) on 127.0.0.1 with an ephemeral port.
    pub async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, _) = watch::channel(true);
        let shared = Arc::new(Shared {
            config: Mutex::new(Config {
                keys,
                version: 1,
                mode: Mode::Serve,
                cache_control: None,
                etag: false,
                metadata_issuer: None,
                metadata_jwks_uri: None,
                serve_oidc: true,
                serve_oauth: false,
            }),
            jwks_hits: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
            oidc_hits: AtomicUsize::new(0),
            oauth_hits: AtomicUsize::new(0),
            base_url: format!("http://{addr}"),
            open,
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/keys", get(keys_always))
            .route("/.well-known/openid-configuration", get(oidc))
            .route("/.well-known/oauth-authorization-server", get(oauth))
            .with_state(Arc::clone(&shared));
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            shared,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT`: the issuer identifier its discovery documents name.
    pub fn issuer(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.shared.base_url)
    }

    /// `/keys`: the same keys as `/jwks`, always served (whatever the [`Mode`]) and not counted,
    /// as the target of a redirect.
    pub fn keys_url(&self) -> String {
        format!("{}/keys", self.shared.base_url)
    }

    fn config(&self) -> std::sync::MutexGuard<'_, Config> {
        self.shared.config.lock().unwrap()
    }

    /// Serves `keys` from now on (a new `ETag`).
    pub fn set_keys(&self, keys: Vec<Value>) {
        let mut config = self.config();
        config.keys = keys;
        config.version += 1;
    }

    pub fn set_mode(&self, mode: Mode) {
        self.config().mode = mode;
    }

    pub fn set_cache_control(&self, value: &str) {
        self.config().cache_control = Some(value.to_owned());
    }

    /// Sends an `ETag` and answers `If-None-Match` with `304` while the keys are unchanged.
    pub fn enable_etag(&self) {
        self.config().etag = true;
    }

    /// The discovery documents name this issuer instead of the server's base URL.
    pub fn set_metadata_issuer(&self, issuer: &str) {
        self.config().metadata_issuer = Some(issuer.to_owned());
    }

    /// The discovery documents name this `jwks_uri` instead of the server's own `/jwks`.
    pub fn set_metadata_jwks_uri(&self, jwks_uri: &str) {
        self.config().metadata_jwks_uri = Some(jwks_uri.to_owned());
    }

    /// Which discovery documents exist (the other answers `404`).
    pub fn serve_metadata(&self, oidc: bool, oauth: bool) {
        let mut config = self.config();
        config.serve_oidc = oidc;
        config.serve_oauth = oauth;
    }

    /// Holds JWKS requests until [`open`](Self::open).
    pub fn close_gate(&self) {
        self.shared.open.send_replace(false);
    }

    pub fn open_gate(&self) {
        self.shared.open.send_replace(true);
    }

    pub fn jwks_hits(&self) -> usize {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn not_modified_hits(&self) -> usize {
        self.shared.not_modified.load(Ordering::SeqCst)
    }

    pub fn oidc_hits(&self) -> usize {
        self.shared.oidc_hits.load(Ordering::SeqCst)
    }

    pub fn oauth_hits(&self) -> usize {
        self.shared.oauth_hits.load(Ordering::SeqCst)
    }

    /// Stops the server: the port refuses connections and kept-alive connections are closed.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for IssuerServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn jwks(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mut open = shared.open.subscribe();
    let _ = open.wait_for(|open| *open).await;
    let (mode, body, etag, cache_control) = {
        let config = shared.config.lock().unwrap();
        let body = json!({ "keys": config.keys }).to_string();
        let etag = config.etag.then(|| format!("\"v{}\"", config.version));
        (
            config.mode.clone(),
            body,
            etag,
            config.cache_control.clone(),
        )
    };
    match mode {
        Mode::Serve => {
            let mut response = if etag.is_some()
                && headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    == etag.as_deref()
            {
                shared.not_modified.fetch_add(1, Ordering::SeqCst);
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            };
            if let Some(etag) = etag {
                response
                    .headers_mut()
                    .insert(header::ETAG, etag.parse().unwrap());
            }
            if let Some(cache_control) = cache_control {
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, cache_control.parse().unwrap());
            }
            response
        }
        Mode::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Mode::Malformed => "{\"keys\": [ this is not json".into_response(),
        Mode::Oversized(len) => " ".repeat(len).into_response(),
        Mode::OversizedChunked(len) => Body::new(Chunks { remaining: len }).into_response(),
        Mode::Hang => std::future::pending().await,
        Mode::SlowBody => Body::new(Stall { sent: false }).into_response(),
        Mode::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
    }
}

async fn keys_always(State(shared): State<Arc<Shared>>) -> Response {
    let body = json!({ "keys": shared.config.lock().unwrap().keys }).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn metadata(shared: &Shared) -> Value {
    let config = shared.config.lock().unwrap();
    json!({
        "issuer": config.metadata_issuer.clone().unwrap_or_else(|| shared.base_url.clone()),
        "jwks_uri": config
            .metadata_jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}/jwks", shared.base_url)),
        "response_types_supported": ["code"],
    })
}

async fn oidc(State(shared): State<Arc<Shared>>) -> Response {
    shared.oidc_hits.fetch_add(1, Ordering::SeqCst);
    if !shared.config.lock().unwrap().serve_oidc {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(metadata(&shared)).into_response()
}

async fn oauth(State(shared): State<Arc<Shared>>) -> Response {
    shared.oauth_hits.fetch_add(1, Ordering::SeqCst);
    if !shared.config.lock().unwrap().serve_oauth {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(metadata(&shared)).into_response()
}

/// A body of `remaining` bytes in 64 KiB chunks, with no length announced.
struct Chunks {
    remaining: usize,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = self.remaining.min(64 * 1024);
        self.remaining -= len;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; len])))))
    }
}

/// The first bytes of a JWKS, then nothing, ever.
struct Stall {
    sent: bool,
}

impl hyper::body::Body for Stall {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            Poll::Pending
        } else {
            self.sent = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{\"keys\": [")))))
        }
    }
}

/// Polls `condition` until it holds, failing the test after a generous deadline. For waiting on
/// background work; never a fixed sleep.
pub async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
