//! The demo in a browser: one page at `/` that logs in to the demo issuer, takes the token apart
//! (its three parts, the decoded header and claims, the checks the gateway makes) and calls the
//! API through the gateway with it, without it, or with it edited by hand.
//!
//! Served only in demo mode. The files are embedded in the binary; the page loads nothing from
//! anywhere but the gateway (its `Content-Security-Policy` says so to the browser), and the demo
//! issuer's `/login` and `/jwks.json` are reachable under `/_demo/issuer/` on the same origin.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;
use tower::ServiceExt as _;

use super::{Demo, MIN_TOKEN_LIFETIME, TOKEN_LIFETIME, USERS};
use crate::config::{Config, Mode};

const INDEX_HTML: &str = include_str!("demo_page/index.html");
const APP_JS: &str = include_str!("demo_page/app.js");
const STYLE_CSS: &str = include_str!("demo_page/style.css");
const ICON_SVG: &str = include_str!("demo_page/icon.svg");

/// Where the page's own files and the issuer's same-origin endpoints live.
pub const PREFIX: &str = "/_demo";

/// Nothing but the gateway itself: scripts, styles and requests all stay on this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'none'; base-uri 'none'; \
                   frame-ancestors 'none'";

/// The URL printed at start: the gateway's address, with loopback for an unspecified one.
pub fn url(gateway: SocketAddr) -> String {
    let mut addr = gateway;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    format!("http://{addr}/")
}

/// The page's routes, mounted before the demo is up: until [`Page::open`] they answer `503`.
#[derive(Clone, Default)]
pub struct Page {
    router: Arc<OnceLock<Router>>,
}

impl Page {
    /// `/` and everything under `/_demo/`.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/", get(serve))
            .route(&format!("{PREFIX}/{{*rest}}"), any(serve))
            .with_state(Arc::clone(&self.router))
    }

    /// Starts serving the page for `demo`, with the rules of `config` (what the page says the
    /// gateway will decide). Does nothing outside demo mode.
    pub fn open(&self, demo: &Demo, config: &Config) {
        let Mode::Demo { audience } = &config.mode else {
            return;
        };
        let settings = json!({
            "issuer": demo.issuer.url,
            "audience": audience,
            "require_typ": config.auth.require_typ,
            "required_claims": config.auth.required_claims,
            "leeway_secs": config
                .auth
                .leeway
                .unwrap_or(tower_jwt_auth::DEFAULT_LEEWAY)
                .as_secs(),
            "public_paths": config.routes.public_paths,
            "scope_rules": config
                .routes
                .scope_rules
                .iter()
                .map(|rule| json!({"prefix": rule.prefix, "scopes": rule.scopes}))
                .collect::<Vec<_>>(),
            "users": USERS
                .iter()
                .map(|user| json!({"username": user.username, "scope": user.scope}))
                .collect::<Vec<_>>(),
            "lifetime_secs": TOKEN_LIFETIME.as_secs(),
            "short_lifetime_secs": MIN_TOKEN_LIFETIME.as_secs(),
            "login": format!("{PREFIX}/issuer/login"),
            "jwks": format!("{PREFIX}/issuer/jwks.json"),
        });
        let router = Router::new()
            .route(
                "/",
                get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
            )
            .route(
                &format!("{PREFIX}/app.js"),
                get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
            )
            .route(
                &format!("{PREFIX}/style.css"),
                get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
            )
            .route(
                &format!("{PREFIX}/icon.svg"),
                get(|| async { asset("image/svg+xml", ICON_SVG) }),
            )
            .route(
                &format!("{PREFIX}/settings.json"),
                get(move || {
                    let settings = settings.clone();
                    async move { with_headers(axum::Json(settings).into_response()) }
                }),
            )
            .nest(
                &format!("{PREFIX}/issuer"),
                Arc::clone(&demo.issuer).router(),
            );
        let _ = self.router.set(router);
    }
}

async fn serve(State(router): State<Arc<OnceLock<Router>>>, request: Request<Body>) -> Response {
    let Some(router) = router.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "starting: the demo is not up yet\n",
        )
            .into_response();
    };
    match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    with_headers(response)
}

/// No caching (the page changes with the binary), no sniffing, no referrer, the CSP.
fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_url_is_one_a_browser_can_open() {
        assert_eq!(
            url("127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(url("[::1]:8080".parse().unwrap()), "http://[::1]:8080/");
        assert_eq!(url("[::]:8080".parse().unwrap()), "http://[::1]:8080/");
    }
}
