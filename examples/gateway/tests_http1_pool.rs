//! A worker's own HTTP/1.1 connections to a plain-http upstream: reused, replaced when the
//! upstream closes them, and never reused after a response that was not read to its end.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::serve::ListenerExt as _;

use super::*;

/// An upstream answering with `router`, and the number of connections it has accepted.
async fn counting_upstream(router: Router) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, accepted)
}

/// A gateway with one worker (one pool) in front of `upstream`.
async fn one_worker_gateway(env: &Env, upstream: SocketAddr) -> Gateway {
    let mut args = env.args(&["--workers=1"]);
    args[2] = format!("http://{upstream}/base");
    start_gateway(args).await
}

#[tokio::test]
async fn upstream_connections_are_kept_and_reused() {
    let env = env().await;
    let (upstream, accepted) = counting_upstream(Router::new().fallback(demo::echo)).await;
    let gateway = one_worker_gateway(&env, upstream).await;
    let token = env.token(json!({}));
    for n in 0..10 {
        let answer = get_path(gateway.local_addr(), &format!("/n/{n}"), Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["path"], format!("/base/n/{n}"));
        assert_eq!(answer.json()["headers"]["host"], upstream.to_string());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_the_upstream_closes_are_replaced() {
    let env = env().await;
    let closing = Router::new().fallback(|| async { ([(header::CONNECTION, "close")], "bye") });
    let (upstream, accepted) = counting_upstream(closing).await;
    let gateway = one_worker_gateway(&env, upstream).await;
    let token = env.token(json!({}));
    for _ in 0..5 {
        let answer = get_path(gateway.local_addr(), "/x", Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), "bye");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_response_left_unread_does_not_spoil_its_connection_for_the_next() {
    let env = env().await;
    // A body far larger than the socket buffers, so that it is still being sent when the client
    // goes away.
    let big = Router::new()
        .route("/base/big", get(|| async { "x".repeat(16 * 1024 * 1024) }))
        .fallback(demo::echo);
    let (upstream, accepted) = counting_upstream(big).await;
    let gateway = one_worker_gateway(&env, upstream).await;
    let token = env.token(json!({}));
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let response = within(
        client.request(
            request(gateway.local_addr(), "/big", Some(&token))
                .body(Body::empty())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Only the head read; the connection to the gateway goes with the client.
    drop(response);
    drop(client);
    let answer = get_path(gateway.local_addr(), "/after", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["path"], "/base/after");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a new connection for the next request"
    );
    gateway.shutdown().await.unwrap();
}
