//! Tests of the background refresh: saturating deadlines, settings at their extremes, fetches
//! dropped or panicking mid-flight, and the task stopping with the last user.

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
    let policy = RefreshPolicy::every_duration_at_max();
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
