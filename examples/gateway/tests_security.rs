//! The gateway as an attacker tries it: path tricks, case games, spoofed identity and forwarding
//! headers, scopes the crate would not grant.

use super::*;

#[tokio::test]
async fn every_spelling_of_a_dot_segment_or_encoded_separator_is_refused() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();
    let token = env.token(json!({"scope": "read admin"}));
    for path in [
        // A servlet upstream resolves `..;` as `..`: this reached it as a public path.
        "/public/..;/admin/users",
        "/public/..;x/admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/.%2e/admin",
        "/public/%2E%2E/admin",
        "/public/./x",
        "/public%2fadmin",
        "/public%2Fadmin",
        "/public%5cadmin",
        "/public/%00",
        "/public/%252e%252e/admin",
        "/public/%ff",
        "/public//admin",
        "//admin",
        "/public/x;jsessionid=1",
    ] {
        for token in [None, Some(token.as_str())] {
            let answer = get_path(addr, path, token).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        }
    }
    let metrics = get_path(addr, "/metrics", None).await.text();
    assert!(
        metrics.contains("gateway_requests_total{outcome=\"bad_request\"} 32"),
        "{metrics}"
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_upstream_gets_the_path_the_rules_saw() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();
    let token = env.token(json!({}));
    let answer = get_path(addr, "/a%20b/%61pi/caf%C3%A9?q=%2e%2e/x", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json()["path"],
        "/base/a%20b/api/caf%C3%A9?q=%2e%2e/x"
    );
    // A public path goes the same way.
    let answer = get_path(addr, "/%70ublic/docs", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["path"], "/base/public/docs");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn path_parameters_pass_only_when_allowed() {
    let env = env().await;
    let gateway = env.gateway(&["--allow-path-params"]).await;
    let addr = gateway.local_addr();
    let token = env.token(json!({}));
    let answer = get_path(addr, "/orders;jsessionid=1/7", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["path"], "/base/orders;jsessionid=1/7");
    // The scope rule still covers `/admin;x`, and dot-segments stay refused.
    let answer = get_path(addr, "/admin;x/users", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = get_path(addr, "/public/..;/admin/users", None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn scope_rules_match_any_letter_case() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();
    let reader = env.token(json!({"scope": "read"}));
    for path in ["/ADMIN/users", "/Admin", "/aDmIn;", "/%41DMIN/users"] {
        let answer = get_path(addr, path, Some(&reader)).await;
        let expected = if path.ends_with(';') {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(answer.status, expected, "{path}");
    }
    let admin = env.token(json!({"scope": "admin"}));
    assert_eq!(
        get_path(addr, "/ADMIN/users", Some(&admin)).await.status,
        StatusCode::OK
    );
    // Public prefixes stay exact: `/PUBLIC` needs a token.
    assert_eq!(
        get_path(addr, "/PUBLIC/docs", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn identity_and_forwarding_headers_cannot_be_spoofed() {
    let env = env().await;
    let gateway = env.gateway(&["--claims-header=x-auth-claims"]).await;
    let addr = gateway.local_addr();
    let spoofed = [
        ("x_auth_sub", "mallory"),
        ("x-auth_sub", "mallory"),
        ("x_auth_scope", "admin"),
        ("x_auth_email", "mallory@example.com"),
        ("x_auth_claims", "e30"),
        ("x_forwarded_for", "10.9.9.9"),
        ("x_forwarded_host", "evil.example"),
        ("forwarded", "for=10.9.9.9;host=evil.example;proto=https"),
        ("x-real-ip", "10.9.9.9"),
        ("x_real_ip", "10.9.9.9"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-prefix", "/admin"),
        ("x-original-url", "/admin/users"),
        ("x-rewrite-url", "/admin/users"),
    ];
    for (path, token) in [
        ("/public/x", None),
        ("/x", Some(env.token(json!({"sub": "alice"})))),
    ] {
        let mut builder = request(addr, path, token.as_deref());
        for (name, value) in spoofed {
            builder = builder.header(name, value);
        }
        let answer = send(builder.body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        let headers = &answer.json()["headers"];
        for (name, _) in spoofed {
            let value = headers.get(name).and_then(Value::as_str);
            assert!(
                value.is_none_or(|value| !value.contains("mallory")
                    && !value.contains("10.9.9.9")
                    && !value.contains("evil")
                    && value != "443"
                    && !value.contains("/admin")
                    && value != "e30"
                    && value != "admin"),
                "{path}: {name} reached the upstream as {value:?}: {headers}"
            );
        }
        for gone in [
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-original-url",
            "x-rewrite-url",
        ] {
            assert!(headers.get(gone).is_none(), "{gone}: {headers}");
        }
        assert_eq!(headers["x-real-ip"], "127.0.0.1");
        assert_eq!(
            headers["forwarded"],
            format!("for=127.0.0.1;host=\"{addr}\";proto=http")
        );
        match token {
            None => assert!(headers.get("x-auth-sub").is_none()),
            Some(_) => assert_eq!(headers["x-auth-sub"], "alice"),
        }
    }
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn scopes_are_the_ones_the_crate_reads() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();
    // `scope` wins over `scp`, and only a space separates scopes: the gateway merged both and
    // split on any whitespace, granting `admin` here.
    for claims in [
        json!({"scope": "read", "scp": ["admin"]}),
        json!({"scope": "read\tadmin"}),
        json!({"scope": "read\nadmin"}),
    ] {
        let answer = get_path(addr, "/admin/users", Some(&env.token(claims.clone()))).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{claims}");
        assert_eq!(
            answer.challenge(),
            r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin""#
        );
    }
    // What the upstream is told is what the crate read.
    let answer = get_path(
        addr,
        "/x",
        Some(&env.token(json!({"scope": "read", "scp": ["admin"]}))),
    )
    .await;
    assert_eq!(answer.json()["headers"]["x-auth-scope"], "read");
    let answer = get_path(
        addr,
        "/admin",
        Some(&env.token(json!({"scope": null, "scp": "admin read"}))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["headers"]["x-auth-scope"], "admin read");
    let metrics = get_path(addr, "/metrics", None).await.text();
    assert!(
        metrics.contains(
            "gateway_requests_total{outcome=\"rejected\",cause=\"insufficient_scope\"} 3"
        ),
        "{metrics}"
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn scope_rejections_carry_the_realm() {
    let env = env().await;
    let gateway = env.gateway(&["--realm=orders"]).await;
    let answer = get_path(
        gateway.local_addr(),
        "/admin",
        Some(&env.token(json!({"scope": "read"}))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer
            .challenge()
            .starts_with(r#"Bearer realm="orders", error="insufficient_scope""#),
        "{}",
        answer.challenge()
    );
    gateway.shutdown().await.unwrap();
}
