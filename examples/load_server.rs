//! The servers and tools of the load benchmark (`benches/load.sh`, figures in BENCHMARKS.md).
//!
//! ```text
//! load_server plain ADDR                 GET /hello without the layer; also serves GET /jwks
//! load_server layer ADDR JWKS_URL        GET /hello behind the layer (RS256, iss and aud checked);
//!                                        TOKEN_CACHE=N sets the cache size in bytes (0: off)
//! load_server tokens N FILE              writes N distinct RS256 tokens, one per line
//! load_server memory N CACHE_BYTES       verifies N distinct tokens in-process (for /usr/bin/time -v)
//! load_server admission HOT ONE_OFF BYTES the hot set's hit rate while ONE_OFF one-off tokens pass
//!                                        (a hot token between every two one-offs), in-process,
//!                                        with a cache of BYTES
//! load_server profile N                  sends N requests with one token through the layer and a
//!                                        no-op service (for valgrind --tool=callgrind)
//! load_server profile-miss FILE N        (TOKEN_CACHE as above) the same with the distinct RS256 tokens of FILE (written by
//!                                        `tokens`), N requests in all (for perf record)
//! ```
//!
//! The keys are the test keys checked in under `tests/keys/`; the issuer is
//! `https://issuer.load.test/` and the audience `load-api`.

use std::error::Error;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm as J, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tower_jwt_auth::{Issuer, JwtAuthLayer, KeySource};

const ISSUER: &str = "https://issuer.load.test/";
const AUDIENCE: &str = "load-api";
const KID: &str = "load-key";

#[derive(Debug, Serialize, Deserialize)]
struct LoadClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
}

fn key_file(name: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    Ok(std::fs::read(&path).map_err(|err| format!("{path}: {err}"))?)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

fn claims(n: usize) -> LoadClaims {
    LoadClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: format!("user-{n}"),
        exp: now() + 3 * 3600,
        iat: now(),
    }
}

/// The JWKS of `tests/keys/rsa-a.pub.pem`, with `kid` and `alg`.
fn jwks() -> Result<String, Box<dyn Error>> {
    let pem = key_file("rsa-a.pub.pem")?;
    let der = jsonwebtoken::DecodingKey::from_rsa_pem(&pem)?;
    let public = aws_lc_rs::rsa::PublicKey::from_der(der.try_get_as_bytes()?)
        .map_err(|_| "rsa-a.pub.pem is not an RSA key")?;
    Ok(serde_json::json!({"keys": [{
        "kty": "RSA", "kid": KID, "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    }]})
    .to_string())
}

async fn hello() -> &'static str {
    "hello"
}

async fn serve(addr: &str, app: Router) -> Result<(), Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Signs `n` distinct RS256 tokens on every core.
fn write_tokens(n: usize, path: &str) -> Result<(), Box<dyn Error>> {
    let key = EncodingKey::from_rsa_pem(&key_file("rsa-a.key.pem")?)?;
    let mut header = Header::new(J::RS256);
    header.kid = Some(KID.into());
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunks: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (key, header) = (&key, &header);
                scope.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| jsonwebtoken::encode(header, &claims(i), key))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().map_err(|_| "a signing thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?
    .into_iter()
    .collect::<Result<_, _>>()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for token in chunks.iter().flatten() {
        writeln!(out, "{token}")?;
    }
    out.flush()?;
    eprintln!("wrote {n} tokens to {path}");
    Ok(())
}

/// A layer trusting `key` for the load issuer and audience, with a cache of `capacity` bytes.
async fn layer_with(
    key: KeySource,
    capacity: u64,
) -> Result<JwtAuthLayer<LoadClaims>, Box<dyn Error>> {
    Ok(JwtAuthLayer::builder()
        .issuer(Issuer::new(ISSUER).audience(AUDIENCE).key(key))
        .token_cache_bytes(capacity)
        .build()
        .await?)
}

/// Verifies `n` distinct HS256 tokens through one layer (HS256 so that minting a million tokens
/// takes seconds; an entry of the cache weighs the same whatever the algorithm).
async fn memory(n: usize, capacity: u64) -> Result<(), Box<dyn Error>> {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let layer = layer_with(KeySource::shared_secret(SECRET), capacity).await?;
    let key = EncodingKey::from_secret(SECRET);
    let header = Header::new(J::HS256);
    for i in 0..n {
        let token = jsonwebtoken::encode(&header, &claims(i), &key)?;
        layer.verify(&token).await?;
    }
    eprintln!("verified {n} distinct tokens with a cache of {capacity}");
    Ok(())
}

/// How much of a hot set of `hot` tokens the cache keeps serving while `one_off` tokens, each
/// seen once, pass (a flood from a scan or a client minting a token per request). A hit is seen
/// as the very claims the cache holds (the same `Arc`) coming back.
async fn admission(hot: usize, one_off: usize, bytes: u64) -> Result<(), Box<dyn Error>> {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let layer = layer_with(KeySource::shared_secret(SECRET), bytes).await?;
    let key = EncodingKey::from_secret(SECRET);
    let header = Header::new(J::HS256);
    let hot_tokens: Vec<String> = (0..hot)
        .map(|i| jsonwebtoken::encode(&header, &claims(i), &key))
        .collect::<Result<_, _>>()?;
    // Warm: each hot token is used twice (admitted on its second sighting), then once more to
    // hold the cached claims.
    let mut cached = Vec::with_capacity(hot);
    for token in &hot_tokens {
        layer.verify(token).await?;
        layer.verify(token).await?;
        cached.push(layer.verify(token).await?.0);
    }
    let (mut hits, mut lookups) = (0usize, 0usize);
    for i in 0..one_off {
        let token = jsonwebtoken::encode(&header, &claims(hot + i), &key)?;
        layer.verify(&token).await?;
        let n = i % hot;
        let (claims, _) = layer.verify(&hot_tokens[n]).await?;
        lookups += 1;
        if std::sync::Arc::ptr_eq(&claims.0, &cached[n].0) {
            hits += 1;
        } else {
            cached[n] = claims;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = 100.0 * hits as f64 / lookups as f64;
    println!(
        "hot set {hot}, one-off tokens {one_off}, cache {bytes} bytes: \
         {hits}/{lookups} hot lookups hit ({rate:.2}%)"
    );
    Ok(())
}

/// The request path of a cache hit, for an instruction profile.
async fn profile(n: usize) -> Result<(), Box<dyn Error>> {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let layer = layer_with(
        KeySource::shared_secret(SECRET),
        tower_jwt_auth::DEFAULT_TOKEN_CACHE_BYTES,
    )
    .await?;
    let token = jsonwebtoken::encode(
        &Header::new(J::HS256),
        &claims(0),
        &EncodingKey::from_secret(SECRET),
    )?;
    let authorization = http::HeaderValue::try_from(format!("Bearer {token}"))?;
    for _ in 0..n {
        send(&layer, &authorization).await?;
    }
    Ok(())
}

/// One request with `authorization` through `layer` in front of a no-op service; it must pass.
async fn send(
    layer: &JwtAuthLayer<LoadClaims>,
    authorization: &http::HeaderValue,
) -> Result<(), Box<dyn Error>> {
    use tower::{Layer as _, ServiceExt as _};
    let service = layer.layer(tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    }));
    let request = http::Request::get("/")
        .header(http::header::AUTHORIZATION, authorization.clone())
        .body(())?;
    let response = service.oneshot(request).await?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("status {}", response.status()).into());
    }
    Ok(())
}

/// The cache size in bytes: `TOKEN_CACHE` if set, else the default.
fn cache_capacity() -> Result<u64, Box<dyn Error>> {
    Ok(match std::env::var("TOKEN_CACHE") {
        Ok(value) => value.parse()?,
        Err(_) => tower_jwt_auth::DEFAULT_TOKEN_CACHE_BYTES,
    })
}

/// The request path of cache misses: the distinct RS256 tokens of `path`, `n` requests in all.
async fn profile_miss(path: &str, n: usize) -> Result<(), Box<dyn Error>> {
    let key = KeySource::public_key_pem(key_file("rsa-a.pub.pem")?).with_kid(KID);
    let layer = layer_with(key, cache_capacity()?).await?;
    let headers = std::fs::read_to_string(path)?
        .lines()
        .map(|token| http::HeaderValue::try_from(format!("Bearer {token}")))
        .collect::<Result<Vec<_>, _>>()?;
    if headers.is_empty() {
        return Err(format!("{path} holds no tokens").into());
    }
    let start = std::time::Instant::now();
    for authorization in headers.iter().cycle().take(n) {
        send(&layer, authorization).await?;
    }
    eprintln!("{:.2?} per request", start.elapsed() / n.max(1) as u32);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["plain", addr] => {
            let jwks = jwks()?;
            let app = Router::new()
                .route("/hello", get(hello))
                .route("/jwks", get(async move || jwks.clone()));
            serve(addr, app).await
        }
        ["layer", addr, jwks_url] => {
            let layer = layer_with(KeySource::jwks_url(jwks_url), cache_capacity()?).await?;
            // The same route as `plain`: the layer still decodes every token's claims into
            // `LoadClaims` and puts them in the request, as it would for any handler.
            let app = Router::new().route("/hello", get(hello)).layer(layer);
            serve(addr, app).await
        }
        ["tokens", n, path] => write_tokens(n.parse()?, path),
        ["memory", n, capacity] => memory(n.parse()?, capacity.parse()?).await,
        ["admission", hot, one_off, bytes] => {
            admission(hot.parse()?, one_off.parse()?, bytes.parse()?).await
        }
        ["profile", n] => profile(n.parse()?).await,
        ["profile-miss", path, n] => profile_miss(path, n.parse()?).await,
        _ => Err("usage: load_server plain ADDR | layer ADDR JWKS_URL | tokens N FILE | memory N CACHE_BYTES | admission HOT ONE_OFF BYTES | profile N | profile-miss FILE N".into()),
    }
}
