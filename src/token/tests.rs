//! Tests of token extraction: the `Authorization` header, the opt-in sources and the b64token
//! grammar.

use super::*;
use http::HeaderValue;

fn websocket(values: &[&str]) -> Result<Option<String>, AuthError> {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let extractor = TokenExtractor {
        extra_sources: Box::new([TokenSource::WebSocketProtocol]),
        max_len: 64,
        dpop_scheme: false,
    };
    extractor
        .extract(&headers, &Uri::from_static("/"))
        .map(|token| token.map(Cow::into_owned))
}

#[test]
fn reads_the_token_after_access_token_in_the_websocket_protocols() {
    assert_eq!(
        websocket(&["access_token, a.b.c"]),
        Ok(Some("a.b.c".into()))
    );
    assert_eq!(
        websocket(&["graphql-ws,access_token ,  a.b.c , chat"]),
        Ok(Some("a.b.c".into()))
    );
    assert_eq!(
        websocket(&["chat", "access_token", "a.b.c"]),
        Ok(Some("a.b.c".into()))
    );
    assert_eq!(websocket(&["chat, superchat"]), Ok(None));
    assert_eq!(websocket(&[]), Ok(None));
    assert!(matches!(
        websocket(&["chat, access_token"]),
        Err(AuthError::MalformedToken(_))
    ));
    assert!(matches!(
        websocket(&["access_token, a.b c"]),
        Err(AuthError::MalformedToken(_))
    ));
    assert_eq!(
        websocket(&["access_token, a.b.c, access_token, d.e.f"]),
        Err(AuthError::MultipleTokens)
    );
    assert_eq!(
        websocket(&[&format!("access_token, {}", "a".repeat(65))]),
        Err(AuthError::TokenTooLarge)
    );
}

#[test]
fn b64token_characters_are_exactly_those_of_rfc_6750() {
    for byte in 0..=u8::MAX {
        let expected =
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        assert_eq!(is_b64token_char(byte), expected, "byte {byte:#04x}");
        // Anywhere in a long token, one bad byte spoils it.
        let mut token = vec![b'a'; 100];
        token[57] = byte;
        assert_eq!(is_b64token(&token), expected, "byte {byte:#04x} at 57");
    }
    assert!(is_b64token(b"a.b.c=="));
    assert!(!is_b64token(b"=="));
    assert!(!is_b64token(b"a=b"));
}

fn extractor(extra: Vec<TokenSource>) -> TokenExtractor {
    TokenExtractor {
        extra_sources: extra.into(),
        max_len: 64,
        dpop_scheme: false,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn extract(pairs: &[(&str, &str)]) -> Result<Option<String>, AuthError> {
    let uri = Uri::from_static("/");
    extractor(vec![])
        .extract(&headers(pairs), &uri)
        .map(|t| t.map(Cow::into_owned))
}

#[test]
fn reads_the_bearer_scheme_in_any_case() {
    for value in [
        "Bearer a.b.c",
        "bearer a.b.c",
        "BEARER a.b.c",
        "Bearer   a.b.c",
    ] {
        assert_eq!(
            extract(&[("authorization", value)]),
            Ok(Some("a.b.c".into())),
            "{value}"
        );
    }
}

#[test]
fn no_header_or_another_scheme_is_no_token() {
    assert_eq!(extract(&[]), Ok(None));
    assert_eq!(
        extract(&[("authorization", "Basic dXNlcjpwYXNz")]),
        Ok(None)
    );
}

#[test]
fn refuses_anything_but_exactly_one_token() {
    for value in [
        "Bearer",
        "Bearer ",
        "Bearer a.b.c d.e.f",
        "Bearer a.b.c realm=\"x\"",
        "Bearer a.b.c,",
        "Bearer\ta.b.c",
        "Bearer a.b.c ",
        "Bearer a b",
        "Bearer ===",
    ] {
        assert_eq!(
            extract(&[("authorization", value)]),
            Err(AuthError::MalformedAuthorizationHeader),
            "{value}"
        );
    }
}

#[test]
fn reads_the_dpop_scheme_only_when_enabled() {
    let uri = Uri::from_static("/");
    let mut ex = extractor(vec![]);
    let dpop = headers(&[("authorization", "DPoP a.b.c")]);
    assert_eq!(ex.extract_with_scheme(&dpop, &uri), Ok(None));
    ex.dpop_scheme = true;
    for value in ["DPoP a.b.c", "dpop a.b.c", "DPOP  a.b.c"] {
        let found = ex
            .extract_with_scheme(&headers(&[("authorization", value)]), &uri)
            .unwrap()
            .map(|(token, scheme)| (token.into_owned(), scheme));
        assert_eq!(found, Some(("a.b.c".to_owned(), Scheme::Dpop)), "{value}");
    }
    let bearer = headers(&[("authorization", "Bearer a.b.c")]);
    assert_eq!(
        ex.extract_with_scheme(&bearer, &uri).unwrap().unwrap().1,
        Scheme::Bearer
    );
    for value in ["DPoP", "DPoP a.b.c d", "DPoP\ta.b.c"] {
        assert_eq!(
            ex.extract_with_scheme(&headers(&[("authorization", value)]), &uri),
            Err(AuthError::MalformedAuthorizationHeader),
            "{value}"
        );
    }
}

#[test]
fn refuses_two_authorization_headers() {
    assert_eq!(
        extract(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer d.e.f")
        ]),
        Err(AuthError::MultipleTokens)
    );
}

#[test]
fn refuses_tokens_over_the_size_cap_before_decoding() {
    let long = format!("Bearer {}", "a".repeat(65));
    assert_eq!(
        extract(&[("authorization", &long)]),
        Err(AuthError::TokenTooLarge)
    );
    let fits = format!("Bearer {}", "a".repeat(64));
    assert!(extract(&[("authorization", &fits)]).unwrap().is_some());
}

#[test]
fn reads_opt_in_sources() {
    let ex = extractor(vec![
        TokenSource::Cookie("session".into()),
        TokenSource::Header(HeaderName::from_static("x-token")),
        TokenSource::Query("access_token".into()),
    ]);
    let uri = Uri::from_static("/p?x=1&access_token=q.r.s");
    assert_eq!(
        ex.extract(&HeaderMap::new(), &uri).unwrap().as_deref(),
        Some("q.r.s")
    );
    let cookies = headers(&[("cookie", "a=1; session=c.d.e; b=2")]);
    assert_eq!(
        ex.extract(&cookies, &Uri::from_static("/"))
            .unwrap()
            .as_deref(),
        Some("c.d.e")
    );
    let custom = headers(&[("x-token", "h.i.j")]);
    assert_eq!(
        ex.extract(&custom, &Uri::from_static("/"))
            .unwrap()
            .as_deref(),
        Some("h.i.j")
    );
}

#[test]
fn refuses_a_token_in_two_places() {
    let ex = extractor(vec![TokenSource::Query("access_token".into())]);
    let uri = Uri::from_static("/?access_token=q.r.s");
    let both = headers(&[("authorization", "Bearer a.b.c")]);
    assert_eq!(ex.extract(&both, &uri), Err(AuthError::MultipleTokens));
    let twice = Uri::from_static("/?access_token=a&access_token=b");
    assert_eq!(
        ex.extract(&HeaderMap::new(), &twice),
        Err(AuthError::MultipleTokens)
    );
}

#[test]
fn ignores_the_query_unless_opted_in() {
    let uri = Uri::from_static("/?access_token=q.r.s");
    assert_eq!(extractor(vec![]).extract(&HeaderMap::new(), &uri), Ok(None));
}

#[test]
fn another_scheme_with_non_ascii_bytes_is_no_token() {
    let mut map = HeaderMap::new();
    map.insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"Basic \xc3\xa9").unwrap(),
    );
    let uri = Uri::from_static("/");
    assert_eq!(extractor(vec![]).extract(&map, &uri), Ok(None));
}

#[test]
fn non_ascii_in_other_cookies_does_not_hide_the_token_cookie() {
    let mut map = HeaderMap::new();
    map.insert(
        COOKIE,
        HeaderValue::from_bytes(b"other=\xc3\xa9; session=c.d.e").unwrap(),
    );
    let ex = extractor(vec![TokenSource::Cookie("session".into())]);
    assert_eq!(
        ex.extract(&map, &Uri::from_static("/")).unwrap().as_deref(),
        Some("c.d.e")
    );
}

#[test]
fn empty_opt_in_values_are_no_token() {
    let ex = extractor(vec![
        TokenSource::Cookie("session".into()),
        TokenSource::Query("access_token".into()),
        TokenSource::Header(HeaderName::from_static("x-token")),
    ]);
    let empty = headers(&[("cookie", "session="), ("x-token", "")]);
    let uri = Uri::from_static("/?access_token=");
    assert_eq!(ex.extract(&empty, &uri), Ok(None));
}
