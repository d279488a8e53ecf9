//! Server-provided DPoP nonces (RFC 9449 §9): a proof must carry a recent nonce of the server's,
//! which bounds how far ahead a stolen signing key can pre-compute proofs.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::base64url;

/// Where the layer gets the nonce it hands out (`DPoP-Nonce`) and checks proofs against.
///
/// Times are seconds since the epoch, read from the layer's [`Clock`](crate::Clock).
pub trait NonceSource: Send + Sync + 'static {
    /// The nonce to hand out now.
    fn current(&self, now: i64) -> String;
    /// Whether a proof carrying `nonce` may be accepted now.
    fn is_valid(&self, nonce: &str, now: i64) -> bool;
}

/// Stateless nonces that rotate every `interval`: a nonce is the number of its interval and an
/// HMAC-SHA-256 tag over it, accepted during its interval and the next one. Replicas that share
/// the secret ([`RotatingNonces::with_secret`]) accept each other's nonces; no state is kept.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_auth::dpop::{NonceSource, RotatingNonces};
///
/// let nonces = RotatingNonces::new(Duration::from_secs(300));
/// let nonce = nonces.current(1_000_000);
/// assert!(nonces.is_valid(&nonce, 1_000_100));
/// assert!(!nonces.is_valid(&nonce, 1_001_000));
/// assert!(!nonces.is_valid("made-up", 1_000_100));
/// ```
pub struct RotatingNonces {
    key: hmac::Key,
    interval: i64,
}

impl fmt::Debug for RotatingNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingNonces")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The shortest secret [`RotatingNonces::with_secret`] takes, in bytes.
pub const MIN_NONCE_SECRET_LEN: usize = 32;

impl RotatingNonces {
    /// Nonces rotating every `interval` (at least one second), with a fresh random secret. Should
    /// the system's random source fail, the key is derived from the time instead: nonces are no
    /// secret, they only need to be unpredictable long enough to bound pre-computed proofs.
    pub fn new(interval: Duration) -> Self {
        let key =
            hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).unwrap_or_else(|_| {
                let seed = format!("{:?}{:p}", std::time::SystemTime::now(), &interval);
                hmac::Key::new(hmac::HMAC_SHA256, seed.as_bytes())
            });
        Self {
            key,
            interval: interval_secs(interval),
        }
    }

    /// Nonces rotating every `interval` with the given secret, so that replicas sharing it accept
    /// each other's nonces. `None` if the secret is shorter than [`MIN_NONCE_SECRET_LEN`].
    pub fn with_secret(interval: Duration, secret: &[u8]) -> Option<Self> {
        (secret.len() >= MIN_NONCE_SECRET_LEN).then(|| Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            interval: interval_secs(interval),
        })
    }

    fn nonce_for(&self, epoch: i64) -> String {
        let counter = epoch.to_be_bytes();
        let tag = hmac::sign(&self.key, &counter);
        let mut bytes = Vec::with_capacity(8 + 32);
        bytes.extend_from_slice(&counter);
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

fn interval_secs(interval: Duration) -> i64 {
    i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1)
}

impl NonceSource for RotatingNonces {
    fn current(&self, now: i64) -> String {
        self.nonce_for(now.div_euclid(self.interval))
    }

    fn is_valid(&self, nonce: &str, now: i64) -> bool {
        let Some(bytes) = base64url::decode(nonce) else {
            return false;
        };
        let Some((counter, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let epoch = i64::from_be_bytes(*counter);
        let current = now.div_euclid(self.interval);
        (epoch == current || epoch == current.saturating_sub(1))
            && hmac::verify(&self.key, counter, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_lives_for_its_interval_and_the_next_only() {
        let nonces = RotatingNonces::new(Duration::from_secs(10));
        let nonce = nonces.current(100);
        assert_eq!(nonce, nonces.current(109));
        assert_ne!(nonce, nonces.current(110));
        assert!(nonces.is_valid(&nonce, 100));
        assert!(nonces.is_valid(&nonce, 119));
        assert!(!nonces.is_valid(&nonce, 120));
        assert!(!nonces.is_valid(&nonce, 99));
        // Another secret's nonce, or a tampered one, is refused.
        let other = RotatingNonces::new(Duration::from_secs(10));
        assert!(!other.is_valid(&nonce, 100));
        let mut bytes = base64url::decode(&nonce).unwrap();
        bytes[7] ^= 1;
        assert!(!nonces.is_valid(&URL_SAFE_NO_PAD.encode(bytes), 100));
        assert!(RotatingNonces::with_secret(Duration::from_secs(1), &[0; 31]).is_none());
        let shared = [9; 32];
        let a = RotatingNonces::with_secret(Duration::from_secs(10), &shared).unwrap();
        let b = RotatingNonces::with_secret(Duration::from_secs(10), &shared).unwrap();
        assert!(b.is_valid(&a.current(100), 105));
    }
}
