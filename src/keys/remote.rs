//! Fetching a JWKS (or a discovery document) over HTTP: address policy, timeouts, a size cap,
//! `ETag` revalidation and `Cache-Control: max-age`.

use std::net::IpAddr;
use std::time::Duration;

use http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use http::{HeaderValue, StatusCode};
use reqwest::Url;

use super::policy::RefreshPolicy;
pub use crate::error::FetchError;

/// Which plain-`http` URLs are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpPolicy {
    /// `https` everywhere, plain `http` only to loopback hosts.
    LoopbackOnly,
    /// Plain `http` anywhere (an explicit opt-in).
    Anywhere,
}

/// Parses `url` and checks it against the policy: `https`, or `http` to a loopback host
/// (127.0.0.0/8, `::1`, `localhost`), or `http` anywhere with the opt-in.
pub(crate) fn checked_url(url: &str, policy: HttpPolicy) -> Result<Url, FetchError> {
    let parsed =
        Url::parse(url).map_err(|err| FetchError::UrlNotAllowed(format!("{url}: {err}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if policy == HttpPolicy::Anywhere || is_loopback(&parsed) => Ok(parsed),
        "http" => Err(FetchError::UrlNotAllowed(format!(
            "{url}: plain http is only allowed to loopback hosts unless `allow_insecure_http` is set"
        ))),
        other => Err(FetchError::UrlNotAllowed(format!(
            "{url}: scheme `{other}` is not http or https"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// A successful fetch.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// `304 Not Modified`: the cached document is still current.
    NotModified { max_age: Option<Duration> },
    /// A new document.
    Document {
        body: String,
        etag: Option<HeaderValue>,
        max_age: Option<Duration>,
    },
}

/// At most this many redirects are followed for one request.
const MAX_REDIRECTS: usize = 5;

/// Whether the built-in client follows a redirect from a request for `first` (after `hops`
/// requests) to `next`: only to the same origin. Another port on the same host is another
/// service, possibly another user's; `https` to `http` would hand the keys to the network.
fn may_follow_redirect(first: &Url, next: &Url, hops: usize) -> bool {
    hops < MAX_REDIRECTS && same_origin(first, next)
}

/// Same scheme, host and port (the default port of the scheme when none is written), as in
/// RFC 6454. A URL without a host (`file:`, `data:` …) matches nothing.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.host().is_some()
        && a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The HTTP client for discovery and JWKS: the library's own, or one the user gave.
pub(crate) fn default_client(policy: &RefreshPolicy) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(policy.connect_timeout)
        .timeout(policy.fetch_timeout)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let allowed = attempt.previous().first().is_some_and(|first| {
                may_follow_redirect(first, attempt.url(), attempt.previous().len())
            });
            if allowed {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .user_agent(concat!("tower-jwt-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| err.to_string())
}

/// GETs `url`, revalidating with `etag` when given.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &Url,
    etag: Option<&HeaderValue>,
    policy: &RefreshPolicy,
) -> Result<Fetched, FetchError> {
    let mut request = client
        .get(url.clone())
        .timeout(policy.fetch_timeout)
        .header(http::header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag.clone());
    }
    let mut response = request
        .send()
        .await
        .map_err(|err| FetchError::Transport(error_chain(&err)))?;
    // A user-supplied client may follow redirects anywhere; the answer must still come from the
    // origin that was asked.
    if !same_origin(url, response.url()) {
        return Err(FetchError::CrossHostRedirect);
    }
    let max_age = max_age(response.headers().get_all(CACHE_CONTROL));
    match response.status() {
        StatusCode::NOT_MODIFIED if etag.is_some() => return Ok(Fetched::NotModified { max_age }),
        StatusCode::OK => {}
        other => return Err(FetchError::Status(other.as_u16())),
    }
    let limit = policy.max_response_size;
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(FetchError::TooLarge(limit));
    }
    let new_etag = response.headers().get(ETAG).cloned();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| FetchError::Transport(error_chain(&err)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    let body =
        String::from_utf8(body).map_err(|_| FetchError::Invalid("body is not UTF-8".to_owned()))?;
    Ok(Fetched::Document {
        body,
        etag: new_etag,
        max_age,
    })
}

/// `max-age` of the `Cache-Control` headers (RFC 9111 §5.2.2.1); `no-cache` and `no-store`
/// count as zero (the caller clamps it to its minimum interval).
fn max_age<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Option<Duration> {
    let mut found = None;
    for value in values {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let directive = directive.trim();
            let (name, argument) = directive
                .split_once('=')
                .map_or((directive, None), |(n, a)| (n.trim(), Some(a.trim())));
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(seconds) = argument
                    .map(|a| a.trim_matches('"'))
                    .and_then(|a| a.parse::<u64>().ok())
            {
                found = Some(Duration::from_secs(seconds));
            }
        }
    }
    found
}

/// An error with its sources, e.g. `error sending request: connection refused`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_loopback() {
        let ok = |url: &str| checked_url(url, HttpPolicy::LoopbackOnly).is_ok();
        assert!(ok("https://issuer.example/jwks"));
        assert!(ok("http://127.0.0.1:8080/jwks"));
        assert!(ok("http://127.9.9.9/jwks"));
        assert!(ok("http://[::1]:80/jwks"));
        assert!(ok("http://localhost/jwks"));
        assert!(ok("http://LOCALHOST:1/jwks"));
        assert!(!ok("http://issuer.example/jwks"));
        assert!(!ok("http://10.0.0.1/jwks"));
        assert!(!ok("http://localhost.evil.example/jwks"));
        assert!(!ok("ftp://issuer.example/jwks"));
        assert!(!ok("file:///etc/jwks.json"));
        assert!(!ok("not a url"));
        assert!(checked_url("http://issuer.example/jwks", HttpPolicy::Anywhere).is_ok());
    }

    #[test]
    fn redirects_are_followed_only_within_the_same_origin() {
        let follows = |from: &str, to: &str| {
            may_follow_redirect(&Url::parse(from).unwrap(), &Url::parse(to).unwrap(), 1)
        };
        assert!(follows("https://a.example/jwks", "https://a.example/keys"));
        assert!(follows(
            "https://a.example/jwks",
            "https://A.EXAMPLE:443/keys"
        ));
        assert!(follows("http://127.0.0.1:80/jwks", "http://127.0.0.1/keys"));
        assert!(!follows("https://a.example/jwks", "http://a.example/jwks"));
        assert!(!follows(
            "https://a.example/jwks",
            "https://a.example:8443/jwks"
        ));
        assert!(!follows(
            "http://127.0.0.1:8080/jwks",
            "http://127.0.0.1:8081/jwks"
        ));
        assert!(!follows(
            "http://127.0.0.1:8080/jwks",
            "http://localhost:8080/jwks"
        ));
        assert!(!follows("https://a.example/jwks", "https://b.example/jwks"));
        assert!(!follows("file:///a", "file:///a"));
        let same = Url::parse("https://a.example/jwks").unwrap();
        assert!(may_follow_redirect(&same, &same, MAX_REDIRECTS - 1));
        assert!(!may_follow_redirect(&same, &same, MAX_REDIRECTS));
    }

    #[test]
    fn reads_max_age_and_treats_no_cache_as_zero() {
        let parse = |v: &'static str| max_age([&HeaderValue::from_static(v)]);
        assert_eq!(parse("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(parse("MAX-AGE=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(parse("no-cache"), Some(Duration::ZERO));
        assert_eq!(parse("max-age=300, no-store"), Some(Duration::ZERO));
        assert_eq!(parse("public"), None);
        assert_eq!(parse("max-age=abc"), None);
        assert_eq!(parse("max-age=-1"), None);
    }
}
