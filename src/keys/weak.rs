//! The key-strength rules: which public keys and secrets are refused when a key set is loaded,
//! and why. `SECURITY.md` points here. A refused key is skipped alone, with its reason logged.
//!
//! - RSA: modulus of 2048 to 8192 bits (RFC 7518 §3.3, RFC 8725 §3.5); public exponent odd, at
//!   least 3 and at most 64 bits (`e = 1` makes every "signature" the padded hash itself); no
//!   ROCA fingerprint (CVE-2017-15361).
//! - EC (P-256, P-384): coordinates of exactly the field size and below the field prime (one
//!   encoding per point); the point on the curve, which aws-lc-rs checks when it parses the key.
//!   Both curves have cofactor 1, so there is no small subgroup to land in.
//! - Ed25519: 32 bytes, a canonical `y` (below 2^255 − 19), and not one of the eight points of
//!   small order. aws-lc-rs checks none of this when it parses the key, and verification with the
//!   identity point as key accepts `R = identity, S = 0` as a signature of any message.
//! - HMAC: a secret at least as long as the hash output (RFC 7518 §3.2).

use crate::algorithm::{Algorithm, KeyFamily};

/// RSA moduli below this size are refused (RFC 7518 §3.3, RFC 8725 §3.5).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// RSA moduli above this size are refused: the verifier would reject every signature anyway.
pub(crate) const MAX_RSA_BITS: usize = 8192;

/// Checks an RSA public key; returns `n` and `e` without leading zero bytes.
pub(crate) fn check_rsa<'a>(n: &'a [u8], e: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), String> {
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
    Ok((n, e))
}

/// The field prime of P-256, big-endian.
const P256_PRIME: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];
/// The field prime of P-384, big-endian.
const P384_PRIME: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
];

/// Checks the encoding of an uncompressed EC point `04 || x || y`: the coordinates must be of the
/// curve's size and below its prime, so that each point has one encoding. That the point lies on
/// the curve is checked by aws-lc-rs when the key is parsed.
pub(crate) fn check_ec_point(family: KeyFamily, point: &[u8]) -> Result<(), String> {
    let prime: &[u8] = match family {
        KeyFamily::EcP256 => &P256_PRIME,
        KeyFamily::EcP384 => &P384_PRIME,
        _ => return Err("not an EC curve".to_owned()),
    };
    let size = prime.len();
    let Some((&0x04, coordinates)) = point.split_first() else {
        return Err("EC point is not in uncompressed form".to_owned());
    };
    if coordinates.len() != 2 * size {
        return Err("EC coordinates have the wrong length for the curve".to_owned());
    }
    let (x, y) = coordinates.split_at(size);
    // Big-endian byte strings of equal length compare as the numbers they encode.
    if x >= prime || y >= prime {
        return Err("EC coordinate is not below the field prime".to_owned());
    }
    Ok(())
}

/// The `y` coordinates (little-endian, sign bit clear) of the eight Ed25519 points of small order:
/// 0 (two points, order 4), 1 (the identity), p − 1 (order 2) and two values of order 8, each
/// with either sign of `x`.
const ED25519_SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [0; 32],
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
];

/// Checks an Ed25519 public key (RFC 8032 §5.1.3 encoding): 32 bytes, `y` below 2^255 − 19, and
/// not a point of small order.
pub(crate) fn check_ed25519_point(encoded: &[u8]) -> Result<(), String> {
    let Ok(encoded) = <[u8; 32]>::try_from(encoded) else {
        return Err("Ed25519 key is not 32 bytes".to_owned());
    };
    let mut y = encoded;
    y[31] &= 0x7f;
    // y >= p = 2^255 - 19: the top 250 bits all set and the low byte at least 0xed.
    if y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed {
        return Err("Ed25519 key is not canonically encoded (y >= p)".to_owned());
    }
    if ED25519_SMALL_ORDER_Y.contains(&y) {
        return Err("Ed25519 key is a point of small order".to_owned());
    }
    Ok(())
}

/// Checks that an HMAC secret is at least as long as the hash output (RFC 7518 §3.2).
pub(crate) fn check_hmac_secret(secret: &[u8], algorithm: Algorithm) -> Result<(), String> {
    let min_len = match algorithm {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    };
    if secret.len() < min_len {
        return Err(format!(
            "shared secret of {} bytes is shorter than the {min_len} bytes {algorithm} requires",
            secret.len()
        ));
    }
    Ok(())
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
        let err = check_rsa(&[0xc1; 255], &[1, 0, 1]).unwrap_err();
        assert!(err.contains("under 2048"), "{err}");
        // Leading zeros don't count.
        let mut padded = vec![0; 2];
        padded.extend([0xc1; 255]);
        assert!(check_rsa(&padded, &[1, 0, 1]).is_err());
    }

    #[test]
    fn refuses_rsa_exponents_that_are_even_tiny_or_huge() {
        for e in [
            vec![1],
            vec![0, 1],
            vec![2],
            vec![1, 0, 0],
            vec![1; 9],
            vec![],
        ] {
            let err = check_rsa(&[0xc1; 256], &e).unwrap_err();
            assert!(err.contains("exponent"), "{e:?}: {err}");
        }
        assert!(check_rsa(&[0xc1; 256], &[3]).is_ok());
        assert!(check_rsa(&[0xc1; 256], &[0, 1, 0, 1]).is_ok());
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
        assert!(!has_roca_fingerprint(&[0xc1; 256]));
    }

    #[test]
    fn refuses_every_small_order_ed25519_point_with_either_sign() {
        for y in ED25519_SMALL_ORDER_Y {
            for sign in [0, 0x80] {
                let mut encoded = y;
                encoded[31] |= sign;
                let err = check_ed25519_point(&encoded).unwrap_err();
                assert!(err.contains("small order"), "{encoded:02x?}: {err}");
            }
        }
    }

    #[test]
    fn refuses_non_canonical_ed25519_encodings() {
        // p, p + 1 (the identity again) … 2^255 − 1, with either sign bit.
        for low in 0xed..=0xff {
            for sign in [0, 0x80] {
                let mut encoded = [0xff; 32];
                encoded[0] = low;
                encoded[31] = 0x7f | sign;
                let err = check_ed25519_point(&encoded).unwrap_err();
                assert!(err.contains("canonically"), "{low:02x}: {err}");
            }
        }
        assert!(check_ed25519_point(&[1; 31]).is_err());
    }

    #[test]
    fn accepts_an_ordinary_ed25519_key() {
        // The public key of RFC 8032 §7.1, test 1.
        let key = [
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ];
        assert_eq!(check_ed25519_point(&key), Ok(()));
    }

    #[test]
    fn refuses_ec_coordinates_at_or_above_the_prime() {
        let point = |x: &[u8], y: &[u8]| [&[4u8][..], x, y].concat();
        assert!(check_ec_point(KeyFamily::EcP256, &point(&[1; 32], &[2; 32])).is_ok());
        let err = check_ec_point(KeyFamily::EcP256, &point(&P256_PRIME, &[2; 32])).unwrap_err();
        assert!(err.contains("below the field prime"), "{err}");
        assert!(check_ec_point(KeyFamily::EcP256, &point(&[1; 32], &[0xff; 32])).is_err());
        assert!(check_ec_point(KeyFamily::EcP384, &point(&P384_PRIME, &[2; 48])).is_err());
        assert!(check_ec_point(KeyFamily::EcP384, &point(&[1; 48], &[2; 48])).is_ok());
        // Wrong length, compressed form, the point at infinity's one-byte encoding.
        assert!(check_ec_point(KeyFamily::EcP256, &point(&[1; 31], &[2; 32])).is_err());
        assert!(check_ec_point(KeyFamily::EcP256, &[[2u8].as_slice(), &[1; 32]].concat()).is_err());
        assert!(check_ec_point(KeyFamily::EcP256, &[0]).is_err());
    }

    #[test]
    fn hmac_secrets_must_be_as_long_as_the_hash() {
        assert!(check_hmac_secret(&[7; 32], Algorithm::HS256).is_ok());
        assert!(check_hmac_secret(&[7; 31], Algorithm::HS256).is_err());
        assert!(check_hmac_secret(&[7; 47], Algorithm::HS384).is_err());
        assert!(check_hmac_secret(&[7; 63], Algorithm::HS512).is_err());
        assert!(check_hmac_secret(&[7; 64], Algorithm::HS512).is_ok());
    }
}
