//! One worker's HTTP/1.1 connections to a plain-http upstream, kept open and reused (the most
//! recently used first), each driven by a task on the worker's runtime.
//!
//! What hyper-util's general client does on top of this, per request, and this does not: a
//! boxed response future, a pool shared through a lock and looked up by a (scheme, authority)
//! key, an absolute URI rewritten to origin form, and a `Host` header formatted from it. The
//! `Host` here is built once, and the request's URI is the origin form from the start. HTTPS
//! upstreams (TLS, HTTP/2 by ALPN) and `Upgrade` requests still go through that client.

use std::collections::VecDeque;
use std::future::{Future as _, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::upstream::Upstream;

/// Idle connections unused for longer are closed (when the pool is next used), as the general
/// client's pool does.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to {authority}")]
    Connect {
        authority: Authority,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// No response head within the timeout.
    #[error("no response within the timeout")]
    Timeout,
}

/// The connections of one worker; see the module docs. Cheap to clone (the clones share the
/// connections).
#[derive(Debug, Clone)]
pub struct Http1Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    authority: Authority,
    /// `Host` for every request: the upstream's host, and its port unless the default one.
    host: HeaderValue,
    /// Connections waiting for a request, with when each was last released; the most recently
    /// released at the back.
    idle: Mutex<VecDeque<Idle>>,
}

/// A connection waiting for a request.
#[derive(Debug)]
struct Idle {
    sender: SendRequest<Body>,
    /// The timer of the connection's requests (see [`Http1Pool::send`]).
    timer: Timer,
    since: Instant,
}

/// A connection's timer, set again for each request it carries: moving a timer's deadline later
/// touches no lock, where a new timer per request is inserted in the runtime's timer wheel and
/// taken out again (under the wheel's lock each time).
type Timer = Pin<Box<Sleep>>;

impl Http1Pool {
    /// A pool for `upstream`, which must be a plain-http one; `None` for an https one.
    pub fn new(upstream: &Upstream) -> Option<Self> {
        if upstream.scheme != Scheme::HTTP {
            return None;
        }
        let authority = upstream.authority.clone();
        let host = match authority.port_u16() {
            Some(80) | None => HeaderValue::from_str(authority.host()),
            Some(_) => HeaderValue::from_str(authority.as_str()),
        }
        .ok()?;
        Some(Self {
            shared: Arc::new(Shared {
                authority,
                host,
                idle: Mutex::new(VecDeque::new()),
            }),
        })
    }

    /// Sends `request`, whose URI is in origin form (path and query), on an idle connection or a
    /// new one, and waits at most `timeout` for the response's head. A request that a reused
    /// connection closed before taking is sent again on another; the response's body gives its
    /// connection back once read to its end.
    pub async fn send(
        &self,
        mut request: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Body>, SendError> {
        let deadline = tokio::time::Instant::now() + timeout;
        request
            .headers_mut()
            .insert(header::HOST, self.shared.host.clone());
        loop {
            // An idle connection is ready at once; a timer is made only for a checkout that
            // waits (a new connection), and becomes that connection's.
            let mut waited: Option<Timer> = None;
            let checked_out = {
                let mut checkout = pin!(self.checkout());
                poll_fn(|cx| {
                    if let Poll::Ready(checked_out) = checkout.as_mut().poll(cx) {
                        return Poll::Ready(Some(checked_out));
                    }
                    let timer =
                        waited.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    timer.as_mut().poll(cx).map(|()| None)
                })
                .await
            };
            let Some(checked_out) = checked_out else {
                return Err(SendError::Timeout);
            };
            let (mut sender, timer, reused) = checked_out?;
            let mut timer = match timer.or(waited) {
                Some(timer) => timer,
                None => Box::pin(tokio::time::sleep_until(deadline)),
            };
            timer.as_mut().reset(deadline);
            let sent = {
                let mut response = pin!(sender.try_send_request(request));
                poll_fn(|cx| match response.as_mut().poll(cx) {
                    Poll::Ready(sent) => Poll::Ready(Some(sent)),
                    Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
                })
                .await
            };
            match sent {
                None => return Err(SendError::Timeout),
                Some(Ok(response)) => {
                    let shared = Arc::clone(&self.shared);
                    return Ok(response.map(|body| {
                        Body::new(PooledBody {
                            body,
                            connection: Some((sender, timer, shared)),
                        })
                    }));
                }
                Some(Err(mut err)) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(err.into_error().into()),
                },
            }
        }
    }

    /// An idle connection ready for a request, with its timer (and `true`), or a new one (and
    /// `false`).
    async fn checkout(&self) -> Result<(SendRequest<Body>, Option<Timer>, bool), SendError> {
        loop {
            let idle = lock(&self.shared.idle).pop_back();
            let Some(Idle {
                mut sender, timer, ..
            }) = idle
            else {
                break;
            };
            // Ready at once unless the upstream closed it (then it is dropped, and the next one
            // tried); only connections whose last response was read to its end are idle.
            if sender.ready().await.is_ok() {
                return Ok((sender, Some(timer), true));
            }
        }
        // Boxed: the connection's set-up (address resolution, connect, handshake) is a large
        // future that most requests, served on an idle connection, would otherwise carry and
        // copy along with their own.
        Ok((Box::pin(self.connect()).await?, None, false))
    }

    async fn connect(&self) -> Result<SendRequest<Body>, SendError> {
        let authority = &self.shared.authority;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let connect_error = |source| SendError::Connect {
            authority: authority.clone(),
            source,
        };
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // On this worker's runtime: the request and its connection stay on one thread.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

impl Shared {
    /// Puts `sender` back for the next request, and closes the connections idle for longer than
    /// [`IDLE_TIMEOUT`].
    fn release(&self, sender: SendRequest<Body>, timer: Timer) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        while idle
            .front()
            .is_some_and(|idle| now.duration_since(idle.since) > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        idle.push_back(Idle {
            sender,
            timer,
            since: now,
        });
    }
}

/// Locks a mutex that is never held across an await, and only by one worker's thread; a panic
/// while holding it leaves a list of connections that is still a list of connections.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A response body that gives its connection back to the pool once read to its end (a body
/// dropped before its end leaves the connection unusable: hyper closes it).
struct PooledBody {
    body: Incoming,
    connection: Option<(SendRequest<Body>, Timer, Arc<Shared>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((sender, timer, shared)) = self.connection.take() {
            shared.release(sender, timer);
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none() {
            this.release();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // The server stops polling a body whose end it knows (its length reached), without
        // reading the final `None`.
        if hyper::body::Body::is_end_stream(&self.body) {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> Option<HeaderValue> {
        let upstream = Upstream::parse(url, "--upstream").unwrap();
        Http1Pool::new(&upstream).map(|pool| pool.shared.host.clone())
    }

    #[test]
    fn host_names_the_port_unless_it_is_the_default() {
        assert_eq!(host("http://svc/api").unwrap(), "svc");
        assert_eq!(host("http://svc:80").unwrap(), "svc");
        assert_eq!(host("http://svc:8080/").unwrap(), "svc:8080");
        assert_eq!(host("http://[::1]:8080").unwrap(), "[::1]:8080");
        assert!(
            host("https://svc").is_none(),
            "https goes through the TLS client"
        );
    }
}
