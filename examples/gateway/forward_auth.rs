//! Forward-auth mode: each request is the authorization check of a request that another proxy
//! received (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`, Envoy `ext_authz`).
//! The original request is described by `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri`
//! (Traefik, Caddy), or nginx's `X-Original-URI` and `X-Original-Method`; without them (Envoy's
//! HTTP `ext_authz` service) the check request's own method and path are the original's.
//!
//! These headers are trusted: the gateway must only be reachable by the proxy that sets them.

use axum::body::Body;
use http::header::{HeaderMap, HeaderName};
use http::{Extensions, Request, Response, StatusCode, Uri};

use crate::headers::ClaimHeaders;
use crate::routes::PathError;

static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

/// The request being checked, as the proxy described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub method: String,
    /// The raw path (not yet decoded or checked); an error when the proxy's header is not UTF-8,
    /// which must be refused rather than read as the check request's own path.
    pub path: Result<String, PathError>,
    pub host: Option<String>,
    pub proto: Option<String>,
}

impl Original {
    /// Reads the description of the original request from the check request.
    pub fn of<B>(request: &Request<B>) -> Self {
        let headers = request.headers();
        let text = |name| header(headers, name).and_then(Result::ok);
        let method = text(&X_FORWARDED_METHOD)
            .or_else(|| text(&X_ORIGINAL_METHOD))
            .unwrap_or_else(|| request.method().as_str().to_owned());
        let path =
            match header(headers, &X_FORWARDED_URI).or_else(|| header(headers, &X_ORIGINAL_URI)) {
                None => Ok(request.uri().path().to_owned()),
                Some(Ok(uri)) => Ok(path_of(&uri)),
                Some(Err(error)) => Err(error),
            };
        Self {
            method,
            path,
            host: text(&X_FORWARDED_HOST),
            proto: text(&X_FORWARDED_PROTO),
        }
    }
}

/// A header's text: raw UTF-8 (as nginx passes a request line's bytes on) is read as it is.
fn header(headers: &HeaderMap, name: &HeaderName) -> Option<Result<String, PathError>> {
    headers.get(name).map(|value| {
        std::str::from_utf8(value.as_bytes())
            .map(str::to_owned)
            .map_err(|_| PathError::InvalidUtf8)
    })
}

/// The path of an origin-form (`/a/b?q`) or absolute (`https://h/a/b?q`) request target. A
/// target that is neither keeps its text, and the path check refuses it.
fn path_of(target: &str) -> String {
    match target.parse::<Uri>() {
        Ok(uri) if uri.scheme().is_some() || target.starts_with('/') => uri.path().to_owned(),
        _ => target.to_owned(),
    }
}

/// `200` for an allowed request: with the `x-auth-*` headers of the token the layer verified
/// (found in the check request's `extensions`), for the proxy to copy onto the request it
/// forwards (`auth_request_set`, `authResponseHeaders`, `copy_headers`,
/// `allowed_upstream_headers`); without them on a public path.
pub fn allow(
    claim_headers: &ClaimHeaders,
    extensions: &Extensions,
    authenticated: bool,
) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::OK;
    if authenticated {
        claim_headers.insert_verified(response.headers_mut(), extensions);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_request_comes_from_the_proxys_headers() {
        let traefik = Request::get("/")
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-uri", "/admin/users?x=1")
            .header("x-forwarded-host", "app.example")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap();
        assert_eq!(
            Original::of(&traefik),
            Original {
                method: "POST".into(),
                path: Ok("/admin/users".into()),
                host: Some("app.example".into()),
                proto: Some("https".into()),
            }
        );
        let nginx = Request::get("/_auth")
            .header("x-original-uri", "/public/..;/admin?q")
            .header("x-original-method", "DELETE")
            .body(())
            .unwrap();
        let original = Original::of(&nginx);
        assert_eq!(original.path.unwrap(), "/public/..;/admin");
        assert_eq!(original.method, "DELETE");
        let envoy = Request::put("/orders/7?x").body(()).unwrap();
        let original = Original::of(&envoy);
        assert_eq!(
            (original.method.as_str(), original.path.unwrap().as_str()),
            ("PUT", "/orders/7")
        );
        let absolute = Request::get("/")
            .header("x-forwarded-uri", "https://app.example/a/b?c")
            .body(())
            .unwrap();
        assert_eq!(Original::of(&absolute).path.unwrap(), "/a/b");
        let odd = Request::get("/")
            .header("x-forwarded-uri", "a/b")
            .body(())
            .unwrap();
        assert_eq!(Original::of(&odd).path.unwrap(), "a/b");
        // Raw UTF-8 is read as such; other bytes can't fall back to the check's own path.
        let raw = |bytes: &'static [u8]| {
            let request = Request::get("/")
                .header(
                    "x-original-uri",
                    http::HeaderValue::from_bytes(bytes).unwrap(),
                )
                .body(())
                .unwrap();
            Original::of(&request).path
        };
        assert_eq!(
            raw("/admin/caf\u{e9}".as_bytes()).unwrap(),
            "/admin/caf\u{e9}"
        );
        assert_eq!(raw(b"/admin/\xff"), Err(PathError::InvalidUtf8));
    }
}
