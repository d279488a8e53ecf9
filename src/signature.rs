//! [`SignatureVerifier`]: the layer's signature step on its own, for a compact JWS whose payload is
//! not a JWT (a webhook body, a signed document) or whose claims you check yourself.

use std::fmt;
use std::sync::Arc;

use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::builder::DEFAULT_MAX_TOKEN_LEN;
use crate::error::{AuthError, ConfigError};
use crate::jws::CompactJws;
use crate::keys::{KeySet, KeySource};
use crate::verify::check_signature;

/// Checks the signature of a compact JWS with static keys, exactly as the layer does (strict
/// parsing, `alg: none`/JWE/`crit` refused, key chosen by `kid`, algorithm pinned by the key and
/// the allow-list), and nothing else: the payload is not read as claims.
///
/// ```
/// use tower_jwt_auth::{Algorithm, KeySource, SignatureVerifier};
///
/// // The key and JWS of RFC 7515, appendix A.1.
/// let verifier = SignatureVerifier::new(
///     &[KeySource::jwks_json(r#"{"keys":[{"kty":"oct",
///         "k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#)],
///     [Algorithm::HS256],
/// )?;
/// let jws = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
///     .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
///     .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// let verified = verifier.verify(jws)?;
/// assert_eq!(verified.algorithm, Algorithm::HS256);
/// assert!(verified.payload.starts_with(b"{\"iss\":\"joe\""));
///
/// // One bit off, and it is refused.
/// assert!(verifier.verify(&jws.replace(".dBjf", ".dBjg")).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SignatureVerifier {
    keys: KeySet,
    algorithms: AlgorithmSet,
    max_len: usize,
}

impl fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("keys", &self.keys.len())
            .field("algorithms", &self.algorithms)
            .field("max_len", &self.max_len)
            .finish()
    }
}

/// A JWS whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedJws {
    /// The algorithm it was signed with.
    pub algorithm: Algorithm,
    /// The header's `kid`.
    pub key_id: Option<String>,
    /// The header's `typ`.
    pub token_type: Option<String>,
    /// The decoded payload.
    pub payload: Vec<u8>,
}

impl SignatureVerifier {
    /// A verifier trusting the keys of `sources` for the algorithms `algorithms`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a bad key source or an empty allow-list, as for the layer; remote
    /// sources ([`KeySource::jwks_url`]) are refused, since nothing here refreshes them.
    pub fn new(
        sources: &[KeySource],
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, ConfigError> {
        let algorithms: AlgorithmSet = algorithms.into_iter().collect();
        if algorithms.is_empty() {
            return Err(ConfigError::Algorithm("the allow-list is empty".to_owned()));
        }
        if sources.is_empty() {
            return Err(ConfigError::NoKeys("signature verifier".to_owned()));
        }
        let mut keys = Vec::new();
        for source in sources {
            if source.is_remote() {
                return Err(ConfigError::InvalidSetting {
                    name: "SignatureVerifier::new",
                    reason: format!(
                        "`{}` is a remote source; use a JwtAuthLayer to fetch and refresh it",
                        source.name()
                    ),
                });
            }
            keys.extend(source.load(algorithms)?.into_iter().map(Arc::new));
        }
        Ok(Self {
            keys: KeySet::new(keys),
            algorithms,
            max_len: DEFAULT_MAX_TOKEN_LEN,
        })
    }

    /// The longest JWS accepted, in bytes; longer ones are refused before any decoding.
    /// Default: 8 KiB ([`DEFAULT_MAX_TOKEN_LEN`]).
    #[must_use]
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Parses `jws` strictly and checks its signature.
    ///
    /// # Errors
    ///
    /// The [`AuthError`] the layer would give for the same header and signature: e.g.
    /// [`AuthError::MalformedToken`], [`AuthError::AlgorithmNotAllowed`],
    /// [`AuthError::UnknownKey`], [`AuthError::InvalidSignature`], and
    /// [`AuthError::TokenTooLarge`] past [`max_len`](Self::max_len).
    pub fn verify(&self, jws: &str) -> Result<VerifiedJws, AuthError> {
        if jws.len() > self.max_len {
            return Err(AuthError::TokenTooLarge);
        }
        let jws = CompactJws::parse(jws)?;
        if !self.algorithms.contains(jws.header.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        check_signature(&jws, &self.keys)
            .map_err(|error| error.unwrap_or(AuthError::UnknownKey))?;
        Ok(VerifiedJws {
            algorithm: jws.header.alg,
            key_id: jws.header.kid.as_deref().map(str::to_owned),
            token_type: jws.header.typ.as_deref().map(str::to_owned),
            payload: jws.payload,
        })
    }
}
