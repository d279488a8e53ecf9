//! Keeping a fetched key set fresh: the background refresh, the coalesced and rate-limited
//! refetch on an unknown `kid`, backoff on failure, and stale-if-error.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use reqwest::Url;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::KeySet;
use super::discovery::discover_jwks_url;
use super::jwk::{JwkOrigin, SkippedKey, parse_jwks};
use super::policy::{RefreshPolicy, scaled};
use super::prepared::PreparedKey;
use super::remote::{FetchError, Fetched, HttpPolicy, fetch};
use super::snapshot::SnapshotFile;
use super::status::{FetchCounts, KeySetStatus};
use super::unknown_kid::UnknownKidGate;
use crate::algorithm::AlgorithmSet;
use crate::telemetry;

/// The farthest deadline ever set: "never" for a refresh or an expiry, as far as any process
/// lives, and far from the end of `Instant`'s range.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + after`, saturating at [`FAR_FUTURE`]: `Instant + Duration` panics on overflow, and
/// `Duration::MAX` is a fair way to say "never" in a [`RefreshPolicy`] or a `max-age`.
fn saturating_deadline(now: Instant, after: Duration) -> Instant {
    let mut after = after.min(FAR_FUTURE);
    loop {
        // Only an `Instant` near the end of its own range gets here more than once.
        if let Some(deadline) = now.checked_add(after) {
            return deadline;
        }
        after /= 2;
    }
}

/// Where a remote key set comes from.
#[derive(Debug, Clone)]
pub(crate) enum RemoteSource {
    JwksUrl(Url),
    Discovery { issuer: String },
}

struct Progress {
    jwks_url: Option<Url>,
    etag: Option<HeaderValue>,
    fetching: bool,
    unknown_kid: UnknownKidGate,
    failures: u32,
    last_error: Option<String>,
    last_success: Option<Instant>,
    last_skipped: Vec<SkippedKey>,
    fetches: FetchCounts,
    next_refresh: Instant,
}

/// An issuer's fetched keys and the machinery that keeps them fresh.
pub(crate) struct RemoteKeys {
    issuer: Option<String>,
    source: RemoteSource,
    client: reqwest::Client,
    policy: RefreshPolicy,
    http_policy: HttpPolicy,
    allowed: AlgorithmSet,
    configured: Vec<Arc<PreparedKey>>,
    current: Arc<ArcSwap<KeySet>>,
    state: Mutex<Progress>,
    generation: watch::Sender<u64>,
    task: Mutex<Option<AbortHandle>>,
    /// Where the last good JWKS is kept, with `RefreshPolicy::snapshot_dir`.
    snapshot: Option<SnapshotFile>,
    /// Makes the next fetch panic, to test that a panicking fetch leaves nothing stuck.
    #[cfg(test)]
    panic_in_next_fetch: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("issuer", &self.issuer)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Drop for RemoteKeys {
    fn drop(&mut self) {
        // The refresh task only holds a weak reference; stop it with the last layer.
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// Everything needed to set up a remote key set.
pub(crate) struct RemoteSetup {
    pub(crate) issuer: Option<String>,
    pub(crate) source: RemoteSource,
    pub(crate) client: reqwest::Client,
    pub(crate) policy: RefreshPolicy,
    pub(crate) http_policy: HttpPolicy,
    pub(crate) allowed: AlgorithmSet,
    pub(crate) configured: Vec<Arc<PreparedKey>>,
}

impl RemoteKeys {
    /// Fetches the keys once and starts the background refresh. With `wait_for_keys`, a failed
    /// first fetch is returned as an error; without, the set starts empty (requests get `503`)
    /// and the refresh task keeps trying.
    pub(crate) async fn start(
        setup: RemoteSetup,
        current: Arc<ArcSwap<KeySet>>,
        wait_for_keys: bool,
    ) -> Result<Arc<Self>, FetchError> {
        let (generation, _) = watch::channel(0);
        let jwks_url = match &setup.source {
            RemoteSource::JwksUrl(url) => Some(url.clone()),
            RemoteSource::Discovery { .. } => None,
        };
        let now = Instant::now();
        let snapshot = setup.policy.snapshot_dir.as_deref().map(|dir| {
            let source = match &setup.source {
                RemoteSource::JwksUrl(url) => url.as_str(),
                RemoteSource::Discovery { .. } => "discovery",
            };
            SnapshotFile::new(dir, setup.issuer.as_deref().unwrap_or(""), source)
        });
        let remote = Arc::new(Self {
            issuer: setup.issuer,
            source: setup.source,
            client: setup.client,
            policy: setup.policy,
            http_policy: setup.http_policy,
            allowed: setup.allowed,
            configured: setup.configured,
            current,
            state: Mutex::new(Progress {
                jwks_url,
                etag: None,
                fetching: false,
                unknown_kid: UnknownKidGate::default(),
                failures: 0,
                last_error: None,
                last_success: None,
                last_skipped: Vec::new(),
                fetches: FetchCounts::default(),
                next_refresh: now,
            }),
            generation,
            task: Mutex::new(None),
            snapshot,
            #[cfg(test)]
            panic_in_next_fetch: std::sync::atomic::AtomicBool::new(false),
        });
        if wait_for_keys {
            // The state's lock is released before the fetch (a `let`, not an `if let`, ends
            // the guard's life at the semicolon).
            let turn = remote.take_turn(&mut lock(&remote.state));
            if let Some(turn) = turn
                && let Err(error) = remote.fetch_and_apply(turn).await
                && !remote.apply_snapshot()
            {
                return Err(error);
            }
        } else {
            // Requests can be served from the snapshot until the first fetch brings keys.
            remote.apply_snapshot();
        }
        // Without waiting, the refresh task makes the first fetch at once.
        let task = tokio::spawn(refresh_loop(Arc::downgrade(&remote)));
        *lock(&remote.task) = Some(task.abort_handle());
        Ok(remote)
    }

    /// Whether a token may wait for a refetch now: a fetch is running or the cooldown has
    /// passed, and (for a `kid` missing from a usable set) that `kid` is not known to be unknown.
    pub(crate) fn may_refetch(&self, kid: Option<&str>, unknown_key: bool) -> bool {
        let state = lock(&self.state);
        !(unknown_key && state.unknown_kid.is_known_unknown(kid))
            && (state.fetching
                || state
                    .unknown_kid
                    .cooldown_passed(self.policy.unknown_kid_cooldown))
    }

    /// Refetches for an unknown `kid` (joining a fetch already running, else starting one if the
    /// cooldown allows) and waits, at most `unknown_kid_wait`, for it to finish.
    pub(crate) async fn refetch_for_unknown_kid(self: &Arc<Self>) {
        let mut done = self.generation.subscribe();
        let turn = {
            let mut state = lock(&self.state);
            if state.fetching {
                None
            } else if state
                .unknown_kid
                .cooldown_passed(self.policy.unknown_kid_cooldown)
            {
                state.unknown_kid.refetch_started();
                self.take_turn(&mut state)
            } else {
                return;
            }
        };
        if let Some(turn) = turn {
            tracing::debug!(
                issuer = self.issuer_label(),
                "refetching keys for an unknown kid"
            );
            let this = Arc::clone(self);
            // Spawned, so that the fetch completes even if every waiting request goes away.
            tokio::spawn(async move {
                let _ = this.fetch_and_apply(turn).await;
            });
        }
        let _ = tokio::time::timeout(self.policy.unknown_kid_wait, done.changed()).await;
    }

    /// Remembers that `kid` is not in the set, until the next successful refresh; called after a
    /// refetch did not bring it. Only a set that is current proves a `kid` unknown: while a fetch
    /// runs or after one failed, nothing is remembered.
    pub(crate) fn remember_unknown_kid(&self, kid: Option<&str>) {
        let mut state = lock(&self.state);
        if !state.fetching && state.failures == 0 {
            state.unknown_kid.remember(kid);
        }
    }

    /// When a client turned away with `503` may retry.
    pub(crate) fn retry_after(&self) -> Duration {
        let state = lock(&self.state);
        state
            .next_refresh
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1))
    }

    pub(crate) fn status(&self) -> KeySetStatus {
        let state = lock(&self.state);
        let set = self.current.load();
        KeySetStatus {
            issuer: self.issuer.clone(),
            jwks_url: state.jwks_url.as_ref().map(Url::to_string),
            key_count: set.len(),
            age: state.last_success.map(|at| at.elapsed()),
            stale: state.failures > 0 && state.last_success.is_some(),
            usable: set.is_usable(),
            last_error: state.last_error.clone(),
            fetches: state.fetches,
        }
    }

    fn issuer_label(&self) -> &str {
        self.issuer.as_deref().unwrap_or("-")
    }

    /// The turn to run the one fetch of this set, unless a fetch is running.
    fn take_turn(self: &Arc<Self>, state: &mut Progress) -> Option<FetchTurn> {
        if state.fetching {
            return None;
        }
        state.fetching = true;
        Some(FetchTurn {
            remote: Arc::clone(self),
            finished: false,
        })
    }

    /// Waits for the fetch running now, or runs one.
    pub(crate) async fn fetch_now(self: &Arc<Self>) {
        let mut done = self.generation.subscribe();
        let turn = self.take_turn(&mut lock(&self.state));
        match turn {
            Some(turn) => {
                let _ = self.fetch_and_apply(turn).await;
            }
            None => {
                let _ = done.changed().await;
            }
        }
    }

    /// Fetches once, applies the result, and (by ending `turn`) wakes the waiters.
    async fn fetch_and_apply(&self, mut turn: FetchTurn) -> Result<(), FetchError> {
        let result = self.fetch_once().await;
        let now = Instant::now();
        {
            let mut state = lock(&self.state);
            state.fetching = false;
            match &result {
                Ok((interval, not_modified)) => {
                    if *not_modified {
                        state.fetches.not_modified += 1;
                    } else {
                        state.fetches.ok += 1;
                    }
                    let result = if *not_modified { "not_modified" } else { "ok" };
                    telemetry::jwks_fetch(self.issuer_label(), result);
                    telemetry::key_set_current(self.issuer_label(), self.current.load().len());
                    if state.failures > 0 {
                        tracing::info!(issuer = self.issuer_label(), "key fetch recovered");
                    }
                    state.failures = 0;
                    state.last_error = None;
                    state.last_success = Some(now);
                    state.unknown_kid.forget_unknown();
                    // Refresh a little before the set goes stale, so that a fail-closed policy
                    // does not flap on every interval.
                    state.next_refresh = saturating_deadline(now, scaled(*interval, 0.9));
                }
                Err(err) => {
                    state.fetches.failed += 1;
                    telemetry::jwks_fetch(self.issuer_label(), "failed");
                    state.failures = state.failures.saturating_add(1);
                    if state.failures == 1 {
                        tracing::warn!(
                            issuer = self.issuer_label(),
                            error = %err,
                            serving_stale = state.last_success.is_some(),
                            "key fetch failed"
                        );
                    } else {
                        tracing::debug!(issuer = self.issuer_label(), error = %err, failures = state.failures, "key fetch failed again");
                    }
                    state.last_error = Some(err.to_string());
                    state.next_refresh =
                        saturating_deadline(now, self.policy.backoff(state.failures));
                }
            }
        }
        turn.finished = true;
        drop(turn);
        result.map(|_| ())
    }

    /// One fetch (with discovery first if needed); on success the new set is in place and the
    /// refresh interval is returned.
    /// Returns the interval and whether the server answered `304 Not Modified`.
    async fn fetch_once(&self) -> Result<(Duration, bool), FetchError> {
        #[cfg(test)]
        assert!(
            !self
                .panic_in_next_fetch
                .swap(false, std::sync::atomic::Ordering::SeqCst),
            "a fetch panicked (injected by a test)"
        );
        let (url, etag) = {
            let state = lock(&self.state);
            (state.jwks_url.clone(), state.etag.clone())
        };
        let url = match (url, &self.source) {
            (Some(url), _) => url,
            (None, RemoteSource::Discovery { issuer }) => {
                let url =
                    discover_jwks_url(&self.client, issuer, self.http_policy, &self.policy).await?;
                lock(&self.state).jwks_url = Some(url.clone());
                url
            }
            (None, RemoteSource::JwksUrl(url)) => url.clone(),
        };
        let started = Instant::now();
        let fetched = fetch(&self.client, &url, etag.as_ref(), &self.policy).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match fetched {
            Ok(Fetched::NotModified { max_age }) => {
                tracing::debug!(
                    issuer = self.issuer_label(),
                    result = "not_modified",
                    elapsed_ms,
                    "jwks fetch"
                );
                let interval = self.policy.interval(max_age);
                let renewed = self.current.load().renewed(self.expiry(interval));
                self.current.store(Arc::new(renewed));
                self.save_snapshot(None);
                Ok((interval, true))
            }
            Ok(Fetched::Document {
                body,
                etag,
                max_age,
            }) => {
                let parsed = parse_jwks(&body, JwkOrigin::Fetched, self.allowed)
                    .map_err(FetchError::Invalid)?;
                self.log_skipped(&parsed.skipped);
                if parsed.keys.is_empty() {
                    return Err(FetchError::Invalid("the JWKS has no usable key".to_owned()));
                }
                let interval = self.policy.interval(max_age);
                let fetched_count = parsed.keys.len();
                let mut keys = self.configured.clone();
                // A key that is still published keeps its prepared form, and with it the
                // verified-token cache entries it signed.
                let previous = self.current.load();
                keys.extend(parsed.keys.into_iter().map(|key| {
                    previous
                        .find(&key.fingerprint)
                        .map_or_else(|| Arc::new(key), Arc::clone)
                }));
                drop(previous);
                self.current
                    .store(Arc::new(KeySet::expiring(keys, self.expiry(interval))));
                lock(&self.state).etag = etag;
                self.save_snapshot(Some(&body));
                tracing::info!(
                    issuer = self.issuer_label(),
                    result = "ok",
                    keys = fetched_count,
                    skipped = parsed.skipped.len(),
                    refresh_secs = interval.as_secs(),
                    elapsed_ms,
                    "jwks fetch"
                );
                Ok((interval, false))
            }
            Err(err) => {
                tracing::debug!(issuer = self.issuer_label(), result = "failed", error = %err, elapsed_ms, "jwks fetch");
                Err(err)
            }
        }
    }

    /// Puts the snapshot's keys in place, if there is a usable snapshot; they are trusted until
    /// the maximum staleness after the snapshot's fetch.
    fn apply_snapshot(&self) -> bool {
        let Some(file) = &self.snapshot else {
            return false;
        };
        let Some((jwks, age)) = file.load(self.policy.max_staleness) else {
            return false;
        };
        let parsed = match parse_jwks(&jwks, JwkOrigin::Fetched, self.allowed) {
            Ok(parsed) if !parsed.keys.is_empty() => parsed,
            _ => {
                tracing::warn!(
                    issuer = self.issuer_label(),
                    "key snapshot has no usable key; ignored"
                );
                return false;
            }
        };
        let mut keys = self.configured.clone();
        keys.extend(parsed.keys.into_iter().map(Arc::new));
        let now = Instant::now();
        let left = self.policy.max_staleness.saturating_sub(age);
        self.current.store(Arc::new(KeySet::expiring(
            keys,
            saturating_deadline(now, left),
        )));
        lock(&self.state).last_success = now.checked_sub(age);
        tracing::warn!(
            issuer = self.issuer_label(),
            age_secs = age.as_secs(),
            "issuer unreachable: serving keys from the snapshot while retrying"
        );
        true
    }

    /// Keeps `jwks`, just fetched, as the snapshot; `None` after a `304`: the snapshot's
    /// document is confirmed current. Off the async threads.
    fn save_snapshot(&self, jwks: Option<&str>) {
        let Some(file) = self.snapshot.clone() else {
            return;
        };
        let jwks = jwks.map(str::to_owned);
        let issuer = self.issuer_label().to_owned();
        tokio::task::spawn_blocking(move || {
            let saved = match &jwks {
                Some(jwks) => file.save(jwks),
                None => file.touch(),
            };
            if let Err(error) = saved {
                tracing::warn!(issuer, %error, "cannot write the key snapshot");
            }
        });
    }

    /// When a set fetched now, to be refreshed after `interval`, stops being trusted.
    fn expiry(&self, interval: Duration) -> Instant {
        saturating_deadline(
            Instant::now(),
            interval.saturating_add(self.policy.max_staleness),
        )
    }

    /// Logs skipped keys when the list changes, not on every refresh.
    fn log_skipped(&self, skipped: &[SkippedKey]) {
        let mut state = lock(&self.state);
        if state.last_skipped == skipped {
            return;
        }
        for key in skipped {
            tracing::warn!(
                issuer = self.issuer_label(),
                kid = key.kid.as_deref().unwrap_or("-"),
                reason = %key.reason,
                "skipping unusable key"
            );
        }
        state.last_skipped = skipped.to_vec();
    }
}

/// The right to run the one fetch of a key set (`fetching` is set while it lives). However the
/// fetch ends, finished, cancelled (its future or task dropped) or panicking, dropping the turn
/// clears `fetching` and wakes whoever waits for the fetch: otherwise a fetch that never finished
/// would leave every later refetch joining it and the refresh waiting for it forever.
struct FetchTurn {
    remote: Arc<RemoteKeys>,
    /// Whether the result was applied (which cleared `fetching`).
    finished: bool,
}

impl Drop for FetchTurn {
    fn drop(&mut self) {
        let remote = &self.remote;
        if !self.finished {
            // Counted as a failed fetch: the set was not proven current, and the retry backs off.
            let mut state = lock(&remote.state);
            state.fetching = false;
            state.fetches.failed += 1;
            state.failures = state.failures.saturating_add(1);
            state.last_error = Some("the fetch was cancelled or panicked".to_owned());
            state.next_refresh =
                saturating_deadline(Instant::now(), remote.policy.backoff(state.failures));
            drop(state);
            telemetry::jwks_fetch(remote.issuer_label(), "failed");
            tracing::warn!(
                issuer = remote.issuer_label(),
                "key fetch ended without a result (cancelled or panicked)"
            );
        }
        remote
            .generation
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }
}

/// Refreshes on schedule until the key set is dropped.
async fn refresh_loop(remote: Weak<RemoteKeys>) {
    loop {
        let next = match remote.upgrade() {
            Some(remote) => lock(&remote.state).next_refresh,
            None => return,
        };
        tokio::time::sleep_until(next).await;
        let Some(remote) = remote.upgrade() else {
            return;
        };
        // A refetch for an unknown kid may have moved the schedule while this task slept.
        if Instant::now() < lock(&remote.state).next_refresh {
            continue;
        }
        // In a task of its own, so that a fetch that panics ends that fetch, not the schedule (its
        // turn puts the state right and schedules the retry).
        let issuer = remote.issuer_label().to_owned();
        let fetch = tokio::spawn(async move { remote.fetch_now().await });
        if let Err(err) = fetch.await
            && err.is_panic()
        {
            tracing::error!(issuer, "key refresh panicked; retrying with backoff");
        }
    }
}

/// Locks a mutex that is never held across an await; a panic while holding it can't leave the
/// state half-written in a way that matters more than stopping the refresh, so poisoning is
/// ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
#[path = "refresh_tests.rs"]
mod tests;
