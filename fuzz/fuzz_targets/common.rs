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
