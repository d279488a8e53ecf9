//! Revocation before `exp`: a revoked `jti` or subject is refused after the signature and on
//! cache hits; with Redis, replicas see each other's revocations, survive an outage (last copy,
//! then the failure mode) and recover, and a lost message is caught by the version counter.
//!
//! The Redis tests start a real `redis-server` (Debian's package) on loopback; without it they
//! say why they are skipped, and fail instead under `REQUIRE_REDIS=1` (set by `.ci/run`).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{AuthError, JwtAuthLayer, RevocationList};

async fn layer(issuer: &TestIssuer, list: &RevocationList) -> JwtAuthLayer<Value> {
    issuer
        .layer_builder::<Value>()
        .revocation(list.clone())
        .build()
        .await
        .unwrap()
}

fn token_with(issuer: &TestIssuer, claims: Value) -> (String, i64) {
    let token = issuer.token(claims);
    let (_, payload) = decode_payload(&token);
    (token, payload["exp"].as_i64().unwrap())
}

fn decode_payload(token: &str) -> (String, Value) {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    (payload.to_owned(), serde_json::from_slice(&bytes).unwrap())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Polls `condition` every 5 ms until it holds; fails the test after 30 s.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_revoked_jti_is_refused_as_revoked_even_when_the_token_is_cached() {
    let issuer = TestIssuer::start().await.unwrap();
    let list = RevocationList::memory();
    let layer = layer(&issuer, &list).await;
    let (token, exp) = token_with(&issuer, json!({ "jti": "token-1" }));
    let (other, _) = token_with(&issuer, json!({ "jti": "token-2" }));
    // Verified once: the next check is a cache hit.
    layer.verify(&token).await.unwrap();
    list.revoke_token("token-1", exp).await.unwrap();
    let error = layer.verify(&token).await.unwrap_err();
    assert_eq!(error, AuthError::Revoked);
    assert_eq!(error.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(error.cause(), "revoked");
    assert_eq!(error.description(), "token revoked");
    layer.verify(&other).await.unwrap();
    assert_eq!(list.status().entries, 1);
}

#[tokio::test]
async fn revoking_a_subject_refuses_its_tokens_issued_before_the_time() {
    let issuer = TestIssuer::start().await.unwrap();
    let list = RevocationList::memory();
    let layer = layer(&issuer, &list).await;
    let t = now();
    let (old, _) = token_with(&issuer, json!({ "sub": "alice", "iat": t - 10 }));
    let (new, _) = token_with(&issuer, json!({ "sub": "alice", "iat": t + 5 }));
    let (bob, _) = token_with(&issuer, json!({ "sub": "bob", "iat": t - 10 }));
    list.revoke_subject("alice", t).await.unwrap();
    assert_eq!(layer.verify(&old).await.unwrap_err(), AuthError::Revoked);
    layer.verify(&new).await.unwrap();
    layer.verify(&bob).await.unwrap();
}

#[tokio::test]
async fn a_revoked_token_gets_401_invalid_token_token_revoked() {
    use axum::body::Body;
    use tower::ServiceExt as _;
    let issuer = TestIssuer::start().await.unwrap();
    let list = RevocationList::memory();
    let layer = layer(&issuer, &list).await;
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(layer);
    let (token, exp) = token_with(&issuer, json!({ "jti": "gone" }));
    list.revoke_token("gone", exp).await.unwrap();
    let response = app
        .oneshot(
            http::Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token", error_description="token revoked""#
    );
}

#[tokio::test]
async fn a_memory_list_is_bounded() {
    let list = RevocationList::builder().max_entries(2).memory();
    let exp = now() + 600;
    list.revoke_token("a", exp).await.unwrap();
    list.revoke_token("b", exp).await.unwrap();
    let error = list.revoke_token("c", exp).await.unwrap_err();
    assert!(matches!(
        error,
        tower_jwt_auth::RevocationError::Full { max_entries: 2 }
    ));
    // Entries whose token has expired (beyond the grace) make room.
    let short = RevocationList::builder().max_entries(1).memory();
    short
        .revoke_token("expired-soon", now() - 299)
        .await
        .unwrap();
    assert_eq!(short.status().entries, 1);
    // Kept through the grace (beyond any leeway), then dropped to make room.
    eventually("the expired entry to make room", async || {
        short.revoke_token("x", exp).await.is_ok()
    })
    .await;
    assert_eq!(short.status().entries, 1);
    // Revoking an expired token needs no room, and an empty jti is refused.
    list.revoke_token("old", now() - 3600).await.unwrap();
    assert!(list.revoke_token("", exp).await.is_err());
}

#[cfg(feature = "redis")]
mod redis_shared {
    use super::*;
    use tower_jwt_auth::RevocationError;
    use tower_jwt_auth::test_util::{TestRedis, TestRedisError};

    /// A fresh `redis-server`, or `None` (with the reason printed) when it is not installed;
    /// under `REQUIRE_REDIS=1` a missing server fails the test instead.
    async fn redis(test: &str) -> Option<TestRedis> {
        match TestRedis::start().await {
            Ok(redis) => Some(redis),
            Err(TestRedisError::NotInstalled)
                if std::env::var("REQUIRE_REDIS").as_deref() != Ok("1") =>
            {
                eprintln!(
                    "skipping {test}: redis-server is not installed (apt-get install \
                     redis-server; CI sets REQUIRE_REDIS=1)"
                );
                None
            }
            Err(error) => panic!("redis-server is required (REQUIRE_REDIS=1): {error}"),
        }
    }

    async fn raw_connection(redis: &TestRedis) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn two_layers_sharing_redis_see_each_others_revocations() {
        let Some(redis) = redis("two_layers_sharing_redis_see_each_others_revocations").await
        else {
            return;
        };
        let issuer = TestIssuer::start().await.unwrap();
        let list_a = RevocationList::builder().redis(&redis.url()).await.unwrap();
        let list_b = RevocationList::builder().redis(&redis.url()).await.unwrap();
        let (layer_a, layer_b) = (layer(&issuer, &list_a).await, layer(&issuer, &list_b).await);
        let (token, exp) = token_with(&issuer, json!({ "jti": "shared-1", "sub": "carol" }));
        layer_a.verify(&token).await.unwrap();
        layer_b.verify(&token).await.unwrap();

        list_a.revoke_token("shared-1", exp).await.unwrap();
        assert_eq!(
            layer_a.verify(&token).await.unwrap_err(),
            AuthError::Revoked
        );
        eventually("replica B to see A's revocation", async || {
            layer_b.verify(&token).await.err() == Some(AuthError::Revoked)
        })
        .await;

        let (dave, _) = token_with(
            &issuer,
            json!({ "jti": "d", "sub": "dave", "iat": now() - 5 }),
        );
        list_b.revoke_subject("dave", now()).await.unwrap();
        eventually("replica A to see B's subject revocation", async || {
            layer_a.verify(&dave).await.err() == Some(AuthError::Revoked)
        })
        .await;

        // A replica started later loads what is already there.
        let list_c = RevocationList::builder().redis(&redis.url()).await.unwrap();
        let layer_c = layer(&issuer, &list_c).await;
        assert_eq!(
            layer_c.verify(&token).await.unwrap_err(),
            AuthError::Revoked
        );
        assert_eq!(layer_c.verify(&dave).await.unwrap_err(), AuthError::Revoked);
        assert_eq!(list_c.status().entries, 2);
    }

    /// Not a pass/fail timing: prints the propagation delay between two replicas on loopback
    /// (median and max over 500 revocations) for `BENCHMARKS.md`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn propagation_between_replicas_is_measured() {
        let Some(redis) = redis("propagation_between_replicas_is_measured").await else {
            return;
        };
        let writer = RevocationList::builder().redis(&redis.url()).await.unwrap();
        let reader = RevocationList::builder().redis(&redis.url()).await.unwrap();
        let exp = now() + 600;
        let mut delays = Vec::new();
        for i in 0..500 {
            let jti = format!("p-{i}");
            let claims: tower_jwt_auth::RegisteredClaims =
                serde_json::from_value(json!({ "jti": jti })).unwrap();
            let start = Instant::now();
            writer.revoke_token(&jti, exp).await.unwrap();
            while !reader.is_revoked(&claims) {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "revocation {i} never arrived"
                );
                tokio::task::yield_now().await;
            }
            delays.push(start.elapsed());
        }
        delays.sort();
        let median = delays[delays.len() / 2];
        let max = delays[delays.len() - 1];
        println!(
            "revocation propagation over loopback Redis ({} revocations, write included): \
             median {median:?}, p99 {:?}, max {max:?}",
            delays.len(),
            delays[delays.len() * 99 / 100]
        );
    }

    #[tokio::test]
    async fn a_redis_outage_serves_the_last_copy_then_fails_closed_then_recovers() {
        let Some(mut redis) =
            redis("a_redis_outage_serves_the_last_copy_then_fails_closed_then_recovers").await
        else {
            return;
        };
        let issuer = TestIssuer::start().await.unwrap();
        let staleness = Duration::from_millis(800);
        let sync_interval = Duration::from_millis(50);
        let list = RevocationList::builder()
            .max_staleness(staleness)
            .sync_interval(sync_interval)
            .redis_timeout(Duration::from_millis(300))
            .redis(&redis.url())
            .await
            .unwrap();
        let layer = layer(&issuer, &list).await;
        let (revoked, exp) = token_with(&issuer, json!({ "jti": "before-outage" }));
        let (silent, _) = token_with(&issuer, json!({ "jti": "written-silently" }));
        let (fine, _) = token_with(&issuer, json!({ "jti": "fine" }));
        list.revoke_token("before-outage", exp).await.unwrap();
        // Written straight into Redis without a message or a version: only a full resync
        // (after the reconnect) can find it.
        let mut raw = raw_connection(&redis).await;
        let _: () = redis::cmd("SET")
            .arg("jwt-auth:revoked:jti:written-silently")
            .arg(exp)
            .query_async(&mut raw)
            .await
            .unwrap();
        layer.verify(&silent).await.unwrap();

        redis.stop();
        // The last copy serves: the revoked token stays refused, others pass.
        assert_eq!(
            layer.verify(&revoked).await.unwrap_err(),
            AuthError::Revoked
        );
        // (Checked only while the copy is young: a loaded machine may delay the version checks.)
        if list.status().age.is_some_and(|age| age < staleness / 2) {
            layer.verify(&fine).await.unwrap();
        }
        // Writes fail with a clear error.
        let error = list.revoke_token("during", exp).await.unwrap_err();
        assert!(matches!(error, RevocationError::Unavailable(_)), "{error}");
        // Past the staleness limit: 503 with Retry-After, for every token.
        eventually("the copy to go stale", async || {
            matches!(
                layer.verify(&fine).await,
                Err(AuthError::RevocationUnavailable { .. })
            )
        })
        .await;
        let error = layer.verify(&fine).await.unwrap_err();
        assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(error.retry_after().is_some());
        assert!(!list.status().usable);

        redis.restart().await.unwrap();
        eventually("the list to recover by itself", async || {
            layer.verify(&fine).await.is_ok()
        })
        .await;
        // The reconnect resynced everything, including what no message announced.
        assert_eq!(layer.verify(&silent).await.unwrap_err(), AuthError::Revoked);
        assert_eq!(
            layer.verify(&revoked).await.unwrap_err(),
            AuthError::Revoked
        );
        assert!(list.status().usable);
    }

    #[tokio::test]
    async fn a_list_that_fails_open_keeps_serving_its_last_copy() {
        let Some(mut redis) = redis("a_list_that_fails_open_keeps_serving_its_last_copy").await
        else {
            return;
        };
        let issuer = TestIssuer::start().await.unwrap();
        let list = RevocationList::builder()
            .max_staleness(Duration::from_millis(100))
            .sync_interval(Duration::from_millis(50))
            .redis_timeout(Duration::from_millis(300))
            .fail_open()
            .redis(&redis.url())
            .await
            .unwrap();
        let layer = layer(&issuer, &list).await;
        let (revoked, exp) = token_with(&issuer, json!({ "jti": "r" }));
        let (fine, _) = token_with(&issuer, json!({ "jti": "f" }));
        list.revoke_token("r", exp).await.unwrap();
        redis.stop();
        eventually("the copy to go stale", async || !list.status().usable).await;
        layer.verify(&fine).await.unwrap();
        assert_eq!(
            layer.verify(&revoked).await.unwrap_err(),
            AuthError::Revoked
        );
    }

    #[tokio::test]
    async fn a_lost_message_is_caught_by_the_next_version_and_resynced() {
        let Some(redis) = redis("a_lost_message_is_caught_by_the_next_version_and_resynced").await
        else {
            return;
        };
        // Version checks far apart: only the gap in the messages can reveal the loss.
        let slow = |builder: tower_jwt_auth::RevocationListBuilder| {
            builder
                .sync_interval(Duration::from_secs(3600))
                .max_staleness(Duration::from_secs(7200))
        };
        let writer = slow(RevocationList::builder())
            .redis(&redis.url())
            .await
            .unwrap();
        let reader = slow(RevocationList::builder())
            .redis(&redis.url())
            .await
            .unwrap();
        let exp = now() + 600;
        let claims = |jti: &str| -> tower_jwt_auth::RegisteredClaims {
            serde_json::from_value(json!({ "jti": jti })).unwrap()
        };
        // A write whose message never arrived: stored and counted, not published.
        let mut raw = raw_connection(&redis).await;
        let _: () = redis::cmd("SET")
            .arg("jwt-auth:revoked:jti:lost")
            .arg(exp)
            .query_async(&mut raw)
            .await
            .unwrap();
        let _: i64 = redis::cmd("INCR")
            .arg("jwt-auth:revoked:version")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(!reader.is_revoked(&claims("lost")));
        // The next message skips a version: the reader resyncs and finds the lost entry.
        writer.revoke_token("next", exp).await.unwrap();
        eventually("the gap to be detected and resynced", async || {
            reader.is_revoked(&claims("lost")) && reader.is_revoked(&claims("next"))
        })
        .await;
    }

    #[tokio::test]
    async fn a_lost_last_message_is_caught_by_the_version_check() {
        let Some(redis) = redis("a_lost_last_message_is_caught_by_the_version_check").await else {
            return;
        };
        let reader = RevocationList::builder()
            .sync_interval(Duration::from_millis(50))
            .redis(&redis.url())
            .await
            .unwrap();
        let mut raw = raw_connection(&redis).await;
        let _: () = redis::cmd("SET")
            .arg("jwt-auth:revoked:sub:erin")
            .arg(format!("{} {}", now(), now() + 600))
            .query_async(&mut raw)
            .await
            .unwrap();
        let _: i64 = redis::cmd("INCR")
            .arg("jwt-auth:revoked:version")
            .query_async(&mut raw)
            .await
            .unwrap();
        let erin: tower_jwt_auth::RegisteredClaims =
            serde_json::from_value(json!({ "sub": "erin", "iat": now() - 60 })).unwrap();
        eventually("the version check to resync", async || {
            reader.is_revoked(&erin)
        })
        .await;
    }

    #[tokio::test]
    async fn an_unreachable_redis_at_start_is_a_clear_error() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = RevocationList::builder()
            .redis(&format!("redis://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(matches!(error, RevocationError::Unavailable(_)), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("revocation store unavailable")
        );
        let error = RevocationList::builder()
            .redis("http://x")
            .await
            .unwrap_err();
        assert!(matches!(error, RevocationError::InvalidUrl(_)), "{error}");
    }

    #[tokio::test]
    async fn the_sync_task_stops_with_the_last_clone_of_the_list() {
        let Some(redis) = redis("the_sync_task_stops_with_the_last_clone_of_the_list").await else {
            return;
        };
        let list = RevocationList::builder()
            .sync_interval(Duration::from_millis(20))
            .redis(&redis.url())
            .await
            .unwrap();
        drop(list);
        // Its subscription closes: Redis counts no subscriber on the channel.
        let mut raw = raw_connection(&redis).await;
        eventually("the subscription to close", async || {
            let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("jwt-auth:revoked:events")
                .query_async(&mut raw)
                .await
                .unwrap();
            counts[0].1 == 0
        })
        .await;
    }
}
