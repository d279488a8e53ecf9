//! Keys turned, once, into what the signature check needs: one ready verifier per algorithm the key
//! may be used with.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};

use super::weak;
use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};

/// The public (or, for HMAC, secret) numbers of a key, before preparation.
pub(crate) enum KeyMaterial {
    /// Big-endian modulus and exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed point `04 || x || y` on the curve of `family`.
    Ec { family: KeyFamily, point: Vec<u8> },
    /// The 32-byte Ed25519 public key.
    Ed25519(Vec<u8>),
    /// An HMAC shared secret.
    Secret(Vec<u8>),
}

impl KeyMaterial {
    fn family(&self) -> KeyFamily {
        match self {
            Self::Rsa { .. } => KeyFamily::Rsa,
            Self::Ec { family, .. } => *family,
            Self::Ed25519(_) => KeyFamily::Ed25519,
            Self::Secret(_) => KeyFamily::Hmac,
        }
    }
}

/// A verifier bound to one key and one algorithm.
pub(crate) enum SignatureKey {
    Public(ParsedPublicKey),
    // Boxed: an HMAC key is over a kilobyte, a parsed public key a pointer and a few words.
    Hmac(Box<hmac::Key>),
}

impl SignatureKey {
    /// Checks `signature` over `message`. HMAC tags are compared in constant time.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Public(key) => key.verify_sig(message, signature).is_ok(),
            Self::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

impl std::fmt::Debug for SignatureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(match self {
            Self::Public(_) => "SignatureKey::Public",
            Self::Hmac(_) => "SignatureKey::Hmac",
        })
    }
}

/// A key of a key set, ready to verify with the one algorithm it serves.
#[derive(Debug)]
pub(crate) struct PreparedKey {
    pub(crate) kid: Option<Box<str>>,
    algorithm: Algorithm,
    verifier: SignatureKey,
    /// SHA-256 over the `kid`, the key material and the algorithm: equal fingerprints mean the
    /// same key, so a refresh can keep the prepared key (and the cache entries it signed).
    pub(crate) fingerprint: [u8; 32],
}

impl PreparedKey {
    /// Prepares `material` for the one algorithm it may verify (RFC 8725 §3.1): the one it is
    /// pinned to (the JWK's `alg`, or the algorithm configured with it), else the first algorithm
    /// of its family in `allowed` (RS256 before PS*, HS256 before HS384 in the default list).
    /// Errors say why the key can't be used; the rules are in [`super::weak`].
    pub(crate) fn new(
        kid: Option<String>,
        material: KeyMaterial,
        pinned: Option<Algorithm>,
        allowed: AlgorithmSet,
    ) -> Result<Self, String> {
        let family = material.family();
        let algorithm = match pinned {
            Some(alg) if alg.family() != family => {
                return Err(format!("alg {alg} does not fit the key type"));
            }
            Some(alg) if !allowed.contains(alg) => {
                return Err(format!("alg {alg} is not allowed for this issuer"));
            }
            Some(alg) => alg,
            None => allowed
                .first_of(family)
                .ok_or_else(|| "no allowed algorithm fits the key type".to_owned())?,
        };

        let verifier = match &material {
            KeyMaterial::Rsa { n, e } => prepare_rsa(n, e, algorithm)?,
            KeyMaterial::Ec { family, point } => {
                weak::check_ec_point(*family, point)?;
                let params = match algorithm {
                    Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    _ => &signature::ECDSA_P384_SHA384_FIXED,
                };
                ParsedPublicKey::new(params, point)
                    .map(SignatureKey::Public)
                    .map_err(|_| "EC point is not on the curve".to_owned())?
            }
            KeyMaterial::Ed25519(x) => {
                weak::check_ed25519_point(x)?;
                ParsedPublicKey::new(&signature::ED25519, x)
                    .map(SignatureKey::Public)
                    .map_err(|_| "Ed25519 key is invalid".to_owned())?
            }
            KeyMaterial::Secret(secret) => prepare_hmac(secret, algorithm)?,
        };
        let fingerprint = fingerprint(kid.as_deref(), &material, algorithm);
        Ok(Self {
            kid: kid.map(String::into_boxed_str),
            algorithm,
            verifier,
            fingerprint,
        })
    }

    /// Whether this is a shared secret (HMAC) rather than a public key.
    pub(crate) fn is_symmetric(&self) -> bool {
        matches!(self.verifier, SignatureKey::Hmac(_))
    }

    /// The algorithm this key serves.
    #[cfg(test)]
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The verifier for `alg`, if this key may be used with it.
    pub(crate) fn verifier(&self, alg: Algorithm) -> Option<&SignatureKey> {
        (alg == self.algorithm).then_some(&self.verifier)
    }
}

fn fingerprint(kid: Option<&str>, material: &KeyMaterial, algorithm: Algorithm) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    // Each field is length-prefixed, so that no two different keys hash the same input.
    let mut field = |bytes: &[u8]| {
        context.update(&(bytes.len() as u64).to_be_bytes());
        context.update(bytes);
    };
    field(kid.map_or(b"\0no-kid".as_slice(), str::as_bytes));
    match material {
        KeyMaterial::Rsa { n, e } => {
            field(b"RSA");
            field(n);
            field(e);
        }
        KeyMaterial::Ec { family, point } => {
            field(format!("{family:?}").as_bytes());
            field(point);
        }
        KeyMaterial::Ed25519(x) => {
            field(b"Ed25519");
            field(x);
        }
        KeyMaterial::Secret(secret) => {
            field(b"oct");
            field(secret);
        }
    }
    field(algorithm.as_str().as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn prepare_rsa(n: &[u8], e: &[u8], algorithm: Algorithm) -> Result<SignatureKey, String> {
    let (n, e) = weak::check_rsa(n, e)?;
    let params = match algorithm {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        _ => &signature::RSA_PSS_2048_8192_SHA512,
    };
    RsaPublicKeyComponents { n, e }
        .to_parsed_public_key(params)
        .map(SignatureKey::Public)
        .map_err(|_| "RSA key is invalid".to_owned())
}

fn prepare_hmac(secret: &[u8], algorithm: Algorithm) -> Result<SignatureKey, String> {
    weak::check_hmac_secret(secret, algorithm)?;
    let algorithm = match algorithm {
        Algorithm::HS256 => hmac::HMAC_SHA256,
        Algorithm::HS384 => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    Ok(SignatureKey::Hmac(Box::new(hmac::Key::new(
        algorithm, secret,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> AlgorithmSet {
        Algorithm::ALL.into_iter().collect()
    }

    #[test]
    fn refuses_a_pinned_algorithm_of_another_family() {
        let err = PreparedKey::new(
            None,
            KeyMaterial::Secret(vec![7; 32]),
            Some(Algorithm::RS256),
            all(),
        )
        .unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn refuses_a_pinned_algorithm_outside_the_allow_list() {
        let allowed: AlgorithmSet = [Algorithm::HS512].into_iter().collect();
        let err = PreparedKey::new(
            None,
            KeyMaterial::Secret(vec![7; 64]),
            Some(Algorithm::HS256),
            allowed,
        )
        .unwrap_err();
        assert!(err.contains("not allowed"), "{err}");
    }

    #[test]
    fn prepares_a_key_without_alg_for_one_algorithm() {
        let key = PreparedKey::new(None, KeyMaterial::Secret(vec![7; 48]), None, all()).unwrap();
        assert!(key.verifier(Algorithm::HS256).is_some());
        // A key without `alg` serves one algorithm: the first of its family in the allow-list.
        assert!(key.verifier(Algorithm::HS384).is_none());
        assert!(key.verifier(Algorithm::HS512).is_none());
        let hs384_first: AlgorithmSet = [Algorithm::HS384, Algorithm::HS256].into_iter().collect();
        let key =
            PreparedKey::new(None, KeyMaterial::Secret(vec![7; 48]), None, hs384_first).unwrap();
        assert_eq!(key.algorithm(), Algorithm::HS384);
        assert!(key.verifier(Algorithm::HS256).is_none());
        assert!(key.verifier(Algorithm::RS256).is_none());
        assert!(PreparedKey::new(None, KeyMaterial::Secret(vec![7; 31]), None, all()).is_err());
    }

    #[test]
    fn refuses_points_off_the_curve() {
        let mut point = vec![4];
        point.extend([1u8; 64]);
        let material = KeyMaterial::Ec {
            family: KeyFamily::EcP256,
            point,
        };
        assert!(PreparedKey::new(None, material, None, all()).is_err());
    }

    #[test]
    fn hmac_verification_checks_the_tag() {
        let key = PreparedKey::new(None, KeyMaterial::Secret(vec![9; 32]), None, all()).unwrap();
        let verifier = key.verifier(Algorithm::HS256).unwrap();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[9; 32]), b"msg");
        assert!(verifier.verify(b"msg", tag.as_ref()));
        assert!(!verifier.verify(b"msh", tag.as_ref()));
        assert!(!verifier.verify(b"msg", &tag.as_ref()[..31]));
    }
}
