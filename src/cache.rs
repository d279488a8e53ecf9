//! The verified-token cache: a repeated token skips the signature check and the claim parsing.
//!
//! Entries are indexed by a keyed 64-bit hash of the token's last bytes, its signature's (aHash
//! with random keys per cache, so that nobody outside can aim tokens at one slot), and keep the
//! token's bytes: a hit compares them exactly, so a collision is only a miss, never another
//! token's claims. An entry lives until the token's `exp` at the latest (an hour at most), is
//! never made for a token that is not yet valid, and is ignored (and dropped) once the key that
//! signed it has left its issuer's key set. On a hit the time claims are checked again and the
//! user validators run again; only what can't change for the same bytes and the same
//! configuration (signature, `iss`, `aud`, `typ`, required claims, the claims' types) is taken
//! from the cache.
//!
//! Admission: a token enters the cache on its second sighting. A doorkeeper (a fixed table of
//! recently seen hashes) remembers the first; so a flood of one-off tokens (a scan, a client
//! minting a token per request) costs no insertion and can't flush the tokens in use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::claims::{Claims, NumericDate, VerifiedToken};
use crate::keys::PreparedKey;

/// The longest an entry lives, even for a token with a far or no `exp`.
const MAX_ENTRY_LIFETIME: Duration = Duration::from_secs(3600);

/// A token that passed every check, as it is kept.
pub(crate) struct CachedToken<T> {
    /// The token itself: a hit must be the very same bytes.
    text: Box<[u8]>,
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

/// The cache index: a keyed hash of the token's last [`HASHED_TAIL`] bytes.
pub(crate) type TokenHash = u64;

/// How many of a token's last bytes its cache index is a hash of (see [`TokenCache::hash`]).
const HASHED_TAIL: usize = 64;

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
    /// Random keys, drawn when the cache is made.
    hasher: ahash::RandomState,
    /// Hashes of tokens seen once, one per slot (the slot is the hash's low bits); 0 is empty.
    doorkeeper: Box<[AtomicU64]>,
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
        // Twice the entries the cache can hold, within 1 Ki and 1 Mi slots (8 MiB at most).
        let slots = (estimated_items.max(16) * 2)
            .next_power_of_two()
            .clamp(1 << 10, 1 << 20);
        Self {
            entries: Cache::with_weighter(estimated_items.max(16), bytes, EntryBytes),
            hasher: ahash::RandomState::new(),
            doorkeeper: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn hash(&self, token: &[u8]) -> TokenHash {
        // Only the token's last bytes: those of a JWS's signature, which no one but its issuer
        // chooses and which differ between any two tokens. A hit still compares every byte, so
        // two tokens with the same tail would only share a slot (a miss), and only tokens that
        // verified are ever inserted. Hashing all of a 600-byte token cost ~470 instructions a
        // request, an eighth of a hit through axum.
        let tail = &token[token.len().saturating_sub(HASHED_TAIL)..];
        // 0 marks an empty doorkeeper slot.
        self.hasher.hash_one(tail).max(1)
    }

    /// The entry for `token` (whose hash is `hash`), unless it has expired (an expired one is
    /// dropped) or the slot holds another token.
    pub(crate) fn get(&self, hash: TokenHash, token: &[u8]) -> Option<Arc<CachedToken<T>>> {
        let entry = self.entries.get(&hash)?;
        if *entry.text != *token {
            return None;
        }
        if Instant::now() < entry.expires_at {
            Some(entry)
        } else {
            self.remove(hash);
            None
        }
    }

    /// Whether a token seen now should be kept: yes on its second sighting (while the doorkeeper
    /// still remembers the first).
    fn admit(&self, hash: TokenHash) -> bool {
        let slot = &self.doorkeeper[(hash as usize) & (self.doorkeeper.len() - 1)];
        if slot.load(Ordering::Relaxed) == hash {
            slot.store(0, Ordering::Relaxed);
            true
        } else {
            slot.store(hash, Ordering::Relaxed);
            false
        }
    }

    pub(crate) fn remove(&self, hash: TokenHash) {
        self.entries.remove(&hash);
    }

    /// Keeps `token`, verified at `now` (seconds since the epoch), if it is seen for the second
    /// time, valid now and not about to expire.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &self,
        hash: TokenHash,
        text: &[u8],
        claims: Claims<T>,
        token: VerifiedToken,
        issuer: usize,
        key: Arc<PreparedKey>,
        now: i64,
    ) {
        if !self.admit(hash) {
            return;
        }
        let registered = token.times();
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
        let weight = (text.len() + 2 * token.payload_json().len()) as u64 + ENTRY_OVERHEAD;
        let entry = CachedToken {
            text: text.into(),
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
    use crate::claims::TimeClaims;
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
        let times = TimeClaims {
            exp: exp.map(NumericDate),
            nbf: nbf.map(NumericDate),
            iat: None,
        };
        let details = details(times, payload);
        // Seen twice: admitted.
        see(cache, token, &details);
        see(cache, token, &details);
    }

    /// What an HS256 token with `times` and `payload` verified to.
    fn details(times: TimeClaims, payload: &str) -> VerifiedToken {
        VerifiedToken::with_payload(
            Algorithm::HS256,
            None,
            None,
            times,
            Box::default(),
            payload.into(),
            crate::dpop::Confirmation::default(),
        )
    }

    /// One sighting of `token`, verified with `details`.
    fn see(cache: &TokenCache<()>, token: &str, details: &VerifiedToken) {
        cache.insert(
            cache.hash(token.as_bytes()),
            token.as_bytes(),
            Claims(Arc::new(())),
            details.clone(),
            0,
            key(),
            NOW,
        );
    }

    fn get(cache: &TokenCache<()>, token: &str) -> Option<Arc<CachedToken<()>>> {
        cache.get(cache.hash(token.as_bytes()), token.as_bytes())
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
        assert!(get(&cache, "valid").is_some());
        assert!(get(&cache, "no exp").is_some());
        assert!(get(&cache, "not yet valid").is_none());
    }

    #[test]
    fn an_entry_lives_until_exp_and_at_most_an_hour() {
        let cache = TokenCache::new(100 * 1024);
        insert(&cache, "soon", Some(NOW + 90), None);
        insert(&cache, "far", Some(NOW + 30 * 86_400), None);
        let lifetime = |token: &str| {
            let entry = get(&cache, token).unwrap();
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
        let cache = TokenCache::<()>::new(1024);
        assert_ne!(cache.hash(b"a.b.c"), cache.hash(b"a.b.d"));
        // Keyed: another cache hashes the same token elsewhere.
        let other = TokenCache::<()>::new(1024);
        assert_ne!(cache.hash(b"a.b.c"), other.hash(b"a.b.c"));
    }

    #[test]
    fn a_hit_is_the_very_same_token_whatever_the_slot() {
        let cache = TokenCache::new(100 * 1024);
        insert(&cache, "token-a", Some(NOW + 60), None);
        // Another token looked up under token-a's slot (a collision) is a miss, not its claims.
        let slot = cache.hash(b"token-a");
        assert!(cache.get(slot, b"token-a").is_some());
        assert!(cache.get(slot, b"token-b").is_none());
        assert!(cache.get(slot, b"token-").is_none());
    }

    #[test]
    fn tokens_with_the_same_tail_share_a_slot_and_never_each_others_claims() {
        let cache = TokenCache::<()>::new(100 * 1024);
        let tail = "s".repeat(HASHED_TAIL);
        let (a, b) = (format!("a.{tail}"), format!("b.{tail}"));
        assert_eq!(cache.hash(a.as_bytes()), cache.hash(b.as_bytes()));
        assert_ne!(
            cache.hash(a.as_bytes()),
            cache.hash(format!("a.{tail}t").as_bytes())
        );
        insert(&cache, &a, Some(NOW + 60), None);
        assert!(get(&cache, &a).is_some());
        assert!(get(&cache, &b).is_none(), "b is a miss, not a's entry");
        // b takes the slot: a is then a miss, never b's entry.
        insert(&cache, &b, Some(NOW + 60), None);
        assert!(get(&cache, &b).is_some());
        assert!(get(&cache, &a).is_none());
    }

    #[test]
    fn a_token_is_admitted_on_its_second_sighting() {
        let cache = TokenCache::new(100 * 1024);
        let details = details(TimeClaims::default(), "{}");
        see(&cache, "once", &details);
        assert!(get(&cache, "once").is_none());
        see(&cache, "once", &details);
        assert!(get(&cache, "once").is_some());
    }

    #[test]
    fn a_flood_of_one_off_tokens_does_not_flush_the_tokens_in_use() {
        // Room for about 100 small entries; 100 hot tokens in use, then 100,000 one-off tokens
        // each seen once while the hot ones keep being used.
        let cache = TokenCache::new(110 * 326);
        let hot: Vec<String> = (0..100).map(|i| format!("hot-{i}")).collect();
        for token in &hot {
            insert(&cache, token, Some(NOW + 600), None);
        }
        let details = details(TimeClaims::default(), "{}");
        let mut hits = 0;
        for i in 0..100_000 {
            see(&cache, &format!("one-off-{i}"), &details);
            if get(&cache, &hot[i % hot.len()]).is_some() {
                hits += 1;
            }
        }
        assert_eq!(hits, 100_000, "every hot token stays");
    }
}
