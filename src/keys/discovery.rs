//! Finding an issuer's `jwks_uri` from its metadata: OpenID Connect Discovery 1.0 §4, falling back
//! to RFC 8414 §3.

use reqwest::Url;
use serde::Deserialize;

use super::policy::RefreshPolicy;
use super::remote::{FetchError, Fetched, HttpPolicy, checked_url, fetch};

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// The metadata URLs to try for `issuer`, in order.
fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut urls = Vec::with_capacity(2);
    // OIDC: the well-known suffix is appended to the issuer.
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    urls.push(oidc);
    // RFC 8414: the well-known prefix goes between the host and the issuer's path.
    let mut oauth = issuer.clone();
    oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    urls.push(oauth);
    urls
}

/// Resolves the JWKS URL of `issuer`. The metadata's `issuer` must equal the configured one
/// exactly (OIDC Discovery §4.3, RFC 8414 §3.3), and the `jwks_uri` must pass the URL policy.
pub(crate) async fn discover_jwks_url(
    client: &reqwest::Client,
    issuer: &str,
    http_policy: HttpPolicy,
    policy: &RefreshPolicy,
) -> Result<Url, FetchError> {
    let issuer_url = checked_url(issuer, http_policy)?;
    let mut last_error = FetchError::Status(404);
    for url in metadata_urls(&issuer_url) {
        let body = match fetch(client, &url, None, policy).await {
            Ok(Fetched::Document { body, .. }) => body,
            Ok(Fetched::NotModified { .. }) => continue,
            // Only "not there" moves on to the other well-known location.
            Err(FetchError::Status(404)) => continue,
            Err(err) => {
                last_error = err;
                break;
            }
        };
        let metadata: Metadata = serde_json::from_str(&body)
            .map_err(|err| FetchError::Invalid(format!("metadata at {url} is not valid: {err}")))?;
        if metadata.issuer != issuer {
            return Err(FetchError::Invalid(format!(
                "metadata at {url} names issuer `{}`, not `{issuer}`",
                metadata.issuer
            )));
        }
        return checked_jwks_uri(&issuer_url, &metadata.jwks_uri, http_policy);
    }
    Err(last_error)
}

/// Checks the `jwks_uri` named by `issuer`'s metadata. Beyond the URL policy of any remote URL,
/// a plain-`http` `jwks_uri` is accepted only from an issuer that is itself plain `http` (and so,
/// the issuer having passed the same policy, loopback), unless `allow_insecure_http` is set:
/// metadata an `https` issuer served must not send the key fetch to an unauthenticated
/// endpoint, not even a loopback one (any local process may listen there).
fn checked_jwks_uri(
    issuer: &Url,
    jwks_uri: &str,
    http_policy: HttpPolicy,
) -> Result<Url, FetchError> {
    let url = checked_url(jwks_uri, http_policy)?;
    if url.scheme() == "http" && issuer.scheme() != "http" && http_policy != HttpPolicy::Anywhere {
        return Err(FetchError::UrlNotAllowed(format!(
            "{jwks_uri}: plain http named by the metadata of an https issuer, without \
             `allow_insecure_http`"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_jwks_uri_only_from_a_plain_http_loopback_issuer_or_with_the_opt_in() {
        let allowed = |issuer: &str, jwks_uri: &str, policy| {
            checked_jwks_uri(&Url::parse(issuer).unwrap(), jwks_uri, policy).is_ok()
        };
        let strict = HttpPolicy::LoopbackOnly;
        // An https issuer: https keys anywhere, plain http nowhere, not even on loopback.
        assert!(allowed(
            "https://auth.example",
            "https://keys.example/jwks",
            strict
        ));
        assert!(!allowed(
            "https://auth.example",
            "http://127.0.0.1:8080/jwks",
            strict
        ));
        assert!(!allowed(
            "https://auth.example",
            "http://localhost/jwks",
            strict
        ));
        assert!(!allowed(
            "https://auth.example",
            "http://[::1]/jwks",
            strict
        ));
        assert!(!allowed(
            "https://auth.example",
            "http://keys.example/jwks",
            strict
        ));
        // A plain-http loopback issuer (a test or a sidecar): plain http to loopback only.
        assert!(allowed(
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9001/jwks",
            strict
        ));
        assert!(allowed(
            "http://localhost:9000",
            "https://keys.example/jwks",
            strict
        ));
        assert!(!allowed(
            "http://127.0.0.1:9000",
            "http://keys.example/jwks",
            strict
        ));
        assert!(!allowed(
            "http://127.0.0.1:9000",
            "ftp://127.0.0.1/jwks",
            strict
        ));
        // The opt-in allows plain http anywhere.
        let anywhere = HttpPolicy::Anywhere;
        assert!(allowed(
            "https://auth.example",
            "http://127.0.0.1/jwks",
            anywhere
        ));
        assert!(allowed(
            "https://auth.example",
            "http://keys.example/jwks",
            anywhere
        ));
        assert!(allowed(
            "http://auth.example",
            "http://keys.example/jwks",
            anywhere
        ));
    }

    #[test]
    fn well_known_urls_follow_both_specs() {
        let urls = |issuer: &str| {
            metadata_urls(&Url::parse(issuer).unwrap())
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            urls("https://auth.example/"),
            [
                "https://auth.example/.well-known/openid-configuration",
                "https://auth.example/.well-known/oauth-authorization-server"
            ]
        );
        assert_eq!(
            urls("https://auth.example/realms/acme"),
            [
                "https://auth.example/realms/acme/.well-known/openid-configuration",
                "https://auth.example/.well-known/oauth-authorization-server/realms/acme"
            ]
        );
    }
}
