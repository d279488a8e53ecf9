//! Tests of the configuration: precedence, files, environment, and errors that name the setting.

use super::*;

fn args(list: &[&str]) -> Args {
    let mut all = vec!["gateway"];
    all.extend_from_slice(list);
    Args::try_parse_from(all).unwrap()
}

fn resolve_with(list: &[&str], toml: Option<&str>) -> Result<Config, ConfigError> {
    let path = Path::new("gateway.toml");
    let file = toml.map(|text| parse_file(path, text)).transpose()?;
    resolve(&args(list), file.as_ref().map(|file| (path, file)))
}

const REAL: &[&str] = &[
    "--upstream",
    "http://127.0.0.1:9000/api/",
    "--issuer",
    "https://auth.example.com/",
    "--audience",
    "orders",
];

#[test]
fn nothing_configured_is_demo_mode_with_its_defaults() {
    let config = resolve_with(&[], None).unwrap();
    assert!(matches!(config.mode, Mode::Demo { ref audience } if audience == DEMO_AUDIENCE));
    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.listen_origin, "default");
    assert_eq!(config.routes.public_paths, ["/public"]);
    assert_eq!(config.routes.scope_rules[0].prefix, "/admin");
    assert_eq!(config.auth.require_typ.as_deref(), Some("at+jwt"));
    assert!(!config.forwarding.forward_authorization);
    assert!(!config.access_log, "the access log is opt-in");
    assert_eq!(config.auth.token_cache_bytes, None, "the crate's default");
}

#[test]
fn access_log_and_token_cache_come_from_flags_and_file() {
    let config = resolve_with(
        &[REAL, &["--access-log", "--token-cache-bytes", "0"]].concat(),
        None,
    )
    .unwrap();
    assert!(config.access_log);
    assert_eq!(config.auth.token_cache_bytes, Some(0));
    let file = "access_log = true\ntoken_cache_bytes = 1048576\n";
    let config = resolve_with(REAL, Some(file)).unwrap();
    assert!(config.access_log);
    assert_eq!(config.auth.token_cache_bytes, Some(1_048_576));
    let config = resolve_with(&[REAL, &["--access-log=false"]].concat(), Some(file)).unwrap();
    assert!(!config.access_log);
    assert!(Args::try_parse_from(["gateway", "--token-cache-bytes", "lots"]).is_err());
}

#[test]
fn workers_default_to_the_cpus_and_come_from_flag_and_file() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(resolve_with(REAL, None).unwrap().workers, cpus);
    assert_eq!(
        resolve_with(&[REAL, &["--workers", "3"]].concat(), None)
            .unwrap()
            .workers,
        3
    );
    let file = "workers = 2\n";
    assert_eq!(resolve_with(REAL, Some(file)).unwrap().workers, 2);
    let config = resolve_with(&[REAL, &["--workers=5"]].concat(), Some(file)).unwrap();
    assert_eq!(config.workers, 5, "the command line beats the file");
}

#[test]
fn zero_or_absurd_worker_counts_are_refused_with_the_setting_named() {
    let err = resolve_with(&[REAL, &["--workers", "0"]].concat(), None).unwrap_err();
    assert_eq!(err.setting(), "--workers");
    assert_eq!(err.to_string(), "invalid --workers `0`: must be at least 1");
    let err = resolve_with(&[REAL, &["--workers", "100000"]].concat(), None).unwrap_err();
    assert!(err.to_string().contains("must be at most 1024"), "{err}");
    let err = resolve_with(REAL, Some("workers = 0\n")).unwrap_err();
    assert_eq!(err.setting(), "`workers` in gateway.toml");
    assert!(Args::try_parse_from(["gateway", "--workers", "-1"]).is_err());
    assert!(Args::try_parse_from(["gateway", "--workers", "many"]).is_err());
    assert!(matches!(
        resolve_with(REAL, Some("workers = -1\n")),
        Err(ConfigError::ParseFile { line: 1, .. })
    ));
}

#[test]
fn issuer_alone_uses_discovery_and_with_jwks_url_checks_iss() {
    let config = resolve_with(REAL, None).unwrap();
    let Mode::Proxy { upstream, issuers } = config.mode else {
        panic!("not proxy mode")
    };
    assert_eq!(upstream.authority.as_str(), "127.0.0.1:9000");
    assert_eq!(upstream.base_path, "/api");
    assert_eq!(
        issuers,
        [IssuerConfig {
            iss: Some("https://auth.example.com/".into()),
            jwks_url: None,
            audiences: vec!["orders".into()],
        }]
    );
    let config = resolve_with(
        &[
            "--upstream=http://u:1",
            "--jwks-url=http://127.0.0.1:1/jwks.json",
            "--allow-any-issuer",
            "--audience=a,b",
            "--audience",
            "c",
        ],
        None,
    )
    .unwrap();
    let Mode::Proxy { issuers, .. } = config.mode else {
        panic!()
    };
    assert_eq!(issuers[0].iss, None);
    assert_eq!(issuers[0].audiences, ["a", "b", "c"]);
}

#[test]
fn command_line_beats_file_beats_defaults() {
    let toml = r#"
        listen = "127.0.0.1:7000"
        upstream = "http://127.0.0.1:9000"
        upstream_timeout = "5s"
        issuer = "https://file.example.com/"
        audiences = ["from-file"]
        public_paths = ["/docs", "/public/"]
        forward_authorization = true
        [scope_rules]
        "/admin" = ["admin"]
        "/reports" = ["reports:read", "reports:export"]
        [claim_headers]
        email = "X-Auth-Email"
        [[issuers]]
        jwks_url = "https://other.example.com/jwks.json"
        issuer = "https://other.example.com/"
        audiences = ["other"]
    "#;
    let config = resolve_with(&["--listen", "127.0.0.1:7001"], Some(toml)).unwrap();
    assert_eq!(config.listen.port(), 7001);
    assert_eq!(config.upstream_timeout, Duration::from_secs(5));
    assert_eq!(config.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
    assert_eq!(config.routes.public_paths, ["/docs", "/public/"]);
    assert_eq!(
        config.routes.scope_rules[1],
        ScopeRule {
            prefix: "/reports".into(),
            scopes: vec!["reports:read".into(), "reports:export".into()],
        }
    );
    assert_eq!(config.forwarding.claim_headers[0].1, "x-auth-email");
    assert!(config.forwarding.forward_authorization);
    let Mode::Proxy { issuers, .. } = &config.mode else {
        panic!()
    };
    assert_eq!(issuers.len(), 2);
    assert_eq!(issuers[1].audiences, ["other"]);

    let config = resolve_with(
        &[
            "--issuer=https://cli.example.com/",
            "--public-path=/health-ui",
            "--forward-authorization=false",
            "--scope-rule=/ops=ops write",
        ],
        Some(toml),
    )
    .unwrap();
    let Mode::Proxy { issuers, .. } = &config.mode else {
        panic!()
    };
    // Per setting: the issuer from the CLI, its audience still from the file.
    assert_eq!(issuers[0].iss.as_deref(), Some("https://cli.example.com/"));
    assert_eq!(issuers[0].audiences, ["from-file"]);
    assert_eq!(config.routes.public_paths, ["/health-ui"]);
    assert!(!config.forwarding.forward_authorization);
    assert_eq!(config.routes.scope_rules[0].scopes, ["ops", "write"]);
}

#[test]
fn unknown_file_key_names_the_key_and_line() {
    let err = resolve_with(&[], Some("listen = \"127.0.0.1:1\"\nlistn = \"x\"\n")).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ConfigError::ParseFile { line: 2, .. }),
        "{text}"
    );
    assert!(text.contains("unknown field `listn`"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    let err = resolve_with(&[], Some("[[issuers]]\njwks = \"x\"\n")).unwrap_err();
    assert!(err.to_string().contains("unknown field `jwks`"), "{err}");
}

#[test]
fn wrong_types_in_the_file_are_reported() {
    let err = resolve_with(&[], Some("public_paths = \"/x\"\n")).unwrap_err();
    assert!(
        matches!(err, ConfigError::ParseFile { line: 1, .. }),
        "{err}"
    );
}

#[test]
fn unreadable_file_names_the_file() {
    let args = args(&["--config", "/nonexistent/gateway.toml"]);
    let err = load(&args).unwrap_err();
    assert!(matches!(err, ConfigError::ReadFile { .. }));
    assert!(
        err.to_string().contains("/nonexistent/gateway.toml"),
        "{err}"
    );
    assert_eq!(err.setting(), "--config");
}

#[test]
fn bad_urls_name_their_setting() {
    let err = resolve_with(
        &[
            "--upstream=not a url",
            "--issuer=https://a.example/",
            "--audience=x",
        ],
        None,
    )
    .unwrap_err();
    assert_eq!(err.setting(), "--upstream", "{err}");
    let err = resolve_with(
        &[
            "--upstream=ftp://h/",
            "--issuer=https://a.example/",
            "--audience=x",
        ],
        None,
    )
    .unwrap_err();
    assert_eq!(err.setting(), "--upstream", "{err}");
    let err = resolve_with(
        &[
            "--upstream=http://h/",
            "--issuer=auth.example",
            "--audience=x",
        ],
        None,
    )
    .unwrap_err();
    assert_eq!(err.setting(), "--issuer", "{err}");
    let err = resolve_with(
        &[
            "--upstream=http://h/",
            "--jwks-url=/jwks.json",
            "--audience=x",
        ],
        None,
    )
    .unwrap_err();
    assert_eq!(err.setting(), "--jwks-url", "{err}");
    let err = resolve_with(
        &[],
        Some("upstream = \"nope\"\nissuer = \"https://a/\"\njwks_url = \"https://a/j\"\naudiences=[\"x\"]"),
    )
    .unwrap_err();
    assert_eq!(err.setting(), "`upstream` in gateway.toml", "{err}");
    // With --jwks-url, the issuer is only the expected `iss` and needs not be a URL.
    resolve_with(
        &[
            "--upstream=http://h/",
            "--issuer=urn:issuer",
            "--jwks-url=https://a/j",
            "--audience=x",
        ],
        None,
    )
    .unwrap();
}

#[test]
fn an_audience_is_required_unless_waived() {
    let err = resolve_with(
        &["--upstream=http://h/", "--issuer=https://a.example/"],
        None,
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }));
    assert_eq!(err.setting(), "--audience");
    assert!(err.to_string().contains("--allow-any-audience"), "{err}");
    resolve_with(
        &[
            "--upstream=http://h/",
            "--issuer=https://a.example/",
            "--allow-any-audience",
        ],
        None,
    )
    .unwrap();
}

#[test]
fn half_configured_modes_are_refused() {
    let err = resolve_with(&["--upstream=http://h/"], None).unwrap_err();
    assert_eq!(err.setting(), "--issuer", "{err}");
    let err = resolve_with(&["--issuer=https://a.example/", "--audience=x"], None).unwrap_err();
    assert_eq!(err.setting(), "--upstream", "{err}");
}

#[test]
fn bad_values_name_their_setting() {
    for (flag, value) in [
        ("--listen", "localhost"),
        ("--upstream-timeout", "soon"),
        ("--upstream-timeout", "0s"),
        ("--public-path", "admin"),
        ("--scope-rule", "/admin"),
        ("--scope-rule", "/admin="),
        ("--claim-header", "email"),
        ("--claim-header", "email=host"),
        ("--claim-header", "email=bad header"),
        ("--claims-header", "connection"),
        ("--log-format", "xml"),
    ] {
        let err = resolve_with(&[&format!("{flag}={value}")], None).unwrap_err();
        assert_eq!(err.setting(), flag, "{flag}={value}: {err}");
        assert!(err.to_string().contains(value), "{err}");
    }
    let err = resolve_with(&["--claim-header=email=x-auth-sub"], None).unwrap_err();
    assert!(err.to_string().contains("already carries"), "{err}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
    assert!(parse_duration("1d").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn unknown_gateway_variables_are_found() {
    let vars = [
        "GATEWAY_LISTEN",
        "GATEWAY_LISTN",
        "PATH",
        "GATEWAY_AUDIENCE",
    ];
    assert_eq!(unknown_env_vars(vars.map(str::to_owned)), ["GATEWAY_LISTN"]);
}

#[test]
fn the_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway/gateway.example.toml");
    let file = read_file(&path).unwrap();
    let config = resolve(&args(&[]), Some((&path, &file))).unwrap();
    let Mode::Proxy { upstream, issuers } = &config.mode else {
        panic!("not proxy mode")
    };
    assert_eq!(upstream.authority.as_str(), "127.0.0.1:9000");
    assert_eq!(issuers.len(), 2);
    assert_eq!(config.routes.scope_rules.len(), 2);
    assert_eq!(config.forwarding.claim_headers.len(), 2);
    assert_eq!(config.listen.port(), 8080);
}

/// The gateway's config file in the README is valid too.
#[test]
fn the_readme_config_file_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks: Vec<&str> = text
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|block| block.contains("[claim_headers]"))
        .collect();
    assert!(!blocks.is_empty(), "README.md has no gateway config file");
    for block in blocks {
        let path = Path::new("README.md");
        let file = parse_file(path, block).unwrap();
        resolve(&args(&[]), Some((path, &file))).unwrap();
    }
}

/// The environment sits between the command line and the file. Checked in a child process
/// (this test binary, running `env_child`), so that no test changes this process's
/// environment.
#[test]
fn environment_sits_between_command_line_and_file() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "config::tests::env_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GATEWAY_TEST_ENV_CHILD", "1")
        .env("GATEWAY_LISTEN", "127.0.0.1:7100")
        .env("GATEWAY_UPSTREAM_TIMEOUT", "7s")
        .env("GATEWAY_PUBLIC_PATH", "/a,/b")
        .env("GATEWAY_FORWARD_AUTHORIZATION", "yes")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("env child checked"), "{stdout}");
}

#[test]
fn env_child() {
    if std::env::var_os("GATEWAY_TEST_ENV_CHILD").is_none() {
        return;
    }
    let toml =
        "listen = \"127.0.0.1:7000\"\nupstream_timeout = \"5s\"\nshutdown_timeout = \"9s\"\n";
    let config = resolve_with(&["--upstream-timeout=8s"], Some(toml)).unwrap();
    assert_eq!(config.listen.port(), 7100, "env beats file");
    assert_eq!(
        config.upstream_timeout,
        Duration::from_secs(8),
        "CLI beats env"
    );
    assert_eq!(
        config.shutdown_timeout,
        Duration::from_secs(9),
        "file beats default"
    );
    assert_eq!(config.routes.public_paths, ["/a", "/b"]);
    assert!(config.forwarding.forward_authorization);
    // A value from the environment is named by its variable, one from the CLI by its flag.
    assert_eq!(args(&[]).origin("listen"), "GATEWAY_LISTEN");
    assert_eq!(args(&["--listen=127.0.0.1:1"]).origin("listen"), "--listen");
    println!("env child checked");
}

#[test]
fn a_jwks_url_without_an_issuer_needs_the_opt_in() {
    let alone = [
        "--upstream=http://u:1",
        "--jwks-url=https://a/j",
        "--audience=x",
    ];
    let err = resolve_with(&alone, None).unwrap_err();
    assert_eq!(err.setting(), "--issuer", "{err}");
    assert!(err.to_string().contains("--allow-any-issuer"), "{err}");
    let mut allowed = alone.to_vec();
    allowed.push("--allow-any-issuer");
    assert!(resolve_with(&allowed, None).is_ok());
    // The same for a file's [[issuers]] entry.
    let err = resolve_with(
        &["--upstream=http://u:1"],
        Some("[[issuers]]\njwks_url = \"https://a/j\"\naudiences = [\"x\"]"),
    )
    .unwrap_err();
    assert_eq!(
        err.setting(),
        "`issuers[0].issuer` in gateway.toml",
        "{err}"
    );
    assert!(
        resolve_with(
            &["--upstream=http://u:1"],
            Some("allow_any_issuer = true\n[[issuers]]\njwks_url = \"https://a/j\"\naudiences = [\"x\"]"),
        )
        .is_ok()
    );
}

#[test]
fn forward_auth_mode_needs_an_issuer_and_no_upstream() {
    let config = resolve_with(
        &["--forward-auth", "--issuer=https://a/", "--audience=x"],
        None,
    )
    .unwrap();
    assert!(matches!(config.mode, Mode::ForwardAuth { ref issuers } if issuers.len() == 1));
    let err = resolve_with(
        &[
            "--forward-auth",
            "--upstream=http://u:1",
            "--issuer=https://a/",
            "--audience=x",
        ],
        None,
    )
    .unwrap_err();
    assert_eq!(err.setting(), "--upstream", "{err}");
    let err = resolve_with(&["--forward-auth"], None).unwrap_err();
    assert_eq!(err.setting(), "--issuer", "{err}");
    let config = resolve_with(
        &[],
        Some("forward_auth = true\nissuer = \"https://a/\"\naudiences = [\"x\"]"),
    )
    .unwrap();
    assert!(matches!(config.mode, Mode::ForwardAuth { .. }));
}

#[test]
fn new_settings_come_from_flags_and_file() {
    let mut list = REAL.to_vec();
    list[1] = "https://127.0.0.1:9443/api";
    list.extend([
        "--upstream-ca=/etc/ca.pem",
        "--admin-listen=127.0.0.1:9100",
        "--allow-path-params",
        "--token-from-websocket-protocol",
    ]);
    let config = resolve_with(&list, None).unwrap();
    let Mode::Proxy { upstream, .. } = &config.mode else {
        panic!("not proxy mode")
    };
    assert_eq!(upstream.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
    assert_eq!(config.admin_listen, Some("127.0.0.1:9100".parse().unwrap()));
    assert!(config.routes.allow_path_params);
    assert!(config.auth.token_from_websocket_protocol);
    let config = resolve_with(
        REAL,
        Some("admin_listen = \"127.0.0.1:9101\"\nallow_path_params = true\ntoken_from_websocket_protocol = true"),
    )
    .unwrap();
    assert_eq!(config.admin_listen, Some("127.0.0.1:9101".parse().unwrap()));
    assert!(config.routes.allow_path_params && config.auth.token_from_websocket_protocol);
    // A CA file only with an https upstream; a bad admin address names its setting.
    let mut plain = REAL.to_vec();
    plain.push("--upstream-ca=/etc/ca.pem");
    assert_eq!(
        resolve_with(&plain, None).unwrap_err().setting(),
        "--upstream-ca"
    );
    let mut bad = REAL.to_vec();
    bad.push("--admin-listen=nope");
    assert_eq!(
        resolve_with(&bad, None).unwrap_err().setting(),
        "--admin-listen"
    );
}

#[test]
fn a_claim_header_cannot_be_a_managed_header_in_any_spelling() {
    for header in [
        "x_forwarded_for",
        "x-real-ip",
        "forwarded",
        "x_original_url",
    ] {
        let mut list = REAL.to_vec();
        let flag = format!("--claim-header=email={header}");
        list.push(&flag);
        let err = resolve_with(&list, None).unwrap_err();
        assert!(
            err.to_string().contains("managed by the gateway"),
            "{header}: {err}"
        );
    }
}
