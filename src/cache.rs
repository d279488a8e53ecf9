//! The verified-token cache: a repeated token skips the signature check and the claim parsing.
//!
//! Entries are keyed by the SHA-256 of the whole token, so only the very same bytes hit. An entry
//! lives until the token's `exp` at the latest (an hour at most), is never made for a token that is
//! not yet valid, and is ignored (and dropped) once the key that signed it has left its issuer's
//! key set. On a hit the time claims are checked again and the user validators run again; only
//! what can't change for the same bytes and the same configuration (signature, `iss`, `aud`,
//! `typ`, required claims, the claims' types) is taken from the cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::claims::{Claims, NumericDate, VerifiedToken};
use crate::keys::PreparedKey;

/// The longest an entry lives, even for a token with a far or no `exp`.
const MAX_ENTRY_LIFETIME: Duration = Duration::from_secs(3600);

/// A token that passed every check, as it is kept.
pub(crate) struct CachedToken<T> {
    pub(crate) claims: Claims<T>,
    pub(crate) token: VerifiedToken,
    /// Which issuer of the verifier it belongs to.
    pub(crate) issuer: usize,
    /// The key that verified the signature; the entry is only good while it is in the key set.
    pub(crate) key: Arc<PreparedKey>,
    /// When the entry stops being served: the token's `exp`, or an hour after it was made.
    expires_at: Instant,
    /// What the entry costs in memory, in bytes (an estimate, see [`EntryBytes`]).
    weight: u64,
}

/// The cache key: the SHA-256 of the token.
pub(crate) type TokenHash = [u8; 32];

/// The fixed cost of an entry besides its payload: the hash, the `Arc`s, the registered claims
/// and the cache's own bookkeeping.
const ENTRY_OVERHEAD: u64 = 320;

/// Weighs an entry by what it holds: the payload text, about as much again for the decoded claims,
/// and the fixed overhead. Computed from a length the entry keeps, so it is trivially cheap.
#[derive(Clone, Copy)]
struct EntryBytes;

impl<T> Weighter<TokenHash, Arc<CachedToken<T>>> for EntryBytes {
    fn weight(&self, _: &TokenHash, entry: &Arc<CachedToken<T>>) -> u64 {
        entry.weight
    }
}

pub(crate) struct TokenCache<T> {
    entries: Cache<TokenHash, Arc<CachedToken<T>>, EntryBytes>,
}

impl<T> std::fmt::Debug for TokenCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.entries.capacity())
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> TokenCache<T> {
    /// A cache of at most `bytes` bytes of entries.
    pub(crate) fn new(bytes: u64) -> Self {
        // The estimate only sizes the index up front; entries of 1 KiB payloads are typical.
        let estimated_items = usize::try_from(bytes / (2048 + ENTRY_OVERHEAD)).unwrap_or(1 << 20);
        Self {
            entries: Cache::with_weighter(estimated_items.max(16), bytes, EntryBytes),
        }
    }

    pub(crate) fn hash(token: &str) -> TokenHash {
        let mut hash = [0; 32];
        hash.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        hash
    }

    /// The entry for `hash`, unless it has expired (an expired one is dropped).
    pub(crate) fn get(&self, hash: &TokenHash) -> Option<Arc<CachedToken<T>>> {
        let entry = self.entries.get(hash)?;
        if Instant::now() < entry.expires_at {
            Some(entry)
        } else {
            self.remove(hash);
            None
        }
    }

    pub(crate) fn remove(&self, hash: &TokenHash) {
        self.entries.remove(hash);
    }

    /// Keeps a token verified at `now` (seconds since the epoch), unless it is not valid yet or
    /// about to expire.
    pub(crate) fn insert(
        &self,
        hash: TokenHash,
        claims: Claims<T>,
        token: VerifiedToken,
        issuer: usize,
        key: Arc<PreparedKey>,
        now: i64,
    ) {
        let registered = token.registered_claims();
        // Accepted thanks to the leeway, but not valid yet: not worth keeping.
        if registered.nbf.is_some_and(|NumericDate(nbf)| nbf > now) {
            return;
        }
        let lifetime = match registered.exp {
            Some(NumericDate(exp)) => match u64::try_from(exp.saturating_sub(now)) {
                Ok(seconds) if seconds > 0 => Duration::from_secs(seconds).min(MAX_ENTRY_LIFETIME),
                // Expired, and accepted only thanks to the leeway.
                _ => return,
            },
            None => MAX_ENTRY_LIFETIME,
        };
        let weight = 2 * token.payload_json().len() as u64 + ENTRY_OVERHEAD;
        let entry = CachedToken {
            claims,
            token,
            issuer,
            key,
            expires_at: Instant::now() + lifetime,
            weight,
        };
        self.entries.insert(hash, Arc::new(entry));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.entries.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{Algorithm, AlgorithmSet};
    use crate::claims::RegisteredClaims;
    use crate::keys::KeyMaterial;

    const NOW: i64 = 1_700_000_000;

    fn key() -> Arc<PreparedKey> {
        let allowed: AlgorithmSet = [Algorithm::HS256].into_iter().collect();
        Arc::new(PreparedKey::new(None, KeyMaterial::Secret(vec![7; 32]), None, allowed).unwrap())
    }

    fn insert(cache: &TokenCache<()>, token: &str, exp: Option<i64>, nbf: Option<i64>) {
        insert_payload(cache, token, exp, nbf, "{}");
    }

    fn insert_payload(
        cache: &TokenCache<()>,
        token: &str,
        exp: Option<i64>,
        nbf: Option<i64>,
        payload: &str,
    ) {
        let registered = RegisteredClaims {
            exp: exp.map(NumericDate),
            nbf: nbf.map(NumericDate),
            ..RegisteredClaims::default()
        };
        let details = VerifiedToken::with_payload(
            Algorithm::HS256,
            None,
            None,
            registered,
            Box::default(),
            payload.into(),
            crate::dpop::Confirmation::default(),
        );
        cache.insert(
            TokenCache::<()>::hash(token),
            Claims(Arc::new(())),
            details,
            0,
            key(),
            NOW,
        );
    }

    #[test]
    fn keeps_only_tokens_valid_now() {
        let cache = TokenCache::new(100 * 1024);
        insert(&cache, "valid", Some(NOW + 60), Some(NOW - 1));
        insert(&cache, "no exp", None, None);
        insert(&cache, "not yet valid", Some(NOW + 60), Some(NOW + 5));
        insert(&cache, "expiring now", Some(NOW), None);
        insert(&cache, "expired within leeway", Some(NOW - 10), None);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&TokenCache::<()>::hash("valid")).is_some());
        assert!(cache.get(&TokenCache::<()>::hash("no exp")).is_some());
        assert!(
            cache
                .get(&TokenCache::<()>::hash("not yet valid"))
                .is_none()
        );
    }

    #[test]
    fn an_entry_lives_until_exp_and_at_most_an_hour() {
        let cache = TokenCache::new(100 * 1024);
        insert(&cache, "soon", Some(NOW + 90), None);
        insert(&cache, "far", Some(NOW + 30 * 86_400), None);
        let lifetime = |token: &str| {
            let entry = cache.get(&TokenCache::<()>::hash(token)).unwrap();
            entry.expires_at.duration_since(Instant::now())
        };
        let close = |a: Duration, b: Duration| a <= b && b - a < Duration::from_secs(5);
        assert!(close(lifetime("soon"), Duration::from_secs(90)));
        assert!(close(lifetime("far"), MAX_ENTRY_LIFETIME));
    }

    #[test]
    fn the_byte_bound_holds_whatever_the_token_size() {
        // Small entries weigh 2 × 2 + 320 bytes: at most 50 fit.
        let cache = TokenCache::new(50 * 324);
        for i in 0..1000 {
            insert(&cache, &format!("token-{i}"), Some(NOW + 600), None);
        }
        assert!(cache.len() <= 50, "{}", cache.len());
        assert!(cache.len() >= 25, "{}", cache.len());
        // Claims-heavy 8 KiB payloads weigh 16.3 KiB each: a 100 KiB cache holds at most six.
        let cache = TokenCache::new(100 * 1024);
        let payload = format!(r#"{{"pad":"{}"}}"#, "a".repeat(8 * 1024));
        for i in 0..100 {
            insert_payload(&cache, &format!("big-{i}"), Some(NOW + 600), None, &payload);
        }
        assert!(cache.len() <= 6, "{}", cache.len());
        assert!(cache.len() >= 1, "{}", cache.len());
    }

    #[test]
    fn different_tokens_hash_differently() {
        assert_ne!(
            TokenCache::<()>::hash("a.b.c"),
            TokenCache::<()>::hash("a.b.d")
        );
    }
}
