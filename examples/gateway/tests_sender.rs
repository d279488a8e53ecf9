//! `--dpop`, `--dpop-nonce`, `--external-url`, `--resource` and `--client-cert-header`: DPoP
//! proofs (made by `jsonwebtoken` through `test_util::DpopKey`, not by the crate) through the
//! proxy and in forward-auth mode, the RFC 9728 document, and certificate-bound tokens behind a
//! TLS proxy's header.

use tower_jwt_auth::test_util::DpopKey;

use super::*;

const EXTERNAL: &str = "https://gw.example.com";

fn dpop(addr: SocketAddr, path: &str, token: &str, proof: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(format!("http://{addr}{path}"))
        .header(header::AUTHORIZATION, format!("DPoP {token}"));
    if let Some(proof) = proof {
        builder = builder.header("dpop", proof);
    }
    builder.body(Body::empty()).unwrap()
}

fn bound_token(env: &Env, key: &DpopKey) -> String {
    env.token(json!({"cnf": {"jkt": key.thumbprint()}}))
}

#[tokio::test]
async fn dpop_required_through_the_proxy() {
    let env = env().await;
    let gateway = env
        .gateway(&["--dpop=required", &format!("--external-url={EXTERNAL}")])
        .await;
    let addr = gateway.local_addr();
    let key = DpopKey::generate();
    let token = bound_token(&env, &key);

    let proof = key
        .proof("GET", &format!("{EXTERNAL}/orders"))
        .access_token(&token)
        .sign();
    let answer = send(dpop(addr, "/orders?page=2", &token, Some(&proof))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["headers"]["x-auth-sub"], "alice");
    // The same proof again is a replay.
    let answer = send(dpop(addr, "/orders?page=2", &token, Some(&proof))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.challenge().contains("proof replayed"),
        "{}",
        answer.challenge()
    );
    // A proof for the gateway's own address, not the external URL, is refused.
    let local = key
        .proof("GET", &format!("http://{addr}/orders"))
        .access_token(&token)
        .sign();
    let answer = send(dpop(addr, "/orders", &token, Some(&local))).await;
    assert!(
        answer.challenge().contains("htu does not match"),
        "{}",
        answer.challenge()
    );
    // No proof, a plain bearer token, or the bound token as bearer: refused.
    let answer = send(dpop(addr, "/orders", &token, None)).await;
    assert!(
        answer
            .challenge()
            .starts_with(r#"DPoP error="invalid_dpop_proof""#)
    );
    let plain = env.token(json!({}));
    let answer = get_path(addr, "/orders", Some(&plain)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.challenge().contains("DPoP proof required"));
    let answer = get_path(addr, "/orders", Some(&token)).await;
    assert!(
        answer
            .challenge()
            .contains("DPoP-bound token sent as a bearer token")
    );
    // The scope rules' 403 challenges like the layer: DPoP.
    let proof = key
        .proof("GET", &format!("{EXTERNAL}/admin/users"))
        .access_token(&token)
        .sign();
    let answer = send(dpop(addr, "/admin/users", &token, Some(&proof))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer
            .challenge()
            .starts_with(r#"DPoP error="insufficient_scope""#)
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn dpop_nonce_flag_turns_on_server_nonces() {
    let env = env().await;
    let gateway = env
        .gateway(&[
            "--dpop=allowed",
            "--dpop-nonce",
            &format!("--external-url={EXTERNAL}/"),
        ])
        .await;
    let addr = gateway.local_addr();
    let key = DpopKey::generate();
    let token = bound_token(&env, &key);
    let url = format!("{EXTERNAL}/orders");
    let proof = key.proof("GET", &url).access_token(&token).sign();
    let answer = send(dpop(addr, "/orders", &token, Some(&proof))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .challenge()
            .starts_with(r#"DPoP error="use_dpop_nonce""#)
    );
    let nonce = answer.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let proof = key
        .proof("GET", &url)
        .access_token(&token)
        .nonce(&nonce)
        .sign();
    let answer = send(dpop(addr, "/orders", &token, Some(&proof))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // Under `allowed`, plain bearer tokens still pass.
    let answer = get_path(addr, "/orders", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::OK);
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn forward_auth_checks_the_proof_against_the_forwarded_request() {
    let env = env().await;
    let mut args = env.args(&["--dpop=required", &format!("--external-url={EXTERNAL}")]);
    args.drain(1..3);
    args.push("--forward-auth".to_owned());
    let gateway = start_gateway(args).await;
    let addr = gateway.local_addr();
    let key = DpopKey::generate();
    let token = bound_token(&env, &key);
    let check = |proof: &str, headers: &[(&str, &str)]| {
        let mut builder = Request::get(format!("http://{addr}/_auth"))
            .header(header::AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", proof);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    };
    let traefik = [
        ("x-forwarded-method", "POST"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example"),
        ("x-forwarded-uri", "/api/items?x=1"),
    ];
    let proof = key
        .proof("POST", "https://app.example/api/items")
        .access_token(&token)
        .sign();
    let answer = send(check(&proof, &traefik)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.headers);
    assert_eq!(answer.headers["x-auth-sub"], "alice");
    // A proof for the check request itself does not pass for the original one.
    let own = key
        .proof("GET", &format!("{EXTERNAL}/_auth"))
        .access_token(&token)
        .sign();
    let answer = send(check(&own, &traefik)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.challenge().contains("htm does not match"),
        "{}",
        answer.challenge()
    );
    // nginx sends only the path and method: the external URL supplies scheme and host.
    let nginx = [
        ("x-original-uri", "/orders/7"),
        ("x-original-method", "DELETE"),
    ];
    let proof = key
        .proof("DELETE", &format!("{EXTERNAL}/orders/7"))
        .access_token(&token)
        .sign();
    let answer = send(check(&proof, &nginx)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.headers);
    let elsewhere = key
        .proof("DELETE", "https://app.example/orders/8")
        .access_token(&token)
        .sign();
    let answer = send(check(&elsewhere, &nginx)).await;
    assert!(
        answer.challenge().contains("htu does not match"),
        "{}",
        answer.challenge()
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn resource_flag_serves_the_metadata_and_names_it_in_challenges() {
    let env = env().await;
    let gateway = env
        .gateway(&["--resource=https://gw.example.com/api"])
        .await;
    let addr = gateway.local_addr();
    let metadata = "https://gw.example.com/.well-known/oauth-protected-resource/api";
    for path in [
        "/.well-known/oauth-protected-resource/api",
        "/.well-known/oauth-protected-resource",
    ] {
        let answer = get_path(addr, path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(
            answer.json(),
            json!({
                "resource": "https://gw.example.com/api",
                "authorization_servers": [ISS],
                "bearer_methods_supported": ["header"],
            })
        );
    }
    let answer = get_path(addr, "/orders", None).await;
    assert_eq!(
        answer.challenge(),
        format!(r#"Bearer resource_metadata="{metadata}""#)
    );
    let answer = get_path(addr, "/admin/users", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer
            .challenge()
            .ends_with(&format!(r#"scope="admin", resource_metadata="{metadata}""#)),
        "{}",
        answer.challenge()
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_cert_header_binds_certificate_bound_tokens() {
    let env = env().await;
    let gateway = env
        .gateway(&["--client-cert-header=x-ssl-client-cert"])
        .await;
    let addr = gateway.local_addr();
    let alice = rcgen::generate_simple_self_signed(vec!["alice".to_owned()]).unwrap();
    let mallory = rcgen::generate_simple_self_signed(vec!["mallory".to_owned()]).unwrap();
    let thumbprint = {
        use base64::Engine as _;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, alice.cert.der());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    };
    let token = env.token(json!({"cnf": {"x5t#S256": thumbprint}}));
    // nginx's `$ssl_client_escaped_cert`: the PEM, URL-encoded.
    let escaped = |pem: String| {
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let with_cert = |pem: Option<String>| {
        let mut builder = request(addr, "/orders", Some(&token));
        if let Some(pem) = pem {
            builder = builder.header("x-ssl-client-cert", escaped(pem));
        }
        builder.body(Body::empty()).unwrap()
    };
    let answer = send(with_cert(Some(alice.cert.pem()))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // The proxy's header is the gateway's input, not forwarded to the upstream.
    assert!(answer.json()["headers"].get("x-ssl-client-cert").is_none());
    assert!(answer.json()["headers"]["x-auth-sub"].is_string());
    let answer = send(with_cert(Some(mallory.cert.pem()))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .challenge()
            .contains("client certificate does not match")
    );
    let answer = send(with_cert(None)).await;
    assert!(answer.challenge().contains("client certificate required"));
    let answer = send(with_cert(Some("not a certificate".to_owned()))).await;
    assert!(answer.challenge().contains("client certificate required"));
    gateway.shutdown().await.unwrap();
}

#[test]
fn sender_flags_are_checked() {
    let resolve = |extra: &[&str]| {
        let mut args = vec![
            "gateway",
            "--upstream=http://127.0.0.1:9/",
            "--issuer=https://i/",
            "--audience=a",
        ];
        args.extend_from_slice(extra);
        config::resolve(&Args::try_parse_from(args).unwrap(), None)
    };
    let error = resolve(&["--dpop=sometimes"]).unwrap_err();
    assert_eq!(error.setting(), "--dpop");
    let error = resolve(&["--dpop=required"]).unwrap_err();
    assert_eq!(error.setting(), "--external-url");
    let error = resolve(&["--dpop-nonce"]).unwrap_err();
    assert_eq!(error.setting(), "--dpop");
    let error = resolve(&["--external-url=/relative"]).unwrap_err();
    assert_eq!(error.setting(), "--external-url");
    let error = resolve(&["--resource=https://r.example/?q"]).unwrap_err();
    assert_eq!(error.setting(), "--resource");
    let error = resolve(&["--client-cert-header=bad header"]).unwrap_err();
    assert_eq!(error.setting(), "--client-cert-header");
    let config = resolve(&[
        "--dpop=allowed",
        "--dpop-nonce",
        "--external-url=https://gw.example.com",
    ])
    .unwrap();
    assert_eq!(
        config.auth.sender.dpop,
        tower_jwt_auth::dpop::DpopPolicy::Allowed
    );
    assert!(config.auth.sender.dpop_nonce);
}
