//! Getting the token out of a request: the `Authorization: Bearer` header (RFC 6750 §2.1), and,
//! when opted in, a cookie, another header or a query parameter.

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, HeaderName, Uri};

use crate::error::AuthError;

/// A place besides `Authorization: Bearer` where the layer may look for the token.
///
/// The `Authorization` header is always read. A request that carries a token in more than one
/// place is refused (`400 invalid_request`), so that two parts of a system can't disagree about
/// which token a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// A cookie of this name (e.g. a browser session). Mind CSRF when you use it.
    Cookie(String),
    /// A header of this name holding the bare token (no `Bearer` prefix).
    Header(HeaderName),
    /// A query parameter of this name (RFC 6750 §2.3; discouraged, as URLs end up in logs).
    Query(String),
    /// The WebSocket subprotocol convention for browsers, which can't set headers on the
    /// handshake: `Sec-WebSocket-Protocol: access_token, <jwt>` (Kubernetes and others use it).
    /// The server must then answer the handshake with one of the *other* protocols offered,
    /// never echoing the token.
    WebSocketProtocol,
}

/// The subprotocol entry that announces the token in `Sec-WebSocket-Protocol`.
pub(crate) const WEBSOCKET_TOKEN_PROTOCOL: &str = "access_token";

/// Finds the token of a request.
#[derive(Debug, Clone)]
pub(crate) struct TokenExtractor {
    pub(crate) extra_sources: Box<[TokenSource]>,
    pub(crate) max_len: usize,
    /// Whether `Authorization: DPoP <token>` (RFC 9449 §7.1) is read too.
    pub(crate) dpop_scheme: bool,
}

/// How the token came: as a bearer token (any source), or under the `DPoP` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

impl TokenExtractor {
    /// The request's token, `Ok(None)` if it has none.
    #[cfg(test)]
    pub(crate) fn extract<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<Cow<'r, str>>, AuthError> {
        self.extract_with_scheme(headers, uri)
            .map(|found| found.map(|(token, _)| token))
    }

    /// The request's token and the scheme it came under, `Ok(None)` if it has none, with every
    /// check of [`find`](Self::find) done.
    #[cfg(test)]
    pub(crate) fn extract_with_scheme<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<(Cow<'r, str>, Scheme)>, AuthError> {
        let Some(found) = self.find(headers, uri)? else {
            return Ok(None);
        };
        if !found.characters_checked && !is_b64token(&found.token) {
            return Err(AuthError::MalformedAuthorizationHeader);
        }
        let token = match found.token {
            Cow::Borrowed(bytes) => Cow::Borrowed(
                std::str::from_utf8(bytes).map_err(|_| AuthError::MalformedAuthorizationHeader)?,
            ),
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes).map_err(|_| AuthError::MalformedAuthorizationHeader)?,
            ),
        };
        Ok(Some((token, found.scheme)))
    }

    /// The request's token and the scheme it came under, `Ok(None)` if it has none.
    ///
    /// The characters of a token from the `Authorization` header are left unchecked (see
    /// [`Extracted::characters_checked`]): the caller checks them, with [`is_b64token`], unless
    /// the token is accepted. Every other check is done here.
    pub(crate) fn find<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<Extracted<'r>>, AuthError> {
        let mut found =
            authorization_token(headers, self.dpop_scheme)?.map(|(token, scheme)| Extracted {
                token: Cow::Borrowed(token),
                scheme,
                characters_checked: false,
            });
        for source in &*self.extra_sources {
            if let Some(token) = from_source(source, headers, uri)? {
                if found.is_some() {
                    return Err(AuthError::MultipleTokens);
                }
                found = Some(Extracted {
                    token: match token {
                        Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
                    },
                    scheme: Scheme::Bearer,
                    characters_checked: true,
                });
            }
        }
        let Some(found) = found else {
            return Ok(None);
        };
        let from_header = !found.characters_checked;
        if found.token.len() > self.max_len {
            // A malformed header is called that, whatever its size.
            if from_header && !is_b64token(&found.token) {
                return Err(AuthError::MalformedAuthorizationHeader);
            }
            return Err(AuthError::TokenTooLarge);
        }
        if !from_header && !is_b64token(&found.token) {
            return Err(AuthError::MalformedToken(
                "token has characters outside the b64token set",
            ));
        }
        Ok(Some(found))
    }
}

/// A token found in a request.
#[derive(Debug)]
pub(crate) struct Extracted<'r> {
    /// The token's bytes: those of a header token are not known to be UTF-8 yet (a hit in the
    /// verified-token cache is the very bytes of a token that verified, so it needs no check,
    /// and a miss checks them as it parses the token).
    pub(crate) token: Cow<'r, [u8]>,
    pub(crate) scheme: Scheme,
    /// Whether the token's characters were checked against RFC 6750's `b64token`. Those of a
    /// token from the `Authorization` header are not, at first: a token the layer accepts is a
    /// JWS whose three parts were decoded as strict base64url (or the very bytes of one, from
    /// the cache), so none of its characters can be outside that set, and a hit would otherwise
    /// spend ~1,150 instructions (a fifth of the layer's cost) checking a 600-byte token for
    /// nothing. A token that is not accepted is checked then, so that the answer is still
    /// `MalformedAuthorizationHeader`, and before anything is fetched or asked for it.
    pub(crate) characters_checked: bool,
}

/// The token of the `Authorization` header, if its scheme is `Bearer` (or `DPoP`, when `dpop`).
///
/// A header with another scheme (e.g. `Basic`) carries no bearer token: the request is then
/// treated as unauthenticated.
fn authorization_token(
    headers: &HeaderMap,
    dpop: bool,
) -> Result<Option<(&[u8], Scheme)>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::MultipleTokens);
    }
    // The scheme is checked on the raw bytes: a header of another scheme is not ours to judge,
    // whatever bytes it carries.
    let bytes = value.as_bytes();
    let scheme_len = bytes
        .iter()
        .position(|b| matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let scheme = if bytes[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else if dpop && bytes[..scheme_len].eq_ignore_ascii_case(b"dpop") {
        Scheme::Dpop
    } else {
        return Ok(None);
    };
    // `"Bearer" 1*SP b64token` (and `"DPoP" 1*SP token68`, the same characters): one or more
    // spaces, then exactly one token, then nothing. The token's characters are checked later
    // (see `Extracted::characters_checked`).
    let rest = &bytes[scheme_len..];
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    let token = &rest[spaces..];
    if spaces == 0 || token.is_empty() {
        return Err(AuthError::MalformedAuthorizationHeader);
    }
    Ok(Some((token, scheme)))
}

fn from_source<'r>(
    source: &TokenSource,
    headers: &'r HeaderMap,
    uri: &'r Uri,
) -> Result<Option<Cow<'r, str>>, AuthError> {
    match source {
        TokenSource::Header(name) => {
            let mut values = headers.get_all(name).iter();
            let Some(value) = values.next() else {
                return Ok(None);
            };
            if values.next().is_some() {
                return Err(AuthError::MultipleTokens);
            }
            let token = value
                .to_str()
                .map_err(|_| AuthError::MalformedAuthorizationHeader)?;
            Ok(Some(Cow::Borrowed(token)).filter(|token| !token.is_empty()))
        }
        TokenSource::Cookie(name) => {
            let mut found = None;
            for header in headers.get_all(COOKIE) {
                // Other cookies may hold any bytes (browsers send UTF-8); only ours must be text.
                for pair in header.as_bytes().split(|b| *b == b';') {
                    let pair = pair.trim_ascii();
                    let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                        continue;
                    };
                    if &pair[..eq] != name.as_bytes() {
                        continue;
                    }
                    if found.is_some() {
                        return Err(AuthError::MultipleTokens);
                    }
                    let value = std::str::from_utf8(&pair[eq + 1..])
                        .map_err(|_| AuthError::MalformedToken("token cookie is not text"))?;
                    found = Some(Cow::Borrowed(value.trim_matches('"')));
                }
            }
            Ok(found.filter(|token| !token.is_empty()))
        }
        TokenSource::Query(name) => {
            let Some(query) = uri.query() else {
                return Ok(None);
            };
            let mut found = None;
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                if key == name.as_str() {
                    if found.is_some() {
                        return Err(AuthError::MultipleTokens);
                    }
                    found = Some(value);
                }
            }
            // An emptied parameter (`?access_token=`) carries no token.
            Ok(found.filter(|token| !token.is_empty()))
        }
        TokenSource::WebSocketProtocol => {
            websocket_protocol_token(headers).map(|t| t.map(Cow::Borrowed))
        }
    }
}

/// The token after `access_token` in the `Sec-WebSocket-Protocol` list (one or more header lines
/// of comma-separated protocols).
fn websocket_protocol_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut protocols = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii);
    let mut found = None;
    while let Some(protocol) = protocols.next() {
        if protocol != WEBSOCKET_TOKEN_PROTOCOL.as_bytes() {
            continue;
        }
        if found.is_some() {
            return Err(AuthError::MultipleTokens);
        }
        let token =
            protocols
                .next()
                .filter(|token| !token.is_empty())
                .ok_or(AuthError::MalformedToken(
                    "no token after access_token in Sec-WebSocket-Protocol",
                ))?;
        // Checked as b64token by the caller; anything else is not text we can use.
        found = Some(
            std::str::from_utf8(token)
                .map_err(|_| AuthError::MalformedToken("token protocol is not text"))?,
        );
    }
    Ok(found)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
///
/// Every byte is classified with comparisons only and the results are and-ed without an early
/// exit, so the compiler checks many bytes per instruction (the length is bounded by
/// `max_token_len` before the claims are ever read, and by the header size limit before that).
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|b| **b == b'=').count();
    let body = &token[..token.len() - padding];
    !body.is_empty()
        && body
            .iter()
            .fold(true, |valid, &byte| valid & is_b64token_char(byte))
}

/// A token's bytes as text. A token that verified is ASCII (strict base64url and dots), so is one
/// whose characters were checked, and a bare token was text to begin with: this fails only for
/// bytes that were never a token (a header token that is then refused as malformed).
pub(crate) fn token_text(token: &[u8]) -> Result<&str, AuthError> {
    std::str::from_utf8(token).map_err(|_| AuthError::MalformedToken("token is not UTF-8"))
}

/// A `b64token` character other than the trailing `=`.
#[inline(always)]
fn is_b64token_char(byte: u8) -> bool {
    // Setting bit 5 maps `A`-`Z` onto `a`-`z` and nothing else onto that range.
    let letter = (byte | 0x20).wrapping_sub(b'a') < 26;
    // `+` `,` `-` `.` `/` and the digits are the 15 bytes from 0x2B, of which only `,` is not
    // allowed: one range instead of five comparisons, so that the loop over a token compiles to
    // fewer vector operations (measured: 4,438 -> 4,266 instructions per hit).
    let sign_or_digit = (byte.wrapping_sub(b'+') < 15) & (byte != b',');
    letter | sign_or_digit | (byte == b'_') | (byte == b'~')
}

#[cfg(test)]
mod tests;
