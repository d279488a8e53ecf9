//! WebSocket and other `Upgrade` requests: recognised, forwarded on an HTTP/1.1 connection, and,
//! once the upstream answers `101`, tunnelled both ways until either side closes. Optionally the
//! token comes from `Sec-WebSocket-Protocol` (`access_token, <jwt>`), which is all a browser's
//! `new WebSocket(url, protocols)` can send.

use http::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// The protocol name announcing that the next protocol in the list is a token.
pub const ACCESS_TOKEN_PROTOCOL: &str = "access_token";

/// The `Upgrade` header of a request that asks for one (`Connection: upgrade` and `Upgrade`).
pub fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Marks a request whose token came from `Sec-WebSocket-Protocol`, so that the handshake is
/// answered with a protocol the client offered.
#[derive(Debug, Clone, Copy)]
pub struct TokenFromProtocol;

/// Moves the token of `Sec-WebSocket-Protocol: access_token, <jwt>[, more…]` into an
/// `Authorization: Bearer` header (appended: with another `Authorization` header the layer
/// refuses the request as carrying two tokens), and leaves the other protocols for the upstream.
/// Returns whether a token was found; a list naming `access_token` without a token after it is
/// left as it is (the layer then finds no token).
pub fn take_protocol_token(headers: &mut HeaderMap) -> bool {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|protocol| protocol.trim().to_owned())
        .filter(|protocol| !protocol.is_empty())
        .collect();
    let Some(at) = offered
        .iter()
        .position(|protocol| protocol == ACCESS_TOKEN_PROTOCOL)
    else {
        return false;
    };
    let Some(bearer) = offered
        .get(at + 1)
        .and_then(|token| HeaderValue::from_str(&format!("Bearer {token}")).ok())
    else {
        return false;
    };
    let rest: Vec<&str> = offered
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != at && *index != at + 1)
        .map(|(_, protocol)| protocol.as_str())
        .collect();
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if let Ok(value) = HeaderValue::from_str(&rest.join(", "))
        && !rest.is_empty()
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    headers.append(header::AUTHORIZATION, bearer);
    true
}

/// The handshake answer for a token that came from the protocols: the protocol the upstream
/// chose among the others, or else `access_token` (a browser fails a handshake that offered
/// protocols and got none back).
pub fn answer_protocol(headers: &mut HeaderMap) {
    if !headers.contains_key(header::SEC_WEBSOCKET_PROTOCOL) {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(ACCESS_TOKEN_PROTOCOL),
        );
    }
}

/// Copies bytes both ways between the client's and the upstream's upgraded connections until
/// either side closes.
pub async fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(err) => {
            tracing::debug!(error = %err, "upgrade failed");
            return;
        }
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((sent, received)) => tracing::debug!(sent, received, "upgraded connection closed"),
        Err(err) => tracing::debug!(error = %err, "upgraded connection ended"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.parse().unwrap(), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let asked = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(requested(&asked).unwrap(), "websocket");
        assert!(requested(&headers(&[("upgrade", "websocket")])).is_none());
        assert!(requested(&headers(&[("connection", "upgrade")])).is_none());
    }

    #[test]
    fn the_protocol_token_moves_to_authorization() {
        let mut only = headers(&[("sec-websocket-protocol", "access_token, a.b.c")]);
        assert!(take_protocol_token(&mut only));
        assert_eq!(only[header::AUTHORIZATION], "Bearer a.b.c");
        assert!(!only.contains_key(header::SEC_WEBSOCKET_PROTOCOL));

        let mut more = headers(&[("sec-websocket-protocol", "chat, access_token, a.b.c, v2")]);
        assert!(take_protocol_token(&mut more));
        assert_eq!(more[header::SEC_WEBSOCKET_PROTOCOL], "chat, v2");

        let mut two = headers(&[
            ("authorization", "Bearer x.y.z"),
            ("sec-websocket-protocol", "access_token, a.b.c"),
        ]);
        assert!(take_protocol_token(&mut two));
        assert_eq!(two.get_all(header::AUTHORIZATION).iter().count(), 2);

        let mut none = headers(&[("sec-websocket-protocol", "chat, access_token")]);
        assert!(!take_protocol_token(&mut none));
        assert_eq!(none[header::SEC_WEBSOCKET_PROTOCOL], "chat, access_token");
    }
}
