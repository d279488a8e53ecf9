//! The cost of DPoP (RFC 9449) per request against the bearer path, through the whole layer.
//!
//! - `a_bearer`: `Authorization: Bearer` with one HS256 token repeated (a verified-token cache
//!   hit, the usual steady state);
//! - `b_dpop_es256`, `c_dpop_eddsa`: the same token, DPoP-bound, as `Authorization: DPoP` with a
//!   fresh proof each request (signed beforehand by `jsonwebtoken`, outside the timing): the token
//!   is still a cache hit, and the proof is parsed, its key prepared, its signature and claims
//!   checked, its thumbprint computed and its `jti` recorded in the replay cache.
//!
//! Run: `cargo bench --bench dpop -- --warm-up-time 1 --measurement-time 3`; figures in
//! BENCHMARKS.md.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm as J, EncodingKey, Header};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_auth::dpop::{DpopConfig, DpopPolicy, InMemoryReplayCache};
use tower_jwt_auth::{Issuer, JwtAuthLayer, KeySource};

const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "bench";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const URL: &str = "https://api.example.com/orders";
/// Proofs signed per batch, outside the timing.
const POOL: usize = 2_000;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A client key: signs proofs with `jsonwebtoken`.
struct ClientKey {
    alg: J,
    encoding: EncodingKey,
    jwk: jsonwebtoken::jwk::Jwk,
    jkt: String,
}

impl ClientKey {
    fn new(alg: J, encoding: EncodingKey) -> Self {
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, alg).unwrap();
        let jkt = jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .unwrap();
        Self {
            alg,
            encoding,
            jwk,
            jkt,
        }
    }

    fn proofs(&self, token: &str, start: usize) -> Vec<String> {
        let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            token.as_bytes(),
        ));
        let mut header = Header::new(self.alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        (start..start + POOL)
            .map(|n| {
                let claims = json!({
                    "jti": format!("{n:016x}"), "htm": "GET", "htu": URL, "iat": now(), "ath": ath,
                });
                jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
            })
            .collect()
    }
}

fn token(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(J::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn bench_dpop(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let layer = runtime.block_on(async {
        JwtAuthLayer::<Value>::builder()
            .issuer(
                Issuer::new(ISSUER)
                    .audience(AUDIENCE)
                    .key(KeySource::shared_secret(SECRET))
                    .dpop(DpopPolicy::Allowed),
            )
            .external_url("https://api.example.com")
            .dpop(DpopConfig::default().replay_cache(InMemoryReplayCache::new(4_000_000)))
            .build()
            .await
            .unwrap()
    });
    let service = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let base =
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "user", "exp": now() + 3600, "iat": now()});
    let call = |request: Request<()>| {
        let service = service.clone();
        let response = runtime.block_on(service.oneshot(request)).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    };

    let mut group = c.benchmark_group("dpop");
    let bearer = HeaderValue::from_str(&format!("Bearer {}", token(base.clone()))).unwrap();
    group.bench_function("a_bearer", |b| {
        b.iter(|| {
            let mut request = Request::get("/orders").body(()).unwrap();
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, bearer.clone());
            call(request);
        });
    });

    let clients = [
        (
            "b_dpop_es256",
            ClientKey::new(
                J::ES256,
                EncodingKey::from_ec_pem(&key_file("ec-p256.key.pem")).unwrap(),
            ),
        ),
        (
            "c_dpop_eddsa",
            ClientKey::new(
                J::EdDSA,
                EncodingKey::from_ed_pem(&key_file("ed25519.key.pem")).unwrap(),
            ),
        ),
    ];
    for (name, client) in &clients {
        let mut claims = base.clone();
        claims["cnf"] = json!({ "jkt": client.jkt });
        let token = token(claims);
        let authorization = HeaderValue::from_str(&format!("DPoP {token}")).unwrap();
        let mut pool: Vec<String> = Vec::new();
        let mut signed = 0;
        group.bench_function(*name, |b| {
            b.iter_batched(
                || {
                    if pool.is_empty() {
                        pool = client.proofs(&token, signed);
                        signed += POOL;
                    }
                    let mut request = Request::get("/orders").body(()).unwrap();
                    let headers = request.headers_mut();
                    headers.insert(http::header::AUTHORIZATION, authorization.clone());
                    headers.insert("dpop", HeaderValue::from_str(&pool.pop().unwrap()).unwrap());
                    request
                },
                call,
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench_dpop);
criterion_main!(benches);
