//! `gateway inspect`: decoding, verifying against a JWKS served on loopback, exit codes.

use std::sync::Mutex;

use crate::config::Command;
use crate::inspect::{InspectArgs, Verdict, inspect};

use super::*;

async fn run(args: &InspectArgs, token: &str) -> (Verdict, String) {
    let mut out = Vec::new();
    let verdict = within(inspect(args, token, now() as i64, &mut out)).await;
    (verdict, String::from_utf8(out).unwrap())
}

fn verifying(env: &Env) -> InspectArgs {
    InspectArgs {
        issuer: Some(ISS.to_owned()),
        jwks_url: Some(env.jwks_url.clone()),
        audiences: vec![AUDIENCE.to_owned()],
        ..InspectArgs::default()
    }
}

#[tokio::test]
async fn decodes_header_claims_and_times_without_keys() {
    let env = env().await;
    let token = env.token(json!({"exp": now() + 14 * 60 + 30, "nbf": now() - 120}));
    let (verdict, out) = run(&InspectArgs::default(), &format!("Bearer {token}\n")).await;
    assert_eq!(verdict, Verdict::Valid, "{out}");
    for part in [
        "Header\n{\n",
        "\"alg\": \"ES256\"",
        "\"typ\": \"at+jwt\"",
        "Claims\n{\n",
        "\"sub\": \"alice\"",
        "algorithm   ES256",
        "key id      demo-",
        "(expires in 14 min)",
        "(valid since 2 min ago)",
        "issued at",
        "not verified: no --issuer or --jwks-url given",
    ] {
        assert!(out.contains(part), "missing {part:?} in\n{out}");
    }
    let expired = env.token(json!({"exp": now() - 2 * 3600 - 60}));
    let (verdict, out) = run(&InspectArgs::default(), &expired).await;
    assert_eq!(verdict, Verdict::Valid);
    assert!(out.contains("(expired 2 h ago)"), "{out}");
}

#[tokio::test]
async fn verifies_with_the_crate_and_says_why_it_fails() {
    let env = env().await;
    let args = verifying(&env);
    let (verdict, out) = run(&args, &env.token(json!({}))).await;
    assert_eq!(verdict, Verdict::Valid, "{out}");
    assert!(
        out.contains("valid: signature and claims verified"),
        "{out}"
    );
    for (claims, cause) in [
        (json!({"exp": now() - 3600}), "token expired"),
        (json!({"aud": "other-api"}), "audience not allowed"),
        (json!({"iss": "https://evil.test/"}), "issuer not allowed"),
    ] {
        let (verdict, out) = run(&args, &env.token(claims)).await;
        assert_eq!(verdict, Verdict::Invalid, "{out}");
        assert!(out.contains(&format!("invalid: {cause}")), "{out}");
    }
    // A signature from another key.
    let other = DemoIssuer::generate(ISS.to_owned(), AUDIENCE.to_owned()).unwrap();
    let forged = other
        .sign(
            Some("at+jwt"),
            &json!({"iss": ISS, "aud": AUDIENCE, "sub": "x", "exp": now() + 60}),
        )
        .unwrap();
    let (verdict, out) = run(&args, &forged).await;
    assert_eq!(verdict, Verdict::Invalid, "{out}");
    // A JWKS URL alone verifies the signature and says that `iss` was not checked.
    let args = InspectArgs {
        issuer: None,
        ..verifying(&env)
    };
    let (verdict, out) = run(&args, &env.token(json!({"iss": "https://any.test/"}))).await;
    assert_eq!(verdict, Verdict::Valid, "{out}");
    assert!(out.contains("`iss` not checked"), "{out}");
}

#[tokio::test]
async fn what_is_not_a_token_is_invalid_and_nothing_is_usage() {
    let (verdict, out) = run(&InspectArgs::default(), "not-a-token").await;
    assert_eq!(verdict, Verdict::Invalid);
    assert!(out.contains("not a JWT"), "{out}");
    let (verdict, _) = run(&InspectArgs::default(), "  \n").await;
    assert_eq!(verdict, Verdict::Usage);
}

#[tokio::test]
async fn the_token_goes_nowhere_but_the_key_source() {
    let env = env().await;
    // A JWKS server that records every request it gets.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let jwks = env.issuer.jwks();
    let recorder = Arc::clone(&seen);
    let addr = serve(Router::new().fallback(move |request: Request<Body>| {
        let (jwks, recorder) = (jwks.clone(), Arc::clone(&recorder));
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            recorder.lock().unwrap().push(format!(
                "{} {:?} {}",
                parts.uri,
                parts.headers,
                String::from_utf8_lossy(&body)
            ));
            Json(jwks)
        }
    }))
    .await;
    let args = InspectArgs {
        jwks_url: Some(format!("http://{addr}/jwks.json")),
        ..verifying(&env)
    };
    let token = env.token(json!({}));
    let (verdict, out) = run(&args, &token).await;
    assert_eq!(verdict, Verdict::Valid, "{out}");
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    let signature = token.rsplit('.').next().unwrap();
    for request in seen.iter() {
        assert!(
            !request.contains(signature),
            "the token was sent: {request}"
        );
    }
}

#[test]
fn inspect_parses_as_a_subcommand_and_bad_usage_exits_2() {
    let args = Args::try_parse_from([
        "gateway",
        "inspect",
        "a.b.c",
        "--issuer",
        ISS,
        "--audience",
        "a",
        "--audience",
        "b",
    ])
    .unwrap();
    let Some(Command::Inspect(inspect)) = args.cli.command else {
        panic!("not inspect")
    };
    assert_eq!(inspect.token.as_deref(), Some("a.b.c"));
    assert_eq!(inspect.issuer.as_deref(), Some(ISS));
    assert_eq!(inspect.audiences, ["a", "b"]);
    let stdin = Args::try_parse_from(["gateway", "inspect", "-"]).unwrap();
    assert!(
        matches!(stdin.cli.command, Some(Command::Inspect(ref i)) if i.token.as_deref() == Some("-"))
    );
    let err = Args::try_parse_from(["gateway", "inspect", "--bogus"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    // The gateway's own flags are not mixed with it.
    let err = Args::try_parse_from(["gateway", "--upstream", "http://u", "inspect"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
}
