//! The layer against the raw `jsonwebtoken::decode` of the same tokens, for every algorithm family.
//!
//! Per algorithm:
//! - `a_jsonwebtoken_decode`: the baseline, a ready `DecodingKey` and `Validation`;
//! - `b_layer_miss`: a request through the whole layer (`tower::ServiceExt::oneshot` on a no-op
//!   service) with a different token each iteration, so the verified-token cache never hits (and,
//!   once its small capacity is reached, each insertion evicts);
//! - `c_layer_hit`: the same token every iteration;
//! - `e_signature_only`: the floor, aws-lc-rs checking the signature of each token of the pool
//!   with a key prepared once (no parsing, no claims): `b_layer_miss` minus this is the layer's
//!   own work on a miss;
//! - `f_layer_minus_signature`: that difference measured in one bench, paired: runs of 16 misses
//!   through the layer alternate with the bare checks of 16 other tokens of the pool, and each
//!   iteration's time is the layer's minus the checks'. Two medians taken seconds apart differ
//!   by the machine's drift over those seconds (for ES384, 1% of a 195 µs check is already 2 µs);
//!   the paired runs are milliseconds apart. (Other tokens, because a second check of the same
//!   ECDSA signature soon after the first is faster: it reads the same entries of aws-lc's
//!   precomputed table, now cached.)
//!
//! `VERIFY_ALGS=HS256,ES256` limits the run to those algorithms; `VERIFY_POOL=N` sets the number
//! of distinct tokens (2,000 by default); `VERIFY_PAIRED=N` the run length of (f).
//!
//! And `unknown_kid/d_layer_cooldown`: tokens naming kids the fetched key set lacks, while the
//! refetch cooldown runs (no fetch may happen).
//!
//! Run: `cargo bench --bench verify`; the figures and what they mean are in BENCHMARKS.md.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::future::Future as _;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm as J, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_auth::{Algorithm, Issuer, JwtAuthLayer, KeySource, RefreshPolicy};

const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "bench";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
/// Distinct tokens signed per algorithm for the cache-miss run; the layer (and its cache) is
/// rebuilt, outside the timing, each time they are used up.
const POOL: usize = 2_000;
/// Tokens per run in `f_layer_minus_signature`: the layer's requests and the bare checks alternate
/// in runs this long (an ES384 run is ~3 ms each way). `VERIFY_PAIRED=N` sets another length.
const PAIRED: usize = 16;
/// The cache size (bytes) of the cache-miss layer: small, so that most misses also evict, as in a
/// service whose cache is full.
const MISS_CACHE: u64 = 250 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct BenchClaims {
    iss: String,
    aud: String,
    sub: String,
    jti: String,
    exp: i64,
    iat: i64,
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(n: usize) -> BenchClaims {
    BenchClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: format!("user-{n}"),
        jti: format!("{n:016x}"),
        exp: now() + 3600,
        iat: now(),
    }
}

/// One algorithm's keys: for signing, for `jsonwebtoken`, and for the layer.
struct Case {
    name: &'static str,
    alg: J,
    encoding: EncodingKey,
    decoding: DecodingKey,
    source: KeySource,
}

fn cases() -> Vec<Case> {
    let pem = |alg: J, private: &str, public: &str, algorithm: Algorithm| {
        let (encoding, decoding) = match alg {
            J::RS256 | J::PS256 => (
                EncodingKey::from_rsa_pem(&key_file(private)).unwrap(),
                DecodingKey::from_rsa_pem(&key_file(public)).unwrap(),
            ),
            J::EdDSA => (
                EncodingKey::from_ed_pem(&key_file(private)).unwrap(),
                DecodingKey::from_ed_pem(&key_file(public)).unwrap(),
            ),
            _ => (
                EncodingKey::from_ec_pem(&key_file(private)).unwrap(),
                DecodingKey::from_ec_pem(&key_file(public)).unwrap(),
            ),
        };
        let source = KeySource::public_key_pem(key_file(public)).with_algorithm(algorithm);
        (encoding, decoding, source)
    };
    let mut cases = vec![Case {
        name: "HS256",
        alg: J::HS256,
        encoding: EncodingKey::from_secret(SECRET),
        decoding: DecodingKey::from_secret(SECRET),
        source: KeySource::shared_secret(SECRET).with_algorithm(Algorithm::HS256),
    }];
    for (name, alg, private, public, algorithm) in [
        (
            "RS256",
            J::RS256,
            "rsa-a.key.pem",
            "rsa-a.pub.pem",
            Algorithm::RS256,
        ),
        (
            "PS256",
            J::PS256,
            "rsa-a.key.pem",
            "rsa-a.pub.pem",
            Algorithm::PS256,
        ),
        (
            "ES256",
            J::ES256,
            "ec-p256.key.pem",
            "ec-p256.pub.pem",
            Algorithm::ES256,
        ),
        (
            "ES384",
            J::ES384,
            "ec-p384.key.pem",
            "ec-p384.pub.pem",
            Algorithm::ES384,
        ),
        (
            "EdDSA",
            J::EdDSA,
            "ed25519.key.pem",
            "ed25519.pub.pem",
            Algorithm::EdDSA,
        ),
    ] {
        let (encoding, decoding, source) = pem(alg, private, public, algorithm);
        cases.push(Case {
            name,
            alg,
            encoding,
            decoding,
            source,
        });
    }
    cases
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::try_from(format!("Bearer {token}")).unwrap()
}

/// The layer in front of a no-op service, built once per layer as a server builds its service
/// stack once (per connection at most), not per request.
type BenchService = tower_jwt_auth::JwtAuth<
    tower::util::ServiceFn<fn(Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>>>,
    BenchClaims,
    tower_jwt_auth::DefaultRejection,
>;

fn service(layer: &JwtAuthLayer<BenchClaims>) -> BenchService {
    fn ok(_: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
        std::future::ready(Ok(Response::new(())))
    }
    layer.layer(service_fn(ok as fn(_) -> _))
}

/// A request as the HTTP server hands it to the service: built outside the timing, like the
/// token string handed to `jsonwebtoken::decode` in (a).
fn request(authorization: &HeaderValue) -> Request<()> {
    Request::get("/")
        .header(http::header::AUTHORIZATION, authorization.clone())
        .body(())
        .unwrap()
}

/// Sends `request` through `service` with `oneshot`, and polls the response future once: with
/// prepared keys and no async check the layer decides without waiting, so one poll completes it
/// (the call panics otherwise, so a decision that waited could not go unnoticed). Polled under
/// the runtime's context, without `block_on`'s own cost per request.
fn through(service: &BenchService, request: Request<()>) -> StatusCode {
    let future = std::pin::pin!(service.clone().oneshot(request));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut context) {
        std::task::Poll::Ready(response) => response.unwrap().status(),
        std::task::Poll::Pending => panic!("the layer waited on a request with prepared keys"),
    }
}

fn bench_algorithms(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // `VERIFY_ALGS=HS256,RS256` limits the run (and the signing of the pools) to those cases.
    let only = std::env::var("VERIFY_ALGS").ok();
    for case in cases() {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|name| name == case.name))
        {
            continue;
        }
        let header = Header::new(case.alg);
        let pool_size: usize = std::env::var("VERIFY_POOL").map_or(POOL, |n| n.parse().unwrap());
        let pool: Vec<String> = (0..pool_size)
            .map(|n| jsonwebtoken::encode(&header, &claims(n), &case.encoding).unwrap())
            .collect();
        let headers: Vec<HeaderValue> = pool.iter().map(|token| bearer(token)).collect();
        let mut validation = Validation::new(case.alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let build = |cache: u64| {
            runtime
                .block_on(
                    JwtAuthLayer::<BenchClaims>::builder()
                        .issuer(
                            Issuer::new(ISSUER)
                                .audience(AUDIENCE)
                                .key(case.source.clone()),
                        )
                        .token_cache_bytes(cache)
                        .build(),
                )
                .unwrap()
        };

        let mut group = c.benchmark_group(case.name);
        let mut next = 0;
        group.bench_function("a_jsonwebtoken_decode", |b| {
            b.iter(|| {
                next = (next + 1) % pool_size;
                jsonwebtoken::decode::<BenchClaims>(&pool[next], &case.decoding, &validation)
                    .unwrap()
            })
        });
        group.bench_function("b_layer_miss", |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                let mut done = 0;
                while done < iterations {
                    // A fresh layer has an empty cache: every token of the pool misses once.
                    let service = service(&build(MISS_CACHE));
                    let batch = (iterations - done).min(pool_size as u64) as usize;
                    let requests: Vec<_> = headers[..batch].iter().map(request).collect();
                    let _runtime = runtime.enter();
                    let start = Instant::now();
                    for request in requests {
                        assert_eq!(through(&service, request), StatusCode::OK);
                    }
                    elapsed += start.elapsed();
                    done += batch as u64;
                }
                elapsed
            })
        });
        let floor = signature_floor(&case, &pool);
        let mut next = 0;
        group.bench_function("e_signature_only", |b| {
            b.iter(|| {
                next = (next + 1) % pool_size;
                let (message, signature) = &floor.split[next];
                assert!(floor.verify(message, signature));
            })
        });
        group.bench_function("f_layer_minus_signature", |b| {
            b.iter_custom(|iterations| {
                let (mut layer, mut signature) = (Duration::ZERO, Duration::ZERO);
                let mut done = 0;
                while done < iterations {
                    let service = service(&build(MISS_CACHE));
                    let batch = (iterations - done).min(pool_size as u64) as usize;
                    let mut requests = headers[..batch].iter().map(request);
                    let _runtime = runtime.enter();
                    // Runs of PAIRED tokens through the layer, then the same tokens' bare
                    // checks: both sides of the difference see the same moments of the machine.
                    let paired =
                        std::env::var("VERIFY_PAIRED").map_or(PAIRED, |v| v.parse().unwrap());
                    for start in (0..batch).step_by(paired) {
                        let end = (start + paired).min(batch);
                        let chunk: Vec<_> = requests.by_ref().take(end - start).collect();
                        let started = Instant::now();
                        for request in chunk {
                            assert_eq!(through(&service, request), StatusCode::OK);
                        }
                        let checked = Instant::now();
                        // Other tokens than the layer's just now: a second check of the same
                        // ES256 signature right after the first ran 1.5-2.2 µs faster (the
                        // same table entries, the same branches), which made a pairing on the
                        // same tokens favour whichever side went second.
                        for i in start..end {
                            let (message, bytes) = &floor.split[(i + pool_size / 2) % pool_size];
                            assert!(floor.verify(message, bytes));
                        }
                        layer += checked - started;
                        signature += checked.elapsed();
                    }
                    done += batch as u64;
                }
                // Criterion refuses a zero: a sample whose checks took longer than its requests
                // (ES384's noise can exceed the difference) counts as 1 ns.
                layer.saturating_sub(signature).max(Duration::from_nanos(1))
            })
        });
        let service = service(&build(tower_jwt_auth::DEFAULT_TOKEN_CACHE_BYTES));
        let repeated = &headers[0];
        group.bench_function("c_layer_hit", |b| {
            let _runtime = runtime.enter();
            b.iter_batched(
                || request(repeated),
                |request| assert_eq!(through(&service, request), StatusCode::OK),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

/// A key prepared once with aws-lc-rs, and each token split into its signing input and decoded
/// signature: the cryptographic floor of a verification.
struct Floor {
    key: Result<aws_lc_rs::signature::ParsedPublicKey, aws_lc_rs::hmac::Key>,
    split: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Floor {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            Ok(key) => key.verify_sig(message, signature).is_ok(),
            Err(key) => aws_lc_rs::hmac::verify(key, message, signature).is_ok(),
        }
    }
}

fn signature_floor(case: &Case, pool: &[String]) -> Floor {
    use aws_lc_rs::signature;
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let public = |name: &str| {
        let der = DecodingKey::from_ec_pem(&key_file(name))
            .or_else(|_| DecodingKey::from_rsa_pem(&key_file(name)))
            .or_else(|_| DecodingKey::from_ed_pem(&key_file(name)))
            .unwrap();
        der.try_get_as_bytes().unwrap().to_vec()
    };
    let (params, file): (&'static dyn signature::VerificationAlgorithm, _) = match case.alg {
        J::RS256 => (&signature::RSA_PKCS1_2048_8192_SHA256, "rsa-a.pub.pem"),
        J::PS256 => (&signature::RSA_PSS_2048_8192_SHA256, "rsa-a.pub.pem"),
        J::ES256 => (&signature::ECDSA_P256_SHA256_FIXED, "ec-p256.pub.pem"),
        J::ES384 => (&signature::ECDSA_P384_SHA384_FIXED, "ec-p384.pub.pem"),
        _ => (&signature::ED25519, "ed25519.pub.pem"),
    };
    let key = match case.alg {
        J::HS256 => Err(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            SECRET,
        )),
        _ => Ok(signature::ParsedPublicKey::new(params, public(file)).unwrap()),
    };
    let split = pool
        .iter()
        .map(|token| {
            let (input, signature) = token.rsplit_once('.').unwrap();
            (input.as_bytes().to_vec(), b64.decode(signature).unwrap())
        })
        .collect();
    Floor { key, split }
}

/// A loopback JWKS server with one RSA key, for the unknown-kid case.
async fn serve_jwks() -> String {
    let der = DecodingKey::from_rsa_pem(&key_file("rsa-a.pub.pem")).unwrap();
    let public = aws_lc_rs::rsa::PublicKey::from_der(der.try_get_as_bytes().unwrap()).unwrap();
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA", "kid": "known", "alg": "RS256",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    }]})
    .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/jwks", axum::routing::get(async move || jwks.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn bench_unknown_kid(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(serve_jwks());
    let layer = runtime
        .block_on(
            JwtAuthLayer::<BenchClaims>::builder()
                .issuer(
                    Issuer::new(ISSUER)
                        .audience(AUDIENCE)
                        .key(KeySource::jwks_url(url)),
                )
                .refresh_policy(
                    RefreshPolicy::default().unknown_kid_cooldown(Duration::from_secs(3600)),
                )
                .build(),
        )
        .unwrap();
    let encoding = EncodingKey::from_rsa_pem(&key_file("rsa-a.key.pem")).unwrap();
    let headers: Vec<HeaderValue> = (0..1000)
        .map(|n| {
            let mut header = Header::new(J::RS256);
            header.kid = Some(format!("unknown-{n}"));
            bearer(&jsonwebtoken::encode(&header, &claims(n), &encoding).unwrap())
        })
        .collect();
    // The first unknown kid starts the cooldown (one refetch); from then on none may fetch.
    let service = service(&layer);
    // This one waits for the refetch; the ones timed below must not wait.
    let first = runtime.block_on(service.clone().oneshot(request(&headers[0])));
    assert_eq!(first.unwrap().status(), StatusCode::UNAUTHORIZED);
    let _runtime = runtime.enter();
    let fetches = layer.key_sets()[0].fetches;

    let mut group = c.benchmark_group("unknown_kid");
    let mut next = 0;
    group.bench_function("d_layer_cooldown", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % headers.len();
                request(&headers[next])
            },
            |request| assert_eq!(through(&service, request), StatusCode::UNAUTHORIZED),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    assert_eq!(
        layer.key_sets()[0].fetches,
        fetches,
        "a fetch during the cooldown"
    );
}

/// A cache hit with a 1 KiB RS256 token (claims padded with a `scope` list, as a token carrying
/// roles and scopes is): the keyed hash and the exact comparison grow with the token's length.
fn bench_hit_1kib(c: &mut Criterion) {
    #[derive(Serialize, Deserialize)]
    struct Wide {
        #[serde(flatten)]
        base: BenchClaims,
        scope: String,
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let encoding = EncodingKey::from_rsa_pem(&key_file("rsa-a.key.pem")).unwrap();
    let mut scope = String::from("openid");
    let token = loop {
        let claims = Wide {
            base: claims(0),
            scope: scope.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(J::RS256), &claims, &encoding).unwrap();
        if token.len() >= 1024 {
            break token;
        }
        scope.push_str(" orders:read");
    };
    assert!((1024..1040).contains(&token.len()), "{}", token.len());
    let layer = runtime
        .block_on(
            JwtAuthLayer::<BenchClaims>::builder()
                .issuer(
                    Issuer::new(ISSUER).audience(AUDIENCE).key(
                        KeySource::public_key_pem(key_file("rsa-a.pub.pem"))
                            .with_algorithm(Algorithm::RS256),
                    ),
                )
                .build(),
        )
        .unwrap();
    let service = service(&layer);
    let authorization = bearer(&token);
    let _runtime = runtime.enter();
    assert_eq!(through(&service, request(&authorization)), StatusCode::OK);
    let mut group = c.benchmark_group("RS256_1KiB");
    group.bench_function("c_layer_hit", |b| {
        b.iter_batched(
            || request(&authorization),
            |request| assert_eq!(through(&service, request), StatusCode::OK),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_algorithms, bench_hit_1kib, bench_unknown_kid);
criterion_main!(benches);
