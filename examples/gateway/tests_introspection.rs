//! `--key-snapshot-dir`: a restart during an issuer outage. `--introspection-url` with `--introspection-client-id` and `--introspection-client-secret`
//! (also `GATEWAY_INTROSPECTION_CLIENT_SECRET`): opaque tokens checked at the test issuer's
//! RFC 7662 endpoint and forwarded like JWTs.

use clap::CommandFactory as _;
use tower_jwt_auth::test_util::TestIssuer;

use super::*;

/// The gateway in front of `upstream`, trusting `issuer` (found by discovery).
fn issuer_args(issuer: &TestIssuer, upstream: SocketAddr) -> Vec<String> {
    [
        "gateway",
        "--upstream",
        &format!("http://{upstream}/base"),
        "--issuer",
        issuer.issuer(),
        "--audience",
        issuer.audience(),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

fn introspection_args(issuer: &TestIssuer, upstream: SocketAddr) -> Vec<String> {
    let mut args = issuer_args(issuer, upstream);
    args.extend([
        "--introspection-url".to_owned(),
        issuer.introspection_url(),
        "--introspection-client-id".to_owned(),
        TestIssuer::INTROSPECTION_CLIENT_ID.to_owned(),
        "--introspection-client-secret".to_owned(),
        TestIssuer::INTROSPECTION_CLIENT_SECRET.to_owned(),
    ]);
    args
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_forwarded_with_their_claims() {
    let env = env().await;
    let issuer = TestIssuer::start().await.unwrap();
    let gateway = start_gateway(introspection_args(&issuer, env.upstream)).await;
    let addr = gateway.local_addr();
    let token = issuer.opaque_token(json!({ "sub": "olivia", "scope": "read" }));
    let answer = get_path(addr, "/api/items", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let echoed = answer.json();
    assert_eq!(echoed["headers"]["x-auth-sub"], "olivia", "{echoed}");
    // JWTs of the same issuer still pass by their signature.
    let jwt = issuer.token(json!({ "sub": "jwt-user" }));
    assert_eq!(
        get_path(addr, "/api", Some(&jwt)).await.status,
        StatusCode::OK
    );
    // Inactive at the issuer: 401.
    let revoked = issuer.opaque_token(json!({}));
    issuer.deactivate(&revoked);
    let answer = get_path(addr, "/api", Some(&revoked)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        r#"Bearer error="invalid_token", error_description="token not active""#
    );
    // The endpoint down: 503 with Retry-After.
    issuer.set_outage(true);
    let answer = get_path(addr, "/api", Some(&issuer.opaque_token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
}

#[test]
fn introspection_settings_come_as_a_set_and_the_secret_from_the_environment() {
    let resolve = |extra: &[&str]| {
        let mut argv = vec!["gateway", "--upstream", "http://127.0.0.1:9/"];
        argv.extend_from_slice(extra);
        config::resolve(&Args::try_parse_from(argv).unwrap(), None)
    };
    let issuer = ["--issuer", ISS, "--audience", AUDIENCE];
    let url = ["--introspection-url", "https://issuer.test/introspect"];
    let id = ["--introspection-client-id", "gw"];
    let secret = ["--introspection-client-secret", "s3cr3t"];
    let config = resolve(&[&issuer[..], &url, &id, &secret].concat()).unwrap();
    let settings = config.auth.introspection.unwrap();
    assert_eq!(settings.client_id, "gw");
    assert!(!format!("{settings:?}").contains("s3cr3t"));
    for (extra, setting) in [
        (
            [&issuer[..], &url, &id].concat(),
            "--introspection-client-secret",
        ),
        (
            [&issuer[..], &url, &secret].concat(),
            "--introspection-client-id",
        ),
        ([&issuer[..], &id, &secret].concat(), "--introspection-url"),
        ([&url[..], &id, &secret].concat(), "--issuer"),
    ] {
        let error = resolve(&extra).unwrap_err();
        assert_eq!(error.setting(), setting, "{extra:?}: {error}");
    }
    let bad = resolve(
        &[
            &issuer[..],
            &["--introspection-url", "ftp://x/"],
            &id,
            &secret,
        ]
        .concat(),
    );
    assert_eq!(bad.unwrap_err().setting(), "--introspection-url");
    let command = config::Cli::command();
    let env = |id: &str| {
        command
            .get_arguments()
            .find(|arg| arg.get_id() == id)
            .and_then(|arg| arg.get_env())
            .map(|var| var.to_string_lossy().into_owned())
    };
    assert_eq!(
        env("introspection_client_secret").as_deref(),
        Some("GATEWAY_INTROSPECTION_CLIENT_SECRET")
    );
    assert_eq!(
        env("introspection_url").as_deref(),
        Some("GATEWAY_INTROSPECTION_URL")
    );
}

#[tokio::test]
async fn with_a_key_snapshot_dir_a_restart_during_an_issuer_outage_still_verifies() {
    let env = env().await;
    let issuer = TestIssuer::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!(
        "gateway-key-snapshots-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let args = |dir: &std::path::Path| {
        let mut args = issuer_args(&issuer, env.upstream);
        args.extend(["--key-snapshot-dir".to_owned(), dir.display().to_string()]);
        args
    };
    let first = start_gateway(args(&dir)).await;
    let token = issuer.token(json!({}));
    assert_eq!(
        get_path(first.local_addr(), "/api", Some(&token))
            .await
            .status,
        StatusCode::OK
    );
    let deadline = std::time::Instant::now() + DEADLINE;
    while std::fs::read_dir(&dir).map_or(0, Iterator::count) == 0 {
        assert!(std::time::Instant::now() < deadline, "no snapshot written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.shutdown().await.unwrap();

    issuer.set_outage(true);
    let restarted = start_gateway(args(&dir)).await;
    assert_eq!(
        get_path(restarted.local_addr(), "/api", Some(&token))
            .await
            .status,
        StatusCode::OK
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
