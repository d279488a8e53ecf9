//! Driving Debian's Chromium through chromedriver (WebDriver, with fantoccini) for the demo page's
//! browser test: finding the programs, starting the driver and a headless session in a fresh
//! profile, and the page steps the test is made of.

use super::*;

/// Chromium and its driver, found on `PATH`.
pub(super) struct Browser {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Browser {
    /// `None` (after saying why) when they are missing; a failure instead under
    /// `REQUIRE_BROWSER=1`.
    pub(super) fn find() -> Option<Self> {
        let chromium = which("chromium");
        let chromedriver = which("chromedriver");
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Some(Self {
                chromium,
                chromedriver,
            }),
            _ => {
                let reason = "the browser test needs `chromium` and `chromedriver` on PATH \
                              (Debian: apt-get install chromium chromium-driver; .ci/run does it)";
                assert!(
                    std::env::var("REQUIRE_BROWSER").as_deref() != Ok("1"),
                    "REQUIRE_BROWSER=1 but {reason}"
                );
                eprintln!("skipped: {reason}");
                None
            }
        }
    }

    /// Starts `chromedriver` on a loopback port and opens a session with a fresh profile.
    pub(super) async fn start(&self, profile: &Path) -> Session {
        let mut driver = Command::new(&self.chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start chromedriver");
        let port = within("chromedriver start", driver_port(&mut driver)).await;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--force-device-scale-factor=1",
                    "--lang=en-US",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = within(
            "WebDriver session",
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("cannot open a WebDriver session with chromium");
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(DEADLINE),
                Some(DEADLINE),
                None,
            ))
            .await
            .unwrap();
        Session {
            client,
            _driver: driver,
        }
    }
}

/// The port chromedriver reports once it listens (`--port=0` lets it choose a free one).
pub(super) async fn driver_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        // "ChromeDriver was started successfully on port 41523."
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            return rest.trim_end_matches('.').trim().parse().unwrap();
        }
    }
    panic!("chromedriver exited before listening");
}

pub(super) fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

pub(super) struct Session {
    pub(super) client: Client,
    _driver: Child,
}

/// A fresh directory under the system's temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!("{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Chromedriver's console log of the page (`goog:loggingPrefs`), emptied by each read.
#[derive(Debug)]
pub(super) struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Waits, inside the page, until `selector` matches (a `MutationObserver`; the WebDriver script
/// timeout bounds it).
pub(super) async fn wait_for(client: &Client, selector: &str) {
    const SCRIPT: &str = r"
        const [selector, done] = arguments;
        if (document.querySelector(selector)) { done(true); return; }
        const observer = new MutationObserver(() => {
            if (document.querySelector(selector)) { observer.disconnect(); done(true); }
        });
        observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    ";
    client
        .execute_async(SCRIPT, vec![json!(selector)])
        .await
        .unwrap_or_else(|err| panic!("waiting for `{selector}`: {err}"));
}

/// The text of the element at `selector`. The page re-renders some elements (the relative
/// times tick every second), so an element found may be replaced before its text is read: it
/// is found again then, a bounded number of times.
pub(super) async fn text(client: &Client, selector: &str) -> String {
    let mut attempts = 0;
    loop {
        let element = client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|err| panic!("`{selector}`: {err}"));
        match element.text().await {
            Ok(text) => return text,
            Err(err) if err.is_stale_element_reference() && attempts < 10 => attempts += 1,
            Err(err) => panic!("text of `{selector}`: {err}"),
        }
    }
}

pub(super) async fn click(client: &Client, selector: &str) {
    client
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|err| panic!("`{selector}`: {err}"))
        .click()
        .await
        .unwrap();
}

/// Clicks the call button `button`, waits for the page's `seq`-th result and returns its status
/// and `WWW-Authenticate`.
pub(super) async fn call(client: &Client, button: &str, seq: u32) -> (String, String) {
    click(client, button).await;
    wait_for(client, &format!("#result[data-seq=\"{seq}\"]")).await;
    let status = client
        .find(Locator::Css("#result"))
        .await
        .unwrap()
        .attr("data-status")
        .await
        .unwrap()
        .unwrap();
    (status, text(client, "#result-challenge").await)
}

/// Logs in with the keyboard: picks `user`, types the password, presses Enter; waits until the
/// token is decoded and its signature verified in the page.
pub(super) async fn log_in(client: &Client, user: &str, password: &str) {
    client
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .select_by_value(user)
        .await
        .unwrap();
    let field = client.find(Locator::Css("#password")).await.unwrap();
    field.clear().await.unwrap();
    field
        .send_keys(&format!(
            "{password}{}",
            char::from(fantoccini::key::Key::Enter)
        ))
        .await
        .unwrap();
    wait_for(
        client,
        &format!("#token-section[data-sub=\"{user}\"] li[data-check=\"signature\"].ok"),
    )
    .await;
}

/// Presses and releases `key` wherever the focus is.
pub(super) async fn press(client: &Client, key: Key) {
    let value = char::from(key);
    let keys = KeyActions::new("keyboard".to_owned())
        .then(KeyAction::Down { value })
        .then(KeyAction::Up { value });
    client.perform_actions(keys).await.unwrap();
}

/// The `id` of the focused element.
pub(super) async fn active_id(client: &Client) -> String {
    client
        .active_element()
        .await
        .unwrap()
        .attr("id")
        .await
        .unwrap()
        .unwrap_or_default()
}

pub(super) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    )
}

pub(super) async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.unwrap();
    let path = target_dir().join(name);
    std::fs::write(&path, png).unwrap();
    path
}
