//! Requests through the layer in a loop of their own, for instruction counts and cache
//! simulation under callgrind (BENCHMARKS.md, section 1):
//!
//! ```sh
//! cargo build --release --example request_cost
//! valgrind --tool=callgrind --toggle-collect='*request_loop*' \
//!     target/release/examples/request_cost HS256 miss 2000     # Ir / 2000 = per request
//! valgrind --tool=callgrind --cache-sim=yes --toggle-collect='*signature_loop*' \
//!     target/release/examples/request_cost ES256 floor 1000    # the bare signature checks
//! ```
//!
//! `ALG` is `HS256`, `RS256` or `ES256`; the mode is `miss` (N distinct tokens, each once),
//! `hit` (one token N times) or `floor` (aws-lc-rs checking the N tokens' signatures with a key
//! prepared once, nothing else). The tokens are signed before the loop, outside what the toggle
//! collects. Each loop also prints its wall time per request.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future as _;
use std::task::{Context, Poll, Waker};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm as J, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tower::{Layer as _, Service, ServiceExt as _};
use tower_jwt_auth::{Algorithm, Issuer, JwtAuthLayer, KeySource};

const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "bench";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The claims of `benches/verify.rs`.
#[derive(Debug, Serialize, Deserialize)]
struct BenchClaims {
    iss: String,
    aud: String,
    sub: String,
    jti: String,
    exp: i64,
    iat: i64,
}

fn key_file(name: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    Ok(std::fs::read(&path).map_err(|err| format!("{path}: {err}"))?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [alg, mode, n] = &args[..] else {
        return Err("usage: request_cost HS256|RS256|ES256 miss|hit|floor N".into());
    };
    let n: usize = n.parse()?;
    let (alg, encoding, source, public) = match alg.as_str() {
        "HS256" => (
            J::HS256,
            EncodingKey::from_secret(SECRET),
            KeySource::shared_secret(SECRET).with_algorithm(Algorithm::HS256),
            None,
        ),
        "RS256" => (
            J::RS256,
            EncodingKey::from_rsa_pem(&key_file("rsa-a.key.pem")?)?,
            KeySource::public_key_pem(key_file("rsa-a.pub.pem")?).with_algorithm(Algorithm::RS256),
            Some(DecodingKey::from_rsa_pem(&key_file("rsa-a.pub.pem")?)?),
        ),
        "ES256" => (
            J::ES256,
            EncodingKey::from_ec_pem(&key_file("ec-p256.key.pem")?)?,
            KeySource::public_key_pem(key_file("ec-p256.pub.pem")?)
                .with_algorithm(Algorithm::ES256),
            Some(DecodingKey::from_ec_pem(&key_file("ec-p256.pub.pem")?)?),
        ),
        other => return Err(format!("unknown algorithm {other}").into()),
    };
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let tokens = (0..n)
        .map(|i| {
            let claims = BenchClaims {
                iss: ISSUER.into(),
                aud: AUDIENCE.into(),
                sub: format!("user-{i}"),
                jti: format!("{i:016x}"),
                exp: now + 3600,
                iat: now,
            };
            jsonwebtoken::encode(&Header::new(alg), &claims, &encoding)
        })
        .collect::<Result<Vec<_>, _>>()?;

    if mode == "floor" {
        let params: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match alg {
            J::RS256 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            J::ES256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            _ => return Err("the floor is measured for RS256 and ES256".into()),
        };
        let der = public.ok_or("no public key")?;
        let key = aws_lc_rs::signature::ParsedPublicKey::new(params, der.try_get_as_bytes()?)?;
        let split = tokens
            .iter()
            .map(|token| {
                let (input, signature) = token.rsplit_once('.').ok_or("not a JWS")?;
                Ok((
                    input.as_bytes().to_vec(),
                    URL_SAFE_NO_PAD.decode(signature)?,
                ))
            })
            .collect::<Result<Vec<_>, Box<dyn Error>>>()?;
        signature_loop(&key, &split)?;
        return Ok(());
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let layer = runtime.block_on(
        JwtAuthLayer::<BenchClaims>::builder()
            .issuer(Issuer::new(ISSUER).audience(AUDIENCE).key(source))
            // The cache size of the bench's miss case.
            .token_cache_bytes(250 * 1024)
            .build(),
    )?;
    let service = layer.layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let requests = (0..n)
        .map(|i| {
            let token = if mode == "hit" {
                &tokens[0]
            } else {
                &tokens[i]
            };
            let authorization = HeaderValue::try_from(format!("Bearer {token}"))?;
            Ok(Request::get("/")
                .header(http::header::AUTHORIZATION, authorization)
                .body(())?)
        })
        .collect::<Result<Vec<_>, Box<dyn Error>>>()?;
    let _runtime = runtime.enter();
    request_loop(&service, requests)
}

/// Sends each request through `service`, polling its response future once (the layer decides
/// without waiting when the keys are prepared).
#[inline(never)]
fn request_loop<S, B>(service: &S, requests: Vec<Request<()>>) -> Result<(), Box<dyn Error>>
where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let count = requests.len().max(1);
    let start = Instant::now();
    let mut context = Context::from_waker(Waker::noop());
    for request in requests {
        let future = std::pin::pin!(service.clone().oneshot(request));
        match future.poll(&mut context) {
            Poll::Ready(Ok(response)) if response.status() == StatusCode::OK => {}
            Poll::Ready(other) => {
                return Err(format!("refused: {:?}", other.map(|r| r.status())).into());
            }
            Poll::Pending => return Err("the layer waited".into()),
        }
    }
    eprintln!(
        "{:.2?} per request",
        start.elapsed() / u32::try_from(count)?
    );
    Ok(())
}

/// Checks each signature with `key`.
#[inline(never)]
fn signature_loop(
    key: &aws_lc_rs::signature::ParsedPublicKey,
    split: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    for (input, signature) in split {
        key.verify_sig(input, signature)
            .map_err(|_| "a signature did not verify")?;
    }
    eprintln!(
        "{:.2?} per check",
        start.elapsed() / u32::try_from(split.len().max(1))?
    );
    Ok(())
}
