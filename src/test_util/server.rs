//! The issuer's keys and its HTTP server (discovery and JWKS).

use super::*;

/// What the server and the `TestIssuer` share.
pub(super) struct IssuerCore {
    pub(super) issuer: String,
    pub(super) cache_control: Option<HeaderValue>,
    pub(super) key_ring: Mutex<KeyRing>,
    pub(super) jwks_requests: AtomicUsize,
    pub(super) discovery_requests: AtomicUsize,
    /// While `true`, requests wait.
    pub(super) hang: watch::Sender<bool>,
    pub(super) introspection: super::introspection::IntrospectionState,
}

impl IssuerCore {
    pub(super) fn key_ring(&self) -> MutexGuard<'_, KeyRing> {
        self.key_ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) struct KeyRing {
    /// Every key ever generated, oldest first; the last one is current.
    pub(super) keys: Vec<TestKey>,
    /// Changes with the published set: the `ETag`.
    pub(super) version: u64,
    pub(super) outage: bool,
}

impl KeyRing {
    pub(super) fn current(&self) -> &TestKey {
        // `keys` starts with one key and only grows.
        &self.keys[self.keys.len() - 1]
    }

    pub(super) fn published(&self) -> impl Iterator<Item = &TestKey> {
        self.keys.iter().filter(|key| key.published)
    }

    pub(super) fn jwks(&self) -> Value {
        json!({ "keys": self.published().map(|key| key.jwk.clone()).collect::<Vec<_>>() })
    }
}

pub(super) struct TestKey {
    pub(super) kid: String,
    pub(super) kind: TestKeyKind,
    /// The private key, as `jsonwebtoken` mints with it (what users of that crate know).
    pub(super) signer: EncodingKey,
    /// The public JWK.
    pub(super) jwk: Value,
    pub(super) published: bool,
}

impl TestKey {
    /// A fresh key; its `kid` is the algorithm and `serial`, e.g. `es256-1`.
    pub(super) fn generate(kind: TestKeyKind, serial: usize) -> Result<Self, TestIssuerError> {
        let failed = |_: Unspecified| TestIssuerError::KeyGeneration(kind);
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let kid = format!("{}-{serial}", kind.alg_name().to_ascii_lowercase());
        let (signer, mut jwk) = match kind {
            TestKeyKind::Rsa => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(failed)?;
                let public = pair.public_key();
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                });
                let der: Pkcs8V1Der<'_> = pair.as_der().map_err(failed)?;
                let pem = pkcs8_pem(der.as_ref());
                let signer = EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| TestIssuerError::KeyGeneration(kind))?;
                (signer, jwk)
            }
            TestKeyKind::EcP256 => {
                let pair =
                    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?;
                // An uncompressed point: 0x04, x, y.
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(TestIssuerError::KeyGeneration(kind));
                }
                let jwk = json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64(&point[1..33]),
                    "y": b64(&point[33..]),
                });
                let der = pair.to_pkcs8v1().map_err(failed)?;
                (EncodingKey::from_ec_der(der.as_ref()), jwk)
            }
            TestKeyKind::Ed25519 => {
                let pair = Ed25519KeyPair::generate().map_err(failed)?;
                let jwk = json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": b64(pair.public_key().as_ref()),
                });
                let der = pair.to_pkcs8().map_err(failed)?;
                (EncodingKey::from_ed_der(der.as_ref()), jwk)
            }
        };
        jwk["kid"] = Value::from(kid.as_str());
        jwk["alg"] = Value::from(kind.alg_name());
        jwk["use"] = Value::from("sig");
        Ok(Self {
            kid,
            kind,
            signer,
            jwk,
            published: true,
        })
    }
}

/// A PKCS#8 private key as PEM text, the form `jsonwebtoken` reads RSA keys from.
fn pkcs8_pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII.
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// Accepts connections until the task is aborted; the connections live in a `JoinSet` owned by
/// this future, so aborting it closes them too.
pub(super) async fn serve(listener: TcpListener, shared: Arc<IssuerCore>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(answer(&shared, request).await) }
                    });
                    // A connection error (the client went away) ends only that connection.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

pub(super) async fn answer(shared: &IssuerCore, request: Request<Incoming>) -> Response<String> {
    let path = request.uri().path();
    if path == super::introspection::INTROSPECTION_PATH {
        return super::introspection::answer(shared, request).await;
    }
    let counter = match path {
        JWKS_PATH => &shared.jwks_requests,
        DISCOVERY_PATH => &shared.discovery_requests,
        _ => return status(StatusCode::NOT_FOUND),
    };
    if request.method() != Method::GET {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    counter.fetch_add(1, Ordering::SeqCst);
    let mut hang = shared.hang.subscribe();
    let _ = hang.wait_for(|hang| !*hang).await;

    let state = shared.key_ring();
    if state.outage {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    if path == DISCOVERY_PATH {
        let algorithms: Vec<&str> = state.published().map(|key| key.kind.alg_name()).collect();
        let document = json!({
            "issuer": shared.issuer,
            "jwks_uri": format!("{}{JWKS_PATH}", shared.issuer),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms,
        });
        return json_response(document.to_string());
    }
    let etag = HeaderValue::from_str(&format!("\"v{}\"", state.version))
        .unwrap_or_else(|_| HeaderValue::from_static("\"v\""));
    let mut response = if request.headers().get(header::IF_NONE_MATCH) == Some(&etag) {
        status(StatusCode::NOT_MODIFIED)
    } else {
        json_response(state.jwks().to_string())
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    if let Some(cache_control) = &shared.cache_control {
        headers.insert(header::CACHE_CONTROL, cache_control.clone());
    }
    response
}

pub(super) fn status(status: StatusCode) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = status;
    response
}

pub(super) fn json_response(body: String) -> Response<String> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn unix_now() -> i64 {
    crate::clock::unix_seconds(SystemTime::now())
}

pub(super) fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
