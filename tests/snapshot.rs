//! Keys that survive a restart: with `RefreshPolicy::snapshot_dir`, a layer started while its
//! issuer is unreachable serves from the last good JWKS, within the maximum staleness; corrupt,
//! foreign and too old snapshots are ignored.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{ConfigError, JwtAuthLayer, RefreshPolicy};

/// A fresh directory, removed when the guard drops.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-snapshots-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Self(dir)
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(&self.0)
            .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn build(
    issuer: &TestIssuer,
    policy: RefreshPolicy,
) -> Result<JwtAuthLayer<Value>, ConfigError> {
    issuer
        .layer_builder::<Value>()
        .refresh_policy(policy)
        .build()
        .await
}

/// Waits (polling) until the snapshot file exists.
async fn snapshot_written(dir: &TempDir) -> PathBuf {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(file) = dir.files().into_iter().find(|path| is_snapshot(path)) {
            return file;
        }
        assert!(std::time::Instant::now() < deadline, "no snapshot written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn is_snapshot(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("jwks-"))
}

#[tokio::test]
async fn a_restart_during_an_issuer_outage_serves_from_the_snapshot() {
    let dir = TempDir::new();
    let issuer = TestIssuer::start().await.unwrap();
    let policy = RefreshPolicy::default().snapshot_dir(&dir.0);
    let first = build(&issuer, policy.clone()).await.unwrap();
    let token = issuer.valid_token();
    first.verify(&token).await.unwrap();
    snapshot_written(&dir).await;
    // Written atomically: only the snapshot, no temporary file left.
    assert_eq!(dir.files().len(), 1, "{:?}", dir.files());
    drop(first);

    issuer.set_outage(true);
    // Without snapshots the layer can't start...
    assert!(matches!(
        build(&issuer, RefreshPolicy::default()).await.unwrap_err(),
        ConfigError::KeyFetch { .. }
    ));
    // ...with them it starts and verifies, and says its keys are not fresh.
    let restarted = build(&issuer, policy.clone()).await.unwrap();
    restarted.verify(&token).await.unwrap();
    let status = &restarted.key_sets()[0];
    assert!(status.usable);
    assert!(status.last_error.is_some());

    // Once the issuer is back, the refresh goes on as usual.
    issuer.set_outage(false);
    restarted.refresh_keys().await;
    assert!(restarted.key_sets()[0].last_error.is_none());
}

#[tokio::test]
async fn a_snapshot_older_than_the_maximum_staleness_is_not_used() {
    let dir = TempDir::new();
    let issuer = TestIssuer::start().await.unwrap();
    let policy = RefreshPolicy::default().snapshot_dir(&dir.0);
    let _layer = build(&issuer, policy.clone()).await.unwrap();
    let file = snapshot_written(&dir).await;
    let mut snapshot: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    snapshot["fetched_at"] = Value::from(snapshot["fetched_at"].as_i64().unwrap() - 7200);
    std::fs::write(&file, snapshot.to_string()).unwrap();
    issuer.set_outage(true);
    let stale = policy.clone().max_staleness(Duration::from_secs(3600));
    assert!(matches!(
        build(&issuer, stale).await.unwrap_err(),
        ConfigError::KeyFetch { .. }
    ));
    // Within a longer staleness it is still good.
    let within = build(&issuer, policy.max_staleness(Duration::from_secs(3 * 3600))).await;
    within.unwrap().verify(&issuer.valid_token()).await.unwrap();
}

#[tokio::test]
async fn corrupt_and_foreign_snapshots_are_ignored() {
    let dir = TempDir::new();
    let issuer = TestIssuer::start().await.unwrap();
    let other = TestIssuer::start().await.unwrap();
    let policy = RefreshPolicy::default().snapshot_dir(&dir.0);
    let _first = build(&issuer, policy.clone()).await.unwrap();
    let file = snapshot_written(&dir).await;
    let _second = build(&other, policy.clone()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while dir.files().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no second snapshot");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let other_file = dir.files().into_iter().find(|path| *path != file).unwrap();
    issuer.set_outage(true);

    // Another issuer's snapshot under this issuer's name: foreign, ignored.
    std::fs::copy(&other_file, &file).unwrap();
    assert!(matches!(
        build(&issuer, policy.clone()).await.unwrap_err(),
        ConfigError::KeyFetch { .. }
    ));
    // A truncated one: corrupt, ignored, never a panic.
    std::fs::write(&file, b"{\"format\":\"tower-jwt-auth/jwks-snap").unwrap();
    assert!(matches!(
        build(&issuer, policy).await.unwrap_err(),
        ConfigError::KeyFetch { .. }
    ));
}

#[tokio::test]
async fn a_not_modified_answer_renews_the_snapshot() {
    let dir = TempDir::new();
    let issuer = TestIssuer::start().await.unwrap();
    let layer = build(&issuer, RefreshPolicy::default().snapshot_dir(&dir.0))
        .await
        .unwrap();
    let file = snapshot_written(&dir).await;
    let fetched_at = |file: &Path| -> i64 {
        let snapshot: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        snapshot["fetched_at"].as_i64().unwrap()
    };
    let mut snapshot: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let old = snapshot["fetched_at"].as_i64().unwrap() - 7200;
    snapshot["fetched_at"] = Value::from(old);
    std::fs::write(&file, snapshot.to_string()).unwrap();
    // The refetch is answered `304` (same ETag): the snapshot is marked current again.
    layer.refresh_keys().await;
    assert_eq!(layer.key_sets()[0].fetches.not_modified, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fetched_at(&file) == old {
        assert!(std::time::Instant::now() < deadline, "snapshot not renewed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(fetched_at(&file) > old + 3600);
}
