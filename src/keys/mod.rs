//! Signing keys: where they come from ([`KeySource`]), how they are prepared once, and how the
//! verifier picks the key for a token.

mod discovery;
mod jwk;
mod policy;
mod prepared;
mod refresh;
mod remote;
mod shared;
mod snapshot;
mod source;
mod status;
mod unknown_kid;
#[cfg(test)]
mod vectors;
mod weak;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

pub use jwk::SkippedKey;
pub use policy::RefreshPolicy;
pub(crate) use prepared::KeyMaterial;
pub(crate) use prepared::{PreparedKey, SignatureKey};
pub(crate) use refresh::{RemoteKeys, RemoteSetup, RemoteSource};
pub use remote::FetchError;
pub(crate) use remote::{HttpPolicy, checked_url, default_client};
pub use shared::{SharedKeys, SharedKeysBuilder};
pub use source::KeySource;
pub(crate) use source::SourceKind;
pub use status::{FetchCounts, KeySetStatus};

use crate::algorithm::Algorithm;

/// Without a `kid`, at most this many keys are tried, so a token can't make the server check its
/// signature against every key of a large set.
pub(crate) const MAX_KIDLESS_CANDIDATES: usize = 4;

/// The prepared keys of one issuer at one moment.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Arc<PreparedKey>>,
    /// When a fetched set stops being trusted (its refresh is overdue by more than the allowed
    /// staleness); `None` for keys that never expire (configured ones).
    expires_at: Option<Instant>,
}

/// The outcome of looking a token's key up.
#[derive(Debug)]
pub(crate) enum KeyLookup<'a> {
    /// The keys to try, in order (one, unless the token has no `kid`).
    Candidates(Candidates<'a>),
    /// A key has the token's `kid`, but it may not be used with the token's `alg`.
    AlgorithmMismatch,
    /// No key fits.
    Unknown,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<Arc<PreparedKey>>) -> Self {
        Self {
            keys,
            expires_at: None,
        }
    }

    /// A fetched set, trusted until `expires_at`.
    pub(crate) fn expiring(keys: Vec<Arc<PreparedKey>>, expires_at: Instant) -> Self {
        Self {
            keys,
            expires_at: Some(expires_at),
        }
    }

    /// The same keys with another expiry (after a `304 Not Modified`).
    pub(crate) fn renewed(&self, expires_at: Instant) -> Self {
        Self::expiring(self.keys.clone(), expires_at)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether tokens can be verified with this set now: it has keys and is not stale past the
    /// allowed maximum.
    pub(crate) fn is_usable(&self) -> bool {
        !self.keys.is_empty() && self.expires_at.is_none_or(|at| Instant::now() < at)
    }

    /// Picks the keys for a token. With a `kid`, the keys with that `kid` (falling back to keys
    /// configured without one); without, the first few keys that fit `alg`. Key sets are small
    /// (a handful of keys), so a scan beats hashing.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup<'_> {
        if let Some(kid) = kid {
            let mut named = self
                .keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(kid))
                .peekable();
            if named.peek().is_some() {
                let candidates = Candidates::new(named.filter_map(|key| Candidate::of(key, alg)));
                return if candidates.is_empty() {
                    KeyLookup::AlgorithmMismatch
                } else {
                    KeyLookup::Candidates(candidates)
                };
            }
        }
        let candidates = Candidates::new(
            self.keys
                .iter()
                .filter(|key| kid.is_none() || key.kid.is_none())
                .filter_map(|key| Candidate::of(key, alg)),
        );
        if candidates.is_empty() {
            KeyLookup::Unknown
        } else {
            KeyLookup::Candidates(candidates)
        }
    }

    /// Whether `key` (the very same prepared key) is still in this set.
    pub(crate) fn contains(&self, key: &Arc<PreparedKey>) -> bool {
        self.keys
            .iter()
            .any(|candidate| Arc::ptr_eq(candidate, key))
    }

    /// The prepared key of this set with `fingerprint`, to be kept by the next set.
    pub(crate) fn find(&self, fingerprint: &[u8; 32]) -> Option<&Arc<PreparedKey>> {
        self.keys.iter().find(|key| &key.fingerprint == fingerprint)
    }
}

/// A key to try, with its verifier for the token's algorithm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub(crate) key: &'a Arc<PreparedKey>,
    pub(crate) verifier: &'a SignatureKey,
}

impl<'a> Candidate<'a> {
    fn of(key: &'a Arc<PreparedKey>, alg: Algorithm) -> Option<Self> {
        key.verifier(alg).map(|verifier| Self { key, verifier })
    }
}

/// Up to [`MAX_KIDLESS_CANDIDATES`] keys to try, held inline so that a lookup never allocates.
#[derive(Debug)]
pub(crate) struct Candidates<'a> {
    keys: [Option<Candidate<'a>>; MAX_KIDLESS_CANDIDATES],
}

impl<'a> Candidates<'a> {
    fn new(keys: impl Iterator<Item = Candidate<'a>>) -> Self {
        let mut slots = [None; MAX_KIDLESS_CANDIDATES];
        for (slot, key) in slots.iter_mut().zip(keys) {
            *slot = Some(key);
        }
        Self { keys: slots }
    }

    fn is_empty(&self) -> bool {
        self.keys[0].is_none()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Candidate<'a>> + '_ {
        self.keys.iter().flatten().copied()
    }
}

/// The current key set of an issuer. Readers take a snapshot without locking; a refresh swaps in
/// a whole new set.
#[derive(Debug)]
pub(crate) struct KeyStore {
    current: Arc<ArcSwap<KeySet>>,
    /// The machinery that fetches and refreshes the set, for issuers with a remote source.
    remote: Option<Arc<RemoteKeys>>,
}

impl KeyStore {
    /// A store of configured keys that never change.
    pub(crate) fn fixed(keys: KeySet) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(keys)),
            remote: None,
        }
    }

    /// A store whose set `current` is kept fresh by `remote`.
    pub(crate) fn remote(current: Arc<ArcSwap<KeySet>>, remote: Arc<RemoteKeys>) -> Self {
        Self {
            current,
            remote: Some(remote),
        }
    }

    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    /// Whether a refetch could change this store (it has a remote source).
    pub(crate) fn may_fetch(&self) -> bool {
        self.remote.is_some()
    }

    /// The unknown-`kid` protocol, seen from a request: a wait for the refetch that may bring
    /// `kid` (joining one in flight, or starting one if the cooldown allows), or `None` when no
    /// refetch will happen and the request must be answered now. `unknown_key` says whether the
    /// key was missing (rather than the whole set unusable).
    pub(crate) fn wait_for_kid(
        &self,
        kid: Option<&str>,
        unknown_key: bool,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let remote = self.remote.as_ref()?;
        if !remote.may_refetch(kid, unknown_key) {
            return None;
        }
        let remote = Arc::clone(remote);
        Some(async move { RemoteKeys::refetch_for_unknown_kid(&remote).await })
    }

    /// Records that `kid` is still unknown after a refetch, so that tokens naming it don't
    /// trigger another one before the next refresh.
    pub(crate) fn remember_unknown_kid(&self, kid: Option<&str>) {
        if let Some(remote) = &self.remote {
            remote.remember_unknown_kid(kid);
        }
    }

    /// Refetches the remote key set now (joining a fetch in flight); nothing for fixed keys.
    pub(crate) async fn refresh(&self) {
        if let Some(remote) = &self.remote {
            remote.fetch_now().await;
        }
    }

    /// When a client turned away because no usable set exists may retry.
    pub(crate) fn retry_after(&self) -> Duration {
        self.remote
            .as_ref()
            .map_or(Duration::from_secs(1), |remote| remote.retry_after())
    }

    pub(crate) fn status(&self, issuer: Option<&str>) -> KeySetStatus {
        match &self.remote {
            Some(remote) => remote.status(),
            None => KeySetStatus::fixed(issuer, self.snapshot().len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::AlgorithmSet;
    use crate::keys::prepared::KeyMaterial;

    fn secret_key(kid: Option<&str>, byte: u8) -> Arc<PreparedKey> {
        let allowed: AlgorithmSet = [Algorithm::HS256].into_iter().collect();
        Arc::new(
            PreparedKey::new(
                kid.map(str::to_owned),
                KeyMaterial::Secret(vec![byte; 32]),
                None,
                allowed,
            )
            .unwrap(),
        )
    }

    fn count(lookup: KeyLookup<'_>) -> usize {
        match lookup {
            KeyLookup::Candidates(keys) => keys.iter().count(),
            other => panic!("expected candidates, got {other:?}"),
        }
    }

    #[test]
    fn a_kid_selects_its_key_only() {
        let set = KeySet::new(vec![secret_key(Some("a"), 1), secret_key(Some("b"), 2)]);
        assert_eq!(count(set.lookup(Some("a"), Algorithm::HS256)), 1);
        assert!(matches!(
            set.lookup(Some("c"), Algorithm::HS256),
            KeyLookup::Unknown
        ));
    }

    #[test]
    fn a_known_kid_with_a_foreign_alg_is_a_mismatch_not_unknown() {
        let set = KeySet::new(vec![secret_key(Some("a"), 1)]);
        assert!(matches!(
            set.lookup(Some("a"), Algorithm::RS256),
            KeyLookup::AlgorithmMismatch
        ));
    }

    #[test]
    fn kidless_keys_serve_any_kid_and_kidless_tokens_are_bounded() {
        let set = KeySet::new((0..10).map(|i| secret_key(None, i)).collect());
        assert_eq!(
            count(set.lookup(Some("whatever"), Algorithm::HS256)),
            MAX_KIDLESS_CANDIDATES
        );
        assert_eq!(
            count(set.lookup(None, Algorithm::HS256)),
            MAX_KIDLESS_CANDIDATES
        );
    }

    #[test]
    fn keys_with_a_kid_do_not_serve_tokens_naming_another_kid() {
        let set = KeySet::new(vec![secret_key(Some("a"), 1)]);
        assert!(matches!(
            set.lookup(Some("b"), Algorithm::HS256),
            KeyLookup::Unknown
        ));
        assert_eq!(count(set.lookup(None, Algorithm::HS256)), 1);
    }
}
