//! `gateway inspect`: the jwt.io debugger for a terminal. Decodes a token's header and claims
//! (pretty JSON, times in UTC and relative), and, given an issuer or a JWKS URL, verifies it with
//! the crate under the gateway's rules. The token goes nowhere but to that key source's checks:
//! only the keys are fetched.

use std::io::{Read as _, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tower_jwt_auth::JwtAuthLayer;

use crate::config::IssuerConfig;

/// `gateway inspect [TOKEN|-] [--issuer URL] [--jwks-url URL] [--audience AUD]...`
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InspectArgs {
    /// The token (a `Bearer ` prefix is ignored); `-` or nothing reads it from stdin, which keeps
    /// it out of the shell's history
    #[arg(value_name = "TOKEN|-")]
    pub token: Option<String>,

    /// Verify against this issuer: `iss` is checked; alone, its keys are found by discovery
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,

    /// Verify with the keys of this JWKS
    #[arg(long, value_name = "URL")]
    pub jwks_url: Option<String>,

    /// Accepted audience (`aud`); repeatable; without it `aud` is not checked
    #[arg(long = "audience", value_name = "AUD")]
    pub audiences: Vec<String>,

    /// Allow plain-http JWKS and discovery URLs to non-loopback hosts
    #[arg(long)]
    pub allow_insecure_http: bool,
}

/// How an inspection ended, and the process's exit code for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Verified, or decoded when no key source was given: exit code 0.
    Valid,
    /// Not a token, or refused by the verification: exit code 1.
    Invalid,
    /// The command line can't be used: exit code 2.
    Usage,
}

impl From<Verdict> for ExitCode {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Valid => ExitCode::SUCCESS,
            Verdict::Invalid => ExitCode::from(1),
            Verdict::Usage => ExitCode::from(2),
        }
    }
}

/// Runs `inspect` for the command line, reading the token from stdin if needed.
pub fn main(args: InspectArgs) -> ExitCode {
    let token = match args.token.as_deref() {
        Some(token) if token != "-" => token.to_owned(),
        _ => {
            let mut text = String::new();
            if let Err(err) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("gateway inspect: error: cannot read the token from stdin: {err}");
                return Verdict::Usage.into();
            }
            text
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gateway inspect: error: cannot start the Tokio runtime: {err}");
            return Verdict::Invalid.into();
        }
    };
    let mut out = std::io::stdout().lock();
    let verdict = runtime.block_on(inspect(&args, &token, now(), &mut out));
    verdict.into()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Inspects `token` as of `now` (Unix seconds), writing the report to `out`.
pub async fn inspect(args: &InspectArgs, token: &str, now: i64, out: &mut impl Write) -> Verdict {
    let token = token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim();
    if token.is_empty() {
        let _ = writeln!(out, "usage: gateway inspect [TOKEN|-] (no token given)");
        return Verdict::Usage;
    }
    let (header, claims) = match decode(token) {
        Ok(decoded) => decoded,
        Err(reason) => {
            let _ = writeln!(out, "invalid: {reason}");
            return Verdict::Invalid;
        }
    };
    let _ = write_decoded(out, &header, &claims, now);
    let verdict = match verify(args, token).await {
        None => {
            let _ = writeln!(
                out,
                "\nnot verified: no --issuer or --jwks-url given (decoded only)"
            );
            Verdict::Valid
        }
        Some(Ok(notes)) => {
            let _ = writeln!(out, "\nvalid: signature and claims verified");
            for note in notes {
                let _ = writeln!(out, "  note: {note}");
            }
            Verdict::Valid
        }
        Some(Err(cause)) => {
            let _ = writeln!(out, "\ninvalid: {cause}");
            Verdict::Invalid
        }
    };
    let _ = out.flush();
    verdict
}

/// The header and the claims of a compact JWS, without any check of the signature.
fn decode(token: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, _signature] = parts.as_slice() else {
        return Err(match parts.len() {
            5 => "an encrypted token (JWE, five parts) can't be inspected".to_owned(),
            n => format!("not a JWT: {n} part(s) separated by `.`, expected 3"),
        });
    };
    let json = |part: &str, what: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|err| format!("the {what} is not base64url: {err}"))?;
        serde_json::from_slice(&bytes).map_err(|err| format!("the {what} is not JSON: {err}"))
    };
    Ok((json(header, "header")?, json(payload, "payload")?))
}

fn write_decoded(
    out: &mut impl Write,
    header: &Value,
    claims: &Value,
    now: i64,
) -> std::io::Result<()> {
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
    writeln!(out, "Header\n{}", pretty(header))?;
    writeln!(out, "\nClaims\n{}", pretty(claims))?;
    writeln!(out)?;
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("(none)").to_owned();
    writeln!(out, "algorithm   {}", text(header.get("alg")))?;
    writeln!(out, "key id      {}", text(header.get("kid")))?;
    if let Some(typ) = header.get("typ").and_then(Value::as_str) {
        writeln!(out, "type        {typ}")?;
    }
    for (claim, label) in [
        ("exp", "expires"),
        ("nbf", "not before"),
        ("iat", "issued at"),
    ] {
        match claims.get(claim) {
            None => {}
            Some(value) => match value.as_i64() {
                Some(at) => writeln!(out, "{label:<11} {}", describe_time(claim, at, now))?,
                None => writeln!(out, "{label:<11} {value} (not a number of seconds)")?,
            },
        }
    }
    Ok(())
}

/// `2026-01-01T12:00:00Z (expires in 14 min)` and the like.
fn describe_time(claim: &str, at: i64, now: i64) -> String {
    let utc = u64::try_from(at)
        .ok()
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .map_or_else(
            || format!("{at} (out of range)"),
            |time| humantime::format_rfc3339_seconds(time).to_string(),
        );
    let delta = at.saturating_sub(now);
    let span = span(delta.unsigned_abs());
    let relative = match (claim, delta > 0) {
        ("exp", true) => format!("expires in {span}"),
        ("exp", false) => format!("expired {span} ago"),
        ("nbf", true) => format!("not valid for another {span}"),
        ("nbf", false) => format!("valid since {span} ago"),
        (_, true) => format!("{span} in the future"),
        (_, false) => format!("{span} ago"),
    };
    format!("{utc} ({relative})")
}

/// A duration in its largest whole unit: `40 s`, `14 min`, `2 h`, `3 d`.
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// Verifies `token` with the crate when a key source is given: `None` without one, else the
/// notes on what was not checked, or the cause of the failure.
async fn verify(args: &InspectArgs, token: &str) -> Option<Result<Vec<String>, String>> {
    if args.issuer.is_none() && args.jwks_url.is_none() {
        return None;
    }
    let issuer = IssuerConfig {
        iss: args.issuer.clone(),
        jwks_url: args.jwks_url.clone(),
        audiences: args.audiences.clone(),
    };
    let mut notes = Vec::new();
    if args.issuer.is_none() {
        notes.push("`iss` not checked (no --issuer)".to_owned());
    }
    if args.audiences.is_empty() {
        notes.push("`aud` not checked (no --audience)".to_owned());
    }
    let mut builder = JwtAuthLayer::<Value>::builder().issuer(issuer.to_issuer());
    if args.allow_insecure_http {
        builder = builder.allow_insecure_http();
    }
    let layer = match builder.build().await {
        Ok(layer) => layer,
        Err(err) => return Some(Err(format!("cannot load the keys: {err}"))),
    };
    Some(match layer.verify(token).await {
        Ok((_, verified)) => {
            if let Some(kid) = verified.key_id() {
                notes.insert(
                    0,
                    format!(
                        "signed by key `{kid}` ({})",
                        verified.algorithm().map_or("-", |alg| alg.as_str())
                    ),
                );
            }
            Ok(notes)
        }
        Err(error) => Err(format!("{} ({})", error.description(), error.cause())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_utc_and_relative() {
        let now = 1_700_000_000;
        assert_eq!(
            describe_time("exp", now + 14 * 60 + 5, now),
            "2023-11-14T22:27:25Z (expires in 14 min)"
        );
        assert!(describe_time("exp", now - 2 * 3600, now).ends_with("(expired 2 h ago)"));
        assert!(describe_time("nbf", now - 30, now).ends_with("(valid since 30 s ago)"));
        assert!(describe_time("iat", now - 3 * 86_400, now).ends_with("(3 d ago)"));
    }

    #[test]
    fn what_is_not_a_jwt_says_why() {
        assert!(decode("a.b").unwrap_err().contains("2 part(s)"));
        assert!(decode("a.b.c.d.e").unwrap_err().contains("JWE"));
        assert!(
            decode("!!.e30.x")
                .unwrap_err()
                .contains("header is not base64url")
        );
        assert!(
            decode("e30.bm9wZQ.x")
                .unwrap_err()
                .contains("payload is not JSON")
        );
    }
}
