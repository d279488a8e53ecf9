//! JWT bearer-token verification for [Tower](https://docs.rs/tower) and
//! [axum](https://docs.rs/axum) services.
//!
//! A [`JwtAuthLayer`] takes the token from `Authorization: Bearer`, verifies it against the
//! signing keys of its issuer, checks its claims, and hands the handler typed [`Claims`]:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use serde::Deserialize;
//! use tower_jwt_auth::{Claims, Issuer, JwtAuthLayer};
//!
//! #[derive(Deserialize)]
//! struct MyClaims { sub: String }
//!
//! async fn me(Claims(claims): Claims<MyClaims>) -> String {
//!     claims.sub.clone()
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let auth = JwtAuthLayer::<MyClaims>::builder()
//!         .issuer(Issuer::discover("https://auth.example.com").audience("my-api"))
//!         .build()
//!         .await?;
//!     let app = Router::new().route("/me", get(me)).layer(auth);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! # What is checked
//!
//! - The request: exactly one token, in `Authorization: Bearer` (scheme matched without case,
//!   RFC 6750 §2.1) or in an opt-in cookie, header or query parameter; at most 8 KiB by default.
//! - The token: a compact JWS of three strict-base64url parts (JWE and `alg: none` refused), no
//!   duplicate JSON members, no `crit` extension, no nested JWT.
//! - The key: the issuer is chosen by `iss`, then the key by `kid`; the algorithm is pinned by the
//!   key (`alg`, `kty`, `crv`) and the issuer's allow-list. HMAC only with a configured secret.
//! - The claims: `exp` (required by default), `nbf`, `iat` not in the future, with a leeway
//!   (default 60 s); `iss` and `aud` required and matching once configured; optionally `typ`
//!   (`at+jwt`), a maximum age, required claims and your own validators.
//!
//! # Keys
//!
//! An issuer's keys come from a [`KeySource`]: a JWKS (inline, file, or
//! [URL](KeySource::jwks_url)), [discovery](Issuer::discover) from the issuer URL (OpenID Connect,
//! falling back to RFC 8414), PEM public keys, or a shared secret. Fetched key sets are loaded when
//! the layer is built and kept fresh in the background ([`RefreshPolicy`]):
//!
//! - the refresh interval follows `Cache-Control: max-age` within bounds, and `ETag` revalidation
//!   keeps the set on `304`;
//! - a token naming an unknown `kid` triggers one refetch shared by every concurrent request and
//!   limited by a cooldown, so the first token under a rotated key is accepted;
//! - when the issuer is down, the last good set keeps serving up to a maximum staleness, and only
//!   when no usable set exists do requests get `503` with `Retry-After`;
//! - with [`RefreshPolicy::snapshot_dir`], the last good set survives a restart during an outage;
//! - [`JwtAuthLayer::key_sets`] reports each set's age, size and health.
//!
//! A request whose key is known takes no lock and does no I/O: it reads a snapshot.
//!
//! # Beyond stateless tokens
//!
//! - A [`RevocationList`] refuses tokens before their `exp`, by `jti` or by subject, checked
//!   against a local copy; with the `redis` feature it is shared by every replica
//!   ([`JwtAuthBuilder::revocation`]).
//! - [`Issuer::introspection`] checks opaque tokens (and, optionally, JWTs) at the issuer's
//!   RFC 7662 endpoint, cached and coalesced; handlers get the same [`Claims`] and
//!   [`VerifiedToken`].
//!
//! Rejections follow RFC 6750 §3 ([`DefaultRejection`]) or any mapping you give
//! ([`RejectionResponse`]); each cause is an [`AuthError`] variant.
//!
//! # Authorization
//!
//! [`Authorize`] route layers require scopes (`scope` or `scp`, all of or any of), roles at a
//! JSON pointer (e.g. [`KEYCLOAK_REALM_ROLES`]) or any predicate, answering
//! `403 insufficient_scope`; [`RequireScopes`] does the same from a handler's arguments.
//!
//! # Sender-constrained tokens and resource metadata
//!
//! - [DPoP](dpop) (RFC 9449), per issuer ([`Issuer::dpop`]): `Authorization: DPoP` with a proof
//!   checked against the request, replay cache, server nonces; a DPoP-bound token is never
//!   accepted as a bearer token.
//! - Certificate-bound tokens (RFC 8705): `cnf.x5t#S256` against the [`ClientCertificate`] your TLS
//!   server inserts.
//! - [`ProtectedResource`] (RFC 9728): the metadata document and `resource_metadata` in every
//!   challenge, as the MCP authorization spec asks.
//!
//! # Guides
//!
//! - [Migrating from `jwt-authorizer`](guide::migrating_from_jwt_authorizer)
//! - [Running it in production](guide::deployment): key rotation, outages, clock skew,
//!   horizontal scaling, revocation, metrics.
//!
//! # Features
//!
//! - `axum` (default): the [`Claims`], [`VerifiedToken`] and [`RequireScopes`] extractors.
//! - `metrics`: counters and gauges through the [`metrics`](https://docs.rs/metrics) facade
//!   (listed in the [deployment guide](guide::deployment#observability)).
//! - `redis`: a [`RevocationList`] shared by every replica through Redis.
//! - `test-util`: a `TestIssuer` for your own tests (discovery, JWKS, token minting, rotation,
//!   outages on loopback).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::unwrap_used
)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod algorithm;
mod authenticator;
mod authorize;
mod base64url;
mod builder;
mod cache;
mod claims;
mod clock;
pub mod dpop;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
pub mod guide;
mod introspection;
mod issuer;
mod json;
mod jws;
mod keys;
mod layer;
mod resource;
mod response;
mod revocation;
mod service;
mod signature;
mod telemetry;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
mod token;
mod verify;

pub use algorithm::{Algorithm, UnsupportedAlgorithm};
pub use authorize::{Authorize, AuthorizeFuture, AuthorizeService};
pub use builder::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, DEFAULT_TOKEN_CACHE_BYTES, JwtAuthBuilder,
};
pub use claims::{
    Audience, Claims, DateOutOfRange, KEYCLOAK_REALM_ROLES, NumericDate, RegisteredClaims,
    VerifiedToken,
};
pub use clock::{Clock, SystemClock};
pub use dpop::{ClientCertificate, Confirmation};
pub use error::{AuthError, ConfigError, ErrorCode};
#[cfg(feature = "axum")]
pub use extract::{ClaimsRejection, ClaimsRejectionKind, RequireScopes, ScopeRequirement};
pub use future::ResponseFuture;
pub use introspection::{ClientCredentials, INTROSPECTION_MAX_TTL, INTROSPECTION_NEGATIVE_TTL};
pub use issuer::Issuer;
pub use keys::{
    FetchCounts, FetchError, KeySetStatus, KeySource, RefreshPolicy, SharedKeys, SharedKeysBuilder,
    SkippedKey,
};
pub use layer::JwtAuthLayer;
pub use resource::{ProtectedResource, ProtectedResourceService, WELL_KNOWN_PREFIX};
pub use response::{DefaultRejection, RejectionResponse, www_authenticate};
pub use revocation::{
    DEFAULT_MAX_REVOCATIONS, FailureMode, RevocationError, RevocationList, RevocationListBuilder,
    RevocationStatus,
};
pub use service::JwtAuth;
pub use signature::{SignatureVerifier, VerifiedJws};
pub use token::TokenSource;

/// The HTTP client crate used for discovery and JWKS fetches, re-exported so that a client passed
/// to [`JwtAuthBuilder::http_client`] is always of the matching version.
pub use reqwest;

/// The README's examples, compiled as doc tests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
