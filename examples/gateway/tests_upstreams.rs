//! Upstreams beyond plain HTTP/1.1: HTTPS (a private CA, SNI, HTTP/2 by ALPN) and WebSocket.

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::*;

/// A CA and a certificate it signed for `localhost` and 127.0.0.1, in a temporary directory.
struct Pki {
    dir: std::path::PathBuf,
    ca_file: std::path::PathBuf,
    server: rustls::ServerConfig,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("gateway-pki-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Pki {
        dir,
        ca_file,
        server,
    }
}

/// An HTTPS upstream (HTTP/1.1 and HTTP/2) answering with the version, the SNI name, the path
/// and the `x-auth-sub` header it got.
async fn serve_https(config: rustls::ServerConfig) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let router = Router::new().fallback(move |request: Request<Body>| {
                    let sni = sni.clone();
                    async move {
                        Json(json!({
                            "version": format!("{:?}", request.version()),
                            "sni": sni,
                            "path": request.uri().path(),
                            "sub": request.headers().get("x-auth-sub").and_then(|v| v.to_str().ok()),
                        }))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstream_with_a_private_ca_sni_and_http2() {
    let env = env().await;
    let pki = pki("h2");
    let upstream = serve_https(pki.server.clone()).await;
    let mut args = env.args(&[&format!("--upstream-ca={}", pki.ca_file.display())]);
    args[2] = format!("https://localhost:{}/base", upstream.port());
    let gateway = start_gateway(args).await;
    let answer = get_path(gateway.local_addr(), "/x", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let echo = answer.json();
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["sni"], "localhost");
    assert_eq!(echo["path"], "/base/x");
    assert_eq!(echo["sub"], "alice");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn https_upstream_over_http1_when_it_offers_no_h2() {
    let env = env().await;
    let pki = pki("h1");
    let mut server = pki.server.clone();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let upstream = serve_https(server).await;
    let mut args = env.args(&[&format!("--upstream-ca={}", pki.ca_file.display())]);
    args[2] = format!("https://localhost:{}/base", upstream.port());
    let gateway = start_gateway(args).await;
    let answer = get_path(gateway.local_addr(), "/x", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["version"], "HTTP/1.1");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn https_upstream_with_an_unknown_ca_is_502() {
    let env = env().await;
    let pki = pki("unknown");
    let upstream = serve_https(pki.server.clone()).await;
    // The system's roots don't know the test CA.
    let mut args = env.args(&[]);
    args[2] = format!("https://localhost:{}/base", upstream.port());
    let gateway = start_gateway(args).await;
    let answer = get_path(gateway.local_addr(), "/x", Some(&env.token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    gateway.shutdown().await.unwrap();
}

/// A WebSocket upstream: it first tells what it got (the identity header, the protocols offered,
/// whether an `Authorization` header came), then echoes each text message.
async fn serve_websocket() -> SocketAddr {
    async fn handler(ws: WebSocketUpgrade, headers: HeaderMap) -> Response<Body> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let hello = json!({
            "sub": header("x-auth-sub"),
            "protocols": header("sec-websocket-protocol"),
            "authorization": header("authorization").is_some(),
        });
        ws.protocols(["chat"])
            .on_upgrade(move |socket| echo_messages(socket, hello))
            .into_response()
    }
    async fn echo_messages(mut socket: WebSocket, hello: Value) {
        if socket
            .send(WsMessage::Text(hello.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(message)) = socket.next().await {
            match message {
                WsMessage::Text(text) => {
                    let reply = format!("echo: {}", text.as_str());
                    if socket.send(WsMessage::Text(reply.into())).await.is_err() {
                        return;
                    }
                }
                WsMessage::Close(_) => return,
                _ => {}
            }
        }
    }
    use axum::response::IntoResponse as _;
    serve(Router::new().route("/base/ws", get(handler))).await
}

type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(client: &mut WsClient) -> String {
    loop {
        match within(client.next()).await.unwrap().unwrap() {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Close(_) => panic!("closed"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn websocket_is_proxied_after_authentication() {
    let env = env().await;
    let upstream = serve_websocket().await;
    let mut args = env.args(&[]);
    args[2] = format!("http://{upstream}/base");
    let gateway = start_gateway(args).await;
    let url = format!("ws://{}/ws", gateway.local_addr());

    // Without a token: the handshake gets the 401.
    let err = within(tokio_tungstenite::connect_async(url.as_str()))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("{other}"),
    }

    // With one: both directions, until the client closes.
    let mut request = url.as_str().into_client_request().unwrap();
    let bearer = format!("Bearer {}", env.token(json!({})));
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, bearer.parse().unwrap());
    let (mut client, response) = within(tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let hello: Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(hello["sub"], "alice");
    assert_eq!(hello["authorization"], false);
    for text in ["one", "two"] {
        within(client.send(Message::text(text))).await.unwrap();
        assert_eq!(next_text(&mut client).await, format!("echo: {text}"));
    }
    within(client.close(None)).await.unwrap();
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn websocket_token_from_the_protocol_header() {
    let env = env().await;
    let upstream = serve_websocket().await;
    let mut args = env.args(&["--token-from-websocket-protocol"]);
    args[2] = format!("http://{upstream}/base");
    let gateway = start_gateway(args).await;
    let url = format!("ws://{}/ws", gateway.local_addr());
    let token = env.token(json!({}));
    let connect = |protocols: String| {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };

    // `access_token, <jwt>` alone: the handshake is answered `access_token`.
    let (mut client, response) = within(connect(format!("access_token, {token}")))
        .await
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "access_token");
    let hello: Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(hello["sub"], "alice");
    assert_eq!(
        hello["protocols"],
        Value::Null,
        "the token reached the upstream"
    );
    assert_eq!(hello["authorization"], false);
    within(client.close(None)).await.unwrap();

    // With an application protocol: the upstream sees only it, and the answer is its choice.
    let (mut client, response) = within(connect(format!("access_token, {token}, chat")))
        .await
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    let hello: Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(hello["protocols"], "chat");
    within(client.close(None)).await.unwrap();

    // A bad token there is refused like any other; a token in both places is 400.
    let expired = env.token(json!({"exp": now() - 3600}));
    let err = within(connect(format!("access_token, {expired}")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == StatusCode::UNAUTHORIZED),
        "{err}"
    );
    let mut both = url.as_str().into_client_request().unwrap();
    both.headers_mut().insert(
        "sec-websocket-protocol",
        format!("access_token, {token}").parse().unwrap(),
    );
    both.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let err = within(tokio_tungstenite::connect_async(both))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == StatusCode::BAD_REQUEST),
        "{err}"
    );
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_protocol_token_on_a_public_path_does_not_reach_the_upstream() {
    let env = env().await;
    let gateway = env.gateway(&["--token-from-websocket-protocol"]).await;
    let token = env.token(json!({}));
    let answer = send(
        request(gateway.local_addr(), "/public/x", None)
            .header(
                "sec-websocket-protocol",
                format!("chat, access_token, {token}"),
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let headers = &answer.json()["headers"];
    assert_eq!(headers["sec-websocket-protocol"], "chat");
    assert!(headers.get("authorization").is_none(), "{headers}");
    gateway.shutdown().await.unwrap();
}
