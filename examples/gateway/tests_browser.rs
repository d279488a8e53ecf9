//! The demo page: served only in demo mode, and driven in a real headless Chromium.
//!
//! The browser test needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them when
//! missing). Without them it says why it is skipped, unless `REQUIRE_BROWSER=1`, where it fails.
//! It starts `chromedriver` on loopback, drives Chromium with the `fantoccini` WebDriver client,
//! and waits for the page's state with a `MutationObserver` inside the page (bounded by the
//! WebDriver script timeout), never with a sleep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::http::{StatusCode, header};
use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::app::{self, Gateway};
use crate::config::{self, Args};
use crate::demo::{self, DemoIssuer, page};

#[path = "tests_browser_driver.rs"]
mod driver;
use driver::*;

/// A bound on every wait, so that a broken test fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn start_gateway(args: &[&str]) -> Gateway {
    let config = config::resolve(&Args::try_parse_from(args).unwrap(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    within("gateway start", app::start(config, listener))
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

// ---- without a browser -------------------------------------------------------------------------

#[tokio::test]
async fn demo_mode_serves_the_page_and_says_where_first() {
    let gateway = start_gateway(&["gateway"]).await;
    let addr = gateway.local_addr();
    let demo = gateway.demo().unwrap();
    let first = demo.banner(addr).lines().next().unwrap().to_owned();
    assert!(
        first.starts_with(&format!("open http://{addr}/ ")),
        "{first}"
    );

    let http = http();
    let base = format!("http://{addr}");
    let index = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    assert_eq!(
        index.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let csp = index.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = index.text().await.unwrap();
    assert!(html.contains("/_demo/app.js"));
    // Nothing is loaded from elsewhere.
    for file in ["/", "/_demo/app.js", "/_demo/style.css"] {
        let text = http
            .get(format!("{base}{file}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains("https://"), "{file} refers to another site");
    }

    let settings: Value = http
        .get(format!("{base}/_demo/settings.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|body| serde_json::from_slice::<Value>(&body).unwrap())
        .unwrap();
    assert_eq!(settings["issuer"], demo.issuer.url);
    assert_eq!(settings["require_typ"], "at+jwt");
    assert_eq!(settings["leeway_secs"], 60);
    assert_eq!(settings["scope_rules"][0]["prefix"], "/admin");
    let jwks: Value = http
        .get(format!("{base}{}", settings["jwks"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|body| serde_json::from_slice::<Value>(&body).unwrap())
        .unwrap();
    assert_eq!(jwks, demo.issuer.jwks());

    // The login, same-origin, with the short-lived option and its bounds.
    let login = format!("{base}{}", settings["login"].as_str().unwrap());
    let password = demo.issuer.password.clone();
    let short = http
        .post(&login)
        .header(header::CONTENT_TYPE, "application/json")
        .body(json!({"username": "demo", "password": password, "ttl": 5}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::OK);
    let short: Value = serde_json::from_slice(&short.bytes().await.unwrap()).unwrap();
    assert_eq!(short["expires_in"], 5);
    let claims = payload(short["access_token"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        5
    );
    for ttl in [0, 4, 3601] {
        let refused = http
            .post(&login)
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({"username": "demo", "password": password, "ttl": ttl}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "ttl {ttl}");
    }
    // The rest of the gateway is as before: `/hello` still needs a token.
    let hello = http.get(format!("{base}/hello")).send().await.unwrap();
    assert_eq!(hello.status(), StatusCode::UNAUTHORIZED);
    gateway.shutdown().await.unwrap();
}

/// The payload of a compact JWS, unverified.
fn payload(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_page_is_not_served_when_an_upstream_and_issuer_are_configured() {
    const ISS: &str = "https://issuer.test/";
    let issuer = DemoIssuer::generate(ISS.to_owned(), "api".to_owned()).unwrap();
    let jwks = issuer.jwks();
    let (jwks_addr, _jwks_task) = demo::serve_local(
        "jwks",
        axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        ),
    )
    .await
    .unwrap();
    let (upstream, _upstream_task) = demo::serve_local("echo", demo::echo_router())
        .await
        .unwrap();
    let upstream = format!("http://{upstream}");
    let jwks_url = format!("http://{jwks_addr}/jwks.json");
    let gateway = start_gateway(&[
        "gateway",
        "--upstream",
        &upstream,
        "--issuer",
        ISS,
        "--jwks-url",
        &jwks_url,
        "--audience",
        "api",
    ])
    .await;
    assert!(gateway.demo().is_none());
    let base = format!("http://{}", gateway.local_addr());
    let http = http();
    for path in ["/", "/_demo/app.js", "/_demo/settings.json"] {
        let answer = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // With a token, `/` is the upstream's, like any other path.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = issuer
        .sign(
            None,
            &json!({"iss": ISS, "aud": "api", "sub": "u", "exp": now + 60}),
        )
        .unwrap();
    let answer: Value = http
        .get(format!("{base}/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|body| serde_json::from_slice::<Value>(&body).unwrap())
        .unwrap();
    assert_eq!(answer["path"], "/");
    assert_eq!(answer["headers"]["x-auth-sub"], "u");
    gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_in_headless_chromium() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let profile = TempDir::new("gateway-demo-chromium");
    let session = browser.start(&profile.0).await;
    let client = session.client.clone();
    // The session is closed (and Chromium with it) whether the steps pass or not.
    let steps = tokio::spawn(page_steps(client));
    let outcome = steps.await;
    let _ = session.client.close().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

async fn page_steps(client: Client) {
    let gateway = start_gateway(&["gateway"]).await;
    let addr: SocketAddr = gateway.local_addr();
    let password = gateway.demo().unwrap().issuer.password.clone();
    client.set_window_size(1200, 2150).await.unwrap();
    client.goto(&page::url(addr)).await.unwrap();
    wait_for(&client, "body[data-ready=\"true\"]").await;

    // Log in as `demo`: the token is taken apart, `sub` decoded, the signature verified here.
    log_in(&client, "demo", &password).await;
    let claims: Value = serde_json::from_str(&text(&client, "#claims-json").await).unwrap();
    assert_eq!(claims["sub"], "demo");
    assert_eq!(claims["scope"], "read");
    let header: Value = serde_json::from_str(&text(&client, "#header-json").await).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert!(text(&client, "#time-exp").await.contains("expires in"));
    for check in ["issuer", "audience", "expiry", "type"] {
        wait_for(&client, &format!("li[data-check=\"{check}\"].ok")).await;
    }
    assert!(text(&client, "#verdict").await.contains("403 on /admin"));

    // With the token: 200, and the echo upstream got the claims as headers.
    let (status, challenge) = call(&client, "#call-token", 1).await;
    assert_eq!(status, "200");
    assert!(challenge.contains("none"), "{challenge}");
    assert_eq!(
        text(&client, "#result-upstream dd[data-header=\"x-auth-sub\"]").await,
        "demo"
    );
    let shot = screenshot(&client, "demo-page.png").await;
    eprintln!("screenshot: {}", shot.display());

    // The token cleared by hand: 401 with a bare challenge.
    click(&client, "#clear-token").await;
    let (status, challenge) = call(&client, "#call-edited", 2).await;
    assert_eq!(status, "401");
    assert_eq!(challenge, "Bearer");

    // `/admin` with the demo user's token: 403.
    let (status, challenge) = call(&client, "#call-admin", 3).await;
    assert_eq!(status, "403");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    // With the keyboard alone: Tab from the password field to "without a token", then Enter.
    client
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("")
        .await
        .unwrap();
    let mut tabs = 0;
    while active_id(&client).await != "call-none" {
        tabs += 1;
        assert!(tabs < 40, "Tab never reached the call buttons");
        press(&client, Key::Tab).await;
    }
    press(&client, Key::Enter).await;
    wait_for(&client, "#result[data-seq=\"4\"][data-status=\"401\"]").await;

    // One signature character changed: the page says so, and so does the gateway.
    click(&client, "#reset-token").await;
    click(&client, "#tamper-token").await;
    wait_for(&client, "li[data-check=\"signature\"].fail").await;
    let (status, challenge) = call(&client, "#call-edited", 5).await;
    assert_eq!(status, "401");
    assert!(challenge.contains("signature invalid"), "{challenge}");

    // As `admin`, `/admin` is 200.
    log_in(&client, "admin", &password).await;
    let (status, _) = call(&client, "#call-admin", 6).await;
    assert_eq!(status, "200");

    // Readable at 400 px: nothing wider than the window.
    client.set_window_size(400, 900).await.unwrap();
    let fits = client
        .execute(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the page is wider than 400 px");
    client
        .execute(
            "document.getElementById('token-section').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&client, "demo-page-400px.png").await;

    // No console errors; the refused API calls are logged by Chromium as failed loads, and are
    // the point of the page.
    let log = client.issue_cmd(BrowserLog).await.unwrap();
    let unexpected: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| matches!(entry["level"].as_str(), Some("SEVERE" | "WARNING")))
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            let refused_call = ["/hello - ", "/admin - "]
                .iter()
                .any(|path| message.contains(path))
                && ["401 (Unauthorized)", "403 (Forbidden)"]
                    .iter()
                    .any(|status| message.ends_with(status));
            !(entry["source"] == "network" && refused_call)
        })
        .collect();
    assert!(unexpected.is_empty(), "console: {unexpected:#?}");
    gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_lived_token_is_refused_after_expiry_in_the_browser() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let profile = TempDir::new("gateway-demo-chromium-expiry");
    let session = browser.start(&profile.0).await;
    let client = session.client.clone();
    let steps = tokio::spawn(async move {
        // No leeway, so that the 5 s token is refused 5 s after it was issued.
        let gateway = start_gateway(&["gateway", "--leeway", "0s"]).await;
        let password = gateway.demo().unwrap().issuer.password.clone();
        client.goto(&page::url(gateway.local_addr())).await.unwrap();
        wait_for(&client, "body[data-ready=\"true\"]").await;
        client
            .find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(&password)
            .await
            .unwrap();
        click(&client, "#call-expiry").await;
        // Right away: 200. After its expiry (the page waits for it): 401 "token expired".
        wait_for(&client, "#result[data-seq=\"1\"][data-status=\"200\"]").await;
        wait_for(&client, "#result[data-seq=\"2\"]").await;
        let status = client
            .find(Locator::Css("#result"))
            .await
            .unwrap()
            .attr("data-status")
            .await
            .unwrap();
        assert_eq!(status.as_deref(), Some("401"));
        assert!(
            text(&client, "#result-challenge")
                .await
                .contains("token expired")
        );
        gateway.shutdown().await.unwrap();
    });
    let outcome = steps.await;
    let _ = session.client.close().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}
