//! The JWS algorithms this crate verifies (RFC 7518 §3, RFC 8037 for EdDSA).

use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm this crate can verify.
///
/// `none` is deliberately absent: unsecured tokens are always rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256. Only with a configured shared secret.
    HS256,
    /// HMAC with SHA-384. Only with a configured shared secret.
    HS384,
    /// HMAC with SHA-512. Only with a configured shared secret.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA on Ed25519.
    EdDSA,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFamily {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl Algorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Algorithm; 12] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The name used in the JOSE `alg` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Whether this is an HMAC (shared-secret) algorithm.
    pub fn is_symmetric(self) -> bool {
        self.family() == KeyFamily::Hmac
    }

    pub(crate) fn family(self) -> KeyFamily {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => KeyFamily::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyFamily::Rsa
            }
            Self::ES256 => KeyFamily::EcP256,
            Self::ES384 => KeyFamily::EcP384,
            Self::EdDSA => KeyFamily::Ed25519,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `alg` value is not one this crate verifies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported algorithm")]
pub struct UnsupportedAlgorithm;

impl FromStr for Algorithm {
    type Err = UnsupportedAlgorithm;

    /// Parses an `alg` value. Names are case-sensitive (RFC 7515 §4.1.1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or(UnsupportedAlgorithm)
    }
}

/// A set of algorithms, as a bit set: checked on every request, so membership is one AND. It
/// also remembers, for the families with several algorithms (HMAC, RSA), which one was listed
/// first: the one algorithm a key without `alg` serves (RFC 8725 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgorithmSet {
    bits: u16,
    first_hmac: Option<Algorithm>,
    first_rsa: Option<Algorithm>,
}

impl AlgorithmSet {
    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.bits & alg.bit() != 0
    }

    pub(crate) fn insert(&mut self, alg: Algorithm) {
        self.bits |= alg.bit();
        match alg.family() {
            KeyFamily::Hmac => {
                self.first_hmac.get_or_insert(alg);
            }
            KeyFamily::Rsa => {
                self.first_rsa.get_or_insert(alg);
            }
            KeyFamily::EcP256 | KeyFamily::EcP384 | KeyFamily::Ed25519 => {}
        }
    }

    pub(crate) fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The algorithm a key of `family` without `alg` is used with: the first of its family in
    /// the order the set was listed ([`Algorithm::ALL`] order for the default set, so RS256
    /// before PS256, HS256 before HS512).
    pub(crate) fn first_of(self, family: KeyFamily) -> Option<Algorithm> {
        match family {
            KeyFamily::Hmac => self.first_hmac,
            KeyFamily::Rsa => self.first_rsa,
            KeyFamily::EcP256 => Some(Algorithm::ES256),
            KeyFamily::EcP384 => Some(Algorithm::ES384),
            KeyFamily::Ed25519 => Some(Algorithm::EdDSA),
        }
        .filter(|alg| self.contains(*alg))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut set = Self::default();
        for alg in iter {
            set.insert(alg);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_it_prints() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
    }

    #[test]
    fn rejects_none_and_wrong_case() {
        for name in [
            "none", "None", "NONE", "rs256", "Rs256", "ES512", "", "HS256 ",
        ] {
            assert_eq!(
                name.parse::<Algorithm>(),
                Err(UnsupportedAlgorithm),
                "{name}"
            );
        }
    }

    #[test]
    fn set_holds_exactly_what_was_inserted() {
        let set: AlgorithmSet = [Algorithm::RS256, Algorithm::EdDSA].into_iter().collect();
        assert!(set.contains(Algorithm::RS256));
        assert!(set.contains(Algorithm::EdDSA));
        assert!(!set.contains(Algorithm::HS256));
        assert_eq!(
            Algorithm::ALL.iter().filter(|a| set.contains(**a)).count(),
            2
        );
        assert!(AlgorithmSet::default().is_empty());
    }

    #[test]
    fn a_key_without_alg_gets_the_first_algorithm_of_its_family() {
        let default: AlgorithmSet = Algorithm::ALL.into_iter().collect();
        assert_eq!(default.first_of(KeyFamily::Rsa), Some(Algorithm::RS256));
        assert_eq!(default.first_of(KeyFamily::Hmac), Some(Algorithm::HS256));
        assert_eq!(default.first_of(KeyFamily::EcP384), Some(Algorithm::ES384));
        let pss_first: AlgorithmSet = [Algorithm::ES256, Algorithm::PS384, Algorithm::RS256]
            .into_iter()
            .collect();
        assert_eq!(pss_first.first_of(KeyFamily::Rsa), Some(Algorithm::PS384));
        assert_eq!(pss_first.first_of(KeyFamily::Hmac), None);
        assert_eq!(pss_first.first_of(KeyFamily::Ed25519), None);
    }
}
