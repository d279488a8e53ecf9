//! Minting tokens: [`TokenBuilder`](super::TokenBuilder).

use super::*;

/// Which `kid` a token's header names.
#[derive(Debug, Clone)]
pub(super) enum KidHeader {
    /// The signing key's.
    SigningKey,
    /// This one, whatever key signs.
    Named(String),
    /// None.
    Omitted,
}

/// A token being minted by a [`TestIssuer`]; finish it with [`sign`](Self::sign).
///
/// ```
/// # use std::time::Duration;
/// # use tower_jwt_auth::test_util::TestIssuer;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let issuer = TestIssuer::start().await?;
/// let token = issuer
///     .token_builder()
///     .subject("alice")
///     .scope("orders:read orders:write")
///     .claim("tenant", "acme")
///     .expires_in(Duration::from_secs(60))
///     .token_type("at+jwt")
///     .sign();
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct TokenBuilder<'a> {
    pub(super) issuer: &'a TestIssuer,
    pub(super) now: i64,
    pub(super) claims: Map<String, Value>,
    pub(super) kid: KidHeader,
    pub(super) signing_kid: Option<String>,
    pub(super) unknown_key: bool,
    pub(super) typ: Option<String>,
}

impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("issuer", &self.issuer.issuer())
            .field("claims", &self.claims)
            .field("kid", &self.kid)
            .field("signing_kid", &self.signing_kid)
            .field("unknown_key", &self.unknown_key)
            .field("typ", &self.typ)
            .finish()
    }
}

impl TokenBuilder<'_> {
    /// Sets the claim `name` (replacing the default, if any).
    ///
    /// # Panics
    ///
    /// If `value` can't be serialized to JSON.
    pub fn claim(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value)
            .unwrap_or_else(|error| panic!("TokenBuilder::claim: {error}"));
        self.claims.insert(name.into(), value);
        self
    }

    /// Merges `claims` in: each member replaces the claim of the same name, and a `null` member
    /// removes it. `null` (or `()`) adds nothing.
    ///
    /// # Panics
    ///
    /// If `claims` does not serialize to a JSON object or `null`.
    pub fn claims(mut self, claims: impl Serialize) -> Self {
        match serde_json::to_value(claims) {
            Ok(Value::Object(members)) => {
                for (name, value) in members {
                    if value.is_null() {
                        self.claims.remove(&name);
                    } else {
                        self.claims.insert(name, value);
                    }
                }
            }
            Ok(Value::Null) => {}
            Ok(other) => panic!("TokenBuilder::claims: expected a JSON object, got {other}"),
            Err(error) => panic!("TokenBuilder::claims: {error}"),
        }
        self
    }

    /// Removes the claim `name`, e.g. `exp` or `aud`.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets `sub`.
    pub fn subject(self, subject: impl Into<String>) -> Self {
        self.claim("sub", subject.into())
    }

    /// Sets `aud`.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.claim("aud", audience.into())
    }

    /// Binds the token to a DPoP key: `cnf.jkt` is its thumbprint (RFC 9449 §6).
    pub fn dpop_bound(self, key: &super::DpopKey) -> Self {
        self.claim("cnf", json!({ "jkt": key.thumbprint() }))
    }

    /// Binds the token to a client certificate (DER): `cnf.x5t#S256` is its SHA-256
    /// (RFC 8705 §3.1).
    pub fn certificate_bound(self, der: &[u8]) -> Self {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        self.claim("cnf", json!({ "x5t#S256": URL_SAFE_NO_PAD.encode(hash) }))
    }

    /// Sets `scope` (space-separated scopes).
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.claim("scope", scope.into())
    }

    /// Sets `exp` to `lifetime` after `iat`.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        let iat = self
            .claims
            .get("iat")
            .and_then(Value::as_i64)
            .unwrap_or(self.now);
        self.claims.insert(
            "exp".into(),
            Value::from(iat.saturating_add(seconds(lifetime))),
        );
        self
    }

    /// Makes the token one that expired half an hour ago (`iat` an hour ago).
    pub fn expired(mut self) -> Self {
        self.claims
            .insert("iat".into(), Value::from(self.now - 3600));
        self.claims
            .insert("exp".into(), Value::from(self.now - 1800));
        self
    }

    /// Names `kid` in the header, whatever key signs.
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        self.kid = KidHeader::Named(kid.into());
        self
    }

    /// Leaves `kid` out of the header.
    pub fn without_key_id(mut self) -> Self {
        self.kid = KidHeader::Omitted;
        self
    }

    /// Signs with the issuer's key `kid` (current, previous or retired) instead of the current
    /// one; the header names that `kid` unless told otherwise.
    ///
    /// [`sign`](Self::sign) panics if the issuer never had a key `kid`.
    pub fn signed_with(mut self, kid: impl Into<String>) -> Self {
        self.signing_kid = Some(kid.into());
        self
    }

    /// Signs with a fresh key the issuer never published, of the same kind as the key it
    /// replaces, keeping that key's `kid` in the header: a forgery the layer refuses with
    /// "signature invalid".
    pub fn signed_by_unknown_key(mut self) -> Self {
        self.unknown_key = true;
        self
    }

    /// Sets the header's `typ`, e.g. `at+jwt` (RFC 9068). Default: `JWT`.
    pub fn token_type(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// The claims as built so far (for an opaque token's introspection answer).
    pub(super) fn into_claims(self) -> Map<String, Value> {
        self.claims
    }

    /// The signed compact JWS.
    ///
    /// # Panics
    ///
    /// If [`signed_with`](Self::signed_with) names a key the issuer never had, or the crypto
    /// library fails to generate or use a key (it does not happen in practice).
    pub fn sign(self) -> String {
        let state = self.issuer.shared.key_ring();
        let key = match &self.signing_kid {
            None => state.current(),
            Some(kid) => state
                .keys
                .iter()
                .find(|key| key.kid == *kid)
                .unwrap_or_else(|| panic!("TokenBuilder::signed_with: no key `{kid}` was issued")),
        };
        let mut header = Header::new(key.kind.jwt_algorithm());
        header.typ = Some(self.typ.unwrap_or_else(|| "JWT".to_owned()));
        header.kid = match self.kid {
            KidHeader::SigningKey => Some(key.kid.clone()),
            KidHeader::Named(kid) => Some(kid),
            KidHeader::Omitted => None,
        };
        let claims = Value::Object(self.claims);
        let minted = if self.unknown_key {
            let stranger = TestKey::generate(key.kind, 0)
                .unwrap_or_else(|error| panic!("TokenBuilder::signed_by_unknown_key: {error}"));
            jsonwebtoken::encode(&header, &claims, &stranger.signer)
        } else {
            jsonwebtoken::encode(&header, &claims, &key.signer)
        };
        minted.unwrap_or_else(|error| {
            panic!(
                "TokenBuilder::sign: the {:?} key failed to sign: {error}",
                key.kind
            )
        })
    }
}
