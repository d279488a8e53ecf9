//! Shared by the integration tests: checked-in test keys, token minting, and a request helper.
#![allow(dead_code, clippy::unwrap_used)]

pub mod server;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_auth::{Issuer, KeySource};

/// A clock the test sets by hand, in seconds since the epoch.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn at(seconds: i64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self(std::sync::atomic::AtomicI64::new(seconds)))
    }

    pub fn set(&self, seconds: i64) {
        self.0.store(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl tower_jwt_auth::Clock for ManualClock {
    fn now(&self) -> SystemTime {
        let seconds = self.0.load(std::sync::atomic::Ordering::SeqCst);
        UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64)
    }
}

pub const ISSUER: &str = "https://issuer.test/";
pub const AUDIENCE: &str = "test-api";
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A test key pair: signs tokens, and describes its public half as a JWK and a PEM.
pub struct TestKey {
    pub kid: String,
    pub alg: jsonwebtoken::Algorithm,
    pub encoding: EncodingKey,
    pub public_pem: String,
    pub public_jwk: Value,
}

fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    /// `rsa-a`, `rsa-b` or `rsa-1024`, for `alg` (RS* or PS*).
    pub fn rsa(file: &str, kid: &str, alg: jsonwebtoken::Algorithm) -> Self {
        let private = key_file(&format!("{file}.key.pem"));
        let public_pem = key_file(&format!("{file}.pub.pem"));
        let der = DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
        let public = aws_lc_rs::rsa::PublicKey::from_der(der.try_get_as_bytes().unwrap()).unwrap();
        // An RSA key serves one algorithm: the JWK names it, as identity providers do.
        let public_jwk = json!({
            "kty": "RSA",
            "kid": kid,
            "alg": alg_name(alg),
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        });
        Self {
            kid: kid.into(),
            alg,
            encoding: EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
            public_pem,
            public_jwk,
        }
    }

    pub fn rs256(kid: &str) -> Self {
        Self::rsa("rsa-a", kid, jsonwebtoken::Algorithm::RS256)
    }

    pub fn ec(file: &str, kid: &str) -> Self {
        let (alg, crv, size) = match file {
            "ec-p256" => (jsonwebtoken::Algorithm::ES256, "P-256", 32),
            _ => (jsonwebtoken::Algorithm::ES384, "P-384", 48),
        };
        let private = key_file(&format!("{file}.key.pem"));
        let public_pem = key_file(&format!("{file}.pub.pem"));
        let point = DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap();
        let point = point.try_get_as_bytes().unwrap();
        let public_jwk = json!({
            "kty": "EC",
            "kid": kid,
            "crv": crv,
            "x": b64(&point[1..=size]),
            "y": b64(&point[1 + size..]),
        });
        Self {
            kid: kid.into(),
            alg,
            encoding: EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
            public_pem,
            public_jwk,
        }
    }

    pub fn ed25519(kid: &str) -> Self {
        let private = key_file("ed25519.key.pem");
        let public_pem = key_file("ed25519.pub.pem");
        let x = DecodingKey::from_ed_pem(public_pem.as_bytes()).unwrap();
        let public_jwk = json!({
            "kty": "OKP",
            "kid": kid,
            "crv": "Ed25519",
            "x": b64(x.try_get_as_bytes().unwrap()),
        });
        Self {
            kid: kid.into(),
            alg: jsonwebtoken::Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
            public_pem,
            public_jwk,
        }
    }

    /// A token with this key's `alg` and `kid` over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": alg_name(self.alg), "kid": self.kid}), claims)
    }

    /// A token with exactly this header (as JSON) over `claims`, signed with this key and alg.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        sign_raw(
            &serde_json::to_string(header).unwrap(),
            &serde_json::to_string(claims).unwrap(),
            &self.encoding,
            self.alg,
        )
    }
}

/// The Ed25519 key (`kid` `k`) most tests sign with.
pub fn key() -> TestKey {
    TestKey::ed25519("k")
}

/// The test issuer and audience, with keys from `source`.
pub fn issuer_with(source: KeySource) -> Issuer {
    Issuer::new(ISSUER).audience(AUDIENCE).key(source)
}

/// The request passed the layer (the challenge, if any, is in the failure message).
#[track_caller]
pub fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.www_authenticate());
}

pub fn alg_name(alg: jsonwebtoken::Algorithm) -> String {
    serde_json::to_value(alg)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Signs `header_json.payload_json` byte for byte as given.
pub fn sign_raw(
    header_json: &str,
    payload_json: &str,
    key: &EncodingKey,
    alg: jsonwebtoken::Algorithm,
) -> String {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let signing_input = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(payload_json.as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).unwrap();
    format!("{signing_input}.{signature}")
}

/// An HS256 token signed with `secret`, with a `kid` if given.
pub fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": "HS256"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    sign_raw(
        &header.to_string(),
        &claims.to_string(),
        &EncodingKey::from_secret(secret),
        jsonwebtoken::Algorithm::HS256,
    )
}

/// A JWKS holding the public halves of `keys`.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>()}).to_string()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims that pass the default test layer: right issuer and audience, valid for ten minutes.
pub fn valid_claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    })
}

/// `valid_claims` with `changes` merged in (a `null` value removes the claim).
pub fn claims_with(changes: Value) -> Value {
    let mut claims = valid_claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn www_authenticate(&self) -> &str {
        self.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

/// Sends `request` through `app` and collects the answer.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// `GET path` with `Authorization: Bearer token`.
pub async fn get_with_token(app: &Router, path: &str, token: &str) -> Reply {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send(app, request).await
}

/// Base64url without padding, as in a compact JWS.
pub fn b64url(bytes: &[u8]) -> String {
    b64(bytes)
}

/// Signs `header.payload` given as raw bytes (which need not be UTF-8 or JSON).
pub fn sign_bytes(
    header: &[u8],
    payload: &[u8],
    key: &EncodingKey,
    alg: jsonwebtoken::Algorithm,
) -> String {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let signing_input = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).unwrap();
    format!("{signing_input}.{signature}")
}

/// The challenge a rejection with `error` and `error_description` carries under `realm`.
pub fn challenge(realm: &str, error: &str, description: &str) -> String {
    format!(r#"Bearer realm="{realm}", error="{error}", error_description="{description}""#)
}

/// `GET path` with the given headers (appended in order, so a name may repeat).
pub async fn get_with_headers(app: &Router, path: &str, headers: &[(&str, &[u8])]) -> Reply {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, http::HeaderValue::from_bytes(value).unwrap());
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

/// The reply is a default `401 invalid_token` rejection with this description (realm `tests`).
#[track_caller]
pub fn assert_invalid_token(reply: &Reply, description: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.www_authenticate(),
        challenge("tests", "invalid_token", description)
    );
    assert_eq!(reply.body, "");
}

/// The reply is a default `400 invalid_request` rejection with this description (realm `tests`).
#[track_caller]
pub fn assert_invalid_request(reply: &Reply, description: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.www_authenticate(),
        challenge("tests", "invalid_request", description)
    );
    assert_eq!(reply.body, "");
}

// Helpers for tests/attacks/.

/// `token` with its signature part replaced by `signature` (base64url-encoded here).
pub fn with_signature(token: &str, signature: &[u8]) -> String {
    let (signing_input, _) = token.rsplit_once('.').unwrap();
    format!("{signing_input}.{}", b64(signature))
}

/// The signature bytes of `token`.
pub fn signature_of(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(token.rsplit_once('.').unwrap().1)
        .unwrap()
}

/// Signs an already encoded `header.payload` exactly as given (it need not be canonical base64url).
pub fn sign_encoded(signing_input: &str, key: &TestKey) -> String {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, key.alg).unwrap();
    format!("{signing_input}.{signature}")
}

/// An HMAC token (`alg` HS256/384/512) with this header over `claims`, keyed with `secret`.
pub fn hmac_token(
    alg: jsonwebtoken::Algorithm,
    secret: &[u8],
    header: &Value,
    claims: &Value,
) -> String {
    sign_raw(
        &header.to_string(),
        &claims.to_string(),
        &EncodingKey::from_secret(secret),
        alg,
    )
}

/// The DER body of a PEM document.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// An ECDSA signature in raw `r || s` form re-encoded as DER `SEQUENCE { INTEGER r, INTEGER s }`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let mut value = bytes[first..].to_vec();
        if value[0] & 0x80 != 0 {
            value.insert(0, 0);
        }
        let mut out = vec![0x02, value.len() as u8];
        out.extend(value);
        out
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = integer(r);
    body.extend(integer(s));
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

/// Bytes from hex text.
pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
