//! What `tonic-build` would generate from `greeter.proto`, written by hand so that the example
//! builds without `protoc`: the two messages (`prost::Message` derives), a `Greeter` trait, the
//! server that routes `/greeter.Greeter/SayHello` to it, and a client.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::Service;

/// `message HelloRequest { string name = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `message HelloReply { string message = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

const SAY_HELLO: &str = "/greeter.Greeter/SayHello";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// `service Greeter`: implement it to serve the calls.
pub trait Greeter: Send + Sync + 'static {
    /// `rpc SayHello (HelloRequest) returns (HelloReply);`
    fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> impl Future<Output = Result<Response<HelloReply>, Status>> + Send;
}

/// The gRPC server of a [`Greeter`]: a tower service over HTTP/2 requests.
#[derive(Debug)]
pub struct GreeterServer<T> {
    inner: Arc<T>,
}

impl<T> GreeterServer<T> {
    pub fn new(greeter: T) -> Self {
        Self {
            inner: Arc::new(greeter),
        }
    }
}

impl<T> Clone for GreeterServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> NamedService for GreeterServer<T> {
    const NAME: &'static str = "greeter.Greeter";
}

/// One call of `SayHello`, as tonic's unary machinery wants it.
struct SayHello<T>(Arc<T>);

impl<T: Greeter> tonic::server::UnaryService<HelloRequest> for SayHello<T> {
    type Response = HelloReply;
    type Future = BoxFuture<Result<Response<HelloReply>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        let greeter = Arc::clone(&self.0);
        Box::pin(async move { greeter.say_hello(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for GreeterServer<T>
where
    T: Greeter,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SAY_HELLO {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let greeter = Arc::clone(&self.inner);
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
            Ok(grpc.unary(SayHello(greeter), request).await)
        })
    }
}

/// A client of `greeter.Greeter`.
#[derive(Debug, Clone)]
pub struct GreeterClient {
    inner: tonic::client::Grpc<tonic::transport::Channel>,
}

impl GreeterClient {
    /// Connects to `url`, e.g. `http://127.0.0.1:50051`.
    pub async fn connect(url: String) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(url)?
            .connect()
            .await?;
        Ok(Self {
            inner: tonic::client::Grpc::new(channel),
        })
    }

    pub async fn say_hello(
        &mut self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|error| Status::unavailable(format!("service not ready: {error}")))?;
        let codec = ProstCodec::<HelloRequest, HelloReply>::default();
        self.inner
            .unary(request, PathAndQuery::from_static(SAY_HELLO), codec)
            .await
    }
}
