//! Remembering the `jti` of every DPoP proof accepted within its time window (RFC 9449 §11.1).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, PoisonError};

/// What a [`ReplayCache`] says about a proof it is asked to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayCheck {
    /// Not seen before; now recorded.
    Fresh,
    /// Seen before within its lifetime: a replay.
    Seen,
    /// The cache is full of live entries and can't record it. The proof is refused: accepting it
    /// unrecorded would let it be replayed.
    Full,
}

/// Where accepted DPoP proofs are remembered until they expire, so that each is accepted once.
///
/// The key is the SHA-256 of the proof key's thumbprint and the proof's `jti`, so one client
/// can't spoil another's identifiers. An entry must be kept until `expires_at` (seconds since the
/// epoch, the end of the proof's acceptance window); after that the proof is refused by its `iat`
/// anyway.
///
/// [`InMemoryReplayCache`] serves one process. Replicas behind one load balancer need a shared
/// implementation (e.g. Redis `SET key 1 NX EXAT expires_at`), since a proof replayed to another
/// replica would otherwise pass there. The check runs on the request path: keep it fast, and
/// answer [`ReplayCheck::Full`] rather than forget live entries.
///
/// ```
/// use tower_jwt_auth::dpop::{InMemoryReplayCache, ReplayCache, ReplayCheck};
///
/// let cache = InMemoryReplayCache::new(1000);
/// let key = [7u8; 32];
/// assert_eq!(cache.check_and_record(key, 1_060, 1_000), ReplayCheck::Fresh);
/// assert_eq!(cache.check_and_record(key, 1_060, 1_001), ReplayCheck::Seen);
/// // Once expired, the entry is gone (the proof's `iat` check refuses it by then).
/// assert_eq!(cache.check_and_record(key, 1_200, 1_100), ReplayCheck::Fresh);
/// ```
pub trait ReplayCache: Send + Sync + 'static {
    /// Records `key` until `expires_at` unless it is already recorded and not expired at `now`.
    fn check_and_record(&self, key: [u8; 32], expires_at: i64, now: i64) -> ReplayCheck;
}

const SHARDS: usize = 16;

/// A bounded, in-process [`ReplayCache`]: at most `capacity` live entries (split over 16 locked
/// shards), expired entries dropped as new ones come. When full of live entries it refuses new
/// proofs ([`ReplayCheck::Full`]) instead of forgetting live ones.
#[derive(Debug)]
pub struct InMemoryReplayCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

#[derive(Debug, Default)]
struct Shard {
    expiry: HashMap<[u8; 32], i64>,
    /// Entries by expiry, soonest first.
    queue: BinaryHeap<Reverse<(i64, [u8; 32])>>,
}

/// The default capacity of the in-memory replay cache: 100,000 proofs, about 5 MiB; enough for
/// 800 DPoP requests a second with the default 60 s window on each side.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

impl InMemoryReplayCache {
    /// A cache holding at most `capacity` live entries (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }
}

impl Default for InMemoryReplayCache {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl ReplayCache for InMemoryReplayCache {
    fn check_and_record(&self, key: [u8; 32], expires_at: i64, now: i64) -> ReplayCheck {
        // The key is a hash: any byte picks a shard evenly.
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(Reverse((expiry, old))) = shard.queue.peek().copied() {
            if expiry > now {
                break;
            }
            shard.queue.pop();
            // The map may hold a later expiry for the same key only if it was re-recorded after
            // expiring; then this queue entry is stale.
            if shard.expiry.get(&old) == Some(&expiry) {
                shard.expiry.remove(&old);
            }
        }
        if let Some(expiry) = shard.expiry.get(&key)
            && *expiry > now
        {
            return ReplayCheck::Seen;
        }
        if shard.expiry.len() >= self.per_shard {
            return ReplayCheck::Full;
        }
        shard.expiry.insert(key, expires_at);
        shard.queue.push(Reverse((expires_at, key)));
        ReplayCheck::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8, shard: u8) -> [u8; 32] {
        let mut key = [n; 32];
        key[0] = shard;
        key
    }

    #[test]
    fn refuses_new_entries_when_full_of_live_ones_and_takes_them_once_they_expire() {
        let cache = InMemoryReplayCache::new(SHARDS * 2);
        assert_eq!(
            cache.check_and_record(key(1, 0), 100, 0),
            ReplayCheck::Fresh
        );
        assert_eq!(
            cache.check_and_record(key(2, 0), 200, 0),
            ReplayCheck::Fresh
        );
        assert_eq!(cache.check_and_record(key(3, 0), 200, 0), ReplayCheck::Full);
        // Another shard has room.
        assert_eq!(
            cache.check_and_record(key(3, 1), 200, 0),
            ReplayCheck::Fresh
        );
        assert_eq!(
            cache.check_and_record(key(1, 0), 100, 50),
            ReplayCheck::Seen
        );
        // At 100 the first entry has expired and leaves room.
        assert_eq!(
            cache.check_and_record(key(3, 0), 300, 100),
            ReplayCheck::Fresh
        );
        assert_eq!(
            cache.check_and_record(key(2, 0), 200, 150),
            ReplayCheck::Seen
        );
        assert_eq!(
            cache.check_and_record(key(1, 0), 400, 150),
            ReplayCheck::Full
        );
    }
}
