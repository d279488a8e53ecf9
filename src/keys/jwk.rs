//! Turning a JWK Set (RFC 7517) into prepared keys, one key at a time: a key this crate can't use
//! is skipped with its reason and never spoils the others.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::prepared::{KeyMaterial, PreparedKey};
use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};
use crate::base64url;

/// Where a JWKS came from, which decides whether symmetric (`oct`) keys may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwkOrigin {
    /// Given by the application (inline text or a local file): `oct` keys are allowed.
    Configured,
    /// Fetched over the network: `oct` keys are never used (RFC 8725 §3.1).
    // Constructed by the remote key source (JWKS URL / discovery), which is being built next.
    #[cfg_attr(not(test), allow(dead_code))]
    Fetched,
}

/// A key of a JWKS that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, if it had a readable one.
    pub kid: Option<String>,
    /// Why it was skipped, e.g. `use is "enc"` or `RSA key of 1024 bits is under 2048`.
    pub reason: String,
}

/// The usable keys of a JWKS, and the ones that were skipped.
#[derive(Debug)]
pub(crate) struct ParsedJwks {
    pub(crate) keys: Vec<PreparedKey>,
    pub(crate) skipped: Vec<SkippedKey>,
}

#[derive(Deserialize)]
struct JwksDocument<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

/// The JWK members this crate reads. Unknown members are ignored; a known one twice is an error.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
    d: Option<String>,
}

/// Parses a JWKS document. Fails only when the document itself is not a JWKS; bad keys are
/// reported in [`ParsedJwks::skipped`].
pub(crate) fn parse_jwks(
    text: &str,
    origin: JwkOrigin,
    allowed: AlgorithmSet,
) -> Result<ParsedJwks, String> {
    let document: JwksDocument<'_> = serde_json::from_str(text)
        .map_err(|err| format!("not a JWK Set (an object with a \"keys\" array): {err}"))?;
    let mut parsed = ParsedJwks {
        keys: Vec::with_capacity(document.keys.len()),
        skipped: Vec::new(),
    };
    for raw in document.keys {
        match serde_json::from_str::<Jwk>(raw.get()) {
            Err(err) => parsed.skipped.push(SkippedKey {
                kid: kid_of_unreadable(raw),
                reason: format!("malformed JWK: {err}"),
            }),
            Ok(jwk) => {
                let kid = jwk.kid.clone();
                match jwk.prepare(origin, allowed) {
                    Ok(key) => parsed.keys.push(key),
                    Err(reason) => parsed.skipped.push(SkippedKey { kid, reason }),
                }
            }
        }
    }
    // Two entries under one `kid` (usable or not): which one a token means is ambiguous, so no key
    // with that `kid` is used.
    let mut kids: Vec<&str> = parsed
        .keys
        .iter()
        .filter_map(|k| k.kid.as_deref())
        .chain(parsed.skipped.iter().filter_map(|k| k.kid.as_deref()))
        .collect();
    kids.sort_unstable();
    let shared: Vec<Box<str>> = kids
        .windows(2)
        .filter(|pair| pair[0] == pair[1])
        .map(|pair| Box::from(pair[0]))
        .collect();
    if !shared.is_empty() {
        let (ambiguous, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut parsed.keys)
            .into_iter()
            .partition(|key| key.kid.as_ref().is_some_and(|kid| shared.contains(kid)));
        parsed.keys = kept;
        parsed
            .skipped
            .extend(ambiguous.into_iter().map(|key| SkippedKey {
                kid: key.kid.as_deref().map(str::to_owned),
                reason: "another key of the set has the same kid".to_owned(),
            }));
    }
    // A set holding shared secrets beside public keys is refused whole: whoever holds the set
    // then holds signing power, which a set of public keys must never give.
    let symmetric = parsed.keys.iter().filter(|key| key.is_symmetric()).count();
    if symmetric > 0 && symmetric < parsed.keys.len() {
        return Err("the set mixes shared-secret (oct) keys with public keys".to_owned());
    }
    Ok(parsed)
}

/// Reads the `kid` of a JWK that did not parse, for the log line.
fn kid_of_unreadable(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct KidOnly {
        kid: Option<String>,
    }
    serde_json::from_str::<KidOnly>(raw.get())
        .ok()
        .and_then(|k| k.kid)
}

impl Jwk {
    fn prepare(self, origin: JwkOrigin, allowed: AlgorithmSet) -> Result<PreparedKey, String> {
        if let Some(key_use) = self.key_use.as_deref().filter(|u| *u != "sig") {
            return Err(format!("use is \"{key_use}\", not \"sig\""));
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err("key_ops does not include \"verify\"".to_owned());
        }
        let pinned =
            match self.alg.as_deref() {
                None => None,
                Some(name) => Some(name.parse::<Algorithm>().map_err(|_| {
                    format!("alg \"{name}\" is not a supported signature algorithm")
                })?),
            };
        let material = match self.kty.as_str() {
            "RSA" => {
                self.refuse_private_members()?;
                KeyMaterial::Rsa {
                    n: member(&self.n, "n")?,
                    e: member(&self.e, "e")?,
                }
            }
            "EC" => {
                self.refuse_private_members()?;
                let (family, size) = match self.crv.as_deref() {
                    Some("P-256") => (KeyFamily::EcP256, 32),
                    Some("P-384") => (KeyFamily::EcP384, 48),
                    Some(other) => return Err(format!("unsupported curve \"{other}\"")),
                    None => return Err("EC key without crv".to_owned()),
                };
                let x = member(&self.x, "x")?;
                let y = member(&self.y, "y")?;
                if x.len() != size || y.len() != size {
                    return Err("EC coordinates have the wrong length for the curve".to_owned());
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Ec { family, point }
            }
            "OKP" => {
                self.refuse_private_members()?;
                match self.crv.as_deref() {
                    Some("Ed25519") => KeyMaterial::Ed25519(member(&self.x, "x")?),
                    Some(other) => return Err(format!("unsupported curve \"{other}\"")),
                    None => return Err("OKP key without crv".to_owned()),
                }
            }
            "oct" => match origin {
                JwkOrigin::Fetched => {
                    return Err("symmetric key in a fetched JWKS is never used".to_owned());
                }
                JwkOrigin::Configured => KeyMaterial::Secret(member(&self.k, "k")?),
            },
            other => return Err(format!("unsupported kty \"{other}\"")),
        };
        PreparedKey::new(self.kid, material, pinned, allowed)
    }

    /// A public JWKS holding a private key is a leak; using its public half would hide the leak.
    fn refuse_private_members(&self) -> Result<(), String> {
        match self.d {
            Some(_) => Err("key contains private key material".to_owned()),
            None => Ok(()),
        }
    }
}

fn member(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = value
        .as_deref()
        .ok_or_else(|| format!("missing member \"{name}\""))?;
    base64url::decode(text).ok_or_else(|| format!("member \"{name}\" is not base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> AlgorithmSet {
        Algorithm::ALL.into_iter().collect()
    }

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ed_jwk(extra: &str) -> String {
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"{extra}}}"#)
    }

    fn parse(keys: &[String], origin: JwkOrigin) -> ParsedJwks {
        parse_jwks(
            &format!(r#"{{"keys":[{}]}}"#, keys.join(",")),
            origin,
            all(),
        )
        .unwrap()
    }

    #[test]
    fn keeps_good_keys_and_skips_bad_ones_one_by_one() {
        let parsed = parse(
            &[
                ed_jwk(r#","kid":"good""#),
                ed_jwk(r#","kid":"enc","use":"enc""#),
                r#"{"kty":"XYZ","kid":"weird"}"#.to_owned(),
                r#"{"kty":"EC","kid":"p521","crv":"P-521","x":"AA","y":"AA"}"#.to_owned(),
                r#"{"kty":"RSA","kid":"broken","n":"!!","e":"AQAB"}"#.to_owned(),
                r#"{"kid":"no-kty"}"#.to_owned(),
                r#"{"kty":"oct","kid":"hmac","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}"#
                    .to_owned(),
                ed_jwk(r#","kid":"private","d":"AA""#),
                ed_jwk(r#","kid":"ops","key_ops":["encrypt"]"#),
                ed_jwk(r#","kid":"oaep","alg":"RSA-OAEP""#),
            ],
            JwkOrigin::Fetched,
        );
        assert_eq!(parsed.keys.len(), 1);
        assert_eq!(parsed.keys[0].kid.as_deref(), Some("good"));
        let skipped: Vec<_> = parsed
            .skipped
            .iter()
            .map(|s| s.kid.as_deref().unwrap_or("-"))
            .collect();
        assert_eq!(
            skipped,
            [
                "enc", "weird", "p521", "broken", "no-kty", "hmac", "private", "ops", "oaep"
            ]
        );
    }

    #[test]
    fn configured_jwks_may_hold_shared_secrets() {
        let secret =
            r#"{"kty":"oct","kid":"hmac","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}"#;
        let parsed = parse(&[secret.to_owned()], JwkOrigin::Configured);
        assert_eq!(parsed.keys.len(), 1);
        assert!(parsed.keys[0].verifier(Algorithm::HS256).is_some());
    }

    #[test]
    fn no_key_is_used_under_a_kid_that_two_entries_share() {
        let parsed = parse(
            &[
                ed_jwk(r#","kid":"twice""#),
                ed_jwk(r#","kid":"twice","x":"!!""#).replace(r#""x":"!!""#, r#""y":"!!""#),
                ed_jwk(r#","kid":"once""#),
            ],
            JwkOrigin::Configured,
        );
        let kids: Vec<_> = parsed.keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("once")]);
        assert!(
            parsed
                .skipped
                .iter()
                .any(|s| s.kid.as_deref() == Some("twice") && s.reason.contains("same kid"))
        );
    }

    #[test]
    fn a_configured_set_mixing_secrets_and_public_keys_is_refused() {
        let secret =
            r#"{"kty":"oct","kid":"hmac","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}"#;
        let text = format!(r#"{{"keys":[{secret},{}]}}"#, ed_jwk(r#","kid":"ed""#));
        let err = parse_jwks(&text, JwkOrigin::Configured, all()).unwrap_err();
        assert!(err.contains("mixes"), "{err}");
    }

    #[test]
    fn pins_the_algorithm_named_by_the_jwk() {
        let parsed = parse(&[ed_jwk(r#","alg":"ES256""#)], JwkOrigin::Fetched);
        assert!(parsed.keys.is_empty());
        assert!(parsed.skipped[0].reason.contains("does not fit"));
    }

    #[test]
    fn refuses_documents_that_are_not_a_jwks() {
        for text in ["", "[]", r#"{"keys":{}}"#, r#"{"key":[]}"#, "{"] {
            assert!(
                parse_jwks(text, JwkOrigin::Fetched, all()).is_err(),
                "{text}"
            );
        }
    }
}
