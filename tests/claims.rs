//! Every claim rule, through an axum router with the layer: `exp`/`nbf`/`iat` with their leeway,
//! maximum age, `iss`/`aud`, `typ`, required claims, user validators and badly typed claims.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use support::*;
use tower_jwt_auth::{Claims, Issuer, JwtAuthBuilder, JwtAuthLayer, KeySource, RegisteredClaims};

#[derive(Debug, Deserialize)]
struct MyClaims {
    #[serde(flatten)]
    registered: RegisteredClaims,
    #[serde(default)]
    role: Option<String>,
}

async fn whoami(Claims(claims): Claims<MyClaims>) -> String {
    claims.registered.sub.clone().unwrap_or_default()
}

fn default_issuer() -> Issuer {
    Issuer::new(ISSUER)
        .audience(AUDIENCE)
        .key(KeySource::jwks_json(jwks(&[&key()])))
}

/// A router behind a layer trusting `issuer`, with the builder adjusted by `configure`.
async fn app_for(
    issuer: Issuer,
    configure: impl FnOnce(JwtAuthBuilder<MyClaims>) -> JwtAuthBuilder<MyClaims>,
) -> Router {
    let builder = JwtAuthLayer::builder().issuer(issuer).realm("tests");
    let layer = configure(builder).build().await.unwrap();
    Router::new().route("/me", get(whoami)).layer(layer)
}

async fn app(
    configure: impl FnOnce(JwtAuthBuilder<MyClaims>) -> JwtAuthBuilder<MyClaims>,
) -> Router {
    app_for(default_issuer(), configure).await
}

async fn default_app() -> Router {
    app(|builder| builder).await
}

async fn call(app: &Router, claims: &Value) -> Reply {
    get_with_token(app, "/me", &key().sign(claims)).await
}

#[track_caller]
fn assert_accepted(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.www_authenticate());
    assert_eq!(reply.body, "user-1");
}

#[tokio::test]
async fn exp_is_required_by_default() {
    let app = default_app().await;
    let reply = call(&app, &claims_with(json!({"exp": null}))).await;
    assert_invalid_token(&reply, "missing required claim exp");
}

#[tokio::test]
async fn allow_missing_exp_accepts_tokens_without_exp_but_still_checks_a_present_one() {
    let app = app(JwtAuthBuilder::allow_missing_exp).await;
    assert_accepted(&call(&app, &claims_with(json!({"exp": null}))).await);
    let expired = claims_with(json!({"exp": now() - 3600}));
    assert_invalid_token(&call(&app, &expired).await, "token expired");
}

#[tokio::test]
async fn expiry_is_enforced_beyond_the_default_leeway_only() {
    let app = default_app().await;
    let beyond = claims_with(json!({"exp": now() - 120}));
    assert_invalid_token(&call(&app, &beyond).await, "token expired");
    let within = claims_with(json!({"exp": now() - 30}));
    assert_accepted(&call(&app, &within).await);
}

#[tokio::test]
async fn not_before_is_enforced_beyond_the_default_leeway_only() {
    let app = default_app().await;
    let beyond = claims_with(json!({"nbf": now() + 120}));
    assert_invalid_token(&call(&app, &beyond).await, "token not yet valid");
    let within = claims_with(json!({"nbf": now() + 30}));
    assert_accepted(&call(&app, &within).await);
}

#[tokio::test]
async fn rejects_tokens_issued_in_the_future() {
    let app = default_app().await;
    let future = claims_with(json!({"iat": now() + 120}));
    assert_invalid_token(&call(&app, &future).await, "token issued in the future");
    let skewed = claims_with(json!({"iat": now() + 30}));
    assert_accepted(&call(&app, &skewed).await);
}

#[tokio::test]
async fn max_token_age_rejects_old_tokens_and_requires_iat() {
    let app = app(|b| b.max_token_age(Duration::from_secs(600))).await;
    let old = claims_with(json!({"iat": now() - 3600}));
    assert_invalid_token(&call(&app, &old).await, "token too old");
    let fresh = claims_with(json!({"iat": now() - 300}));
    assert_accepted(&call(&app, &fresh).await);
    let no_iat = claims_with(json!({"iat": null}));
    assert_invalid_token(&call(&app, &no_iat).await, "missing required claim iat");
}

#[tokio::test]
async fn a_zero_leeway_tolerates_no_skew() {
    let app = app(|b| b.leeway(Duration::ZERO)).await;
    let just_expired = claims_with(json!({"exp": now() - 5}));
    assert_invalid_token(&call(&app, &just_expired).await, "token expired");
    let soon_valid = claims_with(json!({"nbf": now() + 5}));
    assert_invalid_token(&call(&app, &soon_valid).await, "token not yet valid");
    let soon_issued = claims_with(json!({"iat": now() + 5}));
    assert_invalid_token(
        &call(&app, &soon_issued).await,
        "token issued in the future",
    );
}

#[tokio::test]
async fn a_wide_leeway_tolerates_more_skew() {
    let app = app(|b| b.leeway(Duration::from_secs(600))).await;
    for changes in [
        json!({"exp": now() - 300}),
        json!({"nbf": now() + 300}),
        json!({"iat": now() + 300}),
    ] {
        assert_accepted(&call(&app, &claims_with(changes)).await);
    }
    let far = claims_with(json!({"exp": now() - 900}));
    assert_invalid_token(&call(&app, &far).await, "token expired");
}

#[tokio::test]
async fn iss_is_required_and_must_match_the_configured_issuer() {
    let app = default_app().await;
    assert_accepted(&call(&app, &valid_claims()).await);
    for changes in [
        json!({"iss": null}),
        json!({"iss": "https://other.test/"}),
        // No normalisation: a missing trailing slash is another issuer.
        json!({"iss": "https://issuer.test"}),
        json!({"iss": ""}),
    ] {
        let reply = call(&app, &claims_with(changes.clone())).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{changes}");
        assert_eq!(
            reply.www_authenticate(),
            challenge("tests", "invalid_token", "issuer not allowed"),
            "{changes}"
        );
    }
}

#[tokio::test]
async fn aud_is_accepted_as_a_string_or_an_array_naming_the_audience() {
    let app = default_app().await;
    for aud in [
        json!(AUDIENCE),
        json!([AUDIENCE]),
        json!(["other", AUDIENCE]),
    ] {
        assert_accepted(&call(&app, &claims_with(json!({ "aud": aud }))).await);
    }
}

#[tokio::test]
async fn aud_missing_foreign_or_empty_is_rejected() {
    let app = default_app().await;
    for changes in [
        json!({"aud": null}),
        json!({"aud": "other-api"}),
        json!({"aud": ["other-api", "third-api"]}),
        json!({"aud": []}),
        json!({"aud": ""}),
        // Case matters: audiences are compared as exact strings.
        json!({"aud": "TEST-API"}),
    ] {
        let reply = call(&app, &claims_with(changes)).await;
        assert_invalid_token(&reply, "audience not allowed");
    }
}

#[tokio::test]
async fn aud_is_not_checked_when_no_audience_is_configured() {
    let issuer = Issuer::new(ISSUER).key(KeySource::jwks_json(jwks(&[&key()])));
    let app = app_for(issuer, |b| b).await;
    for changes in [json!({"aud": null}), json!({"aud": "anything"})] {
        assert_accepted(&call(&app, &claims_with(changes)).await);
    }
}

#[tokio::test]
async fn an_issuer_without_issuer_check_accepts_any_iss() {
    let issuer = Issuer::without_issuer_check()
        .audience(AUDIENCE)
        .key(KeySource::jwks_json(jwks(&[&key()])));
    let app = app_for(issuer, |b| b).await;
    for changes in [
        json!({}),
        json!({"iss": "https://anyone.test/"}),
        json!({"iss": null}),
    ] {
        assert_accepted(&call(&app, &claims_with(changes)).await);
    }
    // The audience is still checked.
    let foreign = claims_with(json!({"aud": "other-api"}));
    assert_invalid_token(&call(&app, &foreign).await, "audience not allowed");
}

#[tokio::test]
async fn require_token_type_accepts_only_that_media_type() {
    let app = app(|b| b.require_token_type("at+jwt")).await;
    let key = key();
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+Jwt",
    ] {
        let header = json!({"alg": "EdDSA", "kid": "k", "typ": typ});
        let token = key.sign_with_header(&header, &valid_claims());
        assert_accepted(&get_with_token(&app, "/me", &token).await);
    }
    for header in [
        json!({"alg": "EdDSA", "kid": "k", "typ": "JWT"}),
        json!({"alg": "EdDSA", "kid": "k", "typ": "application/jwt"}),
        json!({"alg": "EdDSA", "kid": "k", "typ": "at+jwt2"}),
        json!({"alg": "EdDSA", "kid": "k"}),
    ] {
        let token = key.sign_with_header(&header, &valid_claims());
        let reply = get_with_token(&app, "/me", &token).await;
        assert_invalid_token(&reply, "token type not accepted");
    }
}

#[tokio::test]
async fn require_claim_rejects_tokens_lacking_it_or_holding_null() {
    let app = app(|b| b.require_claim("tenant")).await;
    for changes in [json!({}), json!({"tenant": null})] {
        let reply = call(&app, &claims_with(changes)).await;
        assert_invalid_token(&reply, "missing required claim tenant");
    }
    let reply = call(&app, &claims_with(json!({"tenant": "acme"}))).await;
    assert_accepted(&reply);
    // Any non-null value counts as present, even a falsy one.
    for value in [json!(false), json!(0), json!(""), json!([])] {
        assert_accepted(&call(&app, &claims_with(json!({ "tenant": value }))).await);
    }
}

#[tokio::test]
async fn a_failing_validator_sends_its_reason_as_error_description() {
    let app = app(|b| {
        b.validate(|claims: &MyClaims| match claims.role.as_deref() {
            Some("admin") => Ok(()),
            _ => Err("admin role required".into()),
        })
    })
    .await;
    let admin = claims_with(json!({"role": "admin"}));
    assert_accepted(&call(&app, &admin).await);
    let user = claims_with(json!({"role": "user"}));
    assert_invalid_token(&call(&app, &user).await, "admin role required");
}

#[tokio::test]
async fn validators_run_in_order_and_the_first_failure_is_reported() {
    let app = app(|b| {
        b.validate(|_: &MyClaims| Ok(()))
            .validate(|_: &MyClaims| Err("second says no".into()))
            .validate(|_: &MyClaims| Err("third says no".into()))
    })
    .await;
    assert_invalid_token(&call(&app, &valid_claims()).await, "second says no");
}

#[tokio::test]
async fn validators_do_not_run_for_tokens_that_failed_earlier_checks() {
    let app = app(|b| b.validate(|_: &MyClaims| Err("validator ran".into()))).await;
    let expired = claims_with(json!({"exp": now() - 3600}));
    assert_invalid_token(&call(&app, &expired).await, "token expired");
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct StrictClaims {
    sub: String,
    admin: bool,
}

#[tokio::test]
async fn claims_that_do_not_fit_the_claims_type_are_invalid_token() {
    let layer: JwtAuthLayer<StrictClaims> = JwtAuthLayer::builder()
        .issuer(default_issuer())
        .realm("tests")
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/me", get(|_: Claims<StrictClaims>| async { "ok" }))
        .layer(layer);
    for changes in [json!({}), json!({"admin": "yes"}), json!({"admin": null})] {
        let reply = get_with_token(&app, "/me", &key().sign(&claims_with(changes))).await;
        assert_invalid_token(&reply, "invalid claim claims");
    }
    let fits = claims_with(json!({"admin": true}));
    let reply = get_with_token(&app, "/me", &key().sign(&fits)).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn registered_claims_of_the_wrong_type_are_401_not_500() {
    let app = app(|b| b.max_token_age(Duration::from_secs(3600))).await;
    let now = now();
    for (changes, name) in [
        (json!({"exp": (now + 600).to_string()}), "exp"),
        (json!({"exp": true}), "exp"),
        (json!({"nbf": now.to_string()}), "nbf"),
        (json!({"iat": now.to_string()}), "iat"),
        (json!({"iat": [now]}), "iat"),
        (json!({"aud": 7}), "aud"),
        (json!({"aud": [AUDIENCE, 7]}), "aud"),
        (json!({"aud": {"name": AUDIENCE}}), "aud"),
        (json!({"iss": 7}), "iss"),
        (json!({"iss": [ISSUER]}), "iss"),
        (json!({"sub": 42}), "sub"),
        (json!({"jti": {}}), "jti"),
    ] {
        let reply = call(&app, &claims_with(changes.clone())).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{changes}");
        assert_eq!(
            reply.www_authenticate(),
            challenge("tests", "invalid_token", &format!("invalid claim {name}")),
            "{changes}"
        );
    }
}

#[tokio::test]
async fn fractional_numeric_dates_are_rounded_down() {
    let app = default_app().await;
    let now = now() as f64;
    let fractional = claims_with(json!({"exp": now + 600.75, "nbf": now - 0.5, "iat": now + 0.5}));
    assert_accepted(&call(&app, &fractional).await);
    let expired = claims_with(json!({"exp": now - 120.25}));
    assert_invalid_token(&call(&app, &expired).await, "token expired");
}

#[tokio::test]
async fn out_of_range_numeric_dates_are_refused_and_never_panic() {
    let app = app(|b| b.max_token_age(Duration::from_secs(3600))).await;
    // The bounds of years 0001 to 9999 are dates like any other.
    let accepted = [
        json!({"exp": 253402300799_i64}),
        json!({"exp": 253402300799.5}),
        json!({"nbf": -62135596800_i64}),
    ];
    for changes in accepted {
        let reply = call(&app, &claims_with(changes.clone())).await;
        assert_eq!(reply.status, StatusCode::OK, "{changes}");
    }
    let rejected = [
        (json!({"exp": -1}), "token expired"),
        (json!({"exp": 0}), "token expired"),
        (json!({"exp": 1e300}), "exp out of range"),
        (json!({"exp": i64::MAX}), "exp out of range"),
        (json!({"exp": u64::MAX}), "exp out of range"),
        (json!({"exp": 253402300800_i64}), "exp out of range"),
        (json!({"exp": -1e300}), "exp out of range"),
        (json!({"exp": i64::MIN}), "exp out of range"),
        (json!({"nbf": 1e300}), "nbf out of range"),
        (json!({"nbf": i64::MAX}), "nbf out of range"),
        (json!({"nbf": -1e300}), "nbf out of range"),
        (json!({"iat": 1e300}), "iat out of range"),
        (json!({"iat": u64::MAX}), "iat out of range"),
        (json!({"iat": -1e300}), "iat out of range"),
        (json!({"iat": i64::MIN}), "iat out of range"),
        (json!({"iat": -62135596800_i64}), "token too old"),
    ];
    for (changes, description) in rejected {
        let reply = call(&app, &claims_with(changes.clone())).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{changes}");
        assert_eq!(
            reply.www_authenticate(),
            challenge("tests", "invalid_token", description),
            "{changes}"
        );
    }
}

#[tokio::test]
async fn numbers_beyond_f64_in_a_date_claim_are_invalid_not_a_crash() {
    let app = default_app().await;
    let key = key();
    let header = json!({"alg": "EdDSA", "kid": "k"}).to_string();
    let now = now();
    for exp in ["1e400", "-1e400", &format!("{now}{}", "0".repeat(400))] {
        let payload = format!(
            r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"user-1","iat":{now},"exp":{exp}}}"#
        );
        let token = sign_raw(&header, &payload, &key.encoding, key.alg);
        let reply = get_with_token(&app, "/me", &token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{exp}");
        assert_eq!(
            reply.www_authenticate(),
            challenge("tests", "invalid_token", "invalid claim exp"),
            "{exp}"
        );
    }
}
