//! Guides: moving from `jwt-authorizer`, and running the layer in production.
//!
//! This module holds documentation only.

pub mod migrating_from_jwt_authorizer {
    //! # Migrating from `jwt-authorizer`
    //!
    //! [`jwt-authorizer`](https://docs.rs/jwt-authorizer) 0.15 builds an `Authorizer` and turns it
    //! into a layer; here the builder gives the layer directly. The mapping:
    //!
    //! | `jwt-authorizer` 0.15 | `tower-jwt-auth` |
    //! |---|---|
    //! | `JwtAuthorizer::from_oidc(issuer)` | `.issuer(`[`Issuer::discover`](crate::Issuer::discover)`(issuer))` (the document's `issuer` must equal it, and `iss` is then required) |
    //! | `from_jwks_url(url)` | `.issuer(Issuer::new(iss).key(`[`KeySource::jwks_url`](crate::KeySource::jwks_url)`(url)))`, or [`Issuer::without_issuer_check`](crate::Issuer::without_issuer_check) to skip `iss` |
    //! | `from_jwks(path)`, `from_jwks_text(text)` | [`KeySource::jwks_file`](crate::KeySource::jwks_file), [`KeySource::jwks_json`](crate::KeySource::jwks_json) |
    //! | `from_rsa_pem`, `from_ec_pem`, `from_ed_pem` (and `_text`) | [`KeySource::public_key_pem`](crate::KeySource::public_key_pem) (the key type is detected) |
    //! | `from_secret(secret)` | [`KeySource::shared_secret`](crate::KeySource::shared_secret) (at least 32/48/64 bytes) |
    //! | `Validation::new().iss(&[..])` | [`Issuer::new`](crate::Issuer::new) (one issuer per `iss`; add several with `.issuer(…)`) |
    //! | `.aud(&[..])` | [`Issuer::audience`](crate::Issuer::audience), per issuer |
    //! | `.algs(vec![..])` | [`Issuer::algorithms`](crate::Issuer::algorithms) |
    //! | `.leeway(secs)` | [`JwtAuthBuilder::leeway`](crate::JwtAuthBuilder::leeway) (a `Duration`; default 60 s) |
    //! | `.exp(false)` | [`JwtAuthBuilder::allow_missing_exp`](crate::JwtAuthBuilder::allow_missing_exp) (an `exp` that is present is always checked) |
    //! | `.nbf(true)` | always on: `nbf` and `iat` may not be in the future |
    //! | `.check(fn(&C) -> bool)` (a `403`) | [`Authorize::claims`](crate::Authorize::claims) on the route (a `403 insufficient_scope`), or [`JwtAuthBuilder::validate`](crate::JwtAuthBuilder::validate) (a `401 invalid_token` with your reason) |
    //! | `.refresh(Refresh { .. })`, `.no_refresh()` | [`JwtAuthBuilder::refresh_policy`](crate::JwtAuthBuilder::refresh_policy) with a [`RefreshPolicy`](crate::RefreshPolicy) |
    //! | `.jwt_source(JwtSource::Cookie(name))` | [`JwtAuthBuilder::token_from_cookie`](crate::JwtAuthBuilder::token_from_cookie) (in addition to the header; a token in both is a `400`) |
    //! | `.http_client(client)` | [`JwtAuthBuilder::http_client`](crate::JwtAuthBuilder::http_client) (a [`reqwest`] 0.13 client) |
    //! | `.build().await?` then `auth.into_layer()` | `.build().await?` is the layer |
    //! | `vec![a, b].into_layer()` (several authorizers) | one layer with several `.issuer(…)`: a token is routed by its `iss` and checked only with that issuer's keys |
    //! | `JwtClaims<C>` extractor | [`Claims<C>`](crate::Claims) (`Claims(claims)` gives an `Arc<C>`); `Option<Claims<C>>` with [`JwtAuthLayer::optional`](crate::JwtAuthLayer::optional) |
    //! | `jwt_authorizer::AuthError` responses | [`AuthError`](crate::AuthError) and [`JwtAuthLayer::with_rejection`](crate::JwtAuthLayer::with_rejection) |
    //!
    //! ```no_run
    //! # use serde::Deserialize;
    //! # #[derive(Clone, Deserialize)] struct User { sub: String }
    //! use tower_jwt_auth::{Authorize, Claims, Issuer, JwtAuthLayer};
    //!
    //! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    //! // Before:
    //! // let auth: Authorizer<User> = JwtAuthorizer::from_oidc("https://auth.example.com/")
    //! //     .validation(Validation::new().aud(&["orders-api"]))
    //! //     .check(|user: &User| user.sub != "blocked")
    //! //     .build().await?;
    //! // let app = Router::new().route("/me", get(me)).layer(auth.into_layer());
    //! let auth = JwtAuthLayer::<User>::builder()
    //!     .issuer(Issuer::discover("https://auth.example.com/").audience("orders-api"))
    //!     .build()
    //!     .await?;
    //! let app: axum::Router = axum::Router::new()
    //!     .route("/me", axum::routing::get(|Claims(user): Claims<User>| async move { user.sub.clone() }))
    //!     .route_layer(Authorize::claims("user", |user: &User| user.sub != "blocked"))
    //!     .layer(auth);
    //! # let _ = app; Ok(()) }
    //! ```
    //!
    //! Behaviour that differs:
    //! - `iss` and `aud` are required once configured (a token without them is refused, not
    //!   let through), and discovery checks the metadata's `issuer`.
    //! - A token naming an unknown `kid` triggers at most one refetch per cooldown (30 s by
    //!   default), shared by every concurrent request; the request waits for it (up to 2 s) and
    //!   passes if the key arrived. A known `kid` with a bad signature never refetches.
    //! - When the issuer is down, the last good keys keep serving (up to 24 h past their refresh
    //!   time); without any keys, requests get `503` with `Retry-After` rather than `401`.
    //! - Keys are pinned: a JWK's `alg`, `kty` and `crv` must fit the token's `alg`; keys
    //!   fetched from a URL are never used for HMAC; RSA keys under 2048 bits are skipped.
    //! - Rejections follow RFC 6750: `WWW-Authenticate` with `error` and `error_description`,
    //!   `400` for a malformed request, `403 insufficient_scope` from [`Authorize`](crate::Authorize).
    //! - A repeated token is served from the verified-token cache (see
    //!   [`token_cache_bytes`](crate::JwtAuthBuilder::token_cache_bytes)).
}

pub mod deployment {
    //! # Running it in production
    //!
    //! ## Key rotation
    //! Providers publish a new key in their JWKS before signing with it, and keep the old one
    //! until the tokens it signed have expired. The layer follows without configuration: the
    //! JWKS is refreshed on its `Cache-Control: max-age` (clamped to 1 min – 24 h, 10 min when
    //! absent), and the first token signed with a key the layer has not seen yet makes it refetch
    //! at once (coalesced, rate-limited by [`RefreshPolicy::unknown_kid_cooldown`](crate::RefreshPolicy::unknown_kid_cooldown)).
    //! A key removed from the JWKS is refused after the next successful refresh, and cached
    //! tokens it signed are verified afresh (and refused). If you rotate a shared secret or a
    //! static key yourself, configure both keys with distinct `kid`s during the overlap.
    //!
    //! ## Outages
    //! A failed refresh keeps the last good key set serving (stale-if-error) for up to
    //! [`RefreshPolicy::max_staleness`](crate::RefreshPolicy::max_staleness) (24 h) past its refresh
    //! time, retrying with exponential backoff and jitter (1 s up to 5 min); set it to zero to
    //! fail closed. The first failure and the recovery are logged once each (`warn`/`info`), not
    //! per request. Only when no usable key set exists do requests get `503` with `Retry-After`.
    //! By default [`build`](crate::JwtAuthBuilder::build) fails when the first fetch fails, so a
    //! misconfigured deployment does not go live; [`allow_start_without_keys`](crate::JwtAuthBuilder::allow_start_without_keys)
    //! starts anyway (useful when the issuer may start after you). Wire
    //! [`JwtAuthLayer::key_sets`](crate::JwtAuthLayer::key_sets) into your readiness probe:
    //! `usable` tells whether requests can be verified, `stale` and `age` whether refreshes fail.
    //!
    //! ## Clock skew
    //! `exp`, `nbf` and `iat` are compared with the local clock, with a leeway of 60 s
    //! ([`JwtAuthBuilder::leeway`](crate::JwtAuthBuilder::leeway)). Keep hosts on NTP; raise the
    //! leeway only as far as your worst skew, since it extends every token's life by as much.
    //!
    //! ## Horizontal scaling
    //! Every replica verifies on its own: nothing is shared between replicas, and no request
    //! needs the issuer while its key is known. Each replica fetches the JWKS itself (so N
    //! replicas make N times the refreshes, and at most N refetches per cooldown when a new key
    //! appears), keeps its own verified-token cache (10,000 tokens, about 1 KB each for
    //! typical claims, by default) and its own negative cache of unknown `kid`s. Replicas can
    //! briefly disagree after a rotation (one has refetched, another not yet); the unknown-`kid`
    //! refetch closes that gap on the first request that needs it.
    //!
    //! ## Revocation
    //! Verification is local: a token stays valid until its `exp` even if the issuer revokes the
    //! session. Keep access tokens short-lived (minutes). To refuse tokens before `exp`, give the
    //! layer a [`RevocationList`](crate::RevocationList)
    //! ([`JwtAuthBuilder::revocation`](crate::JwtAuthBuilder::revocation)): by `jti`, or by `sub`
    //! for every token issued before a time. It is checked against a local copy after the
    //! signature and on cache hits (no I/O per request). With the `redis` feature every replica
    //! keeps a full copy, kept current through Redis pub/sub and resynchronised after a reconnect
    //! or a missed message; when Redis stays unreachable past the maximum staleness, requests get
    //! `503` (or pass, checked against the last copy, with
    //! [`fail_open`](crate::RevocationListBuilder::fail_open)). A revoked token is
    //! `401 invalid_token` with the cause `revoked`; a stale list is `503` with the cause
    //! `revocation_unavailable`.
    //!
    //! For opaque tokens, or to honour a revocation at the issuer at once, give the issuer its
    //! introspection endpoint ([`Issuer::introspection`](crate::Issuer::introspection), RFC 7662;
    //! [`introspect_jwts`](crate::Issuer::introspect_jwts) for JWTs too): answers are cached until
    //! `exp` (five minutes at most, inactive ones ten seconds) and concurrent introspections of a
    //! token share one call; an endpoint that fails gives `503` with `Retry-After`.
    //!
    //! ## Restarts during an issuer outage
    //! With [`RefreshPolicy::snapshot_dir`](crate::RefreshPolicy::snapshot_dir) each replica keeps
    //! its issuers' last good JWKS on disk, so that a replica restarted while the issuer is down
    //! starts from it (within `max_staleness`) instead of failing to start.
    //!
    //! ## Observability
    //! Each rejection is logged once at `debug` with its cause (never the token); each request
    //! runs in a `jwt_auth` span with `outcome` and `cause`; fetches log `jwks fetch` events with
    //! their `result`. With the `metrics` feature, counters and gauges go through the
    //! [`metrics`](https://docs.rs/metrics) facade:
    //!
    //! | name | type | labels | meaning |
    //! |---|---|---|---|
    //! | `jwt_auth_requests_total` | counter | `outcome` (`accepted`, `rejected`), `cause` | requests through the layer; `cause` is [`AuthError::cause`](crate::AuthError::cause) for rejections, `none` otherwise |
    //! | `jwt_auth_token_cache_total` | counter | `result` (`hit`, `miss`) | lookups in the verified-token cache |
    //! | `jwt_auth_jwks_fetches_total` | counter | `issuer`, `result` (`ok`, `not_modified`, `failed`) | discovery and JWKS fetches |
    //! | `jwt_auth_key_set_keys` | gauge | `issuer` | keys in use after the last successful fetch |
    //! | `jwt_auth_key_set_last_success_seconds` | gauge | `issuer` | Unix time of the last successful fetch: the key set's age is `time() - jwt_auth_key_set_last_success_seconds` |
    //!
    //! No label ever holds a token, a key or a claim value.
}
