//! One DPoP proof (RFC 9449 §4.2), checked as §4.3 asks: a compact JWS of type `dpop+jwt`, signed
//! with the public key in its own header by an allowed asymmetric algorithm, for this method and
//! URI, recent, with the access token's hash.

use std::sync::Arc;

use aws_lc_rs::digest;
use serde::Deserialize;

use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};
use crate::base64url;
use crate::error::AuthError;
use crate::json::{JsonObject, ObjectError};
use crate::jws::{CompactJws, media_type_matches};
use crate::keys::{KeyMaterial, PreparedKey};

use super::thumbprint::Thumbprint;

/// The longest `jti` accepted, in bytes.
const MAX_JTI_LEN: usize = 256;

/// A proof whose signature verified with the key in its header.
#[derive(Debug)]
pub(crate) struct Proof {
    /// The RFC 7638 thumbprint of the proof key, base64url.
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) htm: String,
    pub(crate) htu: String,
    pub(crate) iat: i64,
    pub(crate) ath: Option<String>,
    pub(crate) nonce: Option<String>,
}

fn invalid(reason: &'static str) -> AuthError {
    AuthError::InvalidDpopProof(reason)
}

/// How many bytes of headers and prepared keys [`ProofKeys`] holds.
const PROOF_KEYS_BYTES: u64 = 1 << 20;

/// Proof keys already prepared, by the exact encoded header they came in. A client signs all its
/// proofs with one key, so they share one header byte for byte; a proof whose header is known
/// skips decoding and parsing it a second time, reading its `jwk`, checking and preparing the key
/// and hashing its thumbprint. Everything kept is a function of the header's bytes alone, and a
/// key is kept only once a proof's signature verified with it; every proof's own signature is
/// checked with the key whether it was kept or not. Bounded in bytes; a flood of new keys only
/// evicts.
pub(crate) struct ProofKeys(quick_cache::sync::Cache<Box<str>, Arc<ProofKey>, ProofKeyBytes>);

impl Default for ProofKeys {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::with_weighter(
            1024,
            PROOF_KEYS_BYTES,
            ProofKeyBytes,
        ))
    }
}

/// A proof's key, ready to verify, and its RFC 7638 thumbprint (base64url).
struct ProofKey {
    key: PreparedKey,
    jkt: String,
}

/// Weighs a kept key by its header, plus a generous allowance for the prepared key (an RSA key's
/// is the largest).
#[derive(Clone, Copy)]
struct ProofKeyBytes;

impl quick_cache::Weighter<Box<str>, Arc<ProofKey>> for ProofKeyBytes {
    fn weight(&self, header: &Box<str>, _: &Arc<ProofKey>) -> u64 {
        1024 + u64::try_from(header.len()).unwrap_or(u64::MAX)
    }
}

/// The members of a proof's `jwk` this crate reads; private members are looked for so that a
/// key carrying them is refused.
#[derive(Deserialize)]
struct ProofJwk {
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<serde_json::Value>,
    p: Option<serde_json::Value>,
    q: Option<serde_json::Value>,
    dp: Option<serde_json::Value>,
    dq: Option<serde_json::Value>,
    qi: Option<serde_json::Value>,
    oth: Option<serde_json::Value>,
    k: Option<serde_json::Value>,
}

impl ProofJwk {
    fn has_private_members(&self) -> bool {
        [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth, &self.k,
        ]
        .iter()
        .any(|member| member.is_some())
    }
}

fn member(value: &Option<String>) -> Result<(&str, Vec<u8>), AuthError> {
    let text = value
        .as_deref()
        .ok_or(invalid("jwk lacks a required member"))?;
    let bytes = base64url::decode(text).ok_or(invalid("jwk member is not base64url"))?;
    Ok((text, bytes))
}

/// The proof's key, ready to verify with `alg`, and its thumbprint.
fn proof_key(jwk: &ProofJwk, alg: Algorithm) -> Result<(PreparedKey, Thumbprint), AuthError> {
    if jwk.has_private_members() {
        return Err(invalid("jwk holds private key material"));
    }
    if let Some(pinned) = jwk.alg.as_deref()
        && pinned != alg.as_str()
    {
        return Err(invalid("jwk alg differs from the proof's alg"));
    }
    let (material, thumbprint) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (family, size) = if crv == "P-256" {
                (KeyFamily::EcP256, 32)
            } else {
                (KeyFamily::EcP384, 48)
            };
            let (x_text, x) = member(&jwk.x)?;
            let (y_text, y) = member(&jwk.y)?;
            if x.len() != size || y.len() != size {
                return Err(invalid("jwk coordinates have the wrong length"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (
                KeyMaterial::Ec { family, point },
                Thumbprint::ec(crv, x_text, y_text),
            )
        }
        ("RSA", _) => {
            let (n_text, n) = member(&jwk.n)?;
            let (e_text, e) = member(&jwk.e)?;
            (KeyMaterial::Rsa { n, e }, Thumbprint::rsa(e_text, n_text))
        }
        ("OKP", Some("Ed25519")) => {
            let (x_text, x) = member(&jwk.x)?;
            (KeyMaterial::Ed25519(x), Thumbprint::okp("Ed25519", x_text))
        }
        _ => return Err(invalid("jwk is not a supported public key")),
    };
    let mut allowed = AlgorithmSet::default();
    allowed.insert(alg);
    // The weak-key rules of `keys::weak` apply: RSA size and exponent, EC points, Ed25519 points.
    let key = PreparedKey::new(None, material, Some(alg), allowed)
        .map_err(|_| invalid("jwk is not a usable key for the proof's alg"))?;
    Ok((key, thumbprint))
}

/// Parses `text` as a proof and checks its form, type, key and signature. The claims' values
/// (method, URI, time, token hash, nonce, replay) are the caller's to compare.
pub(crate) fn verify_proof(
    text: &str,
    algorithms: AlgorithmSet,
    keys: &ProofKeys,
) -> Result<Proof, AuthError> {
    let jws = CompactJws::parse(text).map_err(|error| match error {
        AuthError::UnsecuredToken => invalid("unsecured proof"),
        AuthError::UnsupportedAlgorithm => invalid("alg not supported"),
        AuthError::UnsupportedCriticalHeader => invalid("unsupported crit"),
        _ => invalid("malformed proof"),
    })?;
    let header = &jws.header;
    if !header
        .typ
        .as_deref()
        .is_some_and(|typ| media_type_matches(typ, "dpop+jwt"))
    {
        return Err(invalid("typ is not dpop+jwt"));
    }
    if !algorithms.contains(header.alg) || header.alg.is_symmetric() {
        return Err(invalid("alg not allowed"));
    }
    let known = keys.0.get(jws.encoded_header);
    let proof_key = match &known {
        Some(known) => Arc::clone(known),
        None => Arc::new(header_key(jws.encoded_header, header.alg)?),
    };
    let verifier = proof_key
        .key
        .verifier(header.alg)
        .ok_or(invalid("jwk is not a usable key for the proof's alg"))?;
    if !verifier.verify(jws.signing_input, &jws.signature) {
        return Err(invalid("signature invalid"));
    }
    if known.is_none() {
        keys.0
            .insert(jws.encoded_header.into(), Arc::clone(&proof_key));
    }

    let payload = std::str::from_utf8(&jws.payload).map_err(|_| invalid("malformed claims"))?;
    let claims = JsonObject::parse(payload).map_err(|error| match error {
        ObjectError::Malformed => invalid("claims are not a JSON object"),
        ObjectError::DuplicateMember => invalid("claims have a duplicate member"),
    })?;
    let string = |name: &'static str, reason: &'static str| {
        claims
            .get_str(name)
            .map_err(|()| invalid(reason))
            .map(|value| value.map(std::borrow::Cow::into_owned))
    };
    let jti = string("jti", "jti is not a string")?.ok_or(invalid("no jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(invalid("jti is empty or too long"));
    }
    let htm = string("htm", "htm is not a string")?.ok_or(invalid("no htm"))?;
    let htu = string("htu", "htu is not a string")?.ok_or(invalid("no htu"))?;
    let iat = claims
        .get_date("iat")
        .map_err(|_| invalid("iat is not a date"))?
        .ok_or(invalid("no iat"))?;
    let ath = string("ath", "ath is not a string")?;
    let nonce = string("nonce", "nonce is not a string")?;
    Ok(Proof {
        jkt: proof_key.jkt.clone(),
        jti,
        htm,
        htu,
        iat: iat.0,
        ath,
        nonce,
    })
}

/// The key in the proof header `encoded_header` (the `jwk` member), prepared for `alg`, and its
/// thumbprint.
fn header_key(encoded_header: &str, alg: Algorithm) -> Result<ProofKey, AuthError> {
    // The header was read once for `alg`/`typ`; `jwk` is read from the same bytes.
    let header_bytes =
        base64url::decode(encoded_header).ok_or(invalid("malformed proof header"))?;
    let header_text =
        std::str::from_utf8(&header_bytes).map_err(|_| invalid("malformed proof header"))?;
    let header_object =
        JsonObject::parse(header_text).map_err(|_| invalid("malformed proof header"))?;
    let jwk: ProofJwk = header_object
        .get("jwk")
        .map_err(|()| invalid("jwk is not a JSON Web Key"))?
        .ok_or(invalid("no jwk in the header"))?;
    let (key, thumbprint) = proof_key(&jwk, alg)?;
    Ok(ProofKey {
        key,
        jkt: thumbprint.encode(),
    })
}

/// `base64url(SHA-256(token))`, the `ath` of a proof sent with `token` (RFC 9449 §4.2).
pub(crate) fn access_token_hash(token: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token))
}
