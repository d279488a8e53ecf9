//! [`Authenticator`]: the decision for one request. It owns everything the layer, its services and
//! their futures need to decide (token sources, verifier, clock, async checks, optional mode) and
//! nothing about responses: those are built by [`crate::response::reject`].

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, header};
use serde::de::DeserializeOwned;

use crate::claims::{Claims, VerifiedToken};
use crate::clock::SharedClock;
use crate::dpop::SenderConstraint;
use crate::error::AuthError;
use crate::introspection::{Introspector, looks_like_jws};
use crate::revocation::RevocationList;
use crate::token::{Scheme, TokenExtractor, is_b64token, token_text};
use crate::verify::{Failure, Verified, Verifier};

/// A user check that may wait (a database, a revocation service): the claims and the token in,
/// `Err` with a reason safe to show the client out.
pub(crate) type AsyncValidator<T> = Box<
    dyn Fn(
            Claims<T>,
            VerifiedToken,
        ) -> Pin<Box<dyn Future<Output = Result<(), Cow<'static, str>>> + Send>>
        + Send
        + Sync,
>;

/// A decision that has to wait: for keys a refetch may bring, or for async checks. Boxed, since
/// it is rare (or opted into) and its type is private.
pub(crate) type PendingDecision<T> =
    Pin<Box<dyn Future<Output = Result<Outcome<T>, AuthError>> + Send>>;

/// What the layer decided for a request.
pub(crate) enum Decision<T> {
    /// Decided at once, without waiting.
    Ready(Result<Outcome<T>, AuthError>),
    /// Decided when the future completes.
    Pending(PendingDecision<T>),
}

/// A request allowed through.
pub(crate) enum Outcome<T> {
    /// Its token passed every check.
    Verified(Verified<T>),
    /// It has no token and the layer is optional (or it is a CORS preflight that may pass).
    Anonymous,
}

/// Marks a request that passed an optional layer without a token, so that the extractors can tell
/// "anonymous" from "the layer is missing".
#[derive(Debug, Clone)]
pub(crate) struct Anonymous;

/// The configuration an [`Authenticator`] and its clones share, prepared once by the builder.
pub(crate) struct AuthConfig<T> {
    pub(crate) verifier: Verifier<T>,
    pub(crate) extractor: TokenExtractor,
    pub(crate) clock: SharedClock,
    pub(crate) async_validators: Box<[AsyncValidator<T>]>,
    /// Whether CORS preflight requests pass without a token.
    pub(crate) cors_preflight: bool,
    /// DPoP and certificate binding (`cnf`) checks.
    pub(crate) sender: SenderConstraint,
    /// The RFC 9728 metadata, completed by the builder.
    pub(crate) resource: Option<crate::resource::ProtectedResource>,
    /// Checked after the signature and claims, on cache hits too.
    pub(crate) revocation: Option<RevocationList>,
    /// Opaque tokens (and optionally JWTs) are checked by the issuer's introspection endpoint.
    pub(crate) introspection: Option<Introspection>,
}

/// The introspection endpoint of the issuer at index `issuer` (at most one per layer).
#[derive(Debug)]
pub(crate) struct Introspection {
    pub(crate) issuer: usize,
    pub(crate) introspector: Introspector,
    /// JWTs are introspected too, after their own checks.
    pub(crate) jwts: bool,
}

/// Decides whether a request may pass, and with which claims. Cheap to clone.
pub(crate) struct Authenticator<T> {
    config: Arc<AuthConfig<T>>,
    optional: bool,
}

impl<T> Clone for Authenticator<T> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            optional: self.optional,
        }
    }
}

impl<T> std::fmt::Debug for Authenticator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("verifier", &self.config.verifier)
            .field("extractor", &self.config.extractor)
            .field("async_validators", &self.config.async_validators.len())
            .field("cors_preflight", &self.config.cors_preflight)
            .field("optional", &self.optional)
            .finish()
    }
}

impl<T> Authenticator<T> {
    pub(crate) fn new(config: AuthConfig<T>) -> Self {
        Self {
            config: Arc::new(config),
            optional: false,
        }
    }

    /// The same authenticator, letting requests without a token pass anonymously.
    pub(crate) fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub(crate) fn verifier(&self) -> &Verifier<T> {
        &self.config.verifier
    }

    pub(crate) fn resource(&self) -> Option<&crate::resource::ProtectedResource> {
        self.config.resource.as_ref()
    }

    pub(crate) fn revocation(&self) -> Option<&RevocationList> {
        self.config.revocation.as_ref()
    }
}

impl<T> Authenticator<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Decides for `request`. Known keys and no async check: [`Decision::Ready`], with no
    /// allocation beyond the verification itself.
    pub(crate) fn decide<B>(&self, request: &Request<B>) -> Decision<T> {
        if self.config.cors_preflight && is_cors_preflight(request) {
            return Decision::Ready(Ok(Outcome::Anonymous));
        }
        let found = match self.config.extractor.find(request.headers(), request.uri()) {
            Ok(Some(found)) => found,
            Ok(None) if self.optional => return Decision::Ready(Ok(Outcome::Anonymous)),
            Ok(None) => return Decision::Ready(Err(AuthError::MissingToken)),
            Err(error) => return Decision::Ready(Err(error)),
        };
        // One reading of the clock serves the token's checks and its binding's.
        let now = self.config.clock.unix_seconds();
        let decision = self.decide_token_at(&found.token, now, !found.characters_checked);
        self.check_binding(decision, request, found.scheme, &found.token, now)
    }

    /// Checks a verified token's sender constraint (DPoP proof, client certificate) against the
    /// request, now or when the pending decision completes.
    fn check_binding<B>(
        &self,
        decision: Decision<T>,
        request: &Request<B>,
        scheme: Scheme,
        token: &[u8],
        now: i64,
    ) -> Decision<T> {
        let sender = &self.config.sender;
        match decision {
            Decision::Ready(Ok(Outcome::Verified(verified))) => {
                let presented = sender.presented(request, scheme);
                Decision::Ready(
                    sender
                        .check(&presented, token, &verified.token, now)
                        .map(|()| Outcome::Verified(verified)),
                )
            }
            Decision::Pending(pending) => {
                let presented = sender.presented(request, scheme);
                let this = self.clone();
                let token = token.to_vec();
                Decision::Pending(Box::pin(async move {
                    let outcome = pending.await?;
                    if let Outcome::Verified(verified) = &outcome {
                        let now = this.config.clock.unix_seconds();
                        this.config
                            .sender
                            .check(&presented, &token, &verified.token, now)?;
                    }
                    Ok(outcome)
                }))
            }
            ready => ready,
        }
    }

    /// Decides for a bare token (no request around it).
    pub(crate) fn decide_token(&self, token: &str) -> Decision<T> {
        self.decide_token_at(token.as_bytes(), self.config.clock.unix_seconds(), false)
    }

    /// [`decide_token`](Self::decide_token) at `now` (seconds since the epoch).
    ///
    /// `unchecked_header`: the token came from the `Authorization` header and its characters
    /// were not checked yet (see [`Extracted::characters_checked`](crate::token::Extracted)).
    /// Whatever refuses the token, or would fetch or ask anything for it, checks them first: a
    /// character outside `b64token` makes the header malformed, and nothing is done for it.
    ///
    /// The token is bytes: those of a header token are not known to be UTF-8 until it is parsed
    /// or checked, and a hit in the verified-token cache needs neither.
    fn decide_token_at(&self, token: &[u8], now: i64, unchecked_header: bool) -> Decision<T> {
        let malformed = || unchecked_header && !is_b64token(token);
        if self
            .config
            .introspection
            .as_ref()
            .is_some_and(|_| !looks_like_jws(token))
        {
            if malformed() {
                return Decision::Ready(Err(AuthError::MalformedAuthorizationHeader));
            }
            if token.len() > self.config.verifier.max_token_len {
                return Decision::Ready(Err(AuthError::TokenTooLarge));
            }
            let token = match token_text(token) {
                Ok(text) => text.to_owned(),
                Err(error) => return Decision::Ready(Err(error)),
            };
            let this = self.clone();
            return Decision::Pending(Box::pin(async move { this.introspect(&token).await }));
        }
        let verifier = &self.config.verifier;
        match self.verify_at(token, now) {
            Ok(verified) if self.config.async_validators.is_empty() && !self.introspects_jwts() => {
                Decision::Ready(Ok(Outcome::Verified(verified)))
            }
            Ok(verified) => {
                let this = self.clone();
                let token = token.to_vec();
                Decision::Pending(Box::pin(async move {
                    this.confirm_active(&token).await?;
                    this.run_async_checks(verified).await
                }))
            }
            Err(_) if malformed() => Decision::Ready(Err(AuthError::MalformedAuthorizationHeader)),
            Err(Failure::Rejected(error)) => Decision::Ready(Err(error)),
            Err(Failure::KeysMayArrive { issuer, kid, error }) => {
                let keys = &verifier.issuers[issuer].keys;
                let unknown_key = matches!(error, AuthError::UnknownKey);
                match keys.wait_for_kid(kid.as_deref(), unknown_key) {
                    Some(wait) => {
                        let this = self.clone();
                        let token = token.to_vec();
                        Decision::Pending(Box::pin(async move {
                            wait.await;
                            this.verify_after_wait(&token).await
                        }))
                    }
                    None => Decision::Ready(Err(error)),
                }
            }
        }
    }

    /// Verifies `token` once more after a refetch; a failure now is final.
    async fn verify_after_wait(&self, token: &[u8]) -> Result<Outcome<T>, AuthError> {
        let verifier = &self.config.verifier;
        match self.verify_at(token, self.config.clock.unix_seconds()) {
            Ok(verified) => {
                self.confirm_active(token).await?;
                self.run_async_checks(verified).await
            }
            Err(Failure::Rejected(error)) => Err(error),
            Err(Failure::KeysMayArrive { issuer, kid, error }) => {
                // A `kid` still unknown after a refetch is remembered, so that further tokens
                // naming it don't trigger another one.
                if matches!(error, AuthError::UnknownKey) {
                    verifier.issuers[issuer]
                        .keys
                        .remember_unknown_kid(kid.as_deref());
                }
                Err(error)
            }
        }
    }

    /// Verifies `token` at `now` (from the cache when it can), then checks the local copy of the
    /// revocation list: no I/O.
    fn verify_at(&self, token: &[u8], now: i64) -> Result<Verified<T>, Failure> {
        let verified = self.config.verifier.verify(token, now)?;
        if let Some(revocation) = &self.config.revocation {
            revocation.check(verified.token.registered_claims())?;
        }
        Ok(verified)
    }

    fn introspects_jwts(&self) -> bool {
        self.config
            .introspection
            .as_ref()
            .is_some_and(|introspection| introspection.jwts)
    }

    /// An opaque token: the endpoint's answer, its claims checked like a JWT's, then the
    /// revocation list and the async checks.
    async fn introspect(&self, token: &str) -> Result<Outcome<T>, AuthError> {
        let Some(introspection) = &self.config.introspection else {
            return Err(AuthError::MalformedToken("not a compact JWS"));
        };
        let answer = introspection.introspector.introspect(token).await?;
        let active = answer.active.as_ref().ok_or(AuthError::InactiveToken)?;
        let verifier = &self.config.verifier;
        let now = self.config.clock.unix_seconds();
        let checked = answer
            .checked
            .get()
            .and_then(|checked| checked.downcast_ref::<Verified<T>>());
        let verified = match checked {
            // A cached answer already read: only what depends on the time or on the validators'
            // own state is checked again, as for a verified-token cache hit.
            Some(checked) => {
                verifier.recheck(checked, now)?;
                checked.clone()
            }
            None => {
                let verified = verifier.verify_introspected(introspection.issuer, active, now)?;
                // Another request may have read it first; both readings are the same.
                let _ = answer.checked.set(Box::new(verified.clone()));
                verified
            }
        };
        if let Some(revocation) = &self.config.revocation {
            revocation.check(verified.token.registered_claims())?;
        }
        self.run_async_checks(verified).await
    }

    /// With JWT introspection, a verified JWT must also be active at the issuer.
    async fn confirm_active(&self, token: &[u8]) -> Result<(), AuthError> {
        match &self.config.introspection {
            Some(introspection) if introspection.jwts => {
                let answer = introspection
                    .introspector
                    .introspect(token_text(token)?)
                    .await?;
                answer.active.map(|_| ()).ok_or(AuthError::InactiveToken)
            }
            _ => Ok(()),
        }
    }

    async fn run_async_checks(&self, verified: Verified<T>) -> Result<Outcome<T>, AuthError> {
        for check in &self.config.async_validators {
            check(verified.claims.clone(), verified.token.clone())
                .await
                .map_err(AuthError::ClaimsRejected)?;
        }
        Ok(Outcome::Verified(verified))
    }

    /// Verifies a token, waiting for keys or async checks when it must.
    pub(crate) async fn verify(&self, token: &str) -> Result<Verified<T>, AuthError> {
        let outcome = match self.decide_token(token) {
            Decision::Ready(outcome) => outcome,
            Decision::Pending(pending) => pending.await,
        };
        match outcome? {
            // Without a request there is no proof or certificate to check a binding against.
            Outcome::Verified(verified) if verified.token.confirmation().is_bound() => Err(
                AuthError::TokenBinding("sender-constrained token checked without its request"),
            ),
            Outcome::Verified(verified) => Ok(verified),
            // A bare token is never anonymous.
            Outcome::Anonymous => Err(AuthError::MissingToken),
        }
    }
}

/// Puts what the handler may extract into the request: the claims and the token, or the mark of
/// an anonymous request.
pub(crate) fn admit<T, B>(request: &mut Request<B>, outcome: Outcome<T>)
where
    T: Send + Sync + 'static,
{
    let extensions = request.extensions_mut();
    match outcome {
        Outcome::Verified(verified) => {
            extensions.insert(verified.claims);
            extensions.insert(verified.token);
        }
        Outcome::Anonymous => {
            extensions.insert(Anonymous);
        }
    }
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`. Browsers never
/// send credentials on it, so it can't carry a token.
fn is_cors_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}
