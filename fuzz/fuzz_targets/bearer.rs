//! Bearer extraction: requests with arbitrary `Authorization`, `Cookie` and custom-header bytes and
//! query strings, through the layer (all opt-in sources on) around a service that answers 200.
//! The status must be one the layer can give, and a 200 needs a token the fuzzer could not forge
//! (the valid one it may place) or the optional layer with no token at all.
#![no_main]

mod common;

use std::convert::Infallible;
use std::sync::LazyLock;

use common::*;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;
use tower_jwt_auth::Issuer;
use tower_jwt_auth::KeySource;

static SOURCES_LAYER: LazyLock<Layer> = LazyLock::new(|| {
    RUNTIME
        .block_on(
            Layer::builder()
                .issuer(
                    Issuer::new(ISSUER_A)
                        .audience(AUDIENCE)
                        .key(KeySource::shared_secret(SECRET).with_kid("hs")),
                )
                .realm("fuzz")
                .max_token_len(1024)
                .token_from_cookie("session")
                .token_from_header(HeaderName::from_static("x-token"))
                .token_from_query("access_token")
                .build(),
        )
        .expect("layer")
});

#[derive(Debug, Arbitrary)]
struct Input {
    optional: bool,
    authorization: Vec<Vec<u8>>,
    cookies: Vec<Vec<u8>>,
    x_token: Option<Vec<u8>>,
    query: String,
    /// Where to place the valid token: 0 `Authorization`, 1 cookie, 2 `x-token`, 3 query.
    valid_token_in: Option<u8>,
}

fuzz_target!(|input: Input| {
    let mut uri = format!("/p?{}", input.query);
    let mut headers: Vec<(&str, Vec<u8>)> = Vec::new();
    headers.extend(
        input
            .authorization
            .into_iter()
            .map(|v| ("authorization", v)),
    );
    headers.extend(input.cookies.into_iter().map(|v| ("cookie", v)));
    headers.extend(input.x_token.map(|v| ("x-token", v)));
    let token = VALID_TOKEN.as_str();
    match input.valid_token_in.map(|at| at % 4) {
        Some(0) => headers.push(("authorization", format!("Bearer {token}").into_bytes())),
        Some(1) => headers.push(("cookie", format!("session={token}").into_bytes())),
        Some(2) => headers.push(("x-token", token.as_bytes().to_vec())),
        Some(_) => uri.push_str(&format!("&access_token={token}")),
        None => {}
    }
    let mut request = Request::builder().uri(uri.as_str());
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(()) else {
        return;
    };

    let layer = if input.optional {
        SOURCES_LAYER.clone().optional()
    } else {
        SOURCES_LAYER.clone()
    };
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let response = RUNTIME
        .block_on(service.oneshot(request))
        .expect("infallible");
    let status = response.status();
    assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::SERVICE_UNAVAILABLE,
        ]
        .contains(&status),
        "unexpected status {status}"
    );
    if status == StatusCode::OK {
        assert!(
            input.valid_token_in.is_some() || input.optional,
            "a request without the valid token passed"
        );
    } else {
        assert!(
            response.headers().contains_key("www-authenticate"),
            "a rejection without a challenge"
        );
    }
});
