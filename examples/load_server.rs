//! The servers and tools of the load benchmark (`benches/load.sh`, figures in BENCHMARKS.md).
//!
//! ```text
//! load_server plain ADDR                 GET /hello without the layer; also serves GET /jwks
//! load_server layer ADDR JWKS_URL        GET /hello behind the layer (RS256, iss and aud checked);
//!                                        TOKEN_CACHE=N sets the cache size in bytes (0: off);
//!                                        REVOKED=N gives it a revocation list of N revoked `jti`s,
//!                                        none of them a `jti` of the `tokens` below
//! load_server floor ADDR                 GET /hello behind the least any verifier must do: split the
//!                                        bearer token, decode its signature and check it with
//!                                        aws-lc-rs and a key prepared once (no header, no claims,
//!                                        no expiry): the ceiling of a miss over HTTP
//! load_server dpop ADDR JWKS_URL         the same with DPoP required (RFC 9449): external URL
//!                                        http://ADDR, proofs accepted DPOP_WINDOW seconds around
//!                                        their `iat` (default 3600, so that proofs signed before
//!                                        the run stay usable), a replay cache of REPLAY_CAPACITY
//!                                        proofs (default 4,000,000)
//! load_server tokens N FILE              writes N distinct RS256 tokens, one per line
//! load_server dpop-client URL SETS N DIR writes DIR/token (one RS256 token bound to a fresh ES256
//!                                        client key) and DIR/proofs-1 … DIR/proofs-SETS, each N
//!                                        distinct proofs (random `jti`) for GET URL with that token
//! load_server jwks FILE                  writes the JWKS of the tokens' key (for a static server)
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
use tower_jwt_auth::dpop::{DpopConfig, DpopPolicy, InMemoryReplayCache};
use tower_jwt_auth::test_util::DpopKey;
use tower_jwt_auth::{Issuer, JwtAuthBuilder, JwtAuthLayer, KeySource, RevocationList};

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
    /// Every token has one, as most issuers' access tokens do, so that a revocation list is
    /// looked up for it.
    jti: String,
    /// The DPoP binding (`jkt`) of a DPoP-bound token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cnf: Option<serde_json::Value>,
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
        jti: jti(1, n),
        cnf: None,
    }
}

/// A UUID-shaped `jti` (36 characters, as most issuers mint them); `set` keeps the tokens' and the
/// revocation list's values apart.
fn jti(set: u32, n: usize) -> String {
    format!("{set:08x}-0000-4000-8000-{n:012x}")
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

/// The tokens' RS256 key, prepared once, for the `floor` server.
fn floor_key() -> Result<aws_lc_rs::signature::ParsedPublicKey, Box<dyn Error>> {
    let der = jsonwebtoken::DecodingKey::from_rsa_pem(&key_file("rsa-a.pub.pem")?)?;
    Ok(aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        der.try_get_as_bytes()?,
    )?)
}

/// The `floor` server's check: `200 hello` when the bearer token's signature verifies over its
/// signing input, `401` otherwise. Nothing else of the token is read.
fn floor_check(
    key: &aws_lc_rs::signature::ParsedPublicKey,
    headers: &http::HeaderMap,
) -> (http::StatusCode, &'static str) {
    let verified = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .and_then(|token| {
            let dot = token.iter().rposition(|&byte| byte == b'.')?;
            let signature = URL_SAFE_NO_PAD.decode(&token[dot + 1..]).ok()?;
            key.verify_sig(&token[..dot], &signature).ok()
        });
    match verified {
        Some(()) => (http::StatusCode::OK, "hello"),
        None => (http::StatusCode::UNAUTHORIZED, "unauthorized"),
    }
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

/// Writes `sign(0)` … `sign(n - 1)` to `path`, one per line, signed on every core.
fn write_signed<E: Send>(
    n: usize,
    path: &str,
    sign: impl Fn(usize) -> Result<String, E> + Sync,
) -> Result<(), Box<dyn Error>>
where
    Box<dyn Error>: From<E>,
{
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunks: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let sign = &sign;
                scope.spawn(move || (t..n).step_by(threads).map(sign).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().map_err(|_| "a signing thread panicked"))
            .collect::<Result<Vec<Result<Vec<_>, E>>, _>>()
    })?
    .into_iter()
    .collect::<Result<_, _>>()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for line in chunks.iter().flatten() {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    eprintln!("wrote {n} lines to {path}");
    Ok(())
}

/// The load issuer's signing key and token header (RS256, `kid`).
fn signing_key() -> Result<(EncodingKey, Header), Box<dyn Error>> {
    let key = EncodingKey::from_rsa_pem(&key_file("rsa-a.key.pem")?)?;
    let mut header = Header::new(J::RS256);
    header.kid = Some(KID.into());
    Ok((key, header))
}

/// Signs `n` distinct RS256 tokens on every core.
fn write_tokens(n: usize, path: &str) -> Result<(), Box<dyn Error>> {
    let (key, header) = signing_key()?;
    write_signed(n, path, |i| jsonwebtoken::encode(&header, &claims(i), &key))
}

/// One RS256 token bound to a fresh ES256 client key, and `sets` files of `n` distinct proofs of
/// that key for `GET url` with that token: a file per round of the load script, so that no proof
/// is ever sent twice (the replay cache refuses a proof's `jti` the second time).
fn write_dpop_client(url: &str, sets: usize, n: usize, dir: &str) -> Result<(), Box<dyn Error>> {
    let client = DpopKey::generate();
    let (key, header) = signing_key()?;
    let mut bound = claims(0);
    bound.sub = "dpop-client".into();
    bound.jti = jti(2, 0);
    bound.cnf = Some(serde_json::json!({ "jkt": client.thumbprint() }));
    let token = jsonwebtoken::encode(&header, &bound, &key)?;
    std::fs::write(format!("{dir}/token"), &token)?;
    for set in 1..=sets {
        write_signed(n, &format!("{dir}/proofs-{set}"), |_| {
            Ok::<_, std::convert::Infallible>(client.proof("GET", url).access_token(&token).sign())
        })?;
    }
    Ok(())
}

/// A number from the environment variable `name`, or `default` when it is not set.
fn env_number<N: std::str::FromStr>(name: &str, default: N) -> Result<N, Box<dyn Error>>
where
    N::Err: Error + 'static,
{
    match std::env::var(name) {
        Ok(value) => Ok(value.parse().map_err(|err| format!("{name}: {err}"))?),
        Err(_) => Ok(default),
    }
}

/// The builder of the `layer` and `dpop` servers: keys from `jwks_url`, cache size from
/// `TOKEN_CACHE`, and a revocation list of `REVOKED` entries if set.
async fn server_builder(
    issuer: Issuer,
    jwks_url: &str,
) -> Result<JwtAuthBuilder<LoadClaims>, Box<dyn Error>> {
    let mut builder = JwtAuthLayer::builder()
        .issuer(issuer.key(KeySource::jwks_url(jwks_url)))
        .token_cache_bytes(cache_capacity()?);
    let revoked: usize = env_number("REVOKED", 0)?;
    if revoked > 0 {
        let list = RevocationList::builder().max_entries(revoked).memory();
        let exp = now() + 3 * 3600;
        for i in 0..revoked {
            list.revoke_token(&jti(0xdead, i), exp).await?;
        }
        eprintln!("revocation list of {} entries", list.status().entries);
        builder = builder.revocation(list);
    }
    Ok(builder)
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
    env_number("TOKEN_CACHE", tower_jwt_auth::DEFAULT_TOKEN_CACHE_BYTES)
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
            let issuer = Issuer::new(ISSUER).audience(AUDIENCE);
            let layer = server_builder(issuer, jwks_url).await?.build().await?;
            // The same route as `plain`: the layer still decodes every token's claims into
            // `LoadClaims` and puts them in the request, as it would for any handler.
            let app = Router::new().route("/hello", get(hello)).layer(layer);
            serve(addr, app).await
        }
        ["floor", addr] => {
            let key = std::sync::Arc::new(floor_key()?);
            let app = Router::new().route(
                "/hello",
                // The request itself, not the `HeaderMap` extractor, which clones the headers.
                get(async move |request: axum::extract::Request| {
                    floor_check(&key, request.headers())
                }),
            );
            serve(addr, app).await
        }
        ["dpop", addr, jwks_url] => {
            let issuer = Issuer::new(ISSUER)
                .audience(AUDIENCE)
                .dpop(DpopPolicy::Required);
            let window = std::time::Duration::from_secs(env_number("DPOP_WINDOW", 3600)?);
            let replay = InMemoryReplayCache::new(env_number("REPLAY_CAPACITY", 4_000_000)?);
            let layer = server_builder(issuer, jwks_url)
                .await?
                .external_url(format!("http://{addr}"))
                .dpop(
                    DpopConfig::default()
                        .proof_window(window)
                        .replay_cache(replay),
                )
                .build()
                .await?;
            let app = Router::new().route("/hello", get(hello)).layer(layer);
            serve(addr, app).await
        }
        ["tokens", n, path] => write_tokens(n.parse()?, path),
        ["dpop-client", url, sets, n, dir] => write_dpop_client(url, sets.parse()?, n.parse()?, dir),
        ["jwks", path] => Ok(std::fs::write(path, jwks()?)?),
        ["memory", n, capacity] => memory(n.parse()?, capacity.parse()?).await,
        ["admission", hot, one_off, bytes] => {
            admission(hot.parse()?, one_off.parse()?, bytes.parse()?).await
        }
        ["profile", n] => profile(n.parse()?).await,
        ["profile-miss", path, n] => profile_miss(path, n.parse()?).await,
        _ => Err("usage: load_server plain ADDR | layer ADDR JWKS_URL | floor ADDR | dpop ADDR JWKS_URL | tokens N FILE | dpop-client URL SETS N DIR | jwks FILE | memory N CACHE_BYTES | admission HOT ONE_OFF BYTES | profile N | profile-miss FILE N".into()),
    }
}
