//! JWK thumbprints (RFC 7638): SHA-256 over the key's required members, in lexicographic order,
//! without whitespace.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The canonical JSON of a public key's required members (RFC 7638 §3.2). Built only from
/// members that decoded as strict base64url and from fixed curve names, so no JSON escaping is
/// ever needed.
pub(crate) struct Thumbprint(String);

impl Thumbprint {
    pub(crate) fn ec(crv: &str, x: &str, y: &str) -> Self {
        Self(format!(
            r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#
        ))
    }

    pub(crate) fn rsa(e: &str, n: &str) -> Self {
        Self(format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#))
    }

    pub(crate) fn okp(crv: &str, x: &str) -> Self {
        Self(format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#))
    }

    /// `base64url(SHA-256(canonical JSON))`, the value of `cnf.jkt`.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, self.0.as_bytes()))
    }
}

/// The RFC 7638 SHA-256 thumbprint (base64url) of a public JWK given as JSON text: what an
/// authorization server puts in `cnf.jkt` for a DPoP key. `None` for a key that is not an EC
/// (P-256, P-384), RSA or Ed25519 public key with strict base64url members.
///
/// ```
/// // RFC 7638 §3.1's example key.
/// let jwk = r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;
/// assert_eq!(
///     tower_jwt_auth::dpop::jwk_thumbprint(jwk).as_deref(),
///     Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
/// );
/// ```
pub fn jwk_thumbprint(jwk: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Members {
        kty: String,
        crv: Option<String>,
        x: Option<String>,
        y: Option<String>,
        n: Option<String>,
        e: Option<String>,
    }
    let m: Members = serde_json::from_str(jwk).ok()?;
    let strict = |value: &Option<String>| {
        value
            .as_deref()
            .filter(|text| crate::base64url::decode(text).is_some_and(|b| !b.is_empty()))
            .map(str::to_owned)
    };
    let canonical = match (m.kty.as_str(), m.crv.as_deref()) {
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            Thumbprint::ec(crv, &strict(&m.x)?, &strict(&m.y)?)
        }
        ("RSA", _) => Thumbprint::rsa(&strict(&m.e)?, &strict(&m.n)?),
        ("OKP", Some("Ed25519")) => Thumbprint::okp("Ed25519", &strict(&m.x)?),
        _ => return None,
    };
    Some(canonical.encode())
}
