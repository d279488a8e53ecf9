//! Keys turned, once, into what the signature check needs: one ready verifier per algorithm the key
//! may be used with.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};

use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};

/// RSA moduli below this size are refused (RFC 7518 §3.3, RFC 8725 §3.5).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// RSA moduli above this size are refused: the verifier would reject every signature anyway.
pub(crate) const MAX_RSA_BITS: usize = 8192;

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

/// A key of a key set, ready to verify with each algorithm it is allowed for.
#[derive(Debug)]
pub(crate) struct PreparedKey {
    pub(crate) kid: Option<Box<str>>,
    verifiers: Vec<(Algorithm, SignatureKey)>,
    /// SHA-256 over the `kid`, the key material and the algorithms: equal fingerprints mean the
    /// same key, so a refresh can keep the prepared key (and the cache entries it signed).
    pub(crate) fingerprint: [u8; 32],
}

impl PreparedKey {
    /// Prepares `material` for the algorithms it may verify: the one it is pinned to (the JWK's
    /// `alg`, or the algorithm configured with it), else every algorithm of `allowed` that fits its
    /// type. Errors say why the key can't be used.
    pub(crate) fn new(
        kid: Option<String>,
        material: KeyMaterial,
        pinned: Option<Algorithm>,
        allowed: AlgorithmSet,
    ) -> Result<Self, String> {
        let family = material.family();
        let candidates: Vec<Algorithm> = match pinned {
            Some(alg) if alg.family() != family => {
                return Err(format!("alg {alg} does not fit the key type"));
            }
            Some(alg) if !allowed.contains(alg) => {
                return Err(format!("alg {alg} is not allowed for this issuer"));
            }
            Some(alg) => vec![alg],
            None => allowed
                .iter()
                .filter(|alg| alg.family() == family)
                .collect(),
        };
        if candidates.is_empty() {
            return Err("no allowed algorithm fits the key type".to_owned());
        }

        let verifiers = match &material {
            KeyMaterial::Rsa { n, e } => prepare_rsa(n, e, &candidates)?,
            KeyMaterial::Ec { point, .. } => candidates
                .iter()
                .map(|&alg| {
                    let params = match alg {
                        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                        _ => &signature::ECDSA_P384_SHA384_FIXED,
                    };
                    ParsedPublicKey::new(params, point)
                        .map(|key| (alg, SignatureKey::Public(key)))
                        .map_err(|_| "EC point is not on the curve".to_owned())
                })
                .collect::<Result<_, _>>()?,
            KeyMaterial::Ed25519(x) => {
                if x.len() != 32 {
                    return Err("Ed25519 key is not 32 bytes".to_owned());
                }
                let key = ParsedPublicKey::new(&signature::ED25519, x)
                    .map_err(|_| "Ed25519 key is invalid".to_owned())?;
                vec![(Algorithm::EdDSA, SignatureKey::Public(key))]
            }
            KeyMaterial::Secret(secret) => prepare_hmac(secret, pinned, &candidates)?,
        };
        let fingerprint = fingerprint(kid.as_deref(), &material, &verifiers);
        Ok(Self {
            kid: kid.map(String::into_boxed_str),
            verifiers,
            fingerprint,
        })
    }

    /// Whether this is a shared secret (HMAC) rather than a public key.
    pub(crate) fn is_symmetric(&self) -> bool {
        self.verifiers
            .iter()
            .any(|(_, key)| matches!(key, SignatureKey::Hmac(_)))
    }

    /// The verifier for `alg`, if this key may be used with it.
    pub(crate) fn verifier(&self, alg: Algorithm) -> Option<&SignatureKey> {
        self.verifiers
            .iter()
            .find(|(candidate, _)| *candidate == alg)
            .map(|(_, key)| key)
    }
}

/// The primes of the ROCA test (Nemec et al., CCS 2017): a modulus made by the affected Infineon
/// library is, modulo each of them, a power of 65537.
const ROCA_PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// Whether `n` (big-endian) has the ROCA fingerprint: `n mod p` lies in the subgroup generated by
/// 65537 for every prime of [`ROCA_PRIMES`]. A random modulus passes this by chance with odds far
/// below 2^-100.
fn has_roca_fingerprint(n: &[u8]) -> bool {
    ROCA_PRIMES.iter().all(|&p| {
        let residue = n
            .iter()
            .fold(0u32, |r, byte| (r * 256 + u32::from(*byte)) % p);
        let generator = 65537 % p;
        let mut power = 1;
        // The subgroup has at most p − 1 elements.
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p;
        }
        false
    })
}

fn fingerprint(
    kid: Option<&str>,
    material: &KeyMaterial,
    verifiers: &[(Algorithm, SignatureKey)],
) -> [u8; 32] {
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
    for (alg, _) in verifiers {
        field(alg.as_str().as_bytes());
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn prepare_rsa(
    n: &[u8],
    e: &[u8],
    candidates: &[Algorithm],
) -> Result<Vec<(Algorithm, SignatureKey)>, String> {
    // RFC 7518 §6.3.1.1 forbids leading zeros, but some issuers send one; they don't change the value.
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(format!("RSA key of {bits} bits is under {MIN_RSA_BITS}"));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!("RSA key of {bits} bits is over {MAX_RSA_BITS}"));
    }
    // An even or tiny exponent is not a working RSA key (e = 1 makes every "signature" the
    // padded hash itself); exponents beyond 64 bits are not used by any real key.
    let exponent = (e.len() <= 8).then(|| {
        e.iter()
            .fold(0u64, |value, byte| (value << 8) | u64::from(*byte))
    });
    if !exponent.is_some_and(|value| value >= 3 && value % 2 == 1) {
        return Err("RSA public exponent must be odd, at least 3 and at most 64 bits".to_owned());
    }
    if has_roca_fingerprint(n) {
        return Err(
            "RSA key has the ROCA fingerprint (CVE-2017-15361): its private key can be computed"
                .to_owned(),
        );
    }
    let components = RsaPublicKeyComponents { n, e };
    candidates
        .iter()
        .map(|&alg| {
            let params = match alg {
                Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            components
                .to_parsed_public_key(params)
                .map(|key| (alg, SignatureKey::Public(key)))
                .map_err(|_| "RSA key is invalid".to_owned())
        })
        .collect()
}

fn prepare_hmac(
    secret: &[u8],
    pinned: Option<Algorithm>,
    candidates: &[Algorithm],
) -> Result<Vec<(Algorithm, SignatureKey)>, String> {
    // RFC 7518 §3.2: the key must be at least as long as the hash output.
    let long_enough = |alg: Algorithm| secret.len() >= hmac_min_len(alg);
    if let Some(alg) = pinned.filter(|alg| !long_enough(*alg)) {
        return Err(format!(
            "shared secret of {} bytes is shorter than the {} bytes {alg} requires",
            secret.len(),
            hmac_min_len(alg)
        ));
    }
    let verifiers: Vec<_> = candidates
        .iter()
        .filter(|alg| long_enough(**alg))
        .map(|&alg| {
            let algorithm = match alg {
                Algorithm::HS256 => hmac::HMAC_SHA256,
                Algorithm::HS384 => hmac::HMAC_SHA384,
                _ => hmac::HMAC_SHA512,
            };
            (
                alg,
                SignatureKey::Hmac(Box::new(hmac::Key::new(algorithm, secret))),
            )
        })
        .collect();
    if verifiers.is_empty() {
        return Err(format!(
            "shared secret of {} bytes is shorter than the 32 bytes HS256 requires",
            secret.len()
        ));
    }
    Ok(verifiers)
}

fn hmac_min_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_length(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> AlgorithmSet {
        Algorithm::ALL.into_iter().collect()
    }

    #[test]
    fn counts_rsa_modulus_bits() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        let mut n = vec![0xff; 256];
        assert_eq!(bit_length(&n), 2048);
        n[0] = 0x7f;
        assert_eq!(bit_length(&n), 2047);
    }

    #[test]
    fn refuses_short_rsa_keys() {
        let n = vec![0xc1; 255];
        let err = PreparedKey::new(
            None,
            KeyMaterial::Rsa {
                n,
                e: vec![1, 0, 1],
            },
            None,
            all(),
        )
        .unwrap_err();
        assert!(err.contains("under 2048"), "{err}");
    }

    #[test]
    fn refuses_rsa_exponents_that_are_even_tiny_or_huge() {
        let n = vec![0xc1; 256];
        for e in [
            vec![1],
            vec![0, 1],
            vec![2],
            vec![1, 0, 0],
            vec![1; 9],
            vec![],
        ] {
            let err = PreparedKey::new(
                None,
                KeyMaterial::Rsa {
                    n: n.clone(),
                    e: e.clone(),
                },
                None,
                all(),
            )
            .unwrap_err();
            assert!(err.contains("exponent"), "{e:?}: {err}");
        }
    }

    #[test]
    fn detects_the_roca_fingerprint() {
        // 65537^k mod p for every test prime: a product of such residues is one too, so a number
        // built from powers of 65537 carries the fingerprint; ordinary moduli don't.
        let mut roca_like = vec![0u8; 256];
        roca_like[253] = 0x01;
        roca_like[254] = 0x00;
        roca_like[255] = 0x01; // 65537 itself
        assert!(has_roca_fingerprint(&roca_like));
        let rsa_a = vec![0xc1; 256];
        assert!(!has_roca_fingerprint(&rsa_a));
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
    fn prepares_a_secret_only_for_hashes_it_is_long_enough_for() {
        let key = PreparedKey::new(None, KeyMaterial::Secret(vec![7; 48]), None, all()).unwrap();
        assert!(key.verifier(Algorithm::HS256).is_some());
        assert!(key.verifier(Algorithm::HS384).is_some());
        assert!(key.verifier(Algorithm::HS512).is_none());
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
