//! Revoking tokens before their `exp`: [`RevocationList`], kept in memory or shared through Redis.

mod set;

#[cfg(feature = "redis")]
mod redis_store;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::claims::RegisteredClaims;
use crate::error::AuthError;

use self::set::RevokedSet;

/// Default bound of a list's local copy, in entries (about 55 MB; see `BENCHMARKS.md`).
pub const DEFAULT_MAX_REVOCATIONS: usize = 1_000_000;

/// How long after a token's `exp` its entry is kept: the layer accepts a token up to its leeway
/// past `exp`, so the entry must outlive that.
const EXPIRY_GRACE_SECS: i64 = 300;

/// The longest `jti` or `sub` a revocation accepts, in bytes.
const MAX_VALUE_LEN: usize = 1024;

/// Why a revocation could not be written, or a list could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The list already holds its maximum number of entries
    /// ([`max_entries`](RevocationListBuilder::max_entries)); the revocation was not recorded.
    #[error("revocation list full ({max_entries} entries)")]
    Full {
        /// The configured bound.
        max_entries: usize,
    },
    /// The `jti` or `sub` is empty or longer than 1024 bytes.
    #[error("invalid {0}: empty or longer than 1024 bytes")]
    InvalidValue(&'static str),
    /// The Redis URL can't be used.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// Redis could not be reached or answered with an error; nothing was recorded (a write), or
    /// the list could not load (at start).
    #[error("revocation store unavailable: {0}")]
    Unavailable(String),
    /// A setting is out of range.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// The builder method.
        name: &'static str,
        /// What is wrong with the value.
        reason: &'static str,
    },
}

/// What a list does once its local copy is older than
/// [`max_staleness`](RevocationListBuilder::max_staleness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Refuse every request with `503` and `Retry-After` until the list is current again: a
    /// revoked token is never let in. The default.
    #[default]
    FailClosed,
    /// Keep checking the last copy and let other tokens in: revocations written during the
    /// outage are missed until it ends.
    FailOpen,
}

/// The revoked tokens and subjects a [`JwtAuthLayer`](crate::JwtAuthLayer) refuses
/// ([`JwtAuthBuilder::revocation`](crate::JwtAuthBuilder::revocation)), checked after the
/// signature (and on verified-token cache hits).
///
///
/// A JWT stays valid until it expires: a logged-out user, a stolen token or a fired employee keeps
/// access. A revocation list closes that gap. Two kinds of entries:
///
/// - a token, by its `jti`, until its `exp` ([`RevocationList::revoke_token`]);
/// - a subject, by its `sub`: every token issued (`iat`) before a time, e.g. "log out everywhere"
///   ([`RevocationList::revoke_subject`]). A token of that subject without `iat` is revoked too.
///
/// A request checks only the local copy: no network round trip, no lock shared by all requests.
/// A revoked token is answered `401 invalid_token` with "token revoked" ([`AuthError::Revoked`]).
///
/// With several issuers, `jti` and `sub` values are compared whatever the issuer: a revocation
/// names a value, and covers it for every issuer.
///
/// # In memory
///
/// ```
/// use tower_jwt_auth::{JwtAuthLayer, RegisteredClaims, RevocationList};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let revoked = RevocationList::memory();
/// let builder = JwtAuthLayer::<RegisteredClaims>::builder().revocation(revoked.clone());
/// // Later, e.g. from a logout handler:
/// revoked.revoke_token("9f1c…", 1_900_000_000).await?;
/// # let _ = builder;
/// # Ok(())
/// # }
/// ```
///
/// # Shared through Redis (feature `redis`)
///
/// `RevocationList::builder().redis(url)` loads every entry at start and keeps a full local copy
/// in each replica:
///
/// - a revocation is written to Redis (a key that expires with the token, or for a subject after
///   [`subject_retention`](RevocationListBuilder::subject_retention)) and published, in one
///   script, which also increments a version counter;
/// - every replica applies what is published; a message whose version skips one, or a version
///   counter that moved without a message, means something was missed, and the replica reloads
///   everything (a resync). It also resyncs after every reconnect and every
///   [`resync_interval`](RevocationListBuilder::resync_interval);
/// - when Redis can't be reached, the last copy keeps serving for
///   [`max_staleness`](RevocationListBuilder::max_staleness); after that, requests get `503` with
///   `Retry-After` ([`AuthError::RevocationUnavailable`]) unless the list
///   [fails open](RevocationListBuilder::fail_open). The list reconnects and resyncs by itself.
///
/// Entries are never removed before their time: there is no "unrevoke". Run Redis with
/// persistence (AOF), so that a restarted Redis still holds the list for replicas started later,
/// and as a single node or with Sentinel (the write script touches several keys, which Redis
/// Cluster would need in one slot).
///
/// A cheap-to-clone handle: clones share one list. With Redis, a background task keeps the copy
/// current and stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct RevocationList(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    set: RevokedSet,
    settings: Settings,
    health: Health,
    #[cfg(feature = "redis")]
    redis: Option<redis_store::RedisStore>,
}

#[derive(Debug, Clone)]
struct Settings {
    subject_retention: Duration,
    max_staleness: Duration,
    failure_mode: FailureMode,
    sync_interval: Duration,
    resync_interval: Duration,
    key_prefix: String,
    timeout: Duration,
}

/// When the local copy was last known to be current, on a monotonic clock.
#[derive(Debug)]
struct Health {
    epoch: Instant,
    /// Milliseconds after `epoch`; `u64::MAX` means never (or the copy is known incomplete).
    current_at_ms: AtomicU64,
    /// A store that is the local copy itself (memory) is always current.
    always_current: bool,
    /// Entries were dropped for lack of room: the copy is incomplete until a resync fits.
    overflowed: AtomicBool,
}

impl Health {
    fn new(always_current: bool) -> Self {
        Self {
            epoch: Instant::now(),
            current_at_ms: AtomicU64::new(u64::MAX),
            always_current,
            overflowed: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    #[cfg(feature = "redis")]
    fn mark_current(&self) {
        self.current_at_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How old the copy is; `None` when it was never complete.
    fn age(&self) -> Option<Duration> {
        if self.always_current {
            return Some(Duration::ZERO);
        }
        if self.overflowed.load(Ordering::Relaxed) {
            return None;
        }
        match self.current_at_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            at => Some(Duration::from_millis(self.now_ms().saturating_sub(at))),
        }
    }
}

/// How current a list's local copy is: see [`RevocationList::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationStatus {
    /// Entries in the local copy.
    pub entries: usize,
    /// How long ago the copy was last confirmed current (`Duration::ZERO` for a memory list);
    /// `None` if it never was, or if entries had to be dropped for lack of room.
    pub age: Option<Duration>,
    /// Whether the layer uses the copy: its age is within the maximum staleness.
    pub usable: bool,
}

impl RevocationList {
    /// A list kept in this process only, bounded by [`DEFAULT_MAX_REVOCATIONS`] entries. For
    /// several replicas, use [`RevocationListBuilder::redis`].
    pub fn memory() -> Self {
        Self::builder().memory()
    }

    /// Configures a list: its bound, and for Redis its staleness limit and failure mode.
    pub fn builder() -> RevocationListBuilder {
        RevocationListBuilder::default()
    }

    /// Revokes the token whose `jti` is `jti` until `exp` (its `exp` claim, seconds since the
    /// epoch). With Redis, returns once Redis has recorded and published it; this replica's copy
    /// has it at once, the others within milliseconds.
    ///
    /// A token that has already expired needs no entry: nothing is written.
    ///
    /// # Errors
    ///
    /// [`RevocationError::InvalidValue`] for an empty or oversized `jti`,
    /// [`RevocationError::Full`] when the list is at its bound, and
    /// [`RevocationError::Unavailable`] when Redis can't record it.
    pub async fn revoke_token(&self, jti: &str, exp: i64) -> Result<(), RevocationError> {
        check_value("jti", jti)?;
        let until = exp.saturating_add(EXPIRY_GRACE_SECS);
        if until < crate::clock::unix_seconds(SystemTime::now()) {
            return Ok(());
        }
        #[cfg(feature = "redis")]
        if let Some(store) = &self.0.redis {
            store.revoke_token(jti, exp, until).await?;
        }
        self.insert(|set| set.insert_token(jti, until))
    }

    /// Revokes every token of subject `sub` issued before `before` (seconds since the epoch;
    /// tokens without `iat` too): "log out everywhere". The entry is kept for the
    /// [subject retention](RevocationListBuilder::subject_retention) after `before`.
    ///
    /// # Errors
    ///
    /// As for [`revoke_token`](Self::revoke_token).
    pub async fn revoke_subject(&self, sub: &str, before: i64) -> Result<(), RevocationError> {
        check_value("sub", sub)?;
        let retention =
            i64::try_from(self.0.settings.subject_retention.as_secs()).unwrap_or(i64::MAX);
        let until = before
            .saturating_add(retention)
            .saturating_add(EXPIRY_GRACE_SECS);
        if until < crate::clock::unix_seconds(SystemTime::now()) {
            return Ok(());
        }
        #[cfg(feature = "redis")]
        if let Some(store) = &self.0.redis {
            store.revoke_subject(sub, before, until).await?;
        }
        self.insert(|set| set.insert_subject(sub, before, until))
    }

    /// Adds an entry to the local copy; when it is full, drops the entries whose time has passed
    /// and tries once more.
    fn insert(
        &self,
        insert: impl Fn(&RevokedSet) -> Result<(), set::Full>,
    ) -> Result<(), RevocationError> {
        let set = &self.0.set;
        insert(set)
            .or_else(|set::Full| {
                set.purge_expired(crate::clock::unix_seconds(SystemTime::now()));
                insert(set)
            })
            .map_err(|set::Full| self.full())
    }

    /// Whether the local copy lists a token with these claims: by `jti`, or by `sub` with an
    /// `iat` before the subject's revocation (or no `iat`). No I/O.
    pub fn is_revoked(&self, claims: &RegisteredClaims) -> bool {
        self.0.set.is_revoked(
            claims.jti.as_deref(),
            claims.sub.as_deref(),
            claims.iat.map(|iat| iat.0),
        )
    }

    /// The size and age of the local copy.
    pub fn status(&self) -> RevocationStatus {
        let age = self.0.health.age();
        RevocationStatus {
            entries: self.0.set.len(),
            age,
            usable: age.is_some_and(|age| age <= self.0.settings.max_staleness),
        }
    }

    /// What the layer does when the copy is stale: refuse (`503`) or check the last copy.
    pub fn failure_mode(&self) -> FailureMode {
        self.0.settings.failure_mode
    }

    /// The layer's check: revoked tokens are refused; a copy older than the maximum staleness
    /// refuses everything when the list fails closed.
    pub(crate) fn check(&self, claims: &RegisteredClaims) -> Result<(), AuthError> {
        if self.is_revoked(claims) {
            return Err(AuthError::Revoked);
        }
        if self.0.settings.failure_mode == FailureMode::FailClosed && !self.status().usable {
            return Err(AuthError::RevocationUnavailable {
                retry_after: self.0.settings.sync_interval.max(Duration::from_secs(1)),
            });
        }
        Ok(())
    }

    fn full(&self) -> RevocationError {
        RevocationError::Full {
            max_entries: self.0.set.max_entries(),
        }
    }
}

fn check_value(name: &'static str, value: &str) -> Result<(), RevocationError> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(RevocationError::InvalidValue(name));
    }
    Ok(())
}

/// Builds a [`RevocationList`]; get one with [`RevocationList::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct RevocationListBuilder {
    max_entries: usize,
    settings: Settings,
}

impl Default for RevocationListBuilder {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_REVOCATIONS,
            settings: Settings {
                subject_retention: Duration::from_secs(24 * 60 * 60),
                max_staleness: Duration::from_secs(30),
                failure_mode: FailureMode::FailClosed,
                sync_interval: Duration::from_secs(1),
                resync_interval: Duration::from_secs(300),
                key_prefix: "jwt-auth:revoked".to_owned(),
                timeout: Duration::from_secs(2),
            },
        }
    }
}

impl RevocationListBuilder {
    /// The most entries the local copy holds; a revocation beyond it fails with
    /// [`RevocationError::Full`], and a replica whose copy can't hold Redis's list counts as
    /// stale. Entries leave at their token's `exp` (plus five minutes, beyond any leeway): a
    /// memory list drops them when it needs the room, a Redis-backed one every sync interval.
    /// Default: [`DEFAULT_MAX_REVOCATIONS`] (1,000,000).
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// How long a subject revocation is kept after its time: set it to the longest lifetime of
    /// your issuer's tokens, since a token issued just before the time lives that long.
    /// Default: 24 hours.
    pub fn subject_retention(mut self, retention: Duration) -> Self {
        self.settings.subject_retention = retention;
        self
    }

    /// How long a Redis-backed copy that can't be confirmed current keeps serving before the
    /// [failure mode](FailureMode) applies. Default: 30 seconds.
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.settings.max_staleness = max_staleness;
        self
    }

    /// Lets requests through (checked against the last copy) when the copy is stale, instead of
    /// refusing them with `503`. Default: [`FailureMode::FailClosed`].
    pub fn fail_open(mut self) -> Self {
        self.settings.failure_mode = FailureMode::FailOpen;
        self
    }

    /// How often a Redis-backed list checks Redis's version counter (which confirms the copy
    /// is current, and catches a lost last message). Default: 1 second.
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.settings.sync_interval = interval;
        self
    }

    /// How often a Redis-backed list reloads everything even when nothing looks missed: the
    /// worst-case propagation delay. Default: 5 minutes.
    pub fn resync_interval(mut self, interval: Duration) -> Self {
        self.settings.resync_interval = interval;
        self
    }

    /// The prefix of the Redis keys and channel, so that several lists can share one Redis.
    /// Default: `jwt-auth:revoked`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.key_prefix = prefix.into();
        self
    }

    /// How long a Redis connection attempt or command may take. Default: 2 seconds.
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// A list kept in this process only.
    pub fn memory(self) -> RevocationList {
        RevocationList(Arc::new(Inner {
            set: RevokedSet::new(self.max_entries),
            settings: self.settings,
            health: Health::new(true),
            #[cfg(feature = "redis")]
            redis: None,
        }))
    }

    /// A list shared through the Redis at `url` (e.g. `redis://127.0.0.1:6379/0`): connects,
    /// loads every entry, subscribes to updates and keeps the copy current in a background task
    /// (which needs a Tokio runtime and stops with the last clone of the list).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_jwt_auth::RevocationList;
    ///
    /// # async fn run() -> Result<(), tower_jwt_auth::RevocationError> {
    /// let revoked = RevocationList::builder()
    ///     .max_staleness(Duration::from_secs(10))
    ///     .redis("redis://127.0.0.1:6379")
    ///     .await?;
    /// # let _ = revoked;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RevocationError::InvalidUrl`], [`RevocationError::InvalidSetting`], or
    /// [`RevocationError::Unavailable`] when Redis can't be reached or the first load fails.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub async fn redis(self, url: &str) -> Result<RevocationList, RevocationError> {
        let settings = &self.settings;
        for (name, value) in [
            ("sync_interval", settings.sync_interval),
            ("redis_timeout", settings.timeout),
            ("resync_interval", settings.resync_interval),
        ] {
            if value.is_zero() {
                return Err(RevocationError::InvalidSetting {
                    name,
                    reason: "must not be zero",
                });
            }
        }
        if settings.key_prefix.is_empty() {
            return Err(RevocationError::InvalidSetting {
                name: "key_prefix",
                reason: "must not be empty",
            });
        }
        let (store, connection) = redis_store::RedisStore::connect(url, &self.settings).await?;
        let list = RevocationList(Arc::new(Inner {
            set: RevokedSet::new(self.max_entries),
            settings: self.settings,
            health: Health::new(false),
            redis: Some(store),
        }));
        redis_store::start_sync(&list, connection).await?;
        Ok(list)
    }
}
