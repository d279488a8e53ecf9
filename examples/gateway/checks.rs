//! Checks of single settings: durations, URLs, header names, path prefixes and scope rules.

use super::*;

pub(super) fn invalid(origin: &str, value: &str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        setting: origin.to_owned(),
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

pub(super) fn duration_setting(
    picked: Option<(String, String)>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match picked {
        None => Ok(default),
        Some((text, origin)) => {
            let duration = parse_duration(&text).map_err(|e| invalid(&origin, &text, e))?;
            if duration.is_zero() {
                return Err(invalid(&origin, &text, "must be more than zero"));
            }
            Ok(duration)
        }
    }
}

/// `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| "expected a duration such as `30s`, `500ms`, `2m` or `1h`".to_owned())?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| err.to_string())
}

pub(super) fn non_empty(picked: Option<(String, String)>) -> Result<Option<String>, ConfigError> {
    match picked {
        Some((value, origin)) if value.trim().is_empty() => {
            Err(invalid(&origin, &value, "must not be empty"))
        }
        other => Ok(other.map(|(value, _)| value)),
    }
}

pub(super) fn list<T>(
    picked: Option<(Vec<String>, String)>,
    check: impl Fn(&str, &str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    match picked {
        None => Ok(Vec::new()),
        Some((values, origin)) => values.iter().map(|value| check(value, &origin)).collect(),
    }
}

/// A claim name, audience or scope: non-empty, no whitespace.
pub(super) fn check_token(value: &str, origin: &str, what: &str) -> Result<String, ConfigError> {
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(invalid(
            origin,
            value,
            format!("{what} must be non-empty and without spaces"),
        ));
    }
    Ok(value.to_owned())
}

pub(super) fn check_prefix(prefix: &str, origin: &str) -> Result<(), ConfigError> {
    if !prefix.starts_with('/') {
        return Err(invalid(origin, prefix, "a path prefix must start with `/`"));
    }
    Ok(())
}

/// `PREFIX=SCOPE[ SCOPE…]`.
pub(super) fn parse_scope_rule(rule: &str, origin: &str) -> Result<ScopeRule, ConfigError> {
    let (prefix, scopes) = rule
        .split_once('=')
        .ok_or_else(|| invalid(origin, rule, "expected PREFIX=SCOPES, e.g. /admin=admin"))?;
    scope_rule(
        prefix.trim(),
        scopes.split_whitespace().map(str::to_owned).collect(),
    )
    .map_err(|reason| invalid(origin, rule, reason))
}

pub(super) fn scope_rule(prefix: &str, scopes: Vec<String>) -> Result<ScopeRule, String> {
    if !prefix.starts_with('/') {
        return Err("a path prefix must start with `/`".to_owned());
    }
    if scopes.is_empty() {
        return Err("a scope rule needs at least one scope".to_owned());
    }
    if let Some(bad) = scopes
        .iter()
        .find(|scope| scope.is_empty() || scope.chars().any(char::is_whitespace))
    {
        return Err(format!(
            "scope `{bad}` must be non-empty and without spaces"
        ));
    }
    Ok(ScopeRule {
        prefix: prefix.to_owned(),
        scopes,
    })
}

/// Headers the gateway sets or manages itself, which a claim may not be forwarded in.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-length",
    "content-type",
    "cookie",
];

pub(super) fn header_name(name: &str, origin: &str) -> Result<HeaderName, ConfigError> {
    let header = HeaderName::try_from(name.to_ascii_lowercase())
        .map_err(|_| invalid(origin, name, "not a valid header name"))?;
    // With `_` read as `-`, as a CGI upstream reads it.
    let dashed = header.as_str().replace('_', "-");
    if RESERVED_HEADERS.contains(&dashed.as_str())
        || crate::headers::is_forwarding(&dashed)
        || crate::headers::is_hop_by_hop(&header)
    {
        return Err(invalid(
            origin,
            name,
            "this header is managed by the gateway and can't carry a claim",
        ));
    }
    Ok(header)
}

/// Every forwarded header must be distinct, so that none can shadow another.
pub(super) fn check_forwarded_names(forwarding: &Forwarding) -> Result<(), ConfigError> {
    let mut seen: HashSet<&str> = [SUB_HEADER, ISS_HEADER, SCOPE_HEADER].into_iter().collect();
    let configured = forwarding
        .claim_headers
        .iter()
        .map(|(_, header)| ("--claim-header", header))
        .chain(
            forwarding
                .claims_header
                .iter()
                .map(|header| ("--claims-header", header)),
        );
    for (setting, header) in configured {
        if !seen.insert(header.as_str()) {
            return Err(invalid(
                setting,
                header.as_str(),
                "this header already carries another claim",
            ));
        }
    }
    Ok(())
}

pub(super) fn issuer_config(
    iss: Option<String>,
    iss_origin: Option<String>,
    jwks_url: Option<String>,
    jwks_origin: Option<String>,
    audiences: Option<(Vec<String>, String)>,
    allow_any_audience: bool,
    allow_any_issuer: bool,
) -> Result<IssuerConfig, ConfigError> {
    let origin = |origin: &Option<String>, fallback: &str| {
        origin.clone().unwrap_or_else(|| fallback.to_owned())
    };
    if let Some(url) = &jwks_url {
        check_http_url(url, &origin(&jwks_origin, "--jwks-url"))?;
    } else if let Some(iss) = &iss {
        // Discovery fetches from the issuer, so it must be a URL.
        check_http_url(iss, &origin(&iss_origin, "--issuer"))?;
    }
    if iss.is_none() && jwks_url.is_some() && !allow_any_issuer {
        return Err(ConfigError::Missing {
            setting: origin(&iss_origin, "--issuer"),
            reason: format!(
                "{} is set without an issuer, so `iss` would not be checked and a token of any \
                 issuer whose keys are in that JWKS would pass: set --issuer to the expected \
                 `iss` (GATEWAY_ISSUER, `issuer` in the config file), or --allow-any-issuer to \
                 accept that",
                origin(&jwks_origin, "--jwks-url")
            ),
        });
    }
    let (audiences, audience_origin) = match audiences {
        Some((list, origin)) => (list, origin),
        None => (Vec::new(), "--audience".to_owned()),
    };
    for audience in &audiences {
        check_token(audience, &audience_origin, "an audience")?;
    }
    let config = IssuerConfig {
        iss,
        jwks_url,
        audiences,
    };
    if config.audiences.is_empty() && !allow_any_audience {
        return Err(ConfigError::Missing {
            setting: audience_origin,
            reason: format!(
                "no audience for issuer `{}`: set --audience (GATEWAY_AUDIENCE, `audiences` in \
                 the config file) to the name tokens for this API carry in `aud`, or \
                 --allow-any-audience to accept tokens meant for any audience",
                config.name()
            ),
        });
    }
    Ok(config)
}

pub(super) fn check_http_url(value: &str, origin: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(value).map_err(|err| invalid(origin, value, err))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            origin,
            value,
            "expected an http(s) URL with a host",
        ));
    }
    Ok(())
}
