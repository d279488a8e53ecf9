//! The headers the gateway manages: hop-by-hop headers, the forwarding headers it writes
//! (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`), and the claims it passes on (`x-auth-*`). None of
//! them can come from the client, in any spelling: a CGI, WSGI or PHP upstream reads
//! `x_auth_sub` as `X-Auth-Sub`, so a name with `_` read as `-` counts as the managed one.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Extensions;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tower_jwt_auth::{Claims, VerifiedToken};

use crate::config::{Forwarding, ISS_HEADER, SCOPE_HEADER, SUB_HEADER};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The hop-by-hop headers of RFC 9110 §7.6.1 (and the legacy ones proxies also drop).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Forwarding headers the gateway writes itself, or drops because only a proxy may set them
/// (an upstream would trust them to rebuild the URL, the client address or the path).
static FORWARDING: [HeaderName; 13] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-original-method"),
    HeaderName::from_static("x-rewrite-url"),
];

pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_by_hop_index(name).is_some()
}

/// The index of `name` in [`HOP_BY_HOP`]: a `match` on its text (a switch on the length, then
/// one comparison) where comparing it with each of the nine names took about 400 instructions
/// for a response's few headers.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return None,
    })
}

/// Whether the gateway writes or drops `name` itself.
pub fn is_forwarding(name: &str) -> bool {
    FORWARDING.iter().any(|managed| managed.as_str() == name)
}

/// Removes the hop-by-hop headers, including those the `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few headers a message has, noting which hop-by-hop ones are there,
    // rather than a removal (a hash and a lookup) per hop-by-hop name: most requests carry none,
    // and an upstream's response often only `Connection: keep-alive`.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(index) = hop_by_hop_index(name) {
            present[index] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    // `present[0]` is `Connection`. The headers it names go too; only those the message has are
    // collected (`Connection: keep-alive` names a hop-by-hop header, `close` usually none).
    // An upstream's response usually says only `Connection: keep-alive` (or `close`), which
    // names no other header.
    let only_keep_alive_or_close = || {
        let mut values = headers.get_all(header::CONNECTION).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => {
                let value = value.as_bytes();
                value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close")
            }
            _ => false,
        }
    };
    if present[0] && !only_keep_alive_or_close() {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|option| {
                !HOP_BY_HOP
                    .iter()
                    .any(|hop| option.eq_ignore_ascii_case(hop.as_str()))
                    && headers.contains_key(*option)
            })
            .filter_map(|option| HeaderName::try_from(option).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP
        .iter()
        .zip(present)
        .filter(|(_, present)| *present)
    {
        headers.remove(name);
    }
}

/// Which claims go to the upstream, in which headers.
#[derive(Debug, Clone)]
pub struct ClaimHeaders {
    /// Claim → header: `sub`, `iss`, then the configured ones.
    claims: Vec<(String, HeaderName)>,
    scope: HeaderName,
    payload: Option<HeaderName>,
}

impl ClaimHeaders {
    pub fn new(forwarding: &Forwarding) -> Self {
        let mut claims = vec![
            ("sub".to_owned(), HeaderName::from_static(SUB_HEADER)),
            ("iss".to_owned(), HeaderName::from_static(ISS_HEADER)),
        ];
        claims.extend(forwarding.claim_headers.iter().cloned());
        Self {
            claims,
            scope: HeaderName::from_static(SCOPE_HEADER),
            payload: forwarding.claims_header.clone(),
        }
    }

    /// Every header name the gateway sets from claims.
    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.claims
            .iter()
            .map(|(_, header)| header)
            .chain(std::iter::once(&self.scope))
            .chain(self.payload.iter())
    }

    /// Whether `name` (lower case, as a `HeaderName` is) is a managed header in some spelling.
    fn is_spoofed(&self, name: &str) -> bool {
        if !name.contains('_') {
            return self.names().any(|managed| managed.as_str() == name);
        }
        // `x_auth_sub` and `x-auth_sub` are `x-auth-sub` to a CGI upstream: compare with `_` read
        // as `-`, without building the dashed name.
        let same = |managed: &str| {
            managed.len() == name.len()
                && managed
                    .bytes()
                    .zip(name.bytes())
                    .all(|(m, n)| m == n || (m == b'-' && n == b'_'))
        };
        self.names().any(|managed| same(managed.as_str()))
            || FORWARDING.iter().any(|managed| same(managed.as_str()))
    }

    /// Removes from a client's request every header the gateway sets from claims, and every
    /// spelling of a managed header with `_` for `-` (`x_auth_sub`, `x_forwarded_for`). The
    /// forwarding headers themselves are left to [`set_forwarding`].
    pub fn remove_spoofed(&self, headers: &mut HeaderMap) {
        // Checked without allocating; the names are collected only when there is one to remove.
        if !headers.keys().any(|name| self.is_spoofed(name.as_str())) {
            return;
        }
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| self.is_spoofed(name.as_str()))
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(name);
        }
    }

    /// Adds the headers for the verified token and claims the layer put in `extensions`; none
    /// when they are not there (a public path).
    pub fn insert_verified(&self, headers: &mut HeaderMap, extensions: &Extensions) {
        if let (Some(token), Some(Claims(claims))) = (
            extensions.get::<VerifiedToken>(),
            extensions.get::<Claims<Value>>(),
        ) {
            self.insert(headers, token, claims);
        }
    }

    /// Adds the headers for a verified token, from its `claims` as the layer decoded them (the
    /// payload is not parsed again): each configured claim (a claim that is absent, or whose
    /// value can't be a header value, is left out), its scopes as the crate read them, and the
    /// whole payload if configured.
    pub fn insert(&self, headers: &mut HeaderMap, token: &VerifiedToken, claims: &Value) {
        for (claim, header) in &self.claims {
            let value = match claims.get(claim) {
                None | Some(Value::Null) => continue,
                Some(Value::String(text)) => HeaderValue::from_str(text),
                Some(other) => HeaderValue::try_from(other.to_string()),
            };
            match value {
                Ok(value) => {
                    headers.insert(header.clone(), value);
                }
                Err(_) => {
                    tracing::debug!(claim, header = %header, "claim not forwarded: not a valid header value")
                }
            }
        }
        let mut scopes = token.scopes();
        if let Some(first) = scopes.next() {
            let mut text = first.to_owned();
            for scope in scopes {
                text.push(' ');
                text.push_str(scope);
            }
            if let Ok(value) = HeaderValue::try_from(text) {
                headers.insert(self.scope.clone(), value);
            }
        }
        if let Some(header) = &self.payload
            && let Ok(value) = HeaderValue::try_from(URL_SAFE_NO_PAD.encode(token.payload_json()))
        {
            headers.insert(header.clone(), value);
        }
    }
}

/// The forwarding headers of a proxied request: `X-Forwarded-For` gets the client's address
/// appended; `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP` and `Forwarded` (RFC 7239, one
/// element for this hop) are written by the gateway; the other forwarding headers a client sent
/// (`X-Forwarded-Port`, `-Prefix`, `X-Original-URL`, `X-Rewrite-URL` …) are removed.
pub fn set_forwarding(
    headers: &mut HeaderMap,
    client: Option<&ClientAddr>,
    host: Option<HeaderValue>,
) {
    let client_ip = client.map(|client| client.ip);
    let ip = client.and_then(|client| client.text.to_str().ok());
    let chain = client.and_then(|client| {
        let mut hops = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .peekable();
        // Most requests come without one: the chain is the address alone.
        if hops.peek().is_none() {
            return Some(client.text.clone());
        }
        let mut chain = String::new();
        for hop in hops {
            chain.push_str(hop);
            chain.push_str(", ");
        }
        chain.push_str(ip?);
        HeaderValue::try_from(chain).ok()
    });
    // One pass over the message's headers, noting which forwarding ones are there, rather than a
    // removal (a hash and a lookup) per forwarding name: most requests carry none of them.
    let mut present = [false; FORWARDING.len()];
    for name in headers.keys() {
        if let Some(index) = FORWARDING.iter().position(|managed| managed == name) {
            present[index] = true;
        }
    }
    for (name, _) in FORWARDING
        .iter()
        .zip(present)
        .filter(|(_, present)| *present)
    {
        headers.remove(name);
    }
    if let Some(value) = chain {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if let Some(client) = client {
        headers.insert(X_REAL_IP.clone(), client.text.clone());
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = &host {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    if let Ok(value) = HeaderValue::try_from(forwarded_element(client_ip, ip, host.as_ref())) {
        headers.insert(header::FORWARDED, value);
    }
}

/// A connection's client as the forwarding headers name it: its address, and the address as a
/// header value, formatted once for all the connection's requests (formatting it took about
/// 900 instructions a request). In each request's extensions.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    pub addr: SocketAddr,
    ip: IpAddr,
    text: HeaderValue,
}

impl ClientAddr {
    pub fn new(addr: SocketAddr) -> Self {
        let ip = addr.ip();
        let text = IpText::new(ip);
        Self {
            addr,
            ip,
            // Can't fail: an address's text is ASCII.
            text: HeaderValue::from_str(text.as_str()).unwrap_or(HeaderValue::from_static("")),
        }
    }
}

/// An IP address as text, formatted on the stack: the longest, an IPv6 address with an
/// embedded IPv4 one, is 45 bytes.
struct IpText {
    bytes: [u8; 45],
    len: usize,
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        use std::fmt::Write as _;
        let mut text = Self {
            bytes: [0; 45],
            len: 0,
        };
        // Can't fail: every address fits.
        let _ = write!(text, "{ip}");
        text
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let into = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        into.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// One RFC 7239 element: `for=…;host="…";proto=http`; `ip` is `client_ip` as text. Made with
/// its exact length, so that the header value takes the text's buffer as it is (with room to
/// spare, it would allocate again to share it).
fn forwarded_element(
    client_ip: Option<IpAddr>,
    ip: Option<&str>,
    host: Option<&HeaderValue>,
) -> String {
    let (open, ip, close) = match (client_ip, ip) {
        (Some(IpAddr::V4(_)), Some(ip)) => ("for=", ip, ""),
        (Some(IpAddr::V6(_)), Some(ip)) => ("for=\"[", ip, "]\""),
        _ => ("for=unknown", "", ""),
    };
    let host = host
        .and_then(|host| host.to_str().ok())
        .filter(|host| !host.contains(['"', '\\']));
    let (host_open, host, host_close) = match host {
        Some(host) => (";host=\"", host, "\""),
        None => ("", "", ""),
    };
    let pieces = [open, ip, close, host_open, host, host_close, ";proto=http"];
    let mut element = String::with_capacity(pieces.iter().map(|piece| piece.len()).sum());
    for piece in pieces {
        element.push_str(piece);
    }
    element
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_by_hop_match_knows_every_hop_by_hop_name_and_no_other() {
        for (index, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(index), "{name}");
        }
        for other in FORWARDING
            .iter()
            .chain([&header::HOST, &header::CONTENT_LENGTH])
        {
            assert_eq!(hop_by_hop_index(other), None, "{other}");
        }
    }

    fn client(ip: &str) -> ClientAddr {
        ClientAddr::new(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn a_lone_keep_alive_or_close_is_removed_in_any_case() {
        for value in ["keep-alive", "Keep-Alive", "close", "CLOSE"] {
            let mut headers = HeaderMap::new();
            headers.insert("connection", HeaderValue::from_static(value));
            headers.insert("x-kept", HeaderValue::from_static("1"));
            remove_hop_by_hop(&mut headers);
            assert_eq!(headers.len(), 1, "{value}: {headers:?}");
            assert!(headers.contains_key("x-kept"));
        }
    }

    #[test]
    fn every_connection_header_counts_and_absent_options_are_harmless() {
        let mut headers = HeaderMap::new();
        headers.append("connection", HeaderValue::from_static("keep-alive"));
        headers.append(
            "connection",
            HeaderValue::from_static("close, x-one, X-Absent"),
        );
        headers.insert("x-one", HeaderValue::from_static("1"));
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("content-type"));
        // Nothing to remove: left as it was.
        let mut plain = HeaderMap::new();
        plain.insert("content-length", HeaderValue::from_static("6"));
        remove_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 1);
    }

    fn claim_headers() -> ClaimHeaders {
        ClaimHeaders::new(&Forwarding {
            claim_headers: vec![
                ("email".into(), HeaderName::from_static("x-auth-email")),
                ("roles".into(), HeaderName::from_static("x-auth-roles")),
            ],
            claims_header: Some(HeaderName::from_static("x-auth-claims")),
            forward_authorization: false,
        })
    }

    #[test]
    fn spoofed_claim_headers_go_in_every_spelling() {
        let mut headers = HeaderMap::new();
        for name in [
            "x-auth-sub",
            "x_auth_sub",
            "x-auth_iss",
            "x-auth-email",
            "x_auth_scope",
            "x-auth-claims",
            "x_forwarded_for",
            "x_real_ip",
            "x-forwarded_host",
        ] {
            headers.insert(name, HeaderValue::from_static("spoofed"));
        }
        headers.insert("x_custom", HeaderValue::from_static("kept"));
        claim_headers().remove_spoofed(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x_custom"));
    }

    #[test]
    fn forwarding_headers_are_written_by_the_gateway() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        headers.insert(&X_FORWARDED_HOST, HeaderValue::from_static("evil"));
        for name in [
            "forwarded",
            "x-real-ip",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-original-url",
            "x-rewrite-url",
        ] {
            headers.insert(name, HeaderValue::from_static("spoofed"));
        }
        set_forwarding(
            &mut headers,
            Some(&client("127.0.0.1")),
            Some(HeaderValue::from_static("gw.example:8080")),
        );
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
        assert_eq!(headers[&X_FORWARDED_HOST], "gw.example:8080");
        assert_eq!(headers[&X_REAL_IP], "127.0.0.1");
        assert_eq!(
            headers[header::FORWARDED],
            "for=127.0.0.1;host=\"gw.example:8080\";proto=http"
        );
        for gone in [
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-original-url",
            "x-rewrite-url",
        ] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        let mut headers = HeaderMap::new();
        set_forwarding(&mut headers, Some(&client("::1")), None);
        assert_eq!(headers[header::FORWARDED], "for=\"[::1]\";proto=http");
        assert_eq!(headers[&X_FORWARDED_FOR], "::1");
    }

    #[test]
    fn the_longest_addresses_are_written_whole() {
        for ip in [
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "255.255.255.255",
        ] {
            let mut headers = HeaderMap::new();
            set_forwarding(&mut headers, Some(&client(ip)), None);
            assert_eq!(headers[&X_REAL_IP], ip);
            assert_eq!(headers[&X_FORWARDED_FOR], ip);
        }
    }
}
