//! Verifying a token: issuer, key, algorithm pinning, signature, then the claims.

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::algorithm::AlgorithmSet;
use crate::cache::TokenCache;
use crate::claims::{Audience, Claims, NumericDate, RegisteredClaims, TimeClaims, VerifiedToken};
use crate::error::AuthError;
use crate::json::{DateError, JsonObject, ObjectError};
use crate::jws::{CompactJws, HeaderMemo, SIGNATURE_BUFFER, media_type_matches};
use crate::keys::{KeyLookup, KeySet, KeyStore, PreparedKey};
use crate::telemetry;

/// A user check on the typed claims; `Err` carries a reason safe to show the client.
pub(crate) type Validator<T> = Box<dyn Fn(&T) -> Result<(), Cow<'static, str>> + Send + Sync>;

/// One trusted issuer: its `iss`, audiences, algorithms and keys.
#[derive(Debug)]
pub(crate) struct IssuerPolicy {
    /// The expected `iss`; `None` accepts any (or no) `iss`, allowed only for a sole issuer.
    pub(crate) iss: Option<Box<str>>,
    /// Accepted audiences; empty means `aud` is not checked.
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) keys: KeyStore,
}

/// Claim checks that apply to every issuer.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) leeway_secs: i64,
    pub(crate) require_exp: bool,
    pub(crate) token_type: Option<Box<str>>,
    pub(crate) max_age_secs: Option<i64>,
    pub(crate) required_claims: Box<[Box<str>]>,
}

/// Everything needed to verify a token, prepared once when the layer is built.
pub(crate) struct Verifier<T> {
    pub(crate) issuers: Box<[IssuerPolicy]>,
    /// Longer tokens are refused before any decoding, whichever way they came in.
    pub(crate) max_token_len: usize,
    pub(crate) rules: ClaimRules,
    pub(crate) validators: Box<[Validator<T>]>,
    /// Tokens verified recently; `None` when switched off.
    pub(crate) cache: Option<TokenCache<T>>,
    /// The header of the last token verified, so that the next one with the same bytes (the
    /// usual case) does not decode and parse it again.
    pub(crate) headers: HeaderMemo,
}

impl<T> std::fmt::Debug for Verifier<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.issuers)
            .field("rules", &self.rules)
            .field("validators", &self.validators.len())
            .field("cache", &self.cache)
            .finish()
    }
}

/// The time claims, the scopes and the typed claims of a token that passed the claim checks.
type CheckedClaims<T> = (TimeClaims, Box<[Box<str>]>, T);

/// Which issuer (by index) and which key verified a token.
struct Signer {
    issuer: usize,
    key: Arc<PreparedKey>,
}

/// A token that passed every check.
pub(crate) struct Verified<T> {
    pub(crate) claims: Claims<T>,
    pub(crate) token: VerifiedToken,
}

impl<T> Clone for Verified<T> {
    fn clone(&self) -> Self {
        Self {
            claims: self.claims.clone(),
            token: self.token.clone(),
        }
    }
}

/// Why verification stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The token is rejected.
    Rejected(AuthError),
    /// The fetched keys of the issuer at index `issuer` lack the token's key (or no usable set
    /// exists): a refetch might bring it. Without one, the answer is `error`.
    KeysMayArrive {
        issuer: usize,
        kid: Option<Box<str>>,
        error: AuthError,
    },
}

impl From<AuthError> for Failure {
    fn from(error: AuthError) -> Self {
        Self::Rejected(error)
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> Verifier<T> {
    /// Verifies `token` at time `now` (seconds since the epoch), from the verified-token cache
    /// when it holds the token.
    ///
    /// The token is bytes, not known to be UTF-8: a cache hit is the very bytes of a token that
    /// verified, and a miss checks them as it parses the token.
    pub(crate) fn verify(&self, token: &[u8], now: i64) -> Result<Verified<T>, Failure> {
        if token.len() > self.max_token_len {
            return Err(AuthError::TokenTooLarge.into());
        }
        let Some(cache) = &self.cache else {
            return self.verify_token(token, now).map(|(verified, _)| verified);
        };
        let hash = cache.hash(token);
        if let Some(hit) = cache.get(hash, token) {
            let keys = self.issuers[hit.issuer].keys.snapshot();
            if keys.is_usable() && keys.contains(&hit.key) {
                telemetry::cache_lookup(true);
                self.recheck_parts(&hit.claims, &hit.token, now)?;
                return Ok(Verified {
                    claims: hit.claims.clone(),
                    token: hit.token.clone(),
                });
            }
            // The signing key left the set (or the set is unusable): verify from scratch.
            cache.remove(hash);
        }
        telemetry::cache_lookup(false);
        let (verified, Signer { issuer, key }) = self.verify_token(token, now)?;
        cache.insert(
            hash,
            token,
            verified.claims.clone(),
            verified.token.clone(),
            issuer,
            key,
            now,
        );
        Ok(verified)
    }

    /// Checks a token verified earlier again, at `now`: what depends on the time, or on the
    /// validators' own state.
    pub(crate) fn recheck(&self, verified: &Verified<T>, now: i64) -> Result<(), AuthError> {
        self.recheck_parts(&verified.claims, &verified.token, now)
    }

    fn recheck_parts(
        &self,
        claims: &Claims<T>,
        token: &VerifiedToken,
        now: i64,
    ) -> Result<(), AuthError> {
        self.check_times(token.times(), now)?;
        self.run_validators(&claims.0)
    }

    fn run_validators(&self, claims: &T) -> Result<(), AuthError> {
        for validator in &self.validators {
            validator(claims).map_err(AuthError::ClaimsRejected)?;
        }
        Ok(())
    }

    /// Verifies `token` in full; returns with it the issuer's index and the key that signed it.
    fn verify_token(&self, token: &[u8], now: i64) -> Result<(Verified<T>, Signer), Failure> {
        let mut signature = [std::mem::MaybeUninit::uninit(); SIGNATURE_BUFFER];
        let mut jws = CompactJws::parse_with(token, Some(&self.headers), &mut signature)?;
        let header = &jws.header;
        if let Some(required) = &self.rules.token_type
            && !header
                .typ
                .as_deref()
                .is_some_and(|typ| media_type_matches(typ, required))
        {
            return Err(AuthError::WrongTokenType.into());
        }

        // The decoded bytes become the token's payload text: no copy.
        let payload = String::from_utf8(std::mem::take(&mut jws.payload))
            .map_err(|_| AuthError::MalformedToken("payload is not UTF-8"))?;
        // Scanned, not parsed: the claims type's deserialization below reads every byte.
        let object = JsonObject::scan(&payload).map_err(|err| match err {
            ObjectError::Malformed => AuthError::MalformedToken("payload is not a JSON object"),
            ObjectError::DuplicateMember => {
                AuthError::MalformedToken("payload has a duplicate member")
            }
        })?;

        // The issuer is chosen by the unverified `iss`; only its keys are then used, so a token
        // can't borrow another issuer's trust.
        let iss = object
            .get_str("iss")
            .map_err(|()| AuthError::InvalidClaim(Cow::Borrowed("iss")))?;
        let (issuer_index, issuer) = self.issuer_for(iss.as_deref())?;
        if !issuer.algorithms.contains(header.alg) {
            return Err(AuthError::AlgorithmNotAllowed.into());
        }

        let keys = issuer.keys.snapshot();
        let missing_keys = |error: AuthError| {
            if issuer.keys.may_fetch() {
                Failure::KeysMayArrive {
                    issuer: issuer_index,
                    kid: header.kid.as_deref().map(Box::from),
                    error,
                }
            } else {
                Failure::Rejected(error)
            }
        };
        if !keys.is_usable() {
            return Err(missing_keys(AuthError::KeysUnavailable {
                retry_after: issuer.keys.retry_after(),
            }));
        }
        let signer = match check_signature(&jws, &keys) {
            Ok(key) => Arc::clone(key),
            Err(Some(error)) => return Err(error.into()),
            Err(None) => return Err(missing_keys(AuthError::UnknownKey)),
        };
        self.headers.remember(&jws);

        let (times, scopes, claims) = self.check_claims(issuer, &object, now)?;
        let confirmation = crate::dpop::Confirmation::from_claims(&object)?;
        drop(object);
        let verified = Verified {
            claims: Claims(Arc::new(claims)),
            token: VerifiedToken::with_payload(
                header.alg,
                header.kid.clone(),
                header.typ.clone(),
                times,
                scopes,
                payload,
                confirmation,
            ),
        };
        Ok((
            verified,
            Signer {
                issuer: issuer_index,
                key: signer,
            },
        ))
    }

    /// The claim checks of a token whose issuer is known and trusted (by its signature, or by
    /// its introspection answer): times, audience, required claims, the claims type and the
    /// validators.
    fn check_claims(
        &self,
        issuer: &IssuerPolicy,
        object: &JsonObject<'_>,
        now: i64,
    ) -> Result<CheckedClaims<T>, AuthError> {
        let (times, audience) = check_registered_claims(object)?;
        let scopes = scopes(object)?;
        self.check_times(&times, now)?;
        check_audience(issuer, &audience)?;
        if let Some(missing) = self
            .rules
            .required_claims
            .iter()
            .find(|name| !object.has(name))
        {
            return Err(AuthError::MissingClaim(Cow::Owned(missing.to_string())));
        }
        let claims: T = object.deserialize().map_err(|err| {
            if !object.is_json() {
                return AuthError::MalformedToken("payload is not a JSON object");
            }
            tracing::debug!(error = %err, "token claims do not match the claims type");
            AuthError::InvalidClaim(Cow::Borrowed("claims"))
        })?;
        self.run_validators(&claims)?;
        Ok((times, scopes, claims))
    }

    /// Checks the answer of the introspection endpoint of the issuer at index `issuer` for an
    /// active token (RFC 7662 §2.2) like a token's claims: `iss` (when the answer has one),
    /// `exp`, `nbf`, `iat`, `aud`, the required claims and the validators.
    pub(crate) fn verify_introspected(
        &self,
        issuer: usize,
        answer: &str,
        now: i64,
    ) -> Result<Verified<T>, AuthError> {
        let policy = &self.issuers[issuer];
        let object = JsonObject::parse(answer)
            .map_err(|_| AuthError::MalformedToken("introspection answer is not a JSON object"))?;
        let iss = object
            .get_str("iss")
            .map_err(|()| AuthError::InvalidClaim(Cow::Borrowed("iss")))?;
        if let (Some(expected), Some(iss)) = (&policy.iss, iss)
            && **expected != *iss
        {
            return Err(AuthError::IssuerNotAllowed);
        }
        let (_, scopes, claims) = self.check_claims(policy, &object, now)?;
        let registered = registered_claims(&object)?;
        Ok(Verified {
            claims: Claims(Arc::new(claims)),
            token: VerifiedToken::introspected(registered, scopes, answer.into()),
        })
    }

    fn issuer_for(&self, iss: Option<&str>) -> Result<(usize, &IssuerPolicy), AuthError> {
        if let [only] = &*self.issuers
            && only.iss.is_none()
        {
            return Ok((0, only));
        }
        let iss = iss.ok_or(AuthError::IssuerNotAllowed)?;
        self.issuers
            .iter()
            .enumerate()
            .find(|(_, issuer)| issuer.iss.as_deref() == Some(iss))
            .ok_or(AuthError::IssuerNotAllowed)
    }

    fn check_times(&self, claims: &TimeClaims, now: i64) -> Result<(), AuthError> {
        let leeway = self.rules.leeway_secs;
        match claims.exp {
            // RFC 7519 §4.1.4: the current time must be before `exp`.
            Some(NumericDate(exp)) if now >= exp.saturating_add(leeway) => {
                return Err(AuthError::Expired);
            }
            None if self.rules.require_exp => {
                return Err(AuthError::MissingClaim(Cow::Borrowed("exp")));
            }
            _ => {}
        }
        if let Some(NumericDate(nbf)) = claims.nbf
            && now.saturating_add(leeway) < nbf
        {
            return Err(AuthError::NotYetValid);
        }
        if let Some(NumericDate(iat)) = claims.iat
            && iat > now.saturating_add(leeway)
        {
            return Err(AuthError::IssuedInFuture);
        }
        if let Some(max_age) = self.rules.max_age_secs {
            let NumericDate(iat) = claims
                .iat
                .ok_or(AuthError::MissingClaim(Cow::Borrowed("iat")))?;
            if now > iat.saturating_add(max_age).saturating_add(leeway) {
                return Err(AuthError::TooOld);
            }
        }
        Ok(())
    }
}

/// Picks the key for `jws` in `keys` by `kid` and `alg`, checks the signature with it, and returns
/// the key that verified it. A known key with a bad signature is [`AuthError::InvalidSignature`];
/// `Err(None)` means no key fits.
pub(crate) fn check_signature<'k>(
    jws: &CompactJws<'_>,
    keys: &'k KeySet,
) -> Result<&'k Arc<PreparedKey>, Option<AuthError>> {
    let candidates = match keys.lookup(jws.header.kid.as_deref(), jws.header.alg) {
        KeyLookup::Candidates(candidates) => candidates,
        KeyLookup::AlgorithmMismatch => return Err(Some(AuthError::KeyAlgorithmMismatch)),
        KeyLookup::Unknown => return Err(None),
    };
    candidates
        .iter()
        .find(|candidate| candidate.verifier.verify(jws.signing_input, &jws.signature))
        .map(|candidate| candidate.key)
        .ok_or(Some(AuthError::InvalidSignature))
}

fn check_audience(issuer: &IssuerPolicy, audience: &AudienceClaim<'_>) -> Result<(), AuthError> {
    if issuer.audiences.is_empty() {
        return Ok(());
    }
    let accepted = |candidate: &str| issuer.audiences.iter().any(|a| &**a == candidate);
    let accepted = match audience {
        AudienceClaim::Absent => false,
        AudienceClaim::Single(aud) => accepted(aud),
        AudienceClaim::Many(all) => all.iter().any(|aud| accepted(aud)),
    };
    if accepted {
        Ok(())
    } else {
        Err(AuthError::AudienceNotAllowed)
    }
}

/// The `aud` claim as read for the check: a single string borrowed from the payload when it can.
enum AudienceClaim<'a> {
    Absent,
    Single(Cow<'a, str>),
    Many(Vec<String>),
}

/// Checks the type of every registered claim, as [`registered_claims`] reads them, without
/// copying the strings out; returns the time claims and the audience.
fn check_registered_claims<'a>(
    object: &JsonObject<'a>,
) -> Result<(TimeClaims, AudienceClaim<'a>), AuthError> {
    for name in ["iss", "sub", "jti"] {
        object
            .get_str(name)
            .map_err(|()| AuthError::InvalidClaim(Cow::Borrowed(name)))?;
    }
    let audience = match object.get_str("aud") {
        Ok(None) => AudienceClaim::Absent,
        Ok(Some(single)) => AudienceClaim::Single(single),
        Err(()) => match object.get::<Audience>("aud") {
            Ok(Some(Audience::Many(all))) => AudienceClaim::Many(all),
            Ok(Some(Audience::Single(single))) => AudienceClaim::Single(Cow::Owned(single)),
            Ok(None) => AudienceClaim::Absent,
            Err(()) => return Err(AuthError::InvalidClaim(Cow::Borrowed("aud"))),
        },
    };
    let date = |name: &'static str| date_claim(object, name);
    let times = TimeClaims {
        exp: date("exp")?,
        nbf: date("nbf")?,
        iat: date("iat")?,
    };
    Ok((times, audience))
}

#[inline(always)]
fn date_claim(
    object: &JsonObject<'_>,
    name: &'static str,
) -> Result<Option<NumericDate>, AuthError> {
    object.get_date(name).map_err(|error| match error {
        DateError::NotANumber => AuthError::InvalidClaim(Cow::Borrowed(name)),
        DateError::OutOfRange => AuthError::ClaimOutOfRange(name),
    })
}

/// The registered claims of a verified token's payload, read on first use. The payload passed
/// [`check_registered_claims`] when the token was verified, so this can't fail; were it to, the
/// claims would read as absent rather than panic.
pub(crate) fn read_registered_claims(payload: &str) -> RegisteredClaims {
    JsonObject::parse(payload)
        .ok()
        .and_then(|object| registered_claims(&object).ok())
        .unwrap_or_default()
}

/// The scopes of `scope` (a space-separated string), or else of `scp` (an array of strings, or a
/// space-separated string). A present claim of another shape is refused.
fn scopes(object: &JsonObject<'_>) -> Result<Box<[Box<str>]>, AuthError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Scp {
        Text(String),
        List(Vec<String>),
    }
    let split = |text: &str| {
        text.split(' ')
            .filter(|s| !s.is_empty())
            .map(Box::from)
            .collect()
    };
    // A `null` claim counts as absent.
    if let Some(scope) = object
        .get::<Option<String>>("scope")
        .map_err(|()| AuthError::InvalidClaim(Cow::Borrowed("scope")))?
        .flatten()
    {
        return Ok(split(&scope));
    }
    match object
        .get::<Option<Scp>>("scp")
        .map_err(|()| AuthError::InvalidClaim(Cow::Borrowed("scp")))?
        .flatten()
    {
        Some(Scp::Text(text)) => Ok(split(&text)),
        Some(Scp::List(list)) => Ok(list.into_iter().map(String::into_boxed_str).collect()),
        None => Ok(Box::default()),
    }
}

/// Reads the registered claims, refusing any that is present with the wrong type.
fn registered_claims(object: &JsonObject<'_>) -> Result<RegisteredClaims, AuthError> {
    fn claim<T: DeserializeOwned>(
        object: &JsonObject<'_>,
        name: &'static str,
    ) -> Result<Option<T>, AuthError> {
        object
            .get(name)
            .map_err(|()| AuthError::InvalidClaim(Cow::Borrowed(name)))
    }
    // Strings and integers are read without serde when they are plain (the common case).
    let string = |name: &'static str| {
        object
            .get_str(name)
            .map(|value| value.map(Cow::into_owned))
            .map_err(|()| AuthError::InvalidClaim(Cow::Borrowed(name)))
    };
    let date = |name: &'static str| date_claim(object, name);
    let aud = match object.get_str("aud") {
        Ok(single) => single.map(|aud| Audience::Single(aud.into_owned())),
        Err(()) => claim(object, "aud")?,
    };
    Ok(RegisteredClaims {
        iss: string("iss")?,
        sub: string("sub")?,
        aud,
        exp: date("exp")?,
        nbf: date("nbf")?,
        iat: date("iat")?,
        jti: string("jti")?,
    })
}
