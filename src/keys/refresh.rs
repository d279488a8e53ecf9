//! Keeping a fetched key set fresh: the background refresh, the coalesced and rate-limited
//! refetch on an unknown `kid`, backoff on failure, and stale-if-error.

use std::collections::HashSet;
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
use crate::algorithm::AlgorithmSet;
use crate::telemetry;

/// At most this many unknown `kid`s are remembered between refreshes; past that, the cooldown
/// alone limits refetches.
const MAX_UNKNOWN_KIDS: usize = 1024;
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

/// The state of an issuer's keys at one moment, from
/// [`JwtAuthLayer::key_sets`](crate::JwtAuthLayer::key_sets): for health checks and dashboards.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeySetStatus {
    /// The issuer (`None` for an issuer without `iss` check).
    pub issuer: Option<String>,
    /// The JWKS URL, once known.
    pub jwks_url: Option<String>,
    /// How many keys are in use.
    pub key_count: usize,
    /// Time since the last successful fetch (or revalidation); `None` before the first.
    pub age: Option<Duration>,
    /// Whether the last refresh failed and the previous keys are serving (stale-if-error).
    pub stale: bool,
    /// Whether requests can be verified now (`false`: they get `503`).
    pub usable: bool,
    /// The last fetch error, if the last fetch failed.
    pub last_error: Option<String>,
    /// Fetches since the layer was built, by result.
    pub fetches: FetchCounts,
}

/// How many fetches of a key set ended how, since the layer was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchCounts {
    /// A new JWKS was loaded.
    pub ok: u64,
    /// The server answered `304 Not Modified`: the keys are still current.
    pub not_modified: u64,
    /// The fetch (or the discovery before it) failed.
    pub failed: u64,
}

impl KeySetStatus {
    /// The status of configured keys, which are never fetched.
    pub(crate) fn fixed(issuer: Option<&str>, key_count: usize) -> Self {
        Self {
            issuer: issuer.map(str::to_owned),
            jwks_url: None,
            key_count,
            age: None,
            stale: false,
            usable: key_count > 0,
            last_error: None,
            fetches: FetchCounts::default(),
        }
    }
}

struct State {
    jwks_url: Option<Url>,
    etag: Option<HeaderValue>,
    fetching: bool,
    last_on_demand: Option<Instant>,
    unknown_kids: HashSet<String>,
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
    state: Mutex<State>,
    generation: watch::Sender<u64>,
    task: Mutex<Option<AbortHandle>>,
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
        let remote = Arc::new(Self {
            issuer: setup.issuer,
            source: setup.source,
            client: setup.client,
            policy: setup.policy,
            http_policy: setup.http_policy,
            allowed: setup.allowed,
            configured: setup.configured,
            current,
            state: Mutex::new(State {
                jwks_url,
                etag: None,
                fetching: false,
                last_on_demand: None,
                unknown_kids: HashSet::new(),
                failures: 0,
                last_error: None,
                last_success: None,
                last_skipped: Vec::new(),
                fetches: FetchCounts::default(),
                next_refresh: now,
            }),
            generation,
            task: Mutex::new(None),
            #[cfg(test)]
            panic_in_next_fetch: std::sync::atomic::AtomicBool::new(false),
        });
        if wait_for_keys {
            // The state's lock is released before the fetch (a `let`, not an `if let`, ends
            // the guard's life at the semicolon).
            let turn = remote.take_turn(&mut lock(&remote.state));
            if let Some(turn) = turn {
                remote.fetch_and_apply(turn).await?;
            }
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
        !(unknown_key && state.unknown_kids.contains(kid.unwrap_or("")))
            && (state.fetching || cooldown_passed(&state, &self.policy))
    }

    /// Refetches for an unknown `kid` (joining a fetch already running, else starting one if the
    /// cooldown allows) and waits, at most `unknown_kid_wait`, for it to finish.
    pub(crate) async fn refetch_for_unknown_kid(self: &Arc<Self>) {
        let mut done = self.generation.subscribe();
        let turn = {
            let mut state = lock(&self.state);
            if state.fetching {
                None
            } else if cooldown_passed(&state, &self.policy) {
                state.last_on_demand = Some(Instant::now());
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
        if !state.fetching && state.failures == 0 && state.unknown_kids.len() < MAX_UNKNOWN_KIDS {
            state.unknown_kids.insert(kid.unwrap_or("").to_owned());
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
    fn take_turn(self: &Arc<Self>, state: &mut State) -> Option<FetchTurn> {
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
                    state.unknown_kids.clear();
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

fn cooldown_passed(state: &State, policy: &RefreshPolicy) -> bool {
    state
        .last_on_demand
        .is_none_or(|at| at.elapsed() >= policy.unknown_kid_cooldown)
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
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::StatusCode;
    use http::header::CACHE_CONTROL;

    use super::*;
    use crate::algorithm::Algorithm;

    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed1",
        "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    /// How the test issuer answers.
    #[derive(Clone, Copy, PartialEq)]
    enum Answer {
        Keys,
        Error,
        Never,
    }

    /// A JWKS server on loopback, answering as told, with an endless `max-age`.
    struct Issuer {
        url: Url,
        hits: Arc<AtomicUsize>,
        answer: Arc<Mutex<Answer>>,
    }

    impl Issuer {
        async fn start() -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap()));
            let hits = Arc::new(AtomicUsize::new(0));
            let answer = Arc::new(Mutex::new(Answer::Keys));
            let (counter, answering) = (Arc::clone(&hits), Arc::clone(&answer));
            let jwks = async move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let answer = *lock(&answering);
                match answer {
                    Answer::Keys => Ok(([(CACHE_CONTROL, "max-age=18446744073709551615")], JWKS)),
                    Answer::Error => Err(StatusCode::INTERNAL_SERVER_ERROR),
                    Answer::Never => std::future::pending().await,
                }
            };
            let app = axum::Router::new().route("/jwks", axum::routing::get(jwks));
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self {
                url: url.unwrap(),
                hits,
                answer,
            }
        }

        fn answer(&self, answer: Answer) {
            *lock(&self.answer) = answer;
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        async fn keys(&self, policy: RefreshPolicy) -> (Arc<RemoteKeys>, Arc<ArcSwap<KeySet>>) {
            let setup = RemoteSetup {
                issuer: None,
                source: RemoteSource::JwksUrl(self.url.clone()),
                client: super::super::default_client(&policy).unwrap(),
                policy,
                http_policy: HttpPolicy::LoopbackOnly,
                allowed: Algorithm::ALL.into_iter().collect(),
                configured: Vec::new(),
            };
            let current = Arc::new(ArcSwap::from_pointee(KeySet::default()));
            let remote = RemoteKeys::start(setup, Arc::clone(&current), true)
                .await
                .unwrap();
            (remote, current)
        }
    }

    /// Waits for `condition`, failing after a generous deadline; never a fixed sleep.
    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !condition() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let now = Instant::now();
        assert_eq!(
            saturating_deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(saturating_deadline(now, Duration::MAX), now + FAR_FUTURE);
        assert_eq!(
            saturating_deadline(now, Duration::from_secs(u64::MAX)),
            now + FAR_FUTURE
        );
    }

    #[tokio::test]
    async fn every_setting_at_duration_max_and_an_endless_max_age_do_not_panic() {
        let issuer = Issuer::start().await;
        let policy = RefreshPolicy::default()
            .min_interval(Duration::MAX)
            .max_interval(Duration::MAX)
            .fallback_interval(Duration::MAX)
            .unknown_kid_cooldown(Duration::MAX)
            .unknown_kid_wait(Duration::MAX)
            .max_staleness(Duration::MAX)
            .max_backoff(Duration::MAX)
            .connect_timeout(Duration::MAX)
            .fetch_timeout(Duration::MAX);
        let (remote, current) = issuer.keys(policy).await;
        assert!(current.load().is_usable());
        assert!(remote.retry_after() >= Duration::from_secs(1));

        // A failed refresh backs off (the backoff has a ceiling of its own) and stale keys serve.
        issuer.answer(Answer::Error);
        remote.fetch_now().await;
        let status = remote.status();
        assert!(status.usable && status.stale, "{status:?}");
        assert!(remote.retry_after() <= Duration::from_secs(1 << 20));

        // The first on-demand refetch is allowed; waiting "forever" ends when it does.
        issuer.answer(Answer::Keys);
        remote.refetch_for_unknown_kid().await;
        assert_eq!(issuer.hits(), 3);
        let status = remote.status();
        assert!(status.usable && !status.stale, "{status:?}");
        assert!(
            !remote.may_refetch(Some("other"), true),
            "the cooldown is endless"
        );
    }

    #[tokio::test]
    async fn a_fetch_dropped_mid_flight_does_not_leave_the_set_waiting_for_it() {
        let issuer = Issuer::start().await;
        let (remote, current) = issuer.keys(RefreshPolicy::default()).await;
        issuer.answer(Answer::Never);

        // A fetch that never answers, and a request waiting for it; the fetch is then dropped
        // mid-flight, as when its task is aborted or it panics.
        let mut fetch = Box::pin(remote.fetch_now());
        let mut waiter = Box::pin(remote.fetch_now());
        tokio::select! {
            () = &mut fetch => panic!("the issuer never answers"),
            () = eventually("the fetch to reach the issuer", || issuer.hits() == 2) => {}
        }
        tokio::select! {
            biased;
            () = &mut waiter => panic!("the fetch is still running"),
            () = std::future::ready(()) => {}
        }
        drop(fetch);
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("the waiter was not woken");
        let status = remote.status();
        assert_eq!(status.fetches.failed, 1);
        assert!(status.usable && status.stale, "{status:?}");

        // A later unknown kid starts a new fetch instead of joining the dropped one.
        issuer.answer(Answer::Keys);
        remote.refetch_for_unknown_kid().await;
        assert_eq!(issuer.hits(), 3);
        assert_eq!(remote.status().fetches.ok, 2);
        assert!(current.load().is_usable());
    }

    #[tokio::test]
    async fn a_panicking_fetch_neither_stays_in_flight_nor_ends_the_refresh_schedule() {
        let issuer = Issuer::start().await;
        // A refresh every few milliseconds, whatever max-age says.
        let policy = RefreshPolicy::default()
            .min_interval(Duration::from_millis(5))
            .max_interval(Duration::from_millis(20));
        let (remote, _) = issuer.keys(policy).await;
        remote.panic_in_next_fetch.store(true, Ordering::SeqCst);
        eventually("the panicking refresh", || {
            remote.status().fetches.failed == 1
        })
        .await;
        assert!(!lock(&remote.state).fetching);
        assert_eq!(
            remote.status().last_error.as_deref(),
            Some("the fetch was cancelled or panicked")
        );
        // The schedule goes on: the next refreshes succeed.
        let ok = remote.status().fetches.ok;
        eventually("a refresh after the panic", || {
            remote.status().fetches.ok > ok
        })
        .await;
        assert!(remote.status().usable);
    }

    #[tokio::test]
    async fn the_refresh_task_stops_when_the_last_user_is_dropped() {
        let issuer = Issuer::start().await;
        let (remote, current) = issuer.keys(RefreshPolicy::default()).await;
        assert_eq!(current.load().len(), 1);
        let task = lock(&remote.task).clone().unwrap();
        assert!(!task.is_finished());

        drop(remote);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !task.is_finished() {
            assert!(std::time::Instant::now() < deadline, "the task still runs");
            tokio::task::yield_now().await;
        }
    }
}
