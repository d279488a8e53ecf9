//! Why a request was rejected, and why a layer could not be built.

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;

/// Why the layer rejected a request.
///
/// One variant per cause, so that a custom [`RejectionResponse`](crate::RejectionResponse) can map
/// each to whatever response it wants (problem details, a gRPC status …). The default mapping
/// follows RFC 6750 §3; see [`AuthError::status`], [`AuthError::error_code`] and
/// [`AuthError::description`].
///
/// The `Display` text names the cause for operators; it never contains the token or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no token (and the layer is not in optional mode).
    #[error("no bearer token in the request")]
    MissingToken,
    /// The `Authorization` header is not `Bearer <one b64token>`.
    #[error("malformed authorization header")]
    MalformedAuthorizationHeader,
    /// The token came in more than one place (two `Authorization` headers, or a header and a
    /// cookie …).
    #[error("more than one token in the request")]
    MultipleTokens,
    /// The token is longer than the configured maximum; it was not decoded.
    #[error("token longer than the configured maximum")]
    TokenTooLarge,
    /// The token is not a well-formed compact JWS (parts, base64url, JSON, member types).
    #[error("malformed token: {0}")]
    MalformedToken(&'static str),
    /// The token is a JWE (five parts) or a nested JWT (`cty: JWT`), which this crate does not accept.
    #[error("encrypted or nested tokens are not accepted")]
    UnsupportedTokenFormat,
    /// The token is unsecured (`alg: none`).
    #[error("unsecured token (alg none)")]
    UnsecuredToken,
    /// The header's `alg` is not one this crate implements.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The `alg` is not in the issuer's allow-list.
    #[error("algorithm not allowed for this issuer")]
    AlgorithmNotAllowed,
    /// The header's `crit` names an extension this crate does not understand (RFC 7515 §4.1.11),
    /// or the token uses the unencoded payload option (`b64: false`).
    #[error("unsupported critical header parameter")]
    UnsupportedCriticalHeader,
    /// The header's `typ` is not the required one (e.g. `at+jwt`).
    #[error("token type not accepted")]
    WrongTokenType,
    /// No key of the issuer fits the token's `kid` and `alg`.
    #[error("no key for this token")]
    UnknownKey,
    /// A key has the token's `kid`, but it is pinned to another algorithm (or another key type).
    #[error("algorithm does not match the key")]
    KeyAlgorithmMismatch,
    /// The signature does not verify with the selected key.
    #[error("signature invalid")]
    InvalidSignature,
    /// The `iss` claim is missing or not a configured issuer.
    #[error("issuer not allowed")]
    IssuerNotAllowed,
    /// The `aud` claim is missing or names none of the configured audiences.
    #[error("audience not allowed")]
    AudienceNotAllowed,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iat` is older than the configured maximum token age.
    #[error("token too old")]
    TooOld,
    /// A required claim is absent.
    #[error("missing required claim `{0}`")]
    MissingClaim(Cow<'static, str>),
    /// A claim has the wrong type (e.g. `exp` as a string) or the payload does not deserialize into
    /// the claims type.
    #[error("invalid claim `{0}`")]
    InvalidClaim(Cow<'static, str>),
    /// A time claim (`exp`, `nbf`, `iat`) is a number outside years 0001 to 9999, or not a
    /// number of seconds an `i64` holds (`2^64`, `1e300`): refused, never read as "never expires".
    #[error("{0} out of range")]
    ClaimOutOfRange(&'static str),
    /// A user validator rejected the claims.
    #[error("claims rejected: {0}")]
    ClaimsRejected(Cow<'static, str>),
    /// The claims lack a scope the route requires.
    #[error("insufficient scope")]
    InsufficientScope {
        /// The scopes the route requires, space-separated, as sent in `WWW-Authenticate`.
        required: Cow<'static, str>,
    },
    /// An [`Authorize`](crate::Authorize) layer found no verified token: no
    /// [`JwtAuthLayer`](crate::JwtAuthLayer) ran before it. A server bug, answered with `500`.
    #[error("authorization without a JwtAuthLayer before it")]
    AuthorizationWithoutAuthentication,
    /// The token is on the layer's [`RevocationList`](crate::RevocationList): by its `jti`, or
    /// by its `sub` with an `iat` before the subject's revocation.
    #[error("token revoked")]
    Revoked,
    /// The layer's Redis-backed [`RevocationList`](crate::RevocationList) could not be confirmed
    /// current for longer than its maximum staleness, and it fails closed. The token may be fine.
    #[error("revocation list unavailable")]
    RevocationUnavailable {
        /// When a client may retry.
        retry_after: Duration,
    },
    /// The issuer's introspection endpoint (RFC 7662) reported the token not active: unknown,
    /// expired or revoked at the issuer.
    #[error("token not active")]
    InactiveToken,
    /// The issuer's introspection endpoint could not be reached, refused the client's credentials
    /// or gave no usable answer. The token may be fine.
    #[error("token introspection unavailable")]
    IntrospectionUnavailable {
        /// When a client may retry.
        retry_after: Duration,
    },
    /// No usable key set exists for the issuer (keys not loaded yet, or stale past the allowed
    /// maximum). The token may be fine; the server can't tell.
    #[error("signing keys unavailable")]
    KeysUnavailable {
        /// When a client may retry.
        retry_after: Duration,
    },
    /// The DPoP proof (RFC 9449 §4.3) is missing, malformed, signed badly, made for another
    /// request, outside the time window, replayed, or made with a key the token is not bound to.
    /// Answered `401 invalid_dpop_proof`.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(&'static str),
    /// The DPoP proof lacks the server's current nonce (RFC 9449 §9): `401 use_dpop_nonce`, with
    /// the nonce to use in the `DPoP-Nonce` response header.
    #[error("DPoP proof needs the server nonce")]
    UseDpopNonce {
        /// The nonce the client must put in its next proof.
        nonce: std::sync::Arc<str>,
    },
    /// The token's sender constraint is not met: a DPoP-bound token (`cnf.jkt`) sent as
    /// `Bearer`, a plain bearer token where DPoP is required, an unbound token sent as `DPoP`, or
    /// a certificate-bound token (`cnf.x5t#S256`, RFC 8705) without the matching client
    /// certificate. Answered `401 invalid_token`.
    #[error("token binding: {0}")]
    TokenBinding(&'static str),
}

impl AuthError {
    /// The HTTP status RFC 6750 §3 gives this error: `400`, `401`, `403` or `503`.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::KeysUnavailable { .. }
            | Self::RevocationUnavailable { .. }
            | Self::IntrospectionUnavailable { .. } => {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            Self::AuthorizationWithoutAuthentication => {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            _ => {}
        }
        match self.error_code() {
            Some(ErrorCode::InvalidRequest) => StatusCode::BAD_REQUEST,
            Some(ErrorCode::InsufficientScope) => StatusCode::FORBIDDEN,
            Some(
                ErrorCode::InvalidToken | ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce,
            )
            | None => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `error` code, or `None` when the request had no token (§3.1: no code then)
    /// or the server, not the token, is at fault.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::MissingToken
            | Self::KeysUnavailable { .. }
            | Self::RevocationUnavailable { .. }
            | Self::IntrospectionUnavailable { .. }
            | Self::AuthorizationWithoutAuthentication => None,
            Self::MalformedAuthorizationHeader | Self::MultipleTokens => {
                Some(ErrorCode::InvalidRequest)
            }
            Self::InsufficientScope { .. } => Some(ErrorCode::InsufficientScope),
            Self::InvalidDpopProof(_) => Some(ErrorCode::InvalidDpopProof),
            Self::UseDpopNonce { .. } => Some(ErrorCode::UseDpopNonce),
            _ => Some(ErrorCode::InvalidToken),
        }
    }

    /// A short description that is safe to send to the client as `error_description`: it names
    /// the cause and never echoes the token, key material or internal addresses.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            Self::MalformedToken(_) => Cow::Borrowed("malformed token"),
            Self::MissingClaim(name) => Cow::Owned(format!("missing required claim {name}")),
            Self::InvalidClaim(name) => Cow::Owned(format!("invalid claim {name}")),
            Self::ClaimsRejected(reason) => reason.clone(),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// When a client may retry, for the `503` answers (`Retry-After`): unusable keys, an
    /// unavailable revocation list or introspection endpoint.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::KeysUnavailable { retry_after }
            | Self::RevocationUnavailable { retry_after }
            | Self::IntrospectionUnavailable { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// A stable, low-cardinality name for the cause, fit for a metrics label or a log field.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::MalformedAuthorizationHeader => "malformed_authorization_header",
            Self::MultipleTokens => "multiple_tokens",
            Self::TokenTooLarge => "token_too_large",
            Self::MalformedToken(_) => "malformed_token",
            Self::UnsupportedTokenFormat => "unsupported_token_format",
            Self::UnsecuredToken => "unsecured_token",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCriticalHeader => "unsupported_critical_header",
            Self::WrongTokenType => "wrong_token_type",
            Self::UnknownKey => "unknown_key",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::InvalidSignature => "invalid_signature",
            Self::IssuerNotAllowed => "issuer_not_allowed",
            Self::AudienceNotAllowed => "audience_not_allowed",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::TooOld => "too_old",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::ClaimOutOfRange(_) => "claim_out_of_range",
            Self::ClaimsRejected(_) => "claims_rejected",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::KeysUnavailable { .. } => "keys_unavailable",
            Self::Revoked => "revoked",
            Self::RevocationUnavailable { .. } => "revocation_unavailable",
            Self::InactiveToken => "inactive_token",
            Self::IntrospectionUnavailable { .. } => "introspection_unavailable",
            Self::AuthorizationWithoutAuthentication => "authorization_without_authentication",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce { .. } => "use_dpop_nonce",
            Self::TokenBinding(_) => "token_binding",
        }
    }
}

/// The `error` codes of RFC 6750 §3.1, and those RFC 9449 §7 adds for DPoP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`: the request is malformed.
    InvalidRequest,
    /// `invalid_token`: the token is expired, revoked, malformed or invalid for other reasons.
    InvalidToken,
    /// `insufficient_scope`: the token lacks a privilege the resource requires.
    InsufficientScope,
    /// `invalid_dpop_proof` (RFC 9449 §7.1): the DPoP proof is missing or invalid.
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449 §9): the proof must carry the server's nonce.
    UseDpopNonce,
}

impl ErrorCode {
    /// The code as it appears in `WWW-Authenticate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

/// Why a [`JwtAuthLayer`](crate::JwtAuthLayer) could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No issuer was configured.
    #[error("no issuer configured")]
    NoIssuer,
    /// Two issuers share the same `iss`, or an issuer without `iss` check sits beside others.
    #[error("issuer `{0}` is configured twice, or an unchecked issuer is mixed with others")]
    AmbiguousIssuer(String),
    /// An issuer has no key source.
    #[error("issuer `{0}` has no key source")]
    NoKeys(String),
    /// A key source yielded no usable key.
    #[error("key source `{source_name}` has no usable key: {reason}")]
    NoUsableKey {
        /// The source, e.g. a file path or `inline JWKS`.
        source_name: String,
        /// Why nothing could be used.
        reason: String,
    },
    /// A key could not be read (bad PEM, bad JWK, bad JWKS JSON).
    #[error("invalid key in `{source_name}`: {reason}")]
    InvalidKey {
        /// The source, e.g. a file path or `inline JWKS`.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file could not be read.
    #[error("cannot read key file `{path}`: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An algorithm in an allow-list is not usable here (e.g. HMAC without a shared secret).
    #[error("algorithm setting invalid: {0}")]
    Algorithm(String),
    /// A remote key source's URL is not allowed (not `http`/`https`, or plain `http` to a host
    /// that is not loopback without [`allow_insecure_http`](crate::JwtAuthBuilder::allow_insecure_http)).
    #[error("key source URL not allowed: {0}")]
    UrlNotAllowed(String),
    /// An issuer has more than one remote key source (JWKS URL or discovery).
    #[error("issuer `{0}` has more than one remote key source")]
    MultipleRemoteSources(String),
    /// The first fetch of a remote key set failed (and the builder was not told to
    /// [start without keys](crate::JwtAuthBuilder::allow_start_without_keys)).
    #[error("cannot load the keys of issuer `{issuer}`: {error}")]
    KeyFetch {
        /// The issuer whose keys could not be loaded.
        issuer: String,
        /// What went wrong: transport, status, size, or the document itself.
        #[source]
        error: crate::keys::FetchError,
    },
    /// Remote key sources refresh in the background, which needs a Tokio runtime; `build` was
    /// awaited outside of one.
    #[error("remote key sources need a Tokio runtime")]
    NoRuntime,
    /// The built-in HTTP client could not be created.
    #[error("cannot create the HTTP client: {0}")]
    HttpClient(String),
    /// A setting is out of range (e.g. a zero maximum token size).
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// The builder method.
        name: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

/// Why a fetch failed. The text is for operators (logs, [`ConfigError`](crate::ConfigError)),
/// never sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL is not allowed (plain `http` to a non-loopback host without the opt-in, or not
    /// `http`/`https` at all).
    #[error("URL not allowed: {0}")]
    UrlNotAllowed(String),
    /// Connecting, sending, or reading failed, or the timeout passed.
    #[error("request failed: {0}")]
    Transport(String),
    /// The server answered with a status other than 200 (or 304 on revalidation).
    #[error("unexpected status {0}")]
    Status(u16),
    /// The response was redirected to another origin: another scheme, host or port than the URL
    /// asked (the variant's name predates the port and scheme checks).
    #[error("redirected to another origin")]
    CrossHostRedirect,
    /// The body is larger than the configured cap.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not what was expected (not JSON, not a JWKS, no usable key, wrong issuer …).
    #[error("invalid document: {0}")]
    Invalid(String),
}
