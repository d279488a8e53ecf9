//! The test issuer's introspection endpoint (RFC 7662) and its opaque tokens.

use std::collections::{HashMap, HashSet};

use crate::ClientCredentials;

use super::*;

pub(super) const INTROSPECTION_PATH: &str = "/introspect";

/// The opaque tokens the issuer minted, the tokens it deactivated, and the calls it answered.
#[derive(Default)]
pub(super) struct IntrospectionState {
    tokens: Mutex<HashMap<String, Value>>,
    inactive: Mutex<HashSet<String>>,
    pub(super) requests: AtomicUsize,
}

impl TestIssuer {
    /// The client id the introspection endpoint accepts.
    pub const INTROSPECTION_CLIENT_ID: &'static str = "test-client";
    /// The client secret the introspection endpoint accepts.
    pub const INTROSPECTION_CLIENT_SECRET: &'static str = "test-secret";

    /// The introspection endpoint (RFC 7662), `http://127.0.0.1:PORT/introspect`. It requires
    /// the client [`INTROSPECTION_CLIENT_ID`](Self::INTROSPECTION_CLIENT_ID) and
    /// [`INTROSPECTION_CLIENT_SECRET`](Self::INTROSPECTION_CLIENT_SECRET), by
    /// `client_secret_basic` or `client_secret_post` (else `401`), and answers `active: true`
    /// with the claims for the [opaque tokens](Self::opaque_token) it minted and for JWTs (their
    /// payload, unverified: the layer checks the signature itself), `active: false` for the
    /// [deactivated](Self::deactivate) and unknown ones. [`set_outage`](Self::set_outage) and
    /// [`set_hang`](Self::set_hang) apply to it too.
    pub fn introspection_url(&self) -> String {
        format!("{}{INTROSPECTION_PATH}", self.issuer())
    }

    /// This issuer with its introspection endpoint, authenticated by `client_secret_basic`:
    /// [`issuer_config`](Self::issuer_config) plus [`Issuer::introspection`].
    pub fn introspection_issuer_config(&self) -> Issuer {
        self.issuer_config().introspection(
            self.introspection_url(),
            ClientCredentials::basic(
                Self::INTROSPECTION_CLIENT_ID,
                Self::INTROSPECTION_CLIENT_SECRET,
            ),
        )
    }

    /// A new opaque token (32 random bytes, base64url) whose introspection answer has the
    /// default claims (`iss`, `sub`, `aud`, `iat`, `exp`) with `claims` merged in (an object; a
    /// `null` member removes that claim).
    ///
    /// # Panics
    ///
    /// If `claims` does not serialize to a JSON object (or `null`).
    pub fn opaque_token(&self, claims: impl Serialize) -> String {
        let mut object = self.token_builder().claims(claims).into_claims();
        object.insert("active".to_owned(), Value::Bool(true));
        let token = URL_SAFE_NO_PAD.encode(fastrand::u128(..).to_le_bytes())
            + &URL_SAFE_NO_PAD.encode(fastrand::u128(..).to_le_bytes());
        lock(&self.shared.introspection.tokens).insert(token.clone(), Value::Object(object));
        token
    }

    /// From now on the endpoint reports `token` (opaque or JWT) not active, as after a revocation
    /// at the issuer.
    pub fn deactivate(&self, token: &str) {
        lock(&self.shared.introspection.inactive).insert(token.to_owned());
    }

    /// How many introspection requests the endpoint has received (whatever it answered).
    pub fn introspection_requests(&self) -> usize {
        self.shared.introspection.requests.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers `POST /introspect`.
pub(super) async fn answer(shared: &IssuerCore, request: Request<Incoming>) -> Response<String> {
    if request.method() != Method::POST {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let state = &shared.introspection;
    state.requests.fetch_add(1, Ordering::SeqCst);
    let mut hang = shared.hang.subscribe();
    let _ = hang.wait_for(|hang| !*hang).await;
    if shared.key_ring().outage {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let basic = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|value| base64::engine::general_purpose::STANDARD.decode(value).ok());
    let Some(body) = read_body(request.into_body()).await else {
        return status(StatusCode::BAD_REQUEST);
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let expected = format!(
        "{}:{}",
        TestIssuer::INTROSPECTION_CLIENT_ID,
        TestIssuer::INTROSPECTION_CLIENT_SECRET
    );
    let by_basic = basic.is_some_and(|pair| pair == expected.as_bytes());
    let by_post = form.get("client_id").map(String::as_str)
        == Some(TestIssuer::INTROSPECTION_CLIENT_ID)
        && form.get("client_secret").map(String::as_str)
            == Some(TestIssuer::INTROSPECTION_CLIENT_SECRET);
    if !by_basic && !by_post {
        let mut response = json_response(json!({ "error": "invalid_client" }).to_string());
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let Some(token) = form.get("token") else {
        return status(StatusCode::BAD_REQUEST);
    };
    let inactive = json!({ "active": false });
    if lock(&state.inactive).contains(token) {
        return json_response(inactive.to_string());
    }
    if let Some(claims) = lock(&state.tokens).get(token) {
        return json_response(claims.to_string());
    }
    // A JWT: its payload, as an issuer that minted it would describe it.
    let payload = token
        .split('.')
        .nth(1)
        .filter(|_| token.split('.').count() == 3)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok());
    match payload {
        Some(mut claims) => {
            claims.insert("active".to_owned(), Value::Bool(true));
            json_response(Value::Object(claims).to_string())
        }
        None => json_response(inactive.to_string()),
    }
}

/// The whole request body (at most 64 KiB).
async fn read_body(mut body: Incoming) -> Option<Vec<u8>> {
    use hyper::body::Body as _;
    let mut bytes = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Some(bytes),
            Some(Err(_)) => return None,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                    if bytes.len() > 64 * 1024 {
                        return None;
                    }
                }
            }
        }
    }
}
