//! Token introspection (RFC 7662): opaque tokens (and, optionally, JWTs) are sent to the issuer's
//! introspection endpoint; its answers are cached (16 MiB at most) until the token's `exp`, for
//! at most [`INTROSPECTION_MAX_TTL`], inactive ones for [`INTROSPECTION_NEGATIVE_TTL`], and
//! concurrent introspections of one token share one call.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::OnceCell;
use url::Url;

use crate::error::AuthError;

/// How long an active token's answer is kept at most (it is never kept past the token's `exp`).
pub const INTROSPECTION_MAX_TTL: Duration = Duration::from_secs(300);
/// How long an inactive token's answer is kept.
pub const INTROSPECTION_NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// How many bytes of answers are kept (an answer weighs its JSON text plus 128 bytes), and about
/// how many answers that is.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;
const ESTIMATED_ANSWERS: usize = 10_000;
/// The largest introspection answer read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How long one introspection call may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The `Retry-After` of a `503` when the endpoint fails.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How the layer authenticates to an introspection endpoint (RFC 7662 §2.1 requires it): a
/// client id and secret (RFC 6749 §2.3.1), sent in an `Authorization: Basic` header
/// (`client_secret_basic`) or in the form (`client_secret_post`).
///
/// ```
/// use tower_jwt_auth::{ClientCredentials, Issuer};
///
/// let issuer = Issuer::new("https://auth.example.com/").introspection(
///     "https://auth.example.com/oauth2/introspect",
///     ClientCredentials::basic("orders-api", "s3cr3t"),
/// );
/// # let _ = issuer;
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    client_id: String,
    secret: String,
    method: ClientAuthentication,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuthentication {
    Basic,
    Post,
}

impl ClientCredentials {
    /// `client_secret_basic`: the id and secret, form-encoded, in `Authorization: Basic`.
    pub fn basic(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            secret: secret.into(),
            method: ClientAuthentication::Basic,
        }
    }

    /// `client_secret_post`: `client_id` and `client_secret` in the request's form.
    pub fn post(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            secret: secret.into(),
            method: ClientAuthentication::Post,
        }
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("method", &self.method)
            .finish()
    }
}

/// An issuer's introspection endpoint, as configured.
#[derive(Debug, Clone)]
pub(crate) struct IntrospectionEndpoint {
    pub(crate) url: String,
    pub(crate) credentials: ClientCredentials,
}

/// What the endpoint said about a token, kept until `expires_at`.
#[derive(Clone)]
pub(crate) struct Answer {
    /// The answer's JSON object when the token is active; `None` when it is not.
    pub(crate) active: Option<Arc<str>>,
    /// What the layer read from `active` (its `Verified<T>`), shared by the clones of this answer
    /// so that a cached answer's claims are read once, not on every request. Type-erased: the
    /// introspector does not know the claims type.
    pub(crate) checked: Arc<OnceLock<Box<dyn Any + Send + Sync>>>,
    expires_at: Instant,
}

/// Weighs a cached answer by its size, so that the cache is bounded in bytes.
#[derive(Clone, Copy)]
struct AnswerBytes;

impl quick_cache::Weighter<[u8; 32], Answer> for AnswerBytes {
    fn weight(&self, _: &[u8; 32], answer: &Answer) -> u64 {
        let text = answer.active.as_ref().map_or(0, |text| text.len());
        128 + u64::try_from(text).unwrap_or(u64::MAX)
    }
}

/// One call in progress; every request for the same token waits for its result.
type Call = OnceCell<Result<Answer, AuthError>>;

/// Calls one introspection endpoint, caching and coalescing its answers.
pub(crate) struct Introspector {
    url: Url,
    credentials: ClientCredentials,
    client: reqwest::Client,
    answers: quick_cache::sync::Cache<[u8; 32], Answer, AnswerBytes>,
    /// The calls in progress, by token hash: later requests for the same token wait for them.
    in_flight: Mutex<HashMap<[u8; 32], Arc<Call>>>,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("url", &self.url.as_str())
            .field("credentials", &self.credentials)
            .field("cached", &self.answers.len())
            .finish_non_exhaustive()
    }
}

fn unavailable(reason: impl fmt::Display) -> AuthError {
    tracing::warn!(%reason, "token introspection failed");
    AuthError::IntrospectionUnavailable {
        retry_after: RETRY_AFTER,
    }
}

impl Introspector {
    pub(crate) fn new(url: Url, credentials: ClientCredentials, client: reqwest::Client) -> Self {
        Self {
            url,
            credentials,
            client,
            answers: quick_cache::sync::Cache::with_weighter(
                ESTIMATED_ANSWERS,
                CACHE_BYTES,
                AnswerBytes,
            ),
            in_flight: Mutex::default(),
        }
    }

    /// The endpoint's answer for `token`: cached, or from the call already in progress for it,
    /// or from a new call.
    pub(crate) async fn introspect(&self, token: &str) -> Result<Answer, AuthError> {
        let key: [u8; 32] = {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
            let mut key = [0; 32];
            key.copy_from_slice(digest.as_ref());
            key
        };
        if let Some(answer) = self.answers.get(&key)
            && answer.expires_at > Instant::now()
        {
            return Ok(answer);
        }
        let cell = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(in_flight.entry(key).or_default())
        };
        let answer = cell
            .get_or_init(|| async {
                let answer = self.call(token).await;
                // Kept before the call leaves `in_flight`, so that a request arriving in between
                // finds it.
                if let Ok(answer) = &answer {
                    self.answers.insert(key, answer.clone());
                }
                answer
            })
            .await
            .clone();
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if in_flight
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            in_flight.remove(&key);
        }
        answer
    }

    async fn call(&self, token: &str) -> Result<Answer, AuthError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(TIMEOUT)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        // The serializer is not `Send`: the body is finished before any await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            form.append_pair("token_type_hint", "access_token");
            if self.credentials.method == ClientAuthentication::Post {
                form.append_pair("client_id", &self.credentials.client_id);
                form.append_pair("client_secret", &self.credentials.secret);
            }
            form.finish()
        };
        if self.credentials.method == ClientAuthentication::Basic {
            request = request.header(AUTHORIZATION, self.basic());
        }
        let request = request.body(body);
        let mut response = request
            .send()
            .await
            .map_err(|error| unavailable(format_args!("request failed: {error}")))?;
        if response.status() != http::StatusCode::OK {
            return Err(unavailable(format_args!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| unavailable(format_args!("reading the answer failed: {error}")))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(unavailable("answer larger than 64 KiB"));
            }
            body.extend_from_slice(&chunk);
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|_| unavailable("answer is not a JSON object"))?;
        let now = Instant::now();
        match object.get("active") {
            Some(serde_json::Value::Bool(true)) => {
                let ttl = match object.get("exp").and_then(serde_json::Value::as_i64) {
                    Some(exp) => {
                        let left =
                            exp.saturating_sub(crate::clock::unix_seconds(SystemTime::now()));
                        Duration::from_secs(u64::try_from(left).unwrap_or(0))
                            .min(INTROSPECTION_MAX_TTL)
                    }
                    None => INTROSPECTION_MAX_TTL,
                };
                let text =
                    String::from_utf8(body).map_err(|_| unavailable("answer is not UTF-8"))?;
                Ok(Answer {
                    active: Some(Arc::from(text)),
                    checked: Arc::default(),
                    expires_at: now + ttl,
                })
            }
            Some(serde_json::Value::Bool(false)) => Ok(Answer {
                active: None,
                checked: Arc::default(),
                expires_at: now + INTROSPECTION_NEGATIVE_TTL,
            }),
            _ => Err(unavailable("answer has no boolean `active`")),
        }
    }
}

impl Introspector {
    /// `Authorization: Basic` for `client_secret_basic`: RFC 6749 §2.3.1 form-encodes the id and
    /// the secret before the Basic encoding.
    fn basic(&self) -> String {
        let encode =
            |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let pair = format!(
            "{}:{}",
            encode(&self.credentials.client_id),
            encode(&self.credentials.secret)
        );
        let basic =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pair.as_bytes());
        format!("Basic {basic}")
    }
}

/// Whether `token` has the shape of a compact JWS (three dot-separated parts); any other token is
/// opaque.
pub(crate) fn looks_like_jws(token: &[u8]) -> bool {
    token.iter().filter(|byte| **byte == b'.').count() == 2
}
