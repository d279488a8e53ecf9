//! The gateway as operators see it: health, metrics, key loading, shutdown and demo mode.

use super::*;
use crate::workers::Sharing;

#[tokio::test]
async fn health_and_metrics() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();
    let health = get_path(addr, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.text(), "ok\n");

    let token = env.token(json!({}));
    get_path(addr, "/a", Some(&token)).await;
    get_path(addr, "/b", Some(&token)).await;
    get_path(addr, "/a", None).await;
    get_path(addr, "/admin", Some(&token)).await;
    get_path(addr, "/public/x", None).await;
    let answer = get_path(addr, "/metrics", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = answer.text();
    for line in [
        "gateway_requests_total{outcome=\"accepted\"} 2",
        "gateway_requests_total{outcome=\"public\"} 1",
        "gateway_requests_total{outcome=\"rejected\",cause=\"missing_token\"} 1",
        "gateway_requests_total{outcome=\"rejected\",cause=\"insufficient_scope\"} 1",
        "gateway_request_duration_seconds_count{outcome=\"accepted\"} 2",
        "# TYPE gateway_request_duration_seconds histogram",
        "gateway_jwks_fetches_total{issuer=\"https://issuer.test/\",result=\"ok\"} 1",
        "gateway_jwks_fetches_total{issuer=\"https://issuer.test/\",result=\"failed\"} 0",
        "gateway_jwks_keys{issuer=\"https://issuer.test/\"} 1",
        "gateway_jwks_usable{issuer=\"https://issuer.test/\"} 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn healthz_answers_from_the_start_and_is_503_until_keys_load() {
    let env = env().await;
    // A JWKS server that answers only once the test lets it.
    let gate = Arc::new(Notify::new());
    let jwks = env.issuer.jwks();
    let jwks_addr = serve(Router::new().route(
        "/jwks.json",
        get({
            let gate = Arc::clone(&gate);
            move || async move {
                gate.notified().await;
                Json(jwks.clone())
            }
        }),
    ))
    .await;
    let mut args = env.args(&[]);
    args[6] = format!("http://{jwks_addr}/jwks.json");
    let config = config::resolve(&Args::try_parse_from(args).unwrap(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let starting = tokio::spawn(app::start(config, listener));

    let health = get_path(addr, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.text(), "unavailable\n");
    let answer = get_path(addr, "/x", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");

    gate.notify_one();
    let gateway = within(starting).await.unwrap().unwrap();
    assert_eq!(
        get_path(addr, "/healthz", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_path(addr, "/x", Some(&env.token(json!({}))))
            .await
            .status,
        StatusCode::OK
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn unusable_keys_make_healthz_503() {
    let env = env().await;
    let failing = serve(Router::new().route(
        "/jwks.json",
        get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
    ))
    .await;
    let mut args = env.args(&["--start-without-keys", "--admin-listen=127.0.0.1:0"]);
    args[6] = format!("http://{failing}/jwks.json");
    let gateway = start_gateway(args).await;
    let addr = gateway.local_addr();
    let admin = gateway.admin_addr().unwrap();
    let health = get_path(addr, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.text(), "unavailable\n");
    let details = get_path(admin, "/healthz", None).await;
    assert_eq!(details.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(details.json()["issuers"][0]["usable"], false);
    let answer = get_path(addr, "/x", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let metrics = get_path(admin, "/metrics", None).await.text();
    assert!(
        metrics
            .contains("gateway_requests_total{outcome=\"rejected\",cause=\"keys_unavailable\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_jwks_usable{issuer=\"https://issuer.test/\"} 0"),
        "{metrics}"
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_key_set_that_cannot_load_fails_the_start_with_a_clear_error() {
    let env = env().await;
    let failing =
        serve(Router::new().route("/jwks.json", get(|| async { StatusCode::NOT_FOUND }))).await;
    let mut args = env.args(&[]);
    args[6] = format!("http://{failing}/jwks.json");
    let config = config::resolve(&Args::try_parse_from(args).unwrap(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = within(app::start(config, listener)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot load the keys of issuer `https://issuer.test/`"),
        "{text}"
    );
    assert!(text.contains("--start-without-keys"), "{text}");
}

#[tokio::test]
async fn plain_http_keys_from_another_host_need_the_opt_in() {
    let env = env().await;
    let mut args = env.args(&[]);
    // TEST-NET-1: refused before anything is fetched.
    args[6] = "http://192.0.2.1/jwks.json".to_owned();
    let config = config::resolve(&Args::try_parse_from(args).unwrap(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = within(app::start(config, listener)).await.unwrap_err();
    assert!(err.to_string().contains("--allow-insecure-http"), "{err}");
}

#[tokio::test]
async fn graceful_shutdown_drains_requests_in_flight() {
    let mut env = env().await;
    let mut gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();
    let token = env.token(json!({}));
    let in_flight = tokio::spawn(async move { get_path(addr, "/hold", Some(&token)).await });
    within(env.entered.recv()).await.unwrap();

    gateway.begin_shutdown();
    // New connections are refused once the listener is closed.
    within(async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // The request in flight still gets its answer.
    env.hold.release.notify_one();
    let answer = within(in_flight).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "released");
    within(gateway.wait()).await.unwrap();
}

#[tokio::test]
async fn demo_mode_end_to_end() {
    let config = config::resolve(&Args::try_parse_from(["gateway"]).unwrap(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = within(app::start(config, listener)).await.unwrap();
    let addr = gateway.local_addr();
    let demo = gateway.demo().expect("demo mode");

    // The banner has the token and a ready curl command.
    let banner = demo.banner(addr);
    assert!(banner.contains(&format!(
        "curl -i -H 'Authorization: Bearer {}' http://{addr}/hello",
        demo.token
    )));

    // The printed token: 200 with the claims forwarded, 401 without, 403 on /admin.
    let answer = get_path(addr, "/hello", Some(&demo.token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let echo = answer.json();
    assert_eq!(echo["path"], "/hello");
    assert_eq!(echo["headers"]["x-auth-sub"], "demo");
    assert_eq!(echo["headers"]["x-auth-email"], "demo@example.com");
    assert_eq!(echo["headers"]["x-auth-scope"], "read");
    assert_eq!(
        get_path(addr, "/hello", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_path(addr, "/admin", Some(&demo.token)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_path(addr, "/public/hello", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_path(addr, "/healthz", None).await.status,
        StatusCode::OK
    );

    // The issuer's discovery document and the login flow.
    let issuer = &demo.issuer.url;
    let discovery = send(
        Request::get(format!("{issuer}/.well-known/openid-configuration"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(discovery["issuer"], *issuer);
    let login = |body: Value| {
        send(
            Request::post(format!("{issuer}/login"))
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
    };
    let refused = login(json!({"username": "admin", "password": "wrong"})).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let refused = login(json!({"username": "nobody", "password": demo.issuer.password})).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let malformed = login(json!({"user": "admin"})).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let granted = login(json!({"username": "admin", "password": demo.issuer.password})).await;
    assert_eq!(granted.status, StatusCode::OK);
    let granted = granted.json();
    assert_eq!(granted["token_type"], "Bearer");
    assert_eq!(granted["expires_in"], 3600);
    let admin_token = granted["access_token"].as_str().unwrap();
    let answer = get_path(addr, "/admin/panel", Some(admin_token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["headers"]["x-auth-sub"], "admin");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn only_healthz_and_metrics_themselves_are_reserved() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let answer = get_path(
        gateway.local_addr(),
        "/healthz/deep",
        Some(&env.token(json!({}))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["path"], "/base/healthz/deep");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn public_healthz_tells_no_details_and_the_admin_listener_does() {
    let env = env().await;
    // Without an admin listener: `/metrics` on the main listener, no details anywhere.
    let gateway = env.gateway(&[]).await;
    let addr = gateway.local_addr();
    let health = get_path(addr, "/healthz", None).await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "ok\n")
    );
    assert!(!health.text().contains(&env.jwks_url));
    assert_eq!(
        get_path(addr, "/metrics", None).await.status,
        StatusCode::OK
    );
    assert!(gateway.admin_addr().is_none());
    gateway.shutdown().await.unwrap();

    // With one: the details and `/metrics` there; `/metrics` on the main listener is a path like
    // any other (here: no token, 401).
    let gateway = env.gateway(&["--admin-listen=127.0.0.1:0"]).await;
    let (addr, admin) = (gateway.local_addr(), gateway.admin_addr().unwrap());
    let health = get_path(addr, "/healthz", None).await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "ok\n")
    );
    let details = get_path(admin, "/healthz", None).await.json();
    assert_eq!(details["status"], "ok");
    assert_eq!(details["issuers"][0]["issuer"], ISS);
    assert_eq!(details["issuers"][0]["jwks_url"], env.jwks_url);
    assert_eq!(details["issuers"][0]["keys"], 1);
    let metrics = get_path(admin, "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.text().contains("gateway_jwks_keys"));
    assert_eq!(
        get_path(addr, "/metrics", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    gateway.shutdown().await.unwrap();
}

/// Starts a gateway with `extra` flags on `listener`.
async fn start_on(env: &Env, extra: &[&str], listener: TcpListener) -> Gateway {
    let config = config::resolve(&Args::try_parse_from(env.args(extra)).unwrap(), None).unwrap();
    within(app::start(config, listener)).await.unwrap()
}

/// Sends `count` requests, each on a connection of its own, and checks each is proxied with its
/// claims.
async fn proxied_on_fresh_connections(env: &Env, addr: SocketAddr, count: usize) {
    let token = env.token(json!({}));
    for n in 0..count {
        let answer = get_path(addr, &format!("/items/{n}"), Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let echo = answer.json();
        assert_eq!(echo["path"], format!("/base/items/{n}"));
        assert_eq!(echo["headers"]["x-auth-sub"], "alice");
    }
}

/// Polls until a connection to `addr` is refused.
async fn until_refused(addr: SocketAddr) {
    within(async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn two_workers_with_a_listener_each_serve_proxy_and_stop() {
    let env = env().await;
    let listener = crate::workers::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let gateway = start_on(&env, &["--workers", "2"], listener).await;
    assert_eq!(gateway.sharing(), Sharing::ReusePort);
    let addr = gateway.local_addr();
    // Connections of their own, which the kernel spreads over the two listeners.
    proxied_on_fresh_connections(&env, addr, 16).await;
    let metrics = get_path(addr, "/metrics", None).await.text();
    assert!(
        metrics.contains("gateway_requests_total{outcome=\"accepted\"} 16"),
        "the workers share the metrics: {metrics}"
    );
    gateway.shutdown().await.unwrap();
    until_refused(addr).await;
}

#[tokio::test]
async fn workers_share_a_listener_bound_without_reuse_port() {
    let env = env().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = start_on(&env, &["--workers", "3"], listener).await;
    assert_eq!(gateway.sharing(), Sharing::SharedListener);
    let addr = gateway.local_addr();
    proxied_on_fresh_connections(&env, addr, 8).await;
    gateway.shutdown().await.unwrap();
    until_refused(addr).await;
}

#[tokio::test]
async fn one_worker_serves_and_proxies() {
    let env = env().await;
    let listener = crate::workers::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let gateway = start_on(&env, &["--workers=1"], listener).await;
    proxied_on_fresh_connections(&env, gateway.local_addr(), 4).await;
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_taken_address_is_refused_not_shared() {
    // By another gateway (whose listeners allow SO_REUSEPORT) or by any other socket.
    let first = crate::workers::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = first.local_addr().unwrap();
    let err = crate::workers::bind(addr).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = crate::workers::bind(plain.local_addr().unwrap()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
}

#[tokio::test]
async fn http2_clients_are_served_by_the_workers_too() {
    let env = env().await;
    let listener = crate::workers::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let gateway = start_on(&env, &["--workers", "2"], listener).await;
    let token = env.token(json!({}));
    // Prior knowledge (h2c): several streams on one connection, to one worker.
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Body>();
    for n in 0..4 {
        let response = within(
            client.request(
                request(gateway.local_addr(), &format!("/h2/{n}"), Some(&token))
                    .body(Body::empty())
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        let body = within(response.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        let echo: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo["path"], format!("/base/h2/{n}"));
        assert_eq!(echo["headers"]["x-auth-sub"], "alice");
    }
    gateway.shutdown().await.unwrap();
}
