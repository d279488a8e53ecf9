//! What each request path costs, through the whole layer, against the plain bearer path: one
//! criterion run, so that the figures compare.
//!
//! Every case sends a request through `tower::ServiceExt::oneshot` on a no-op service in front of
//! a layer trusting one [`TestIssuer`] (RS256), with the request built outside the timing:
//!
//! - `a_bearer_hit`: `Authorization: Bearer` with one token repeated (a verified-token cache hit,
//!   the steady state of a client);
//! - `b_revocation_hit`: the same, with a [`RevocationList`] of 100,000 revoked `jti`s (not this
//!   token's) checked after the cache;
//! - `c_introspection_hit`: an opaque token, accepted through the issuer's RFC 7662 endpoint and
//!   then served from the introspection cache (the endpoint is asked once, before the timing; the
//!   bench asserts it is not asked again);
//! - `d_dpop_es256`, `e_dpop_eddsa`: a DPoP-bound token (a cache hit) as `Authorization: DPoP` with
//!   a fresh proof each request (signed beforehand, outside the timing): the proof is parsed, its
//!   key prepared, its signature, claims and thumbprint checked and its `jti` recorded in the
//!   replay cache.
//!
//! Run: `cargo bench --bench paths -- --warm-up-time 1 --measurement-time 3`; figures in
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
use tower_jwt_auth::test_util::TestIssuer;
use tower_jwt_auth::{JwtAuthLayer, RevocationList};

const URL: &str = "https://api.example.com/orders";
/// Proofs signed per batch, outside the timing.
const POOL: usize = 2_000;
/// Revoked `jti`s in the list of `b_revocation_hit`.
const REVOKED: usize = 100_000;

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

fn request(authorization: &HeaderValue) -> Request<()> {
    let mut request = Request::get("/orders").body(()).unwrap();
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, authorization.clone());
    request
}

fn bench_paths(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = runtime.block_on(TestIssuer::start()).unwrap();
    let build = |revocation: Option<RevocationList>, introspection: bool| {
        runtime.block_on(async {
            let config = if introspection {
                issuer.introspection_issuer_config()
            } else {
                issuer.issuer_config()
            };
            let mut builder = JwtAuthLayer::<Value>::builder()
                .issuer(config.dpop(DpopPolicy::Allowed))
                .external_url("https://api.example.com")
                .dpop(DpopConfig::default().replay_cache(InMemoryReplayCache::new(4_000_000)));
            if let Some(list) = revocation {
                builder = builder.revocation(list);
            }
            let layer = builder.build().await.unwrap();
            layer.layer(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }))
        })
    };
    let call = |service: &_, request: Request<()>| {
        let service: &tower_jwt_auth::JwtAuth<_, Value, _> = service;
        let response = runtime.block_on(service.clone().oneshot(request)).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    };
    let claims = json!({
        "iss": issuer.issuer(), "aud": issuer.audience(), "sub": "user", "jti": "not-revoked",
        "exp": now() + 3600, "iat": now(),
    });
    let bearer = HeaderValue::from_str(&format!("Bearer {}", issuer.token(&claims))).unwrap();

    let mut group = c.benchmark_group("paths");
    let plain = build(None, false);
    group.bench_function("a_bearer_hit", |b| {
        b.iter_batched(
            || request(&bearer),
            |request| call(&plain, request),
            BatchSize::SmallInput,
        );
    });

    let list = RevocationList::builder().max_entries(REVOKED).memory();
    runtime.block_on(async {
        for n in 0..REVOKED {
            list.revoke_token(&format!("revoked-{n:08}"), now() + 3600)
                .await
                .unwrap();
        }
    });
    assert_eq!(list.status().entries, REVOKED);
    let revoking = build(Some(list), false);
    group.bench_function("b_revocation_hit", |b| {
        b.iter_batched(
            || request(&bearer),
            |request| call(&revoking, request),
            BatchSize::SmallInput,
        );
    });

    let introspecting = build(None, true);
    let opaque =
        HeaderValue::from_str(&format!("Bearer {}", issuer.opaque_token(&claims))).unwrap();
    call(&introspecting, request(&opaque));
    let asked = issuer.introspection_requests();
    group.bench_function("c_introspection_hit", |b| {
        b.iter_batched(
            || request(&opaque),
            |request| call(&introspecting, request),
            BatchSize::SmallInput,
        );
    });
    assert_eq!(
        issuer.introspection_requests(),
        asked,
        "the introspection cache missed"
    );

    let clients = [
        (
            "d_dpop_es256",
            ClientKey::new(
                J::ES256,
                EncodingKey::from_ec_pem(&key_file("ec-p256.key.pem")).unwrap(),
            ),
        ),
        (
            "e_dpop_eddsa",
            ClientKey::new(
                J::EdDSA,
                EncodingKey::from_ed_pem(&key_file("ed25519.key.pem")).unwrap(),
            ),
        ),
    ];
    for (name, client) in &clients {
        let mut claims = claims.clone();
        claims["cnf"] = json!({ "jkt": client.jkt });
        let token = issuer.token(&claims);
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
                    let mut request = request(&authorization);
                    request
                        .headers_mut()
                        .insert("dpop", HeaderValue::from_str(&pool.pop().unwrap()).unwrap());
                    request
                },
                |request| call(&plain, request),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench_paths);
criterion_main!(benches);
