//! The command line and the environment: what clap parses, and where each value came from.

use super::*;

/// The command line. Every flag can also be set by the environment variable shown in `--help`
/// and by the config file key of the same name (snake_case; lists take the plural).
#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "A JWT-verifying reverse proxy built on tower-jwt-auth",
    long_about = "A JWT-verifying reverse proxy built on tower-jwt-auth.\n\n\
        Requests with a valid bearer token are forwarded to the upstream with the verified claims \
        in x-auth-* headers; others get 401/403 (RFC 6750). /healthz and /metrics are answered by \
        the gateway itself.\n\n\
        Without an upstream and without an issuer or JWKS URL, the gateway starts in demo mode: an \
        in-process issuer, an echo upstream, and a ready token printed on stdout.\n\n\
        Settings come from the command line, then GATEWAY_* environment variables, then the \
        config file (--config), then the defaults. Lists given on the command line or in the \
        environment (comma-separated) replace the file's list. In the config file each setting \
        has the flag's name in snake_case, lists in the plural (audiences, required_claims, \
        public_paths), and scope_rules and claim_headers are tables; more issuers go in \
        [[issuers]]. See examples/gateway/gateway.example.toml.",
    after_help = "Examples:\n  \
        gateway                                    # demo mode\n  \
        gateway --upstream http://127.0.0.1:9000 --issuer https://auth.example.com/ --audience my-api\n  \
        gateway --forward-auth --issuer https://auth.example.com/ --audience my-api\n  \
        gateway --config gateway.toml --listen 0.0.0.0:8080\n  \
        gateway inspect eyJhbGciOi... --issuer https://auth.example.com/ --audience my-api\n  \
        gateway revoke --redis-url redis://127.0.0.1:6379 --jti 9f1c... --exp 1767225600",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML config file
    #[arg(long, env = "GATEWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "GATEWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Worker threads serving --listen, each with its own event loop, listener (SO_REUSEPORT) and
    /// upstream connections, as nginx's worker processes: a request is answered by the thread
    /// that accepted its connection [default: the number of CPUs the process may use]
    #[arg(long, env = "GATEWAY_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Upstream base URL (http or https); the request path is appended to its path
    #[arg(long, env = "GATEWAY_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,

    /// PEM file of the CA certificates an https upstream is verified with, instead of the
    /// system's [default: the system's roots]
    #[arg(long, env = "GATEWAY_UPSTREAM_CA", value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,

    /// Forward-auth mode, without an upstream: answer each request as the authorization check of
    /// the request described by X-Forwarded-Method/-Proto/-Host/-Uri (or X-Original-URI/-Method)
    /// for nginx auth_request, Traefik forwardAuth, Caddy forward_auth or Envoy ext_authz
    #[arg(long, env = "GATEWAY_FORWARD_AUTH", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub forward_auth: Option<bool>,

    /// Address of a second listener serving /healthz with the key sets' details, and /metrics
    /// (then no longer served on --listen) [default: none]
    #[arg(long, env = "GATEWAY_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<String>,

    /// Time to wait for the upstream's response headers before answering 504 [default: 30s]
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT", value_name = "DURATION")]
    pub upstream_timeout: Option<String>,

    /// Expected `iss`; alone, the keys are found by discovery from it
    #[arg(long, env = "GATEWAY_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,

    /// JWKS URL of the issuer; alone (without --issuer), `iss` is not checked
    #[arg(long, env = "GATEWAY_JWKS_URL", value_name = "URL")]
    pub jwks_url: Option<String>,

    /// Accepted audience (`aud`); repeatable; required unless --allow-any-audience
    #[arg(
        long = "audience",
        env = "GATEWAY_AUDIENCE",
        value_name = "AUD",
        value_delimiter = ','
    )]
    pub audiences: Option<Vec<String>>,

    /// Accept tokens of any `iss` when only --jwks-url is given (not recommended)
    #[arg(long, env = "GATEWAY_ALLOW_ANY_ISSUER", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_any_issuer: Option<bool>,

    /// Accept tokens whatever their `aud` (not recommended)
    #[arg(long, env = "GATEWAY_ALLOW_ANY_AUDIENCE", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_any_audience: Option<bool>,

    /// Required token type (header `typ`), e.g. `at+jwt` for RFC 9068 access tokens
    #[arg(long, env = "GATEWAY_REQUIRE_TYP", value_name = "TYP")]
    pub require_typ: Option<String>,

    /// Claim every token must carry; repeatable
    #[arg(
        long = "required-claim",
        env = "GATEWAY_REQUIRED_CLAIM",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub required_claims: Option<Vec<String>>,

    /// Path prefix served without authentication; repeatable
    #[arg(
        long = "public-path",
        env = "GATEWAY_PUBLIC_PATH",
        value_name = "PREFIX",
        value_delimiter = ','
    )]
    pub public_paths: Option<Vec<String>>,

    /// Scopes a path prefix requires, e.g. `/admin=admin` or `/reports=read write`; repeatable
    #[arg(
        long = "scope-rule",
        env = "GATEWAY_SCOPE_RULE",
        value_name = "PREFIX=SCOPES",
        value_delimiter = ','
    )]
    pub scope_rules: Option<Vec<String>>,

    /// Accept `;` path parameters (`/a;jsessionid=1`); dot-segments stay refused
    #[arg(long, env = "GATEWAY_ALLOW_PATH_PARAMS", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_path_params: Option<bool>,

    /// Also take the token from `Sec-WebSocket-Protocol: access_token, <jwt>` (browsers can't set
    /// headers on a WebSocket); the handshake is answered with the remaining protocol
    #[arg(long, env = "GATEWAY_TOKEN_FROM_WEBSOCKET_PROTOCOL", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub token_from_websocket_protocol: Option<bool>,

    /// Claim forwarded to the upstream in a header, e.g. `email=x-auth-email`; repeatable
    #[arg(
        long = "claim-header",
        env = "GATEWAY_CLAIM_HEADER",
        value_name = "CLAIM=HEADER",
        value_delimiter = ','
    )]
    pub claim_headers: Option<Vec<String>>,

    /// Header carrying the whole verified payload (base64url JSON) to the upstream [default: none]
    #[arg(long, env = "GATEWAY_CLAIMS_HEADER", value_name = "HEADER")]
    pub claims_header: Option<String>,

    /// Pass the client's Authorization header on to the upstream [default: false, it is removed]
    #[arg(long, env = "GATEWAY_FORWARD_AUTHORIZATION", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub forward_authorization: Option<bool>,

    /// Allow plain-http JWKS and discovery URLs to non-loopback hosts (trusted networks only)
    #[arg(long, env = "GATEWAY_ALLOW_INSECURE_HTTP", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_insecure_http: Option<bool>,

    /// Start even if the keys can't be fetched yet (503 and /healthz 503 until they are)
    #[arg(long, env = "GATEWAY_START_WITHOUT_KEYS", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub start_without_keys: Option<bool>,

    /// Clock skew tolerated on exp, nbf and iat [default: 60s]
    #[arg(long, env = "GATEWAY_LEEWAY", value_name = "DURATION")]
    pub leeway: Option<String>,

    /// `realm` of the WWW-Authenticate challenges [default: none]
    #[arg(long, env = "GATEWAY_REALM", value_name = "REALM")]
    pub realm: Option<String>,

    /// How long in-flight requests may take to finish on SIGINT/SIGTERM [default: 30s]
    #[arg(long, env = "GATEWAY_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,

    /// Introspection endpoint (RFC 7662) of the --issuer: opaque (non-JWT) tokens are checked
    /// there, with --introspection-client-id/-secret by client_secret_basic [default: none]
    #[arg(long, env = "GATEWAY_INTROSPECTION_URL", value_name = "URL")]
    pub introspection_url: Option<String>,

    /// Client id the gateway authenticates to the introspection endpoint with
    #[arg(long, env = "GATEWAY_INTROSPECTION_CLIENT_ID", value_name = "ID")]
    pub introspection_client_id: Option<String>,

    /// Client secret for the introspection endpoint (prefer the environment variable: a flag
    /// shows in the process list)
    #[arg(
        long,
        env = "GATEWAY_INTROSPECTION_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub introspection_client_secret: Option<String>,

    /// Directory keeping each issuer's last good JWKS, so that a restart while an issuer is
    /// unreachable starts from it (within 24h of its fetch) [default: none]
    #[arg(long, env = "GATEWAY_KEY_SNAPSHOT_DIR", value_name = "DIR")]
    pub key_snapshot_dir: Option<PathBuf>,

    /// Redis holding the revocation list shared by every gateway (`gateway revoke` writes to it):
    /// loaded at start, kept current through pub/sub; revoked tokens get 401 [default: none]
    #[arg(long, env = "GATEWAY_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// When the revocation list can't be confirmed current (Redis unreachable for 30s), let
    /// tokens through, checked against the last copy, instead of answering 503
    #[arg(long, env = "GATEWAY_REVOCATION_FAIL_OPEN", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub revocation_fail_open: Option<bool>,

    /// Log format: `text` or `json` (filter with RUST_LOG) [default: text]
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// One access line per request (target `gateway::access`, level info), written off the
    /// request path [default: false, as Envoy, Traefik and Caddy]
    #[arg(long, env = "GATEWAY_ACCESS_LOG", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub access_log: Option<bool>,

    /// Bytes the verified-token cache may hold (a repeated token skips the signature check);
    /// 0 switches it off [default: 33554432, 32 MiB]
    #[arg(long, env = "GATEWAY_TOKEN_CACHE_BYTES", value_name = "BYTES")]
    pub token_cache_bytes: Option<u64>,

    /// DPoP-bound tokens (RFC 9449) for every issuer: `off` (default), `allowed` (DPoP or bearer)
    /// or `required` (DPoP only). Needs --external-url.
    #[arg(long, env = "GATEWAY_DPOP", value_name = "off|allowed|required")]
    pub dpop: Option<String>,

    /// Require a server nonce in DPoP proofs (`DPoP-Nonce`, `use_dpop_nonce`), rotating every
    /// 5 minutes.
    #[arg(long, env = "GATEWAY_DPOP_NONCE", value_name = "BOOL", num_args = 0..=1,
        require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub dpop_nonce: Option<bool>,

    /// The URL clients address the gateway by (e.g. `https://api.example.com`): a DPoP proof's
    /// `htu` must be it followed by the request path.
    #[arg(long, env = "GATEWAY_EXTERNAL_URL", value_name = "URL")]
    pub external_url: Option<String>,

    /// The protected resource's identifier (RFC 9728): serve its metadata at
    /// /.well-known/oauth-protected-resource{path} and name it in every challenge
    /// (`resource_metadata`); issuers without --audience then require it as `aud`.
    #[arg(long, env = "GATEWAY_RESOURCE", value_name = "URL")]
    pub resource: Option<String>,

    /// A header in which a trusted TLS-terminating proxy passes the client certificate as
    /// URL-encoded PEM (nginx `$ssl_client_escaped_cert`), for certificate-bound tokens
    /// (`cnf.x5t#S256`, RFC 8705).
    #[arg(long, env = "GATEWAY_CLIENT_CERT_HEADER", value_name = "NAME")]
    pub client_cert_header: Option<String>,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Decode a token and show its header and claims, and verify it when an issuer or JWKS URL
    /// is given (exit code 0 valid or decoded, 1 invalid, 2 usage error)
    Inspect(crate::inspect::InspectArgs),
    /// Revoke a token (by `jti`, until its `exp`) or every token of a subject issued before a
    /// time, in the Redis the gateways share (--redis-url); exit code 0 once recorded
    Revoke(crate::revoke::RevokeArgs),
}

/// The parsed command line, and which of its values came from the environment.
#[derive(Debug)]
pub struct Args {
    pub(crate) cli: Cli,
    from_env: HashSet<String>,
}

impl Args {
    /// Parses the process's arguments and environment; exits on `--help`, `--version` and
    /// malformed flags, as clap does.
    pub fn parse() -> Self {
        let matches = Cli::command().get_matches();
        match Self::from_matches(&matches) {
            Ok(args) => args,
            Err(err) => err.exit(),
        }
    }

    /// Parses `args` (the first is the program name) and the process's environment.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::from_matches(&Cli::command().try_get_matches_from(args)?)
    }

    fn from_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let from_env = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::EnvVariable))
            .map(|id| id.as_str().to_owned())
            .collect();
        Ok(Self {
            cli: Cli::from_arg_matches(matches)?,
            from_env,
        })
    }

    /// How to name the setting `id` (a `Cli` field) whose value came from the command line or
    /// the environment: `--flag` or `GATEWAY_VAR`.
    pub(super) fn origin(&self, id: &str) -> String {
        let command = Cli::command();
        let Some(arg) = command.get_arguments().find(|arg| arg.get_id() == id) else {
            return id.to_owned();
        };
        match (self.from_env.contains(id), arg.get_env()) {
            (true, Some(var)) => var.to_string_lossy().into_owned(),
            _ => format!("--{}", arg.get_long().unwrap_or(id)),
        }
    }
}

/// `GATEWAY_*` variables in `vars` that no setting reads, most likely misspelt.
pub fn unknown_env_vars(vars: impl IntoIterator<Item = String>) -> Vec<String> {
    let command = Cli::command();
    let known: HashSet<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|var| var.to_string_lossy().into_owned())
        .collect();
    let mut unknown: Vec<String> = vars
        .into_iter()
        .filter(|var| var.starts_with("GATEWAY_") && !known.contains(var))
        .collect();
    unknown.sort();
    unknown
}
