//! Splitting a compact JWS (RFC 7515 §7.1) and reading its header, once.

use std::borrow::Cow;
use std::sync::Arc;

use crate::algorithm::Algorithm;
use crate::base64url;
use crate::error::AuthError;
use crate::json::{JsonObject, ObjectError};
use arc_swap::ArcSwapOption;

/// Bytes that hold a signature of any algorithm this crate verifies with a key of up to 4,096 bits
/// (RSA-4096's 512; ES384's 96, Ed25519's 64).
pub(crate) const SIGNATURE_BUFFER: usize = 512;

/// The parts of a compact JWS whose header has been read and checked.
#[derive(Debug)]
pub(crate) struct CompactJws<'a> {
    pub(crate) header: JwsHeader,
    /// `BASE64URL(header)`, as it appears in the token.
    pub(crate) encoded_header: &'a str,
    /// `BASE64URL(header) '.' BASE64URL(payload)`: the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
    pub(crate) payload: Vec<u8>,
    /// Decoded into the caller's buffer when it fits (see [`parse_with`](Self::parse_with)).
    pub(crate) signature: Cow<'a, [u8]>,
    /// Whether the header came from the [`HeaderMemo`], which then need not be told it again.
    header_known: bool,
}

/// The header members this crate acts on. Cloning it is cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwsHeader {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) typ: Option<Arc<str>>,
}

/// The last header of a verified token, by its encoded text. The tokens of one issuer and key
/// share one header byte for byte, so a token that misses the verified-token cache usually skips
/// decoding and parsing its header. Only a header that came with a valid signature is kept, and a
/// header read from here is the one its exact bytes parse to, so it changes no outcome.
#[derive(Debug, Default)]
pub(crate) struct HeaderMemo(ArcSwapOption<(Box<str>, JwsHeader)>);

impl HeaderMemo {
    fn get(&self, encoded: &str) -> Option<JwsHeader> {
        let memo = self.0.load();
        memo.as_deref()
            .filter(|(known, _)| &**known == encoded)
            .map(|(_, header)| header.clone())
    }

    /// Keeps the header of `jws`, whose signature was verified.
    pub(crate) fn remember(&self, jws: &CompactJws<'_>) {
        if jws.header_known {
            return;
        }
        let (encoded_header, header) = (jws.encoded_header, &jws.header);
        let memo = self.0.load();
        if memo
            .as_deref()
            .is_none_or(|(known, _)| &**known != encoded_header)
        {
            self.0
                .store(Some(Arc::new((encoded_header.into(), header.clone()))));
        }
    }
}

impl<'a> CompactJws<'a> {
    /// Splits the token and reads its header and payload bytes. The signature is not checked here.
    pub(crate) fn parse(token: &'a str) -> Result<Self, AuthError> {
        Self::parse_with(token.as_bytes(), None, &mut [])
    }

    /// [`parse`](Self::parse), taking the header from `memo` when it holds the same encoded one.
    ///
    /// The token is bytes: every part must decode as strict base64url, so a token that parses is
    /// ASCII without a separate UTF-8 pass over it.
    ///
    /// The signature is decoded into `signature_buffer` when it fits ([`SIGNATURE_BUFFER`] bytes
    /// hold every signature up to RSA-4096's), else onto the heap.
    pub(crate) fn parse_with(
        token: &'a [u8],
        memo: Option<&HeaderMemo>,
        signature_buffer: &'a mut [std::mem::MaybeUninit<u8>],
    ) -> Result<Self, AuthError> {
        // The dots found with the `memchr` crate's vector search: the token is most of what a miss
        // reads byte by byte, and `str::split` looked at it a byte or a word at a time (measured).
        let mut dots = memchr::memchr_iter(b'.', token);
        let (Some(first), Some(second)) = (dots.next(), dots.next()) else {
            return Err(AuthError::MalformedToken(
                "token is not three dot-separated parts",
            ));
        };
        // One search of the rest, usually the signature, for a third dot; counted only if found.
        let further = match memchr::memchr(b'.', &token[second + 1..]) {
            None => 0,
            Some(at) => 1 + memchr::memchr_iter(b'.', &token[second + 2 + at..]).count(),
        };
        match further {
            0 => {}
            // Five parts is the JWE compact serialization.
            2 => return Err(AuthError::UnsupportedTokenFormat),
            _ => {
                return Err(AuthError::MalformedToken(
                    "token is not three dot-separated parts",
                ));
            }
        }
        let (header, payload, signature) = (
            &token[..first],
            &token[first + 1..second],
            &token[second + 1..],
        );

        // Base64url is ASCII: a header that is not UTF-8 is not base64url either.
        let encoded_header = std::str::from_utf8(header)
            .map_err(|_| AuthError::MalformedToken("header is not base64url"))?;
        let (header, header_known) = match memo.and_then(|memo| memo.get(encoded_header)) {
            Some(known) => (known, true),
            None => {
                let bytes = base64url::decode(encoded_header)
                    .ok_or(AuthError::MalformedToken("header is not base64url"))?;
                (JwsHeader::parse(&bytes)?, false)
            }
        };
        let payload = base64url::decode(payload)
            .ok_or(AuthError::MalformedToken("payload is not base64url"))?;
        if signature.is_empty() {
            return Err(AuthError::MalformedToken("empty signature"));
        }
        let signature = base64url::decode_into(signature, signature_buffer)
            .ok_or(AuthError::MalformedToken("signature is not base64url"))?;

        Ok(Self {
            header,
            encoded_header,
            signing_input: &token[..second],
            payload,
            signature,
            header_known,
        })
    }
}

impl JwsHeader {
    fn parse(bytes: &[u8]) -> Result<Self, AuthError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| AuthError::MalformedToken("header is not UTF-8"))?;
        let object = JsonObject::parse(text).map_err(|err| match err {
            ObjectError::Malformed => AuthError::MalformedToken("header is not a JSON object"),
            ObjectError::DuplicateMember => {
                AuthError::MalformedToken("header has a duplicate member")
            }
        })?;

        let alg = object
            .get_str("alg")
            .map_err(|()| AuthError::MalformedToken("alg is not a string"))?
            .ok_or(AuthError::MalformedToken("header has no alg"))?;
        if alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::UnsecuredToken);
        }
        let alg = alg
            .parse::<Algorithm>()
            .map_err(|_| AuthError::UnsupportedAlgorithm)?;

        // No extension is understood here, so any `crit` is refused (RFC 7515 §4.1.11). An empty or
        // non-array `crit` is malformed in its own right.
        match object.get::<Vec<String>>("crit") {
            Ok(None) => {}
            Ok(Some(names)) if !names.is_empty() => {
                return Err(AuthError::UnsupportedCriticalHeader);
            }
            _ => {
                return Err(AuthError::MalformedToken(
                    "crit is not a non-empty string array",
                ));
            }
        }
        // RFC 7797: `b64: false` changes what is signed; it is only valid under `crit`, which is
        // refused above, so a bare `b64: false` is refused too rather than silently misread.
        match object.get::<bool>("b64") {
            Ok(None | Some(true)) => {}
            Ok(Some(false)) => return Err(AuthError::UnsupportedCriticalHeader),
            Err(()) => return Err(AuthError::MalformedToken("b64 is not a boolean")),
        }
        if object.has("enc") {
            // A JWE header in a three-part token.
            return Err(AuthError::UnsupportedTokenFormat);
        }
        let cty = object
            .get_str("cty")
            .map_err(|()| AuthError::MalformedToken("cty is not a string"))?;
        if cty.as_deref().is_some_and(is_jwt_media_type) {
            // A nested JWT would need a second verification with its own keys.
            return Err(AuthError::UnsupportedTokenFormat);
        }

        let kid = object
            .get_str("kid")
            .map_err(|()| AuthError::MalformedToken("kid is not a string"))?
            .map(|kid| Arc::from(kid.as_ref()));
        let typ = object
            .get_str("typ")
            .map_err(|()| AuthError::MalformedToken("typ is not a string"))?
            .map(|typ| Arc::from(typ.as_ref()));
        // `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come only from the configured sources.
        Ok(Self { alg, kid, typ })
    }
}

/// Whether a `typ`/`cty` value names the JWT media type (RFC 7519 §5.1, §5.2).
fn is_jwt_media_type(value: &str) -> bool {
    media_type_matches(value, "jwt")
}

/// Compares a JOSE media type value with `expected`, case-insensitively, accepting the
/// `application/` prefix being present or omitted (RFC 7515 §4.1.9).
pub(crate) fn media_type_matches(value: &str, expected: &str) -> bool {
    fn without_application(v: &str) -> &str {
        const PREFIX: &str = "application/";
        match v.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => &v[PREFIX.len()..],
            _ => v,
        }
    }
    without_application(value).eq_ignore_ascii_case(without_application(expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn token_with_header(header: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64("{}"))
    }

    #[test]
    fn reads_alg_kid_and_typ() {
        let token = token_with_header(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#);
        let jws = CompactJws::parse(&token).unwrap();
        assert_eq!(jws.header.alg, Algorithm::ES256);
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        assert_eq!(jws.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(jws.payload, b"{}");
        assert_eq!(&*jws.signature, b"sig");
        assert_eq!(
            jws.signing_input,
            token.rsplit_once('.').unwrap().0.as_bytes()
        );
    }

    #[test]
    fn the_header_memo_serves_only_the_same_bytes() {
        let memo = HeaderMemo::default();
        let first = token_with_header(r#"{"alg":"ES256","kid":"k1"}"#);
        let jws = CompactJws::parse_with(first.as_bytes(), Some(&memo), &mut []).unwrap();
        memo.remember(&jws);
        let again = CompactJws::parse_with(first.as_bytes(), Some(&memo), &mut []).unwrap();
        assert_eq!(again.header, jws.header);

        // Another header, even one that differs only in its encoding, is read afresh.
        for header in [
            r#"{"alg":"ES256","kid":"k2"}"#,
            r#"{"alg":"ES256", "kid":"k1"}"#,
            r#"{"alg":"none","kid":"k1"}"#,
        ] {
            let other = token_with_header(header);
            assert_eq!(
                CompactJws::parse_with(other.as_bytes(), Some(&memo), &mut [])
                    .map(|jws| jws.header)
                    .ok(),
                CompactJws::parse(&other).map(|jws| jws.header).ok(),
                "{header}"
            );
        }
        let unsecured = token_with_header(r#"{"alg":"none","kid":"k1"}"#);
        assert!(matches!(
            CompactJws::parse_with(unsecured.as_bytes(), Some(&memo), &mut []),
            Err(AuthError::UnsecuredToken)
        ));

        // Remembering another header replaces the first.
        let second = token_with_header(r#"{"alg":"EdDSA"}"#);
        let jws = CompactJws::parse(&second).unwrap();
        memo.remember(&jws);
        let header = CompactJws::parse_with(second.as_bytes(), Some(&memo), &mut [])
            .unwrap()
            .header;
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(
            CompactJws::parse_with(first.as_bytes(), Some(&memo), &mut [])
                .unwrap()
                .header
                .kid
                .as_deref(),
            Some("k1")
        );
    }

    #[test]
    fn rejects_unsecured_tokens_in_any_case() {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = token_with_header(&format!(r#"{{"alg":"{alg}"}}"#));
            assert_eq!(
                CompactJws::parse(&token).unwrap_err(),
                AuthError::UnsecuredToken
            );
        }
    }

    #[test]
    fn rejects_wrong_part_counts() {
        assert_eq!(
            CompactJws::parse("a.b.c.d.e").unwrap_err(),
            AuthError::UnsupportedTokenFormat
        );
        for token in ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e.f", "..."] {
            assert!(
                matches!(CompactJws::parse(token), Err(AuthError::MalformedToken(_))),
                "{token}"
            );
        }
    }

    #[test]
    fn rejects_non_canonical_base64url() {
        let header = b64(r#"{"alg":"HS256"}"#);
        let payload = b64("{}");
        for token in [
            format!("{header}=.{payload}.c2ln"),
            format!("{header}.{payload}.c2ln=="),
            format!("{header}.{payload}.c2l+"),
            format!("{header}.{payload}.c2l/"),
            format!("{header}.{payload}. c2ln"),
            // "c2l" leaves two non-zero trailing bits; only "c2k" is the canonical form of "si".
            format!("{header}.{payload}.c2l"),
        ] {
            assert!(
                matches!(CompactJws::parse(&token), Err(AuthError::MalformedToken(_))),
                "{token}"
            );
        }
    }

    #[test]
    fn rejects_empty_signature() {
        let token = format!("{}.{}.", b64(r#"{"alg":"HS256"}"#), b64("{}"));
        assert!(matches!(
            CompactJws::parse(&token),
            Err(AuthError::MalformedToken(_))
        ));
    }

    #[test]
    fn rejects_any_crit_and_b64_false() {
        for header in [
            r#"{"alg":"RS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"RS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"RS256","b64":false}"#,
        ] {
            assert_eq!(
                CompactJws::parse(&token_with_header(header)).unwrap_err(),
                AuthError::UnsupportedCriticalHeader,
                "{header}"
            );
        }
        for header in [
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","crit":"x"}"#,
        ] {
            assert!(matches!(
                CompactJws::parse(&token_with_header(header)),
                Err(AuthError::MalformedToken(_))
            ));
        }
    }

    #[test]
    fn rejects_nested_and_encrypted_headers() {
        for header in [
            r#"{"alg":"RS256","cty":"JWT"}"#,
            r#"{"alg":"RS256","cty":"application/jwt"}"#,
            r#"{"alg":"RS256","enc":"A128GCM"}"#,
        ] {
            assert_eq!(
                CompactJws::parse(&token_with_header(header)).unwrap_err(),
                AuthError::UnsupportedTokenFormat,
                "{header}"
            );
        }
    }

    #[test]
    fn rejects_badly_typed_or_duplicated_header_members() {
        for header in [
            r#"{"alg":"RS256","kid":7}"#,
            r#"{"alg":"RS256","kid":null}"#,
            r#"{"alg":"RS256","typ":["JWT"]}"#,
            r#"{"alg":256}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":"RS256","alg":"HS256"}"#,
            r#"["alg","RS256"]"#,
        ] {
            assert!(
                matches!(
                    CompactJws::parse(&token_with_header(header)),
                    Err(AuthError::MalformedToken(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn unknown_algorithms_are_unsupported() {
        let token = token_with_header(r#"{"alg":"ES512"}"#);
        assert_eq!(
            CompactJws::parse(&token).unwrap_err(),
            AuthError::UnsupportedAlgorithm
        );
    }

    #[test]
    fn ignores_header_members_that_carry_keys() {
        let token = token_with_header(
            r#"{"alg":"RS256","jku":"https://evil.example/jwks","x5u":"https://evil.example/c","jwk":{"kty":"oct","k":"AA"},"x5c":["AA"]}"#,
        );
        assert_eq!(
            CompactJws::parse(&token).unwrap().header.alg,
            Algorithm::RS256
        );
    }

    #[test]
    fn media_types_compare_without_case_or_application_prefix() {
        assert!(media_type_matches("at+jwt", "at+jwt"));
        assert!(media_type_matches("application/AT+JWT", "at+jwt"));
        assert!(media_type_matches("at+jwt", "application/at+jwt"));
        assert!(!media_type_matches("jwt", "at+jwt"));
    }
}
