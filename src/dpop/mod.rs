//! Sender-constrained tokens: DPoP (RFC 9449) and certificate-bound tokens (RFC 8705).
//!
//! A stolen bearer token works for whoever holds it. A *DPoP-bound* token (`cnf.jkt`, the
//! RFC 7638 thumbprint of the client's key) works only with a fresh proof, signed by that key,
//! for this very request: `Authorization: DPoP <token>` and one `DPoP: <proof>` header.
//!
//! Turn DPoP on per issuer with [`Issuer::dpop`](crate::Issuer::dpop), and tell the layer the URL
//! clients address it by ([`JwtAuthBuilder::external_url`](crate::JwtAuthBuilder::external_url)),
//! since the proof names it (`htu`) and the service usually sits behind a proxy:
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_auth::dpop::{DpopConfig, DpopPolicy, RotatingNonces};
//! use tower_jwt_auth::{Issuer, JwtAuthLayer, KeySource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_jwt_auth::ConfigError> {
//! let auth = JwtAuthLayer::<serde_json::Value>::builder()
//!     .issuer(
//!         Issuer::new("https://auth.example.com/")
//!             .audience("orders-api")
//!             .key(KeySource::shared_secret(b"an example secret of at least 32 bytes"))
//!             .dpop(DpopPolicy::Required),
//!     )
//!     .external_url("https://api.example.com")
//!     .dpop(DpopConfig::default().nonces(RotatingNonces::new(Duration::from_secs(300))))
//!     .build()
//!     .await?;
//! # let _ = auth;
//! # Ok(())
//! # }
//! ```
//!
//! # What is checked (RFC 9449 §4.3, §7)
//!
//! - `Authorization: DPoP <token>` with exactly one `DPoP` header; a proof that is a compact JWS
//!   with `typ: dpop+jwt`, an allowed asymmetric `alg` ([`DpopConfig::algorithms`]), a `jwk`
//!   header that is a public key (no private members; the crate's weak-key rules apply), and a
//!   signature that verifies with it;
//! - `htm` equal to the method, `htu` equal to the request URL (external base URL plus path;
//!   query and fragment ignored; scheme and host compared without case, default ports dropped);
//! - `iat` within [`DpopConfig::proof_window`] of the layer's clock, on either side;
//! - `jti` not seen before within that window ([`ReplayCache`]);
//! - `ath` equal to `base64url(SHA-256(token))`, and the token's `cnf.jkt` equal to the proof
//!   key's thumbprint;
//! - with [`DpopConfig::nonces`], a current server nonce (`401 use_dpop_nonce` with a
//!   `DPoP-Nonce` header otherwise).
//!
//! A DPoP-bound token sent as `Bearer` is refused whatever the policy (no downgrade); under
//! [`DpopPolicy::Required`] a plain bearer token is refused. A token with `cnf.x5t#S256` needs the
//! matching [`ClientCertificate`].
//!
//! Challenges carry `WWW-Authenticate: DPoP algs="…"`, plus a `Bearer` challenge while some
//! issuer still accepts bearer tokens.
//!
//! # Deployment caveats
//!
//! - The replay cache is per process by default ([`InMemoryReplayCache`]). Behind a load balancer,
//!   a proof replayed within its window to another replica passes there unless the replicas share
//!   a [`ReplayCache`]; server nonces ([`RotatingNonces::with_secret`]) shorten that window.
//! - `DPoP-Nonce` is sent on `use_dpop_nonce` challenges only, not on successful responses: a
//!   client learns a rotated nonce from one extra `401`.

mod binding;
mod nonce;
mod proof;
mod replay;
mod thumbprint;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::algorithm::{Algorithm, AlgorithmSet};

pub use binding::{ClientCertificate, Confirmation, OriginalRequest};
pub(crate) use binding::{SenderConstraint, external_base};
pub use nonce::{MIN_NONCE_SECRET_LEN, NonceSource, RotatingNonces};
pub use replay::{DEFAULT_REPLAY_CAPACITY, InMemoryReplayCache, ReplayCache, ReplayCheck};
pub use thumbprint::jwk_thumbprint;

/// Whether an issuer's tokens may, or must, be DPoP-bound. Set with
/// [`Issuer::dpop`](crate::Issuer::dpop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopPolicy {
    /// `Authorization: DPoP` is not accepted for the issuer. (A token with `cnf.jkt` is still
    /// refused as a bearer token.)
    #[default]
    Disabled,
    /// Plain bearer tokens and DPoP-bound tokens with proofs are both accepted.
    Allowed,
    /// Only DPoP-bound tokens with proofs are accepted.
    Required,
}

/// The algorithms a DPoP proof may use by default: ES256, EdDSA, RS256 and PS256.
pub const DEFAULT_DPOP_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// The default time a proof is accepted around its `iat`: 60 seconds on either side.
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);

/// How DPoP proofs are checked, for every issuer that allows them; set with
/// [`JwtAuthBuilder::dpop`](crate::JwtAuthBuilder::dpop).
#[derive(Clone)]
#[must_use]
pub struct DpopConfig {
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) window: Duration,
    pub(crate) replay: Option<Arc<dyn ReplayCache>>,
    pub(crate) nonces: Option<Arc<dyn NonceSource>>,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            algorithms: DEFAULT_DPOP_ALGORITHMS.to_vec(),
            window: DEFAULT_PROOF_WINDOW,
            replay: None,
            nonces: None,
        }
    }
}

impl fmt::Debug for DpopConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopConfig")
            .field("algorithms", &self.algorithms)
            .field("window", &self.window)
            .field("custom_replay_cache", &self.replay.is_some())
            .field("nonces", &self.nonces.is_some())
            .finish()
    }
}

impl DpopConfig {
    /// The algorithms proofs may be signed with, in the order advertised in `algs`. Only
    /// asymmetric ones: an HMAC algorithm makes [`build`](crate::JwtAuthBuilder::build) fail.
    /// Default: [`DEFAULT_DPOP_ALGORITHMS`].
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How far a proof's `iat` may be from the layer's clock, before or after. Replay entries
    /// are kept this long past `iat`. Default: [`DEFAULT_PROOF_WINDOW`] (60 s).
    pub fn proof_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Where accepted proofs are remembered. Default: an [`InMemoryReplayCache`] of
    /// [`DEFAULT_REPLAY_CAPACITY`] entries.
    pub fn replay_cache(mut self, cache: impl ReplayCache) -> Self {
        self.replay = Some(Arc::new(cache));
        self
    }

    /// Requires proofs to carry a server nonce from `nonces` (RFC 9449 §9). Default: no nonce.
    pub fn nonces(mut self, nonces: impl NonceSource) -> Self {
        self.nonces = Some(Arc::new(nonces));
        self
    }

    pub(crate) fn algorithm_set(&self) -> AlgorithmSet {
        self.algorithms.iter().copied().collect()
    }

    /// The `algs` value of the `DPoP` challenge.
    pub(crate) fn algs_param(&self) -> String {
        let names: Vec<&str> = self.algorithms.iter().map(|alg| alg.as_str()).collect();
        names.join(" ")
    }
}

/// The method the client used, read from a request: the [`OriginalRequest`] if trusted code put
/// one there, else the request's own.
pub(crate) fn method_of(request_method: &Method, original: Option<&OriginalRequest>) -> Method {
    original.map_or_else(|| request_method.clone(), |o| o.method.clone())
}

/// The `WWW-Authenticate` challenges of a layer that accepts DPoP (RFC 9449 §7.1): `DPoP` with
/// `algs`, carrying the error, then, if bearer tokens are accepted too, `Bearer` carrying it as
/// well unless it concerns the DPoP proof alone.
pub(crate) fn challenges(
    headers: &mut http::HeaderMap,
    error: &crate::AuthError,
    realm: Option<&str>,
    algs: &str,
    bearer: bool,
    extra: &[(&str, &str)],
) {
    use crate::AuthError;
    use crate::response::challenge;
    use http::header::WWW_AUTHENTICATE;

    headers.append(
        WWW_AUTHENTICATE,
        challenge(
            "DPoP",
            Some(error),
            realm,
            &[&[("algs", algs)], extra].concat(),
        ),
    );
    if bearer {
        let proof_only = matches!(
            error,
            AuthError::InvalidDpopProof(_) | AuthError::UseDpopNonce { .. }
        );
        headers.append(
            WWW_AUTHENTICATE,
            challenge("Bearer", (!proof_only).then_some(error), realm, extra),
        );
    }
}
