//! Forward-auth mode: the checks as Traefik, Caddy, Envoy and nginx send them, and a real nginx
//! (`auth_request`) in front of the gateway and the test upstream.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;

/// The usual settings in forward-auth mode (no upstream), plus `extra` flags.
fn forward_auth_args(env: &Env, extra: &[&str]) -> Vec<String> {
    let mut args = env.args(extra);
    // Drop `--upstream URL`.
    args.drain(1..3);
    args.push("--forward-auth".to_owned());
    args
}

fn check(addr: SocketAddr, token: Option<&str>, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = request(addr, "/", token);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn forward_auth_answers_traefik_and_caddy_checks() {
    let env = env().await;
    let gateway = start_gateway(forward_auth_args(&env, &["--claims-header=x-auth-claims"])).await;
    let addr = gateway.local_addr();
    let token = env.token(json!({}));
    let described = |uri: &'static str| {
        [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example"),
            ("x-forwarded-uri", uri),
        ]
    };

    let allowed = send(check(addr, Some(&token), &described("/api/items?x=1"))).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(allowed.headers["x-auth-sub"], "alice");
    assert_eq!(allowed.headers["x-auth-iss"], ISS);
    assert_eq!(allowed.headers["x-auth-scope"], "read write");
    assert_eq!(allowed.headers["x-auth-email"], "alice@example.com");
    assert!(allowed.headers.contains_key("x-auth-claims"));

    let missing = send(check(addr, None, &described("/api/items"))).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.challenge(), "Bearer");
    assert!(!missing.headers.contains_key("x-auth-sub"));

    let expired = env.token(json!({"exp": now() - 3600}));
    let answer = send(check(addr, Some(&expired), &described("/api"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.challenge().contains("token expired"));

    // Scope rules (any case) and public paths apply to the described path, not the check's own.
    for uri in ["/admin/users", "/ADMIN/users"] {
        let answer = send(check(addr, Some(&token), &described(uri))).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(answer.challenge().contains(r#"scope="admin""#));
    }
    let public = send(check(addr, None, &described("/public/docs"))).await;
    assert_eq!(public.status, StatusCode::OK);
    assert!(!public.headers.contains_key("x-auth-sub"));
    let tricked = send(check(addr, None, &described("/public/..;/admin/users"))).await;
    assert_eq!(tricked.status, StatusCode::BAD_REQUEST);
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn forward_auth_answers_nginx_and_envoy_checks() {
    let env = env().await;
    let gateway = start_gateway(forward_auth_args(&env, &[])).await;
    let addr = gateway.local_addr();
    let token = env.token(json!({}));
    // nginx: `X-Original-URI` and `X-Original-Method`, on a check request of its own path.
    let nginx = |uri: &'static str| [("x-original-uri", uri), ("x-original-method", "POST")];
    let answer = send(check(addr, Some(&token), &nginx("/orders/7"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-auth-sub"], "alice");
    let answer = send(check(addr, Some(&token), &nginx("/admin"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // nginx passes a request line's raw bytes on: UTF-8 is read as such, anything else is
    // refused, never taken for the check request's own path.
    for (raw, status) in [
        (&b"/ADMIN/caf\xc3\xa9"[..], StatusCode::FORBIDDEN),
        (&b"/admin/\xff"[..], StatusCode::BAD_REQUEST),
    ] {
        let answer = send(
            request(addr, "/", Some(&token))
                .header("x-original-uri", HeaderValue::from_bytes(raw).unwrap())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, status, "{raw:?}");
    }
    // Envoy's HTTP ext_authz service: the check request has the original method and path.
    let answer = get_path(addr, "/admin/users", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = get_path(addr, "/orders/7", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-auth-sub"], "alice");
    // `/healthz` and `/metrics` are the gateway's own.
    let health = get_path(addr, "/healthz", None).await;
    assert_eq!(health.text(), "ok\n");
    let metrics = get_path(addr, "/metrics", None).await.text();
    assert!(
        metrics.contains("gateway_requests_total{outcome=\"accepted\"} 2"),
        "{metrics}"
    );
    gateway.shutdown().await.unwrap();
}

/// An nginx started for one test, with its files in a temporary directory; stopped (by its PID)
/// when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The nginx binary, or `None` (with the reason printed) when the test must be skipped; with
/// `REQUIRE_NGINX=1` a missing nginx fails the test instead.
fn nginx_binary() -> Option<PathBuf> {
    let found = ["nginx", "/usr/sbin/nginx"].iter().find(|candidate| {
        Command::new(candidate)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    match found {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("REQUIRE_NGINX").as_deref() == Ok("1") => {
            panic!("nginx is required (REQUIRE_NGINX=1) but not installed: apt-get install nginx")
        }
        None => {
            eprintln!(
                "skipped: nginx is not installed (apt-get install nginx; .ci/run installs it and \
                 sets REQUIRE_NGINX=1)"
            );
            None
        }
    }
}

async fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts nginx on a free loopback port: `auth_request` to the gateway at `gateway`, then
/// `proxy_pass` to `upstream` with the gateway's `x-auth-*` answer copied on.
async fn start_nginx(binary: &Path, gateway: SocketAddr, upstream: SocketAddr) -> Nginx {
    let dir = std::env::temp_dir().join(format!(
        "gateway-nginx-{}-{}",
        std::process::id(),
        gateway.port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = free_port().await;
    let d = dir.display();
    let config = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {addr};
        location / {{
            auth_request /_auth;
            auth_request_set $auth_sub $upstream_http_x_auth_sub;
            auth_request_set $auth_scope $upstream_http_x_auth_scope;
            proxy_set_header X-Auth-Sub $auth_sub;
            proxy_set_header X-Auth-Scope $auth_scope;
            proxy_pass http://{upstream};
        }}
        location = /_auth {{
            internal;
            proxy_pass http://{gateway};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
}}
"#
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut nginx = Nginx { child, dir, addr };
    // Ready when it accepts connections; a failed start is reported with its error log.
    within(async {
        loop {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited with {status}: {log}");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    nginx
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_the_gateway() {
    let Some(binary) = nginx_binary() else {
        return;
    };
    let env = env().await;
    let gateway = start_gateway(forward_auth_args(&env, &[])).await;
    let nginx = start_nginx(&binary, gateway.local_addr(), env.upstream).await;
    let addr = nginx.addr;
    let token = env.token(json!({}));

    // Allowed: the upstream gets the identity nginx copied from the gateway's answer.
    let answer = get_path(addr, "/api/items?x=1", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let echo = answer.json();
    assert_eq!(echo["path"], "/api/items?x=1");
    assert_eq!(echo["headers"]["x-auth-sub"], "alice");
    assert_eq!(echo["headers"]["x-auth-scope"], "read write");

    // No token: nginx passes the gateway's 401 and its challenge on.
    let answer = get_path(addr, "/api/items", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), "Bearer");
    let answer = get_path(addr, "/admin/users", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // Public: no token needed, and an identity header sent by the client doesn't get through.
    let answer = send(
        request(addr, "/public/docs", None)
            .header("x-auth-sub", "mallory")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.json()["headers"].get("x-auth-sub").is_none());

    // A path trick is refused by the gateway (400), which nginx's auth_request turns into 500:
    // the upstream never sees it.
    let answer = get_path(addr, "/public/..;/admin/users", None).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let metrics = get_path(gateway.local_addr(), "/metrics", None)
        .await
        .text();
    assert!(
        metrics.contains("gateway_requests_total{outcome=\"bad_request\"} 1"),
        "{metrics}"
    );
    drop(nginx);
    gateway.shutdown().await.unwrap();
}
