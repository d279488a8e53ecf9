//! Signing keys: where they come from ([`KeySource`]), how they are prepared once, and how the
//! verifier picks the key for a token.

mod jwk;
mod prepared;
mod source;

use std::sync::Arc;

use arc_swap::ArcSwap;

pub use jwk::SkippedKey;
pub(crate) use prepared::{PreparedKey, SignatureKey};
pub use source::KeySource;

use crate::algorithm::Algorithm;

/// Without a `kid`, at most this many keys are tried, so a token can't make the server check its
/// signature against every key of a large set.
pub(crate) const MAX_KIDLESS_CANDIDATES: usize = 4;

/// The prepared keys of one issuer at one moment.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<PreparedKey>,
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
    pub(crate) fn new(keys: Vec<PreparedKey>) -> Self {
        Self { keys }
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
                let candidates = Candidates::new(named.filter_map(|key| key.verifier(alg)));
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
                .filter_map(|key| key.verifier(alg)),
        );
        if candidates.is_empty() {
            KeyLookup::Unknown
        } else {
            KeyLookup::Candidates(candidates)
        }
    }
}

/// Up to [`MAX_KIDLESS_CANDIDATES`] keys to try, held inline so that a lookup never allocates.
#[derive(Debug)]
pub(crate) struct Candidates<'a> {
    keys: [Option<&'a SignatureKey>; MAX_KIDLESS_CANDIDATES],
}

impl<'a> Candidates<'a> {
    fn new(keys: impl Iterator<Item = &'a SignatureKey>) -> Self {
        let mut slots = [None; MAX_KIDLESS_CANDIDATES];
        for (slot, key) in slots.iter_mut().zip(keys) {
            *slot = Some(key);
        }
        Self { keys: slots }
    }

    fn is_empty(&self) -> bool {
        self.keys[0].is_none()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a SignatureKey> + '_ {
        self.keys.iter().flatten().copied()
    }
}

/// The current key set of an issuer. Readers take a snapshot without locking; a refresh swaps in
/// a whole new set.
#[derive(Debug)]
pub(crate) struct KeyStore {
    current: ArcSwap<KeySet>,
}

impl KeyStore {
    pub(crate) fn new(keys: KeySet) -> Self {
        Self {
            current: ArcSwap::from_pointee(keys),
        }
    }

    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::AlgorithmSet;
    use crate::keys::prepared::KeyMaterial;

    fn secret_key(kid: Option<&str>, byte: u8) -> PreparedKey {
        let allowed: AlgorithmSet = [Algorithm::HS256].into_iter().collect();
        PreparedKey::new(
            kid.map(str::to_owned),
            KeyMaterial::Secret(vec![byte; 32]),
            None,
            allowed,
        )
        .unwrap()
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
