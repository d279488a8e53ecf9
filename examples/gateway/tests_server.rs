//! The workers' own HTTP server (`server.rs`), spoken to over raw TCP: keep-alive, the
//! gateway's own routes and proxied paths on one connection, malformed and oversized requests,
//! and idle connections at shutdown.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::*;

/// Reads one response (head and a `Content-Length` body) from `stream`: the status code, the
/// head and the body. `buffer` keeps what was read past it.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> (u16, String, String) {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0; 4096];
        let read = within(stream.read(&mut chunk)).await.unwrap();
        assert!(read > 0, "closed before a response head: {buffer:?}");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0; 4096];
        let read = within(stream.read(&mut chunk)).await.unwrap();
        assert!(read > 0, "closed within a response body");
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = String::from_utf8(buffer[head_end..head_end + length].to_vec()).unwrap();
    buffer.drain(..head_end + length);
    (status, head, body)
}

/// Waits until the server closes `stream` (reads up to its end, which must come without data).
async fn closed_by_server(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    within(stream.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

fn get(path: &str, token: Option<&str>) -> String {
    let authorization = token.map_or_else(String::new, |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    format!("GET {path} HTTP/1.1\r\nHost: gateway.test\r\n{authorization}\r\n")
}

#[tokio::test]
async fn one_connection_carries_proxied_and_own_requests_in_turn() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let token = env.token(json!({}));
    let mut stream = TcpStream::connect(gateway.local_addr()).await.unwrap();
    let mut buffer = Vec::new();
    for round in 0..3 {
        let path = format!("/items/{round}");
        stream
            .write_all(get(&path, Some(&token)).as_bytes())
            .await
            .unwrap();
        let (status, _, body) = read_response(&mut stream, &mut buffer).await;
        assert_eq!(status, 200, "{body}");
        let echo: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["path"], format!("/base{path}"));
        assert_eq!(echo["headers"]["x-auth-sub"], "alice");
        assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");

        stream
            .write_all(get("/healthz", None).as_bytes())
            .await
            .unwrap();
        let (status, _, body) = read_response(&mut stream, &mut buffer).await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));

        stream.write_all(get("/a", None).as_bytes()).await.unwrap();
        let (status, head, _) = read_response(&mut stream, &mut buffer).await;
        assert_eq!(status, 401);
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer")
        );
    }
    // Two requests written at once (pipelined) are answered in order.
    stream
        .write_all(format!("{}{}", get("/metrics", None), get("/b", Some(&token))).as_bytes())
        .await
        .unwrap();
    let (status, _, metrics) = read_response(&mut stream, &mut buffer).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("gateway_requests_total{outcome=\"accepted\"} 3"),
        "{metrics}"
    );
    let (status, _, _) = read_response(&mut stream, &mut buffer).await;
    assert_eq!(status, 200);
    // `Connection: close` is honoured: answered, then closed.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut stream, &mut buffer).await;
    assert_eq!(status, 200);
    closed_by_server(&mut stream).await;
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_malformed_request_gets_400_and_the_connection_closes() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    for malformed in [
        &b"NOT AN HTTP REQUEST\r\n\r\n"[..],
        b"GET /a HTTP/1.1\r\nHost: gateway.test\r\nbad header\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(gateway.local_addr()).await.unwrap();
        stream.write_all(malformed).await.unwrap();
        let (status, _, _) = read_response(&mut stream, &mut Vec::new()).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(malformed));
        closed_by_server(&mut stream).await;
    }
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let token = env.token(json!({}));
    // More header fields than the server takes.
    let mut many = get("/a", Some(&token)).trim_end().to_owned();
    for n in 0..=crate::server::MAX_HEADERS {
        many.push_str(&format!("\r\nx-filler-{n}: {n}"));
    }
    many.push_str("\r\n\r\n");
    // A head longer than the server buffers, never ending (exactly as long as the buffer, so that
    // the server reads all of it, and closes without unread bytes that would reset the answer).
    let mut long = get("/a", Some(&token)).trim_end().to_owned();
    long.push_str("\r\nx-filler: ");
    long.push_str(&"a".repeat(crate::server::MAX_HEAD_BYTES - long.len()));
    for oversized in [many, long] {
        let mut stream = TcpStream::connect(gateway.local_addr()).await.unwrap();
        stream.write_all(oversized.as_bytes()).await.unwrap();
        let (status, _, _) = read_response(&mut stream, &mut Vec::new()).await;
        assert_eq!(status, 431, "{} bytes", oversized.len());
        closed_by_server(&mut stream).await;
    }
    // The gateway serves on.
    let answer = get_path(gateway.local_addr(), "/a", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    let env = env().await;
    let gateway = env.gateway(&[]).await;
    let token = env.token(json!({}));
    let mut stream = TcpStream::connect(gateway.local_addr()).await.unwrap();
    let mut buffer = Vec::new();
    stream
        .write_all(get("/a", Some(&token)).as_bytes())
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut stream, &mut buffer).await;
    assert_eq!(status, 200);
    // Idle, kept alive: the shutdown closes it rather than waiting for the client.
    within(gateway.shutdown()).await.unwrap();
    closed_by_server(&mut stream).await;
}

#[tokio::test]
async fn a_path_the_router_takes_but_does_not_route_is_forwarded_with_the_client_address() {
    // Demo mode: the router is handed every path under the prefix `/_demo` (the demo page's
    // `/_demo/…` among them); `/_demonstration` is none of its routes and falls back to the
    // forwarding, which must still name the client.
    let config = config::resolve(&Args::try_parse_from(["gateway"]).unwrap(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = within(app::start(config, listener)).await.unwrap();
    let token = gateway.demo().expect("demo mode").token.clone();
    let path = format!("{}nstration", crate::demo::page::PREFIX);
    let answer = get_path(gateway.local_addr(), &path, Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let echo = answer.json();
    assert_eq!(echo["path"], path);
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echo["headers"]["x-real-ip"], "127.0.0.1");
    assert_eq!(echo["headers"]["x-auth-sub"], "demo");
    gateway.shutdown().await.unwrap();
}
