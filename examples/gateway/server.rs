//! One worker's HTTP server: accepts connections on the worker's listener and serves each with
//! hyper (through hyper-util's auto builder: HTTP/1.1 with upgrades, and HTTP/2 with prior
//! knowledge), the worker's [`Gate`] answering every request.
//!
//! The same shape as `axum::serve`, which served the workers before, without what it adds to
//! each request: a `map_request` layer around the service, the service cloned and driven
//! through `oneshot`, and a `tokio::select!` in each connection's task (polling its branches in
//! a random order every time the task wakes). The request's body is still boxed into axum's
//! `Body`, in the gate, since the router and the forwarding take that.
//!
//! What it keeps: `TCP_NODELAY` on every connection, accept errors handled as axum handles them,
//! HTTP/1 keep-alive and upgrades, HTTP/2 with the extended CONNECT protocol, hyper's default
//! limits on request heads (no header read timeout: as under `axum::serve`, no timer is
//! configured), and the graceful shutdown: on the signal, no new connection is accepted, each
//! open one finishes its request in flight and closes, and [`serve`] returns when all are closed.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::gate::Gate;

/// The most bytes of a request head (request line and header fields) buffered before it is
/// refused with `431`: hyper's default, named here for the tests.
pub(crate) const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// The most header fields a request may have before it is refused with `431`: hyper's default.
/// Not set on the builder: a configured number makes hyper size its parsing buffers at run time
/// instead of on the stack.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const MAX_HEADERS: usize = 100;

/// Serves `listener` with `gate` until `stop` completes, then until the connections open at that
/// moment are closed (each after its request in flight, if any).
pub(crate) async fn serve(
    listener: TcpListener,
    gate: Gate,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // As `axum::serve`: WebSockets over HTTP/2 (RFC 8441).
    builder.http2().enable_connect_protocol();
    builder.http1().max_buf_size(MAX_HEAD_BYTES);
    let connections = GracefulShutdown::new();
    let mut stop = pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // As nginx (`tcp_nodelay on`): a response written in two parts (headers, then the body
        // as the upstream sends it) must not wait for the client's delayed ACK.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), gate.for_client(remote))
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::trace!(error = %err, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::trace!(
        connections = connections.count(),
        "not accepting connections; waiting for the open ones"
    );
    connections.shutdown().await;
    Ok(())
}

/// As `axum::serve`: an error of one connection (reset before it was accepted …) is skipped;
/// any other (out of file descriptors …) is logged, and accepting waits a second, when some of
/// the gateway's connections may have closed.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
