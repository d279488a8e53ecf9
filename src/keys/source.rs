//! Where keys come from: a JWKS (text, file or URL), issuer discovery, a PEM public key, a shared
//! secret.

use std::fmt;
use std::path::PathBuf;

use jsonwebtoken::DecodingKey;

use super::jwk::{JwkOrigin, parse_jwks};
use super::prepared::{KeyMaterial, PreparedKey};
use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};
use crate::error::ConfigError;

/// Where an issuer's signing keys come from.
///
/// Static sources are read when the layer is built; a bad source fails the build with a
/// [`ConfigError`] that names it. Keys inside a JWKS that can't be used (an encryption key, an
/// unsupported curve, RSA under 2048 bits …) are skipped one by one with a warning; the build fails
/// only if none is left.
///
/// A [`jwks_url`](Self::jwks_url) (or [`Issuer::discover`](crate::Issuer::discover)) is fetched
/// when the layer is built and kept fresh in the background; see
/// [`RefreshPolicy`](crate::RefreshPolicy).
///
/// ```
/// use tower_jwt_auth::{Algorithm, KeySource};
///
/// let remote = KeySource::jwks_url("https://auth.example.com/.well-known/jwks.json");
/// let from_jwks = KeySource::jwks_json(r#"{"keys":[{"kty":"OKP","crv":"Ed25519",
///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed1"}]}"#);
/// let from_pem = KeySource::public_key_pem("-----BEGIN PUBLIC KEY-----\n…").with_kid("rsa-1");
/// let secret = KeySource::shared_secret(b"a shared secret of at least 32 bytes!")
///     .with_algorithm(Algorithm::HS256);
/// ```
#[derive(Clone)]
pub struct KeySource {
    kind: SourceKind,
    kid: Option<String>,
    algorithm: Option<Algorithm>,
}

#[derive(Clone)]
pub(crate) enum SourceKind {
    JwksJson(String),
    JwksFile(PathBuf),
    PublicKeyPem(Vec<u8>),
    SharedSecret(Vec<u8>),
    JwksUrl(String),
    /// The issuer's `jwks_uri`, found through its metadata.
    Discovery,
    /// A started set shared with other layers.
    Shared(super::SharedKeys),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is never printed.
        f.debug_struct("KeySource")
            .field("source", &self.name())
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl KeySource {
    /// A JWK Set as JSON text (`{"keys": [...]}`). `oct` (shared-secret) keys are allowed here,
    /// since the application supplied them.
    pub fn jwks_json(json: impl Into<String>) -> Self {
        Self::of(SourceKind::JwksJson(json.into()))
    }

    /// A JWK Set in a local file, read when the layer is built.
    pub fn jwks_file(path: impl Into<PathBuf>) -> Self {
        Self::of(SourceKind::JwksFile(path.into()))
    }

    /// A JWK Set fetched from `url` when the layer is built, then refreshed in the background
    /// (`Cache-Control: max-age` within the [`RefreshPolicy`](crate::RefreshPolicy) bounds,
    /// revalidated with `ETag`) and refetched when a token names an unknown `kid`.
    ///
    /// The URL must be `https`, or plain `http` to a loopback host (`127.0.0.0/8`, `::1`,
    /// `localhost`); other plain-`http` URLs need
    /// [`allow_insecure_http`](crate::JwtAuthBuilder::allow_insecure_http). `oct` (shared-secret)
    /// keys in a fetched set are never used. An issuer has at most one remote source.
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Self::of(SourceKind::JwksUrl(url.into()))
    }

    pub(crate) fn discovery() -> Self {
        Self::of(SourceKind::Discovery)
    }

    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`: RSA (2048 to 8192 bits),
    /// EC P-256 or P-384, or Ed25519. The key type is detected.
    pub fn public_key_pem(pem: impl AsRef<[u8]>) -> Self {
        Self::of(SourceKind::PublicKeyPem(pem.as_ref().to_vec()))
    }

    /// An HMAC shared secret (HS256/384/512), at least as long as the hash output (32, 48 or 64
    /// bytes, RFC 7518 §3.2). HMAC is only ever used with a secret configured like this.
    pub fn shared_secret(secret: impl AsRef<[u8]>) -> Self {
        Self::of(SourceKind::SharedSecret(secret.as_ref().to_vec()))
    }

    /// Gives a PEM key or shared secret a `kid`. Tokens naming another `kid` are not checked with
    /// it. Default: no `kid`, so the key serves any token of its issuer. Ignored for a JWKS (its
    /// keys carry their own).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Pins a PEM key or shared secret to one algorithm. Default: the first algorithm of the
    /// issuer's allow-list that fits the key type (RS256 for RSA, HS256 for a secret with the
    /// default list): a key serves one algorithm (RFC 8725 §3.1). Ignored for a JWKS (its keys
    /// carry their own `alg`, or get the same default).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// The keys of a started [`SharedKeys`](super::SharedKeys), shared with every other layer
    /// that uses them. It must be the issuer's only key source.
    pub fn shared(keys: &super::SharedKeys) -> Self {
        Self::of(SourceKind::Shared(keys.clone()))
    }

    fn of(kind: SourceKind) -> Self {
        Self {
            kind,
            kid: None,
            algorithm: None,
        }
    }

    /// A name for errors and logs; never the key itself.
    pub(crate) fn name(&self) -> String {
        match &self.kind {
            SourceKind::JwksJson(_) => "inline JWKS".to_owned(),
            SourceKind::JwksFile(path) => path.display().to_string(),
            SourceKind::PublicKeyPem(_) => "PEM public key".to_owned(),
            SourceKind::SharedSecret(_) => "shared secret".to_owned(),
            SourceKind::JwksUrl(url) => url.clone(),
            SourceKind::Discovery => "issuer discovery".to_owned(),
            SourceKind::Shared(_) => "shared keys".to_owned(),
        }
    }

    pub(crate) fn kind(&self) -> &SourceKind {
        &self.kind
    }

    /// Whether the keys are fetched over the network rather than read when the layer is built.
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.kind, SourceKind::JwksUrl(_) | SourceKind::Discovery)
    }

    /// Reads and prepares the keys of a static source for an issuer whose allow-list is `allowed`.
    /// Remote sources yield nothing here; they are fetched separately.
    pub(crate) fn load(&self, allowed: AlgorithmSet) -> Result<Vec<PreparedKey>, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidKey {
            source_name: self.name(),
            reason,
        };
        match &self.kind {
            SourceKind::JwksJson(text) => self.load_jwks(text, allowed),
            SourceKind::JwksFile(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::KeyFile {
                        path: path.clone(),
                        source,
                    })?;
                self.load_jwks(&text, allowed)
            }
            SourceKind::PublicKeyPem(pem) => {
                let material = material_from_pem(pem).map_err(invalid)?;
                let key = PreparedKey::new(self.kid.clone(), material, self.algorithm, allowed)
                    .map_err(invalid)?;
                Ok(vec![key])
            }
            SourceKind::SharedSecret(secret) => {
                let material = KeyMaterial::Secret(secret.clone());
                let key = PreparedKey::new(self.kid.clone(), material, self.algorithm, allowed)
                    .map_err(invalid)?;
                Ok(vec![key])
            }
            SourceKind::JwksUrl(_) | SourceKind::Discovery | SourceKind::Shared(_) => {
                Ok(Vec::new())
            }
        }
    }

    fn load_jwks(
        &self,
        text: &str,
        allowed: AlgorithmSet,
    ) -> Result<Vec<PreparedKey>, ConfigError> {
        let parsed = parse_jwks(text, JwkOrigin::Configured, allowed).map_err(|reason| {
            ConfigError::InvalidKey {
                source_name: self.name(),
                reason,
            }
        })?;
        for skipped in &parsed.skipped {
            tracing::warn!(
                source = %self.name(),
                kid = skipped.kid.as_deref().unwrap_or("-"),
                reason = %skipped.reason,
                "skipping unusable key"
            );
        }
        if parsed.keys.is_empty() {
            let reason = match parsed.skipped.first() {
                None => "the set is empty".to_owned(),
                Some(first) => format!("every key was skipped (first: {})", first.reason),
            };
            return Err(ConfigError::NoUsableKey {
                source_name: self.name(),
                reason,
            });
        }
        Ok(parsed.keys)
    }
}

/// Detects the type of a PEM public key and extracts its numbers.
fn material_from_pem(pem: &[u8]) -> Result<KeyMaterial, String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        let der = key.try_get_as_bytes().map_err(|err| err.to_string())?;
        let public = aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|_| "RSA public key is invalid".to_owned())?;
        return Ok(KeyMaterial::Rsa {
            n: public.modulus().big_endian_without_leading_zero().to_vec(),
            e: public.exponent().big_endian_without_leading_zero().to_vec(),
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        let point = key.try_get_as_bytes().map_err(|err| err.to_string())?;
        let family = match point.len() {
            65 => KeyFamily::EcP256,
            97 => KeyFamily::EcP384,
            _ => return Err("EC public key is not on P-256 or P-384".to_owned()),
        };
        return Ok(KeyMaterial::Ec {
            family,
            point: point.to_vec(),
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        let x = key.try_get_as_bytes().map_err(|err| err.to_string())?;
        return Ok(KeyMaterial::Ed25519(x.to_vec()));
    }
    Err("not a PEM RSA, EC (P-256/P-384) or Ed25519 public key".to_owned())
}
