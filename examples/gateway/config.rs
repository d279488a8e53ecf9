//! The gateway's settings: command line, environment and TOML file, merged with the precedence
//! CLI > environment > file > defaults, then checked into a [`Config`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use http::HeaderName;
use serde::Deserialize;
use tower_jwt_auth::Issuer;
use tower_jwt_auth::KeySource;

pub use crate::upstream::Upstream;

/// The headers the verified `sub`, `iss` and scopes are forwarded in.
pub const SUB_HEADER: &str = "x-auth-sub";
pub const ISS_HEADER: &str = "x-auth-iss";
pub const SCOPE_HEADER: &str = "x-auth-scope";

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// A bound on `--workers` that no machine reaches, so that a typo (`--workers 20000`) is refused
/// rather than starting that many threads.
const MAX_WORKERS: usize = 1024;
const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// The audience of the demo issuer's tokens, unless one is configured.
pub const DEMO_AUDIENCE: &str = "gateway-demo";

#[path = "cli.rs"]
mod cli;
pub use cli::*;
#[path = "checks.rs"]
mod checks;
#[path = "file.rs"]
mod file;
#[path = "token_state.rs"]
mod token_state;
pub use checks::parse_duration;
use checks::*;
#[cfg(test)]
use file::parse_file;
pub use file::{FileConfig, read_file};
pub use token_state::{IntrospectionSettings, RevocationSettings};
use token_state::{introspection_settings, revocation_settings};

/// Why the configuration can't be used. Each message names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file can't be read.
    #[error("cannot read the config file `{}` (--config): {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("config file `{}`, line {line}: {message}", path.display())]
    ParseFile {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A setting has a value that can't be used.
    #[error("invalid {setting} `{value}`: {reason}")]
    Invalid {
        /// Where the value came from: `--flag`, `GATEWAY_VAR` or `` `key` in FILE ``.
        setting: String,
        value: String,
        reason: String,
    },
    /// A required setting is missing.
    #[error("{setting} is not set: {reason}")]
    Missing {
        /// The setting, named by its flag.
        setting: String,
        reason: String,
    },
}

impl ConfigError {
    /// The setting the error is about (the flag, variable or file key), for tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn setting(&self) -> &str {
        match self {
            Self::ReadFile { .. } | Self::ParseFile { .. } => "--config",
            Self::Invalid { setting, .. } | Self::Missing { setting, .. } => setting,
        }
    }
}

/// The checked configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// How `listen` was set, for the message when the address is taken.
    pub listen_origin: String,
    /// Threads serving `listen`, each with its own runtime, listener and upstream connections.
    pub workers: usize,
    /// Where `/healthz` with the key sets' details and `/metrics` are served, if apart.
    pub admin_listen: Option<SocketAddr>,
    pub mode: Mode,
    pub upstream_timeout: Duration,
    pub auth: AuthSettings,
    pub routes: RouteRules,
    pub forwarding: Forwarding,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    /// One line per request on the `gateway::access` target.
    pub access_log: bool,
}

/// Demo mode, a real upstream behind real issuers, or forward-auth checks for another proxy.
#[derive(Debug, Clone)]
pub enum Mode {
    /// An in-process issuer whose tokens carry `audience`, and a built-in echo upstream.
    Demo { audience: String },
    Proxy {
        upstream: Upstream,
        issuers: Vec<IssuerConfig>,
    },
    /// Every request is the authorization check of a request another proxy received.
    ForwardAuth { issuers: Vec<IssuerConfig> },
}

/// One trusted issuer: the `iss` to expect and/or the JWKS URL, and its audiences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub iss: Option<String>,
    pub jwks_url: Option<String>,
    pub audiences: Vec<String>,
}

impl IssuerConfig {
    /// The crate's issuer: discovery for `iss` alone, the JWKS URL otherwise.
    pub fn to_issuer(&self) -> Issuer {
        let issuer = match (&self.iss, &self.jwks_url) {
            (Some(iss), None) => Issuer::discover(iss.clone()),
            (Some(iss), Some(url)) => {
                Issuer::new(iss.clone()).key(KeySource::jwks_url(url.clone()))
            }
            (None, Some(url)) => {
                Issuer::without_issuer_check().key(KeySource::jwks_url(url.clone()))
            }
            // `resolve` never builds one without either.
            (None, None) => Issuer::without_issuer_check(),
        };
        self.audiences
            .iter()
            .fold(issuer, |issuer, audience| issuer.audience(audience.clone()))
    }

    /// How the issuer is named in logs.
    pub fn name(&self) -> &str {
        self.iss
            .as_deref()
            .or(self.jwks_url.as_deref())
            .unwrap_or("-")
    }
}

/// The token rules beyond issuer and audience.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub require_typ: Option<String>,
    pub required_claims: Vec<String>,
    pub leeway: Option<Duration>,
    pub realm: Option<String>,
    pub allow_insecure_http: bool,
    pub start_without_keys: bool,
    /// Take the token from `Sec-WebSocket-Protocol: access_token, <jwt>` too.
    pub token_from_websocket_protocol: bool,
    /// The verified-token cache's bound in bytes (`0`: off); the crate's default when `None`.
    pub token_cache_bytes: Option<u64>,
    /// Sender constraint: DPoP, the external URL, the RFC 9728 resource, the certificate header.
    pub sender: crate::sender::SenderSettings,
    /// The shared revocation list, if any.
    pub revocation: Option<RevocationSettings>,
    /// The top-level issuer's introspection endpoint, if any.
    pub introspection: Option<IntrospectionSettings>,
    /// Where the last good JWKS of each issuer is kept, if anywhere.
    pub key_snapshot_dir: Option<PathBuf>,
}

/// Which paths skip authentication, and which need scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRules {
    pub public_paths: Vec<String>,
    pub scope_rules: Vec<ScopeRule>,
    /// Accept `;` path parameters (`/a;v=1`), e.g. for a servlet upstream's `jsessionid`.
    pub allow_path_params: bool,
}

/// A path prefix and the scopes (all of them) it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRule {
    pub prefix: String,
    pub scopes: Vec<String>,
}

/// What the upstream is told about the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// Claim → header, besides `sub`, `iss` and the scopes.
    pub claim_headers: Vec<(String, HeaderName)>,
    /// The header carrying the whole verified payload, if any.
    pub claims_header: Option<HeaderName>,
    pub forward_authorization: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Reads the config file named by `args` (if any) and resolves the settings.
pub fn load(args: &Args) -> Result<Config, ConfigError> {
    let file = match &args.cli.config {
        None => None,
        Some(path) => Some((path.clone(), read_file(path)?)),
    };
    resolve(
        args,
        file.as_ref().map(|(path, file)| (path.as_path(), file)),
    )
}

/// Merges one setting: the command line or environment, else the file, with where it came from.
struct Merge<'a> {
    args: &'a Args,
    file: Option<(&'a Path, &'a FileConfig)>,
}

impl Merge<'_> {
    fn file_origin(&self, key: &str) -> String {
        match self.file {
            Some((path, _)) => format!("`{key}` in {}", path.display()),
            None => format!("`{key}`"),
        }
    }

    /// The value and its origin: from the CLI/environment, else from the file. `name` is both
    /// the `Cli` field and the file key.
    fn pick<T: Clone>(
        &self,
        name: &str,
        cli: &Option<T>,
        file: impl Fn(&FileConfig) -> &Option<T>,
    ) -> Option<(T, String)> {
        if let Some(value) = cli {
            return Some((value.clone(), self.args.origin(name)));
        }
        let (_, config) = self.file?;
        file(config)
            .as_ref()
            .map(|value| (value.clone(), self.file_origin(name)))
    }
}

/// Resolves and checks the settings from `args` and an already parsed config file.
pub fn resolve(args: &Args, file: Option<(&Path, &FileConfig)>) -> Result<Config, ConfigError> {
    let merge = Merge { args, file };
    let cli = &args.cli;
    macro_rules! pick {
        ($name:ident) => {
            merge.pick(stringify!($name), &cli.$name, |f| &f.$name)
        };
    }
    let empty = FileConfig::default();
    let file_config = file.map_or(&empty, |(_, config)| config);

    let (listen_text, listen_origin) =
        pick!(listen).unwrap_or_else(|| (DEFAULT_LISTEN.to_owned(), "default".to_owned()));
    let listen = listen_text
        .parse::<SocketAddr>()
        .map_err(|err| invalid(&listen_origin, &listen_text, err))?;
    let workers = match pick!(workers) {
        None => default_workers(),
        Some((0, origin)) => return Err(invalid(&origin, "0", "must be at least 1")),
        Some((count, origin)) if count > MAX_WORKERS => {
            return Err(invalid(
                &origin,
                &count.to_string(),
                format!("must be at most {MAX_WORKERS}"),
            ));
        }
        Some((count, _)) => count,
    };
    let admin_listen = match pick!(admin_listen) {
        None => None,
        Some((text, origin)) => Some(
            text.parse::<SocketAddr>()
                .map_err(|err| invalid(&origin, &text, err))?,
        ),
    };

    let upstream_timeout = duration_setting(pick!(upstream_timeout), DEFAULT_UPSTREAM_TIMEOUT)?;
    let shutdown_timeout = duration_setting(pick!(shutdown_timeout), DEFAULT_SHUTDOWN_TIMEOUT)?;
    let leeway = match pick!(leeway) {
        None => None,
        Some((text, origin)) => {
            Some(parse_duration(&text).map_err(|e| invalid(&origin, &text, e))?)
        }
    };
    let log_format = match pick!(log_format) {
        None => LogFormat::Text,
        Some((text, origin)) => match text.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(invalid(&origin, &text, "expected `text` or `json`")),
        },
    };
    macro_rules! flag {
        ($name:ident) => {
            pick!($name).is_some_and(|(value, _)| value)
        };
    }
    let allow_any_audience = flag!(allow_any_audience);
    let auth = AuthSettings {
        require_typ: non_empty(pick!(require_typ))?,
        required_claims: list(pick!(required_claims), |claim, origin| {
            check_token(claim, origin, "a claim name")
        })?,
        leeway,
        realm: non_empty(pick!(realm))?,
        allow_insecure_http: flag!(allow_insecure_http),
        start_without_keys: flag!(start_without_keys),
        token_from_websocket_protocol: flag!(token_from_websocket_protocol),
        token_cache_bytes: pick!(token_cache_bytes).map(|(bytes, _)| bytes),
        sender: crate::sender::SenderSettings::resolve(
            pick!(dpop),
            flag!(dpop_nonce),
            pick!(external_url),
            pick!(resource),
            match pick!(client_cert_header) {
                None => None,
                Some((name, origin)) => Some(header_name(&name, &origin)?),
            },
        )?,
        revocation: revocation_settings(non_empty(pick!(redis_url))?, pick!(revocation_fail_open))?,
        introspection: introspection_settings(
            pick!(introspection_url),
            pick!(introspection_client_id),
            pick!(introspection_client_secret),
        )?,
        key_snapshot_dir: pick!(key_snapshot_dir).map(|(dir, _)| dir),
    };
    let allow_any_issuer = flag!(allow_any_issuer);

    let public_paths = list(pick!(public_paths), |path, origin| {
        check_prefix(path, origin).map(|()| path.to_owned())
    })?;
    let scope_rules = match (&cli.scope_rules, &file_config.scope_rules) {
        (Some(rules), _) => {
            let origin = args.origin("scope_rules");
            rules
                .iter()
                .map(|rule| parse_scope_rule(rule, &origin))
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, Some(rules)) => {
            let origin = merge.file_origin("scope_rules");
            rules
                .iter()
                .map(|(prefix, scopes)| {
                    scope_rule(prefix, scopes.clone()).map_err(|reason| {
                        invalid(&origin, &format!("{prefix} = {scopes:?}"), reason)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, None) => Vec::new(),
    };
    let claim_pairs: Option<(Vec<(String, String)>, String)> =
        match (&cli.claim_headers, &file_config.claim_headers) {
            (Some(pairs), _) => {
                let origin = args.origin("claim_headers");
                let parsed = pairs
                    .iter()
                    .map(|pair| {
                        pair.split_once('=')
                            .map(|(claim, header)| {
                                (claim.trim().to_owned(), header.trim().to_owned())
                            })
                            .ok_or_else(|| invalid(&origin, pair, "expected CLAIM=HEADER"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some((parsed, origin))
            }
            (None, Some(map)) => Some((
                map.iter().map(|(c, h)| (c.clone(), h.clone())).collect(),
                merge.file_origin("claim_headers"),
            )),
            (None, None) => None,
        };
    let claims_header = match pick!(claims_header) {
        None => None,
        Some((name, origin)) => Some(header_name(&name, &origin)?),
    };
    let forward_authorization = flag!(forward_authorization);

    // The issuers: the top-level one (CLI, environment or file), then the file's [[issuers]].
    let iss = non_empty(pick!(issuer))?;
    let jwks_url = non_empty(pick!(jwks_url))?;
    let audiences = pick!(audiences);
    let mut issuers = Vec::new();
    if auth.introspection.is_some() && iss.is_none() && jwks_url.is_none() {
        return Err(ConfigError::Missing {
            setting: "--issuer".to_owned(),
            reason: "--introspection-url is the endpoint of the top-level issuer: set --issuer"
                .to_owned(),
        });
    }
    if iss.is_some() || jwks_url.is_some() {
        let iss_origin = pick!(issuer).map(|(_, origin)| origin);
        let jwks_origin = pick!(jwks_url).map(|(_, origin)| origin);
        issuers.push(issuer_config(
            iss,
            iss_origin,
            jwks_url,
            jwks_origin,
            audiences.clone(),
            allow_any_audience,
            allow_any_issuer,
        )?);
    }
    for (index, entry) in file_config.issuers.iter().flatten().enumerate() {
        let origin = |key: &str| merge.file_origin(&format!("issuers[{index}].{key}"));
        if entry.issuer.is_none() && entry.jwks_url.is_none() {
            return Err(ConfigError::Missing {
                setting: origin("issuer"),
                reason: "each [[issuers]] entry needs `issuer`, `jwks_url` or both".to_owned(),
            });
        }
        issuers.push(issuer_config(
            entry.issuer.clone(),
            Some(origin("issuer")),
            entry.jwks_url.clone(),
            Some(origin("jwks_url")),
            entry
                .audiences
                .clone()
                .map(|list| (list, origin("audiences"))),
            allow_any_audience,
            allow_any_issuer,
        )?);
    }

    let upstream = pick!(upstream);
    let forward_auth = pick!(forward_auth).filter(|(on, _)| *on);
    let mode = match (upstream, issuers.is_empty(), forward_auth) {
        (Some((url, origin)), _, Some((_, flag))) => {
            return Err(invalid(
                &origin,
                &url,
                format!(
                    "{flag} answers another proxy's authorization checks and forwards nothing: \
                     remove the upstream, or the forward-auth setting"
                ),
            ));
        }
        (None, true, Some((_, flag))) => {
            return Err(ConfigError::Missing {
                setting: "--issuer".to_owned(),
                reason: format!(
                    "{flag} needs the issuer whose tokens it checks: set --issuer, --jwks-url or \
                     both"
                ),
            });
        }
        (None, false, Some(_)) => Mode::ForwardAuth { issuers },
        (None, true, None) => {
            let audience = match audiences {
                Some((list, origin)) => match list.into_iter().next() {
                    Some(first) => {
                        check_token(&first, &origin, "an audience")?;
                        first
                    }
                    None => DEMO_AUDIENCE.to_owned(),
                },
                None => DEMO_AUDIENCE.to_owned(),
            };
            Mode::Demo { audience }
        }
        (Some((url, origin)), false, None) => {
            let mut upstream = Upstream::parse(&url, &origin)?;
            if let Some((path, ca_origin)) = pick!(upstream_ca) {
                if upstream.scheme != http::uri::Scheme::HTTPS {
                    return Err(invalid(
                        &ca_origin,
                        &path.display().to_string(),
                        "a CA file is only used with an https upstream",
                    ));
                }
                upstream.ca_file = Some(path);
            }
            Mode::Proxy { upstream, issuers }
        }
        (Some(_), true, None) => {
            return Err(ConfigError::Missing {
                setting: "--issuer".to_owned(),
                reason: "an upstream is set but no issuer: set --issuer (discovery), --jwks-url, \
                         or both (GATEWAY_ISSUER, GATEWAY_JWKS_URL, `issuer`/`jwks_url`/[[issuers]] \
                         in the config file); with neither an upstream nor an issuer the gateway \
                         runs in demo mode"
                    .to_owned(),
            });
        }
        (None, false, None) => {
            return Err(ConfigError::Missing {
                setting: "--upstream".to_owned(),
                reason: "an issuer is set but no upstream to forward to: set --upstream \
                         (GATEWAY_UPSTREAM, `upstream` in the config file), or --forward-auth \
                         to answer another proxy's authorization checks"
                    .to_owned(),
            });
        }
    };

    let demo = matches!(mode, Mode::Demo { .. });
    let mut routes = RouteRules {
        public_paths,
        scope_rules,
        allow_path_params: flag!(allow_path_params),
    };
    let mut claim_headers = match claim_pairs {
        None => Vec::new(),
        Some((pairs, origin)) => pairs
            .iter()
            .map(|(claim, header)| {
                check_token(claim, &origin, "a claim name")?;
                let header = header_name(header, &origin).map_err(|err| match err {
                    ConfigError::Invalid {
                        setting, reason, ..
                    } => ConfigError::Invalid {
                        setting,
                        value: format!("{claim}={header}"),
                        reason,
                    },
                    other => other,
                })?;
                Ok((claim.clone(), header))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?,
    };
    let mut auth = auth;
    if demo {
        // Show each feature in demo mode unless configured otherwise.
        if pick!(public_paths).is_none() {
            routes.public_paths = vec!["/public".to_owned()];
        }
        if cli.scope_rules.is_none() && file_config.scope_rules.is_none() {
            routes.scope_rules = vec![ScopeRule {
                prefix: "/admin".to_owned(),
                scopes: vec!["admin".to_owned()],
            }];
        }
        if cli.claim_headers.is_none() && file_config.claim_headers.is_none() {
            claim_headers = vec![("email".to_owned(), HeaderName::from_static("x-auth-email"))];
        }
        auth.require_typ.get_or_insert_with(|| "at+jwt".to_owned());
    }
    let forwarding = Forwarding {
        claim_headers,
        claims_header,
        forward_authorization,
    };
    check_forwarded_names(&forwarding)?;

    Ok(Config {
        listen,
        listen_origin,
        workers,
        admin_listen,
        mode,
        upstream_timeout,
        auth,
        routes,
        forwarding,
        shutdown_timeout,
        log_format,
        access_log: flag!(access_log),
    })
}

/// One worker per CPU the process may use (its affinity and cgroup quota included), as nginx's
/// `worker_processes auto`.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
