//! `--redis-url` and `gateway revoke`: gateways sharing a real `redis-server` refuse a token
//! revoked by the subcommand. Without `redis-server` the tests say why they are skipped; under
//! `REQUIRE_REDIS=1` (set by `.ci/run`) they fail instead.

use tower_jwt_auth::test_util::{TestRedis, TestRedisError};

use crate::config::Command;
use crate::revoke::{RevokeArgs, Revoked, revoke};

use super::*;

async fn redis(test: &str) -> Option<TestRedis> {
    match TestRedis::start().await {
        Ok(redis) => Some(redis),
        Err(TestRedisError::NotInstalled)
            if std::env::var("REQUIRE_REDIS").as_deref() != Ok("1") =>
        {
            eprintln!(
                "skipping {test}: redis-server is not installed (apt-get install redis-server; \
                 CI sets REQUIRE_REDIS=1)"
            );
            None
        }
        Err(error) => panic!("redis-server is required (REQUIRE_REDIS=1): {error}"),
    }
}

fn revoke_args(list: &[&str]) -> Result<RevokeArgs, clap::Error> {
    let mut argv = vec!["gateway", "revoke"];
    argv.extend_from_slice(list);
    match Args::try_parse_from(argv)?.cli.command {
        Some(Command::Revoke(args)) => Ok(args),
        other => panic!("not the revoke subcommand: {other:?}"),
    }
}

#[test]
fn revoke_takes_a_jti_with_its_exp_or_a_subject() {
    let url = ["--redis-url", "redis://127.0.0.1:1"];
    let ok = |extra: &[&str]| revoke_args(&[&url[..], extra].concat());
    let args = ok(&["--jti", "abc", "--exp", "1767225600"]).unwrap();
    assert_eq!(
        (args.jti.as_deref(), args.exp),
        (Some("abc"), Some(1_767_225_600))
    );
    let args = ok(&["--subject", "alice", "--before", "1767225600"]).unwrap();
    assert_eq!(
        (args.subject.as_deref(), args.before),
        (Some("alice"), Some(1_767_225_600))
    );
    assert!(ok(&["--subject", "alice"]).unwrap().before.is_none());
    for wrong in [
        &["--jti", "abc"][..],
        &["--exp", "1"],
        &["--before", "1"],
        &[],
        &["--jti", "abc", "--exp", "1", "--subject", "alice"],
        &["--jti", "abc", "--exp", "soon"],
    ] {
        let error = ok(wrong).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{wrong:?}: {error}");
    }
    assert!(
        revoke_args(&["--jti", "abc", "--exp", "1"]).is_err(),
        "--redis-url is required"
    );
}

#[test]
fn revocation_fail_open_needs_a_redis_url() {
    let config = |extra: &[&str]| {
        let mut argv = vec!["gateway", "--issuer", ISS, "--audience", AUDIENCE];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["--upstream", "http://127.0.0.1:9/"]);
        config::resolve(&Args::try_parse_from(argv).unwrap(), None)
    };
    let error = config(&["--revocation-fail-open"]).unwrap_err();
    assert_eq!(error.setting(), "--redis-url");
    let settings = config(&[
        "--redis-url",
        "redis://127.0.0.1:6379",
        "--revocation-fail-open",
    ])
    .unwrap()
    .auth
    .revocation
    .unwrap();
    assert!(settings.fail_open);
    // The URL may hold a password: never in a debug dump of the configuration.
    assert!(!format!("{settings:?}").contains("6379"));
    let settings = config(&["--redis-url", "redis://127.0.0.1:6379"])
        .unwrap()
        .auth
        .revocation
        .unwrap();
    assert!(!settings.fail_open);
    assert!(config(&[]).unwrap().auth.revocation.is_none());
}

#[tokio::test]
async fn gateways_sharing_redis_refuse_a_token_revoked_with_gateway_revoke() {
    let Some(redis) =
        redis("gateways_sharing_redis_refuse_a_token_revoked_with_gateway_revoke").await
    else {
        return;
    };
    let env = env().await;
    let url = redis.url();
    let first = env
        .gateway(&["--redis-url", &url, "--admin-listen", "127.0.0.1:0"])
        .await;
    let second = env.gateway(&["--redis-url", &url]).await;
    let exp = now() + 600;
    let token = env.token(json!({ "jti": "stolen-1", "exp": exp }));
    let bob = env.token(json!({ "jti": "b-1", "sub": "bob", "iat": now() - 10 }));
    for gateway in [&first, &second] {
        assert_eq!(
            get_path(gateway.local_addr(), "/api", Some(&token))
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            get_path(gateway.local_addr(), "/api", Some(&bob))
                .await
                .status,
            StatusCode::OK
        );
    }

    assert_eq!(
        get_path(first.local_addr(), "/healthz", None).await.status,
        StatusCode::OK
    );
    let details = get_path(first.admin_addr().unwrap(), "/healthz", None)
        .await
        .json();
    assert_eq!(details["revocation"]["usable"], true, "{details}");
    assert_eq!(details["revocation"]["fail_open"], false, "{details}");

    let exp = exp.to_string();
    let args = revoke_args(&["--redis-url", &url, "--jti", "stolen-1", "--exp", &exp]).unwrap();
    let revoked = within(revoke(&args, now() as i64)).await.unwrap();
    assert_eq!(
        revoked,
        Revoked::Token {
            jti: "stolen-1".into(),
            exp: exp.parse().unwrap()
        }
    );
    // The subcommand itself, with its own runtime: exit code 0.
    let args = revoke_args(&["--redis-url", &url, "--subject", "bob"]).unwrap();
    let code = tokio::task::spawn_blocking(move || crate::revoke::main(args))
        .await
        .unwrap();
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );

    for gateway in [&first, &second] {
        for refused in [&token, &bob] {
            let deadline = std::time::Instant::now() + DEADLINE;
            let answer = loop {
                let answer = get_path(gateway.local_addr(), "/api", Some(refused)).await;
                if answer.status != StatusCode::OK || std::time::Instant::now() > deadline {
                    break answer;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
            assert_eq!(
                answer.challenge(),
                r#"Bearer error="invalid_token", error_description="token revoked""#
            );
        }
        let fresh = env.token(json!({ "jti": "fresh", "sub": "bob", "iat": now() + 1 }));
        assert_eq!(
            get_path(gateway.local_addr(), "/api", Some(&fresh))
                .await
                .status,
            StatusCode::OK
        );
        // With --admin-listen, /metrics is served there.
        let metrics_addr = gateway.admin_addr().unwrap_or(gateway.local_addr());
        let metrics = get_path(metrics_addr, "/metrics", None).await.text();
        assert!(metrics.contains("revoked"), "{metrics}");
    }
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_for_the_gateway_and_for_revoke() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let env = env().await;
    let config = config::resolve(
        &Args::try_parse_from(env.args(&["--redis-url", &url])).unwrap(),
        None,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = within(app::start(config, listener)).await.err().unwrap();
    let message = error.to_string();
    assert!(
        message.starts_with(
            "cannot load the revocation list (--redis-url): revocation store unavailable"
        ),
        "{message}"
    );
    let args = revoke_args(&["--redis-url", &url, "--subject", "bob"]).unwrap();
    let code = tokio::task::spawn_blocking(move || crate::revoke::main(args))
        .await
        .unwrap();
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::FAILURE)
    );
}
