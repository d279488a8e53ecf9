//! The settings of what says whether a token is still good beyond its signature: the shared
//! revocation list (`--redis-url`) and the issuer's introspection endpoint (`--introspection-*`).

use std::fmt;

use super::ConfigError;
use super::checks::invalid;

/// The introspection endpoint of the top-level issuer (the first of `Mode`'s issuers), and the
/// client credentials for it (`client_secret_basic`).
#[derive(Clone, PartialEq, Eq)]
pub struct IntrospectionSettings {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for IntrospectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionSettings")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Where the revocation list lives, and what happens when it can't be confirmed current.
#[derive(Clone, PartialEq, Eq)]
pub struct RevocationSettings {
    pub redis_url: String,
    pub fail_open: bool,
}

impl fmt::Debug for RevocationSettings {
    // The URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationSettings")
            .field("redis_url", &"<redacted>")
            .field("fail_open", &self.fail_open)
            .finish()
    }
}

/// `--redis-url` and `--revocation-fail-open`; the latter alone is a mistake worth an error.
pub(super) fn revocation_settings(
    redis_url: Option<String>,
    fail_open: Option<(bool, String)>,
) -> Result<Option<RevocationSettings>, ConfigError> {
    match (redis_url, fail_open) {
        (Some(redis_url), fail_open) => Ok(Some(RevocationSettings {
            redis_url,
            fail_open: fail_open.is_some_and(|(on, _)| on),
        })),
        (None, Some((true, origin))) => Err(ConfigError::Missing {
            setting: "--redis-url".to_owned(),
            reason: format!("{origin} changes how the revocation list fails, but none is set"),
        }),
        (None, _) => Ok(None),
    }
}

/// The introspection URL and client credentials: all three, or none.
pub(super) fn introspection_settings(
    url: Option<(String, String)>,
    client_id: Option<(String, String)>,
    client_secret: Option<(String, String)>,
) -> Result<Option<IntrospectionSettings>, ConfigError> {
    let needs = |setting: &str, reason: &str| ConfigError::Missing {
        setting: setting.to_owned(),
        reason: reason.to_owned(),
    };
    match (url, client_id, client_secret) {
        (None, None, None) => Ok(None),
        (Some((url, origin)), Some((client_id, _)), Some((client_secret, _))) => {
            let parsed = url::Url::parse(&url).map_err(|err| invalid(&origin, &url, err))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid(&origin, &url, "expected an http or https URL"));
            }
            Ok(Some(IntrospectionSettings {
                url,
                client_id,
                client_secret,
            }))
        }
        (None, _, _) => Err(needs(
            "--introspection-url",
            "the introspection client id and secret need the endpoint's URL",
        )),
        (Some(_), None, _) => Err(needs(
            "--introspection-client-id",
            "the introspection endpoint needs the gateway's client id",
        )),
        (Some(_), Some(_), None) => Err(needs(
            "--introspection-client-secret",
            "the introspection endpoint needs the gateway's client secret \
             (GATEWAY_INTROSPECTION_CLIENT_SECRET)",
        )),
    }
}
