//! The layer's verification against the raw `jsonwebtoken::decode` of the same token, with the
//! same key and claim checks. Run: `cargo bench --bench verify`.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm as J, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tower_jwt_auth::{Issuer, JwtAuthLayer, KeySource};

#[derive(Debug, Serialize, Deserialize)]
struct BenchClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn bench_rs256_and_es256(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = BenchClaims {
        iss: "https://issuer.test/".into(),
        aud: "bench".into(),
        sub: "user-1".into(),
        exp: now + 3600,
        iat: now,
    };
    for (alg, private, public) in [
        (J::RS256, "rsa-a.key.pem", "rsa-a.pub.pem"),
        (J::ES256, "ec-p256.key.pem", "ec-p256.pub.pem"),
    ] {
        let (encoding, decoding) = match alg {
            J::RS256 => (
                EncodingKey::from_rsa_pem(&key_file(private)).unwrap(),
                DecodingKey::from_rsa_pem(&key_file(public)).unwrap(),
            ),
            _ => (
                EncodingKey::from_ec_pem(&key_file(private)).unwrap(),
                DecodingKey::from_ec_pem(&key_file(public)).unwrap(),
            ),
        };
        let token = jsonwebtoken::encode(&Header::new(alg), &claims, &encoding).unwrap();
        let mut validation = Validation::new(alg);
        validation.set_issuer(&["https://issuer.test/"]);
        validation.set_audience(&["bench"]);

        let layer: JwtAuthLayer<BenchClaims> = runtime
            .block_on(
                JwtAuthLayer::builder()
                    .issuer(
                        Issuer::new("https://issuer.test/")
                            .audience("bench")
                            .key(KeySource::public_key_pem(key_file(public))),
                    )
                    .build(),
            )
            .unwrap();

        let mut group = c.benchmark_group(format!("{alg:?}"));
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| jsonwebtoken::decode::<BenchClaims>(&token, &decoding, &validation).unwrap())
        });
        group.bench_function("layer_verify", |b| {
            b.iter(|| runtime.block_on(layer.verify(&token)).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench_rs256_and_es256);
criterion_main!(benches);
