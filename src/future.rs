//! [`ResponseFuture`]: the inner service's future, a rejection that is ready at once, or (rarely)
//! a decision that has to wait for keys or async checks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::authenticator::{PendingDecision, admit};
use crate::response::{RejectionResponse, reject};
use crate::telemetry;

pin_project! {
    /// The response future of [`JwtAuth`](crate::JwtAuth).
    ///
    /// For a token signed by a known key it is the inner service's future (or a ready
    /// rejection), with no allocation and no lock. Only a request that must wait holds a boxed
    /// future: a token naming a `kid` missing from a fetched key set waits, at most
    /// [`RefreshPolicy::unknown_kid_wait`](crate::RefreshPolicy::unknown_kid_wait), for the
    /// refetch it triggered or joined and is then verified once more; and the checks of
    /// [`JwtAuthBuilder::validate_async`](crate::JwtAuthBuilder::validate_async) run.
    pub struct ResponseFuture<S, T, R, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        phase: Phase<S, T, R, ReqBody>,
    }
}

pin_project! {
    #[project = PhaseProj]
    enum Phase<S, T, R, ReqBody>
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
        Pending {
            decision: PendingDecision<T>,
            waiting: Option<Waiting<S, R, ReqBody>>,
        },
    }
}

/// What a waiting request needs to go on: the inner service (ready, taken from the wrapping
/// service), the request, and the rejection to answer with.
struct Waiting<S, R, ReqBody> {
    inner: S,
    request: Request<ReqBody>,
    rejection: Arc<R>,
}

impl<S, T, R, ReqBody> ResponseFuture<S, T, R, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            phase: Phase::Inner { future },
        }
    }

    pub(crate) fn rejected(response: S::Response) -> Self {
        Self {
            phase: Phase::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn pending(
        decision: PendingDecision<T>,
        inner: S,
        request: Request<ReqBody>,
        rejection: Arc<R>,
    ) -> Self {
        Self {
            phase: Phase::Pending {
                decision,
                waiting: Some(Waiting {
                    inner,
                    request,
                    rejection,
                }),
            },
        }
    }
}

impl<S, T, R, ReqBody, ResBody> Future for ResponseFuture<S, T, R, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: Send + Sync + 'static,
    R: RejectionResponse<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.phase.as_mut().project() {
                PhaseProj::Inner { future } => return future.poll(cx),
                PhaseProj::Rejected { response } => match response.take() {
                    Some(response) => return Poll::Ready(Ok(response)),
                    // Polled again after completion: a contract violation by the caller.
                    None => panic!("ResponseFuture polled after completion"),
                },
                PhaseProj::Pending { decision, waiting } => {
                    let outcome = ready!(decision.as_mut().poll(cx));
                    let Some(Waiting {
                        mut inner,
                        mut request,
                        rejection,
                    }) = waiting.take()
                    else {
                        panic!("ResponseFuture polled after completion");
                    };
                    match outcome {
                        Ok(outcome) => {
                            telemetry::request_accepted();
                            admit(&mut request, outcome);
                            Phase::Inner {
                                future: inner.call(request),
                            }
                        }
                        Err(error) => Phase::Rejected {
                            response: Some(reject(&*rejection, &error)),
                        },
                    }
                }
            };
            this.phase.set(next);
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
