//! Counters and gauges through the `metrics` facade (feature `metrics`); without the feature every
//! function here is empty. Labels are low-cardinality and never hold token or key material: an
//! [`AuthError::cause`], a fixed result name, or the configured issuer. The names are listed in
//! the [deployment guide](crate::guide::deployment#observability).

use crate::error::AuthError;

/// A request passed the layer.
pub(crate) fn request_accepted() {
    #[cfg(feature = "metrics")]
    metrics::counter!("jwt_auth_requests_total", "outcome" => "accepted", "cause" => "none")
        .increment(1);
}

/// A request was answered with `error`.
pub(crate) fn request_rejected(error: &AuthError) {
    #[cfg(feature = "metrics")]
    metrics::counter!("jwt_auth_requests_total", "outcome" => "rejected", "cause" => error.cause())
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = error;
}

/// A lookup in the verified-token cache.
pub(crate) fn cache_lookup(hit: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!("jwt_auth_token_cache_total", "result" => if hit { "hit" } else { "miss" })
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// A fetch of an issuer's keys ended with `result` (`ok`, `not_modified` or `failed`).
pub(crate) fn jwks_fetch(issuer: &str, result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("jwt_auth_jwks_fetches_total", "issuer" => issuer.to_owned(), "result" => result)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, result);
}

/// An issuer's key set was loaded or revalidated with `keys` keys.
pub(crate) fn key_set_current(issuer: &str, keys: usize) {
    #[cfg(feature = "metrics")]
    {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("jwt_auth_key_set_keys", "issuer" => issuer.to_owned()).set(keys as f64);
        #[allow(clippy::cast_precision_loss)]
        let now = crate::clock::unix_seconds(std::time::SystemTime::now()) as f64;
        metrics::gauge!("jwt_auth_key_set_last_success_seconds", "issuer" => issuer.to_owned())
            .set(now);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, keys);
}
