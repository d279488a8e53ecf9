//! The registered claims of RFC 7519 §4.1, and what the layer hands to handlers.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::algorithm::Algorithm;
use crate::dpop::Confirmation;

/// The claims a handler gets: the token's payload deserialized into `T`, behind an `Arc` so that
/// handing it on is cheap.
///
/// With the `axum` feature, `Claims<T>` is an extractor, and `Option<Claims<T>>` one for routes
/// that also serve anonymous callers (with [`JwtAuthLayer::optional`](crate::JwtAuthLayer::optional)).
///
/// ```
/// use serde::Deserialize;
/// use tower_jwt_auth::{Claims, RegisteredClaims};
///
/// #[derive(Deserialize)]
/// struct MyClaims {
///     #[serde(flatten)]
///     registered: RegisteredClaims,
///     email: String,
/// }
///
/// async fn whoami(Claims(claims): Claims<MyClaims>) -> String {
///     format!("{} <{}>", claims.registered.sub.as_deref().unwrap_or("?"), claims.email)
/// }
/// # let _ = whoami;
/// ```
pub struct Claims<T>(pub Arc<T>);

impl<T> Clone for Claims<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: fmt::Debug> fmt::Debug for Claims<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Claims").field(&self.0).finish()
    }
}

impl<T> std::ops::Deref for Claims<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// What the layer learnt about the token besides the typed claims: its algorithm, key, issuer and
/// registered claims. Inserted into the request extensions next to [`Claims`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct VerifiedToken(Arc<TokenDetails>);

#[derive(Debug)]
struct TokenDetails {
    /// `None` for an opaque token, vouched for by introspection rather than a signature.
    algorithm: Option<Algorithm>,
    key_id: Option<Arc<str>>,
    token_type: Option<Arc<str>>,
    /// Read when the token is verified: every request checks them.
    times: TimeClaims,
    /// Type-checked when the token is verified, but copied out of the payload only when asked
    /// for: most requests never read them, and a miss then allocates four strings fewer.
    registered: OnceLock<RegisteredClaims>,
    scopes: Box<[Box<str>]>,
    payload: String,
    confirmation: Confirmation,
}

/// The time claims of a token (`exp`, `nbf`, `iat`), as checked on every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimeClaims {
    pub(crate) exp: Option<NumericDate>,
    pub(crate) nbf: Option<NumericDate>,
    pub(crate) iat: Option<NumericDate>,
}

impl TimeClaims {
    fn of(registered: &RegisteredClaims) -> Self {
        Self {
            exp: registered.exp,
            nbf: registered.nbf,
            iat: registered.iat,
        }
    }
}

impl VerifiedToken {
    /// A token whose signature and claims passed; `payload`'s registered claims must have been
    /// type-checked (they are read from it on first use, and can't fail then).
    pub(crate) fn with_payload(
        algorithm: Algorithm,
        key_id: Option<Arc<str>>,
        token_type: Option<Arc<str>>,
        times: TimeClaims,
        scopes: Box<[Box<str>]>,
        payload: String,
        confirmation: Confirmation,
    ) -> Self {
        Self(Arc::new(TokenDetails {
            algorithm: Some(algorithm),
            key_id,
            token_type,
            times,
            registered: OnceLock::new(),
            scopes,
            payload,
            confirmation,
        }))
    }

    /// `exp`, `nbf` and `iat`.
    pub(crate) fn times(&self) -> &TimeClaims {
        &self.0.times
    }

    /// The token's `cnf` claim: the DPoP key (`jkt`) or client certificate (`x5t#S256`) it is
    /// bound to, already checked against the request by the layer.
    ///
    /// ```
    /// use tower_jwt_auth::VerifiedToken;
    ///
    /// async fn handler(token: VerifiedToken) -> String {
    ///     match token.confirmation().jkt() {
    ///         Some(jkt) => format!("DPoP key {jkt}"),
    ///         None => "bearer".to_owned(),
    ///     }
    /// }
    /// # let _ = handler;
    /// ```
    pub fn confirmation(&self) -> &Confirmation {
        &self.0.confirmation
    }

    /// An opaque token that the issuer's introspection endpoint (RFC 7662) reported active, with
    /// the claims of its answer.
    pub(crate) fn introspected(
        registered: RegisteredClaims,
        scopes: Box<[Box<str>]>,
        payload: String,
    ) -> Self {
        Self(Arc::new(TokenDetails {
            algorithm: None,
            key_id: None,
            token_type: None,
            times: TimeClaims::of(&registered),
            registered: OnceLock::from(registered),
            scopes,
            payload,
            confirmation: Confirmation::default(),
        }))
    }

    /// The token's scopes: the space-separated `scope` claim (RFC 8693 §4.2, RFC 9068), or else
    /// `scp` as an array or a space-separated string (Okta, Entra ID).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.0.scopes.iter().map(|scope| &**scope)
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|granted| granted == scope)
    }

    /// The verified payload, as JSON text.
    pub fn payload_json(&self) -> &str {
        &self.0.payload
    }

    /// The claim at a JSON pointer (RFC 6901) into the payload, e.g. `/realm_access/roles`
    /// (Keycloak) or `/https:~1~1example.com~1roles` (an Auth0 namespaced claim: `/` is written
    /// `~1`). Parses the payload on each call; for claims you read on every request, use a claims
    /// type instead.
    pub fn claim(&self, pointer: &str) -> Option<serde_json::Value> {
        let mut payload: serde_json::Value = serde_json::from_str(&self.0.payload).ok()?;
        payload.pointer_mut(pointer).map(serde_json::Value::take)
    }

    /// Whether the claim at `pointer` grants `role`: it is an array of strings holding `role`,
    /// or a space-separated string naming it. See [`KEYCLOAK_REALM_ROLES`].
    pub fn has_role(&self, pointer: &str, role: &str) -> bool {
        match self.claim(pointer) {
            Some(serde_json::Value::Array(roles)) => roles.iter().any(|r| r.as_str() == Some(role)),
            Some(serde_json::Value::String(roles)) => roles.split(' ').any(|r| r == role),
            _ => false,
        }
    }

    /// The algorithm the signature was checked with; `None` for an opaque token accepted through
    /// introspection ([`Issuer::introspection`](crate::Issuer::introspection)), whose
    /// [`payload_json`](Self::payload_json) is then the introspection answer.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.0.algorithm
    }

    /// Whether the token was accepted through introspection (RFC 7662) rather than by checking a
    /// signature: an opaque token, or a JWT of an issuer that
    /// [introspects JWTs too](crate::Issuer::introspect_jwts) (then also signature-checked).
    pub fn is_introspected(&self) -> bool {
        self.0.algorithm.is_none()
    }

    /// The header's `kid`, if any.
    pub fn key_id(&self) -> Option<&str> {
        self.0.key_id.as_deref()
    }

    /// The header's `typ`, if any.
    pub fn token_type(&self) -> Option<&str> {
        self.0.token_type.as_deref()
    }

    /// The registered claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`).
    pub fn registered_claims(&self) -> &RegisteredClaims {
        self.0
            .registered
            .get_or_init(|| crate::verify::read_registered_claims(&self.0.payload))
    }
}

/// Where Keycloak puts a user's realm roles: `realm_access.roles`, as a JSON pointer for
/// [`VerifiedToken::has_role`] and [`Authorize::role`](crate::Authorize::role). Client roles are
/// at `/resource_access/{client-id}/roles`.
pub const KEYCLOAK_REALM_ROLES: &str = "/realm_access/roles";

/// The registered claims of RFC 7519 §4.1.
///
/// Flatten it into your own claims type (`#[serde(flatten)]`) to get them alongside your own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// `iss`: who issued the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `sub`: whom the token is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `aud`: for whom the token is meant, one or many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// `exp`: when the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<NumericDate>,
    /// `nbf`: when the token starts being valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<NumericDate>,
    /// `iat`: when the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<NumericDate>,
    /// `jti`: the token's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// A JWT `NumericDate`: seconds since the Unix epoch. Fractional values are rounded down.
///
/// Values outside years 0001 to 9999 ([`NumericDate::MIN`] to [`NumericDate::MAX`]) are refused
/// when read, never saturated: `exp: 2^64` is a malformed claim, not "never expires".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NumericDate(pub i64);

/// A `NumericDate` that is not a number of seconds within [`NumericDate::MIN`] and
/// [`NumericDate::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("NumericDate out of range (years 0001 to 9999)")]
pub struct DateOutOfRange;

impl NumericDate {
    /// 9999-12-31T23:59:59Z, the latest date accepted.
    pub const MAX: NumericDate = NumericDate(253_402_300_799);
    /// 0001-01-01T00:00:00Z, the earliest date accepted.
    pub const MIN: NumericDate = NumericDate(-62_135_596_800);

    /// Seconds since the Unix epoch.
    pub fn seconds(self) -> i64 {
        self.0
    }

    /// `seconds` as a date, if within [`NumericDate::MIN`] and [`NumericDate::MAX`].
    ///
    /// # Errors
    ///
    /// [`DateOutOfRange`] outside that range.
    pub fn from_seconds(seconds: i64) -> Result<Self, DateOutOfRange> {
        if (Self::MIN.0..=Self::MAX.0).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(DateOutOfRange)
        }
    }

    /// A JSON number of seconds, rounded down, if finite and within range.
    pub(crate) fn from_f64(seconds: f64) -> Result<Self, DateOutOfRange> {
        // The bounds are exact in an f64, so the comparison is too; NaN fails it.
        let floor = seconds.floor();
        if floor >= Self::MIN.0 as f64 && floor <= Self::MAX.0 as f64 {
            Ok(Self(floor as i64))
        } else {
            Err(DateOutOfRange)
        }
    }
}

impl Serialize for NumericDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumericDateVisitor;

        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds since the epoch")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                NumericDate::from_seconds(v).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                i64::try_from(v)
                    .map_err(|_| DateOutOfRange)
                    .and_then(NumericDate::from_seconds)
                    .map_err(E::custom)
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                NumericDate::from_f64(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(NumericDateVisitor)
    }
}

/// The `aud` claim: a single string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `"aud": "api"`
    Single(String),
    /// `"aud": ["api", "admin"]`
    Many(Vec<String>),
}

impl Audience {
    /// Every audience named.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (single, many) = match self {
            Self::Single(one) => (Some(one.as_str()), &[][..]),
            Self::Many(all) => (None, all.as_slice()),
        };
        single.into_iter().chain(many.iter().map(String::as_str))
    }

    /// Whether `audience` is among them.
    pub fn contains(&self, audience: &str) -> bool {
        self.iter().any(|candidate| candidate == audience)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Single(one) => serializer.serialize_str(one),
            Self::Many(all) => all.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;

        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience::Single(v.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(one) = seq.next_element::<String>()? {
                    all.push(one);
                }
                Ok(Audience::Many(all))
            }
        }

        deserializer.deserialize_any(AudienceVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_dates_accept_integers_and_fractions_but_not_strings() {
        let parse = |text: &str| serde_json::from_str::<NumericDate>(text);
        assert_eq!(parse("1700000000").unwrap(), NumericDate(1_700_000_000));
        assert_eq!(parse("1700000000.9").unwrap(), NumericDate(1_700_000_000));
        assert_eq!(parse("-5").unwrap(), NumericDate(-5));
        assert_eq!(parse("253402300799").unwrap(), NumericDate::MAX);
        assert_eq!(parse("253402300799.99").unwrap(), NumericDate::MAX);
        assert_eq!(parse("-62135596800").unwrap(), NumericDate::MIN);
        for bad in ["\"1700000000\"", "true", "null", "[1]", "{}"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // Out of range is refused, never saturated to "never expires".
        for huge in [
            "253402300800",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "18446744073709551615",
            "1e300",
            "-1e300",
            "-62135596801",
            "-9223372036854775808",
        ] {
            assert!(parse(huge).is_err(), "{huge}");
        }
    }

    #[test]
    fn audience_is_one_or_many_strings() {
        let one: Audience = serde_json::from_str("\"api\"").unwrap();
        assert!(one.contains("api"));
        let many: Audience = serde_json::from_str(r#"["a","api"]"#).unwrap();
        assert!(many.contains("api"));
        assert!(!many.contains("b"));
        assert_eq!(many.iter().count(), 2);
        for bad in ["1", r#"["a",1]"#, "null", "{}"] {
            assert!(serde_json::from_str::<Audience>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registered_claims_flatten_into_user_claims() {
        #[derive(Deserialize)]
        struct Mine {
            #[serde(flatten)]
            registered: RegisteredClaims,
            email: String,
        }
        let mine: Mine =
            serde_json::from_str(r#"{"sub":"u1","aud":["x"],"exp":10,"email":"a@b"}"#).unwrap();
        assert_eq!(mine.registered.sub.as_deref(), Some("u1"));
        assert_eq!(mine.registered.exp, Some(NumericDate(10)));
        assert_eq!(mine.email, "a@b");
    }
}
