//! Shared by the fuzz targets: a runtime built once, layers with static keys, and token minting.
#![allow(dead_code)]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tower_jwt_auth::{Issuer, JwtAuthLayer, KeySource};

pub const ISSUER_A: &str = "https://a.test/";
pub const ISSUER_B: &str = "https://b.test/";
pub const AUDIENCE: &str = "api";
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
pub const ED25519_PEM: &str = include_str!("../../tests/keys/ed25519.pub.pem");

pub type Layer = JwtAuthLayer<serde_json::Value>;

/// One current-thread runtime for every run: building one per input would dwarf the work tested.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

fn issuers() -> [Issuer; 2] {
    [
        Issuer::new(ISSUER_A)
            .audience(AUDIENCE)
            .key(KeySource::shared_secret(SECRET).with_kid("hs")),
        Issuer::new(ISSUER_B)
            .audience(AUDIENCE)
            .key(KeySource::public_key_pem(ED25519_PEM).with_kid("ed")),
    ]
}

/// Two issuers (HS256 secret, Ed25519 key) with the default claim rules.
pub static LAYER: LazyLock<Layer> = LazyLock::new(|| {
    let [a, b] = issuers();
    RUNTIME
        .block_on(Layer::builder().issuer(a).issuer(b).realm("fuzz").build())
        .expect("layer")
});

/// The same issuers with every optional rule on.
pub static STRICT_LAYER: LazyLock<Layer> = LazyLock::new(|| {
    let [a, b] = issuers();
    RUNTIME
        .block_on(
            Layer::builder()
                .issuer(a)
                .issuer(b)
                .leeway(Duration::ZERO)
                .require_token_type("at+jwt")
                .max_token_age(Duration::from_secs(3600))
                .require_claim("sub")
                .validate(|claims: &serde_json::Value| {
                    if claims.get("admin").is_some() {
                        Err("no admins".into())
                    } else {
                        Ok(())
                    }
                })
                .build(),
        )
        .expect("strict layer")
});

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `header.payload` (raw bytes, base64url-encoded here) with a correct HS256 signature.
pub fn hs256(header: &[u8], payload: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(payload));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

/// Claims that pass both layers for issuer A.
pub fn valid_claims() -> String {
    let now = now();
    format!(
        r#"{{"iss":"{ISSUER_A}","aud":"{AUDIENCE}","sub":"u","iat":{now},"nbf":{now},"exp":{}}}"#,
        now + 86_400
    )
}

/// A token both layers accept.
pub static VALID_TOKEN: LazyLock<String> = LazyLock::new(|| {
    hs256(
        br#"{"alg":"HS256","kid":"hs","typ":"at+jwt"}"#,
        valid_claims().as_bytes(),
    )
});

/// The `NumericDate` bounds (years 0001 to 9999): a time claim outside them must be refused.
pub const DATE_MIN: f64 = -62_135_596_800.0;
pub const DATE_MAX: f64 = 253_402_300_799.0;

/// Whether `json` is valid JSON (as serde_json reads it) with some object, at any depth, holding
/// a member name twice; names compared after unescaping (`"\u0061"` and `"a"` are the same).
/// Written apart from the crate's scan, so that the two can be checked against each other.
pub fn has_duplicate_member(json: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Dup(bool);
    struct DupVisitor;

    impl<'de> Deserialize<'de> for Dup {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(DupVisitor)
        }
    }

    impl<'de> Visitor<'de> for DupVisitor {
        type Value = Dup;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_str<E>(self, _: &str) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_unit<E>(self) -> Result<Dup, E> {
            Ok(Dup(false))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dup, A::Error> {
            let mut dup = false;
            while let Some(Dup(inner)) = seq.next_element()? {
                dup |= inner;
            }
            Ok(Dup(dup))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dup, A::Error> {
            let mut names = std::collections::HashSet::new();
            let mut dup = false;
            while let Some(name) = map.next_key::<String>()? {
                dup |= !names.insert(name);
                let Dup(inner) = map.next_value()?;
                dup |= inner;
            }
            Ok(Dup(dup))
        }
    }

    serde_json::from_slice::<Dup>(json).is_ok_and(|Dup(dup)| dup)
}

/// Whether the JSON object `header` has a `kid` that is present but not a string.
pub fn has_non_string_kid(header: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(header)
        .ok()
        .and_then(|header| header.get("kid").map(|kid| !kid.is_string()))
        .unwrap_or(false)
}

/// Whether the JSON object `payload` has an `exp`, `nbf` or `iat` that is a number outside
/// [`DATE_MIN`, `DATE_MAX`] (rounded down; `1e300`, `2^64`, `-1e300` …).
pub fn has_time_out_of_range(payload: &[u8]) -> bool {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    ["exp", "nbf", "iat"].iter().any(|name| {
        payload
            .get(name)
            .and_then(serde_json::Value::as_f64)
            .is_some_and(|seconds| !(DATE_MIN..=DATE_MAX).contains(&seconds.floor()))
    })
}
