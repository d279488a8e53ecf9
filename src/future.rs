//! [`ResponseFuture`]: the inner service's future, a rejection that is ready at once, or (rarely)
//! a wait for keys that a refetch may bring.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::layer::JwtAuthLayer;
use crate::response::RejectionResponse;
use crate::service::reject;
use crate::telemetry;

/// A wait for keys: boxed, since it is rare and its type is private.
type KeysWait = Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project! {
    /// The response future of [`JwtAuth`](crate::JwtAuth).
    ///
    /// For a token signed by a known key it is the inner service's future (or a ready
    /// rejection), with no allocation and no lock. Only a token naming a `kid` missing from a
    /// fetched key set waits, at most [`RefreshPolicy::unknown_kid_wait`](crate::RefreshPolicy::unknown_kid_wait),
    /// for the refetch it triggered or joined; it is then verified once more.
    pub struct ResponseFuture<S, T, R, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, T, R, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, T, R, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Inner {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Option<S::Response>,
        },
        AwaitingKeys {
            wait: KeysWait,
            pending: Option<Pending<S, T, R, ReqBody>>,
        },
    }
}

/// What a request waiting for keys needs to go on: the inner service (ready, taken from the
/// wrapping service), the request, and the layer to verify it again.
struct Pending<S, T, R, ReqBody> {
    inner: S,
    request: Request<ReqBody>,
    layer: JwtAuthLayer<T, R>,
}

impl<S, T, R, ReqBody> ResponseFuture<S, T, R, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn rejected(response: S::Response) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn awaiting_keys(
        wait: KeysWait,
        inner: S,
        request: Request<ReqBody>,
        layer: JwtAuthLayer<T, R>,
    ) -> Self {
        Self {
            state: State::AwaitingKeys {
                wait,
                pending: Some(Pending {
                    inner,
                    request,
                    layer,
                }),
            },
        }
    }
}

impl<S, T, R, ReqBody, ResBody> Future for ResponseFuture<S, T, R, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: DeserializeOwned + Send + Sync + 'static,
    R: RejectionResponse<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Inner { future } => return future.poll(cx),
                StateProj::Rejected { response } => match response.take() {
                    Some(response) => return Poll::Ready(Ok(response)),
                    // Polled again after completion: a contract violation by the caller.
                    None => panic!("ResponseFuture polled after completion"),
                },
                StateProj::AwaitingKeys { wait, pending } => {
                    ready!(wait.as_mut().poll(cx));
                    let Some(Pending {
                        mut inner,
                        mut request,
                        layer,
                    }) = pending.take()
                    else {
                        panic!("ResponseFuture polled after completion");
                    };
                    // Verified once more with whatever keys the refetch brought; a failure now
                    // is final.
                    match layer.authenticate(&mut request) {
                        Ok(()) => {
                            telemetry::request_accepted();
                            State::Inner {
                                future: inner.call(request),
                            }
                        }
                        Err(failure) => State::Rejected {
                            response: Some(reject(&layer, &failure.settle())),
                        },
                    }
                }
            };
            this.state.set(next);
        }
    }
}

impl<S, T, R, ReqBody> fmt::Debug for ResponseFuture<S, T, R, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
