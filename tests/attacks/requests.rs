//! Where a request carries its token: one `Authorization` header, and neither the query nor a
//! cookie unless the layer opts in.

use http::StatusCode;
use tower_jwt_auth::KeySource;

use super::support::*;
use super::{app, app_with, ed};

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = app().await;
    let good = format!("Bearer {}", ed().sign(&valid_claims()));
    let forged = format!("Bearer {}", TestKey::rs256("x").sign(&valid_claims()));
    for pair in [
        [good.as_str(), good.as_str()],
        [good.as_str(), forged.as_str()],
        [forged.as_str(), good.as_str()],
        [good.as_str(), "Basic dXNlcjpwYXNz"],
        ["Basic dXNlcjpwYXNz", good.as_str()],
    ] {
        let headers = [
            ("authorization", pair[0].as_bytes()),
            ("authorization", pair[1].as_bytes()),
        ];
        let reply = get_with_headers(&app, "/me", &headers).await;
        assert_invalid_request(&reply, "more than one token in the request");
    }
}

#[tokio::test]
async fn a_token_in_the_query_or_a_cookie_is_ignored_unless_opted_in() {
    let app = app().await;
    let token = ed().sign(&valid_claims());
    let bare = r#"Bearer realm="tests""#;
    for path in [
        format!("/me?access_token={token}"),
        format!("/me?token={token}"),
        format!("/me?id_token={token}"),
    ] {
        let reply = get_with_headers(&app, &path, &[]).await;
        assert_eq!(
            (reply.status, reply.www_authenticate()),
            (StatusCode::UNAUTHORIZED, bare)
        );
        // Beside a header token it is ignored, not counted as a second token.
        let header = format!("Bearer {token}");
        let reply = get_with_headers(&app, &path, &[("authorization", header.as_bytes())]).await;
        assert_ok(&reply);
    }
    let cookie = format!("access_token={token}; token={token}");
    let reply = get_with_headers(&app, "/me", &[("cookie", cookie.as_bytes())]).await;
    assert_eq!(
        (reply.status, reply.www_authenticate()),
        (StatusCode::UNAUTHORIZED, bare)
    );

    // Opted in, the query works, and a token in both places is refused.
    let query_app = app_with(
        vec![issuer_with(KeySource::jwks_json(jwks(&[&ed()])))],
        |b| b.token_from_query("access_token"),
    )
    .await;
    let path = format!("/me?access_token={token}");
    assert_ok(&get_with_headers(&query_app, &path, &[]).await);
    let header = format!("Bearer {token}");
    let reply = get_with_headers(&query_app, &path, &[("authorization", header.as_bytes())]).await;
    assert_invalid_request(&reply, "more than one token in the request");
}
