//! The config file: its keys (unknown ones are an error), read and parsed with the line of any
//! error.

use super::*;

/// The config file, as written. Unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub(super) listen: Option<String>,
    pub(super) workers: Option<usize>,
    pub(super) upstream: Option<String>,
    pub(super) upstream_timeout: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) jwks_url: Option<String>,
    pub(super) audiences: Option<Vec<String>>,
    pub(super) allow_any_audience: Option<bool>,
    pub(super) require_typ: Option<String>,
    pub(super) required_claims: Option<Vec<String>>,
    pub(super) public_paths: Option<Vec<String>>,
    pub(super) scope_rules: Option<BTreeMap<String, Vec<String>>>,
    pub(super) claim_headers: Option<BTreeMap<String, String>>,
    pub(super) claims_header: Option<String>,
    pub(super) forward_authorization: Option<bool>,
    pub(super) allow_insecure_http: Option<bool>,
    pub(super) start_without_keys: Option<bool>,
    pub(super) leeway: Option<String>,
    pub(super) realm: Option<String>,
    pub(super) shutdown_timeout: Option<String>,
    pub(super) log_format: Option<String>,
    pub(super) access_log: Option<bool>,
    pub(super) token_cache_bytes: Option<u64>,
    pub(super) allow_path_params: Option<bool>,
    pub(super) allow_any_issuer: Option<bool>,
    pub(super) admin_listen: Option<String>,
    pub(super) upstream_ca: Option<PathBuf>,
    pub(super) token_from_websocket_protocol: Option<bool>,
    pub(super) forward_auth: Option<bool>,
    pub(super) dpop: Option<String>,
    pub(super) dpop_nonce: Option<bool>,
    pub(super) external_url: Option<String>,
    pub(super) resource: Option<String>,
    pub(super) client_cert_header: Option<String>,
    pub(super) redis_url: Option<String>,
    pub(super) key_snapshot_dir: Option<PathBuf>,
    pub(super) introspection_url: Option<String>,
    pub(super) introspection_client_id: Option<String>,
    pub(super) introspection_client_secret: Option<String>,
    pub(super) revocation_fail_open: Option<bool>,
    /// Further issuers, besides the one of the top-level `issuer`/`jwks_url`.
    pub(super) issuers: Option<Vec<FileIssuer>>,
}

/// One `[[issuers]]` entry of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileIssuer {
    pub(super) issuer: Option<String>,
    pub(super) jwks_url: Option<String>,
    pub(super) audiences: Option<Vec<String>>,
}

/// Reads and parses a config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    parse_file(path, &text)
}

/// Parses the text of a config file; errors give the line and the message, on one line.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|err| {
        let line = err.span().map_or(1, |span| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        });
        ConfigError::ParseFile {
            path: path.to_owned(),
            line,
            message: err.message().trim().replace('\n', " "),
        }
    })
}
