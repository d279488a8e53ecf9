//! Token parsing and verification: `JwtAuthLayer::verify` (two issuers, default and strict rules)
//! and `SignatureVerifier::verify`, on raw text, on correctly signed tokens whose header and
//! payload are fuzzed, and on valid tokens with bytes changed. Besides "no panic", it checks that
//! no token the fuzzer could not sign verifies: any change to a valid token must fail. On signed
//! tokens it checks the crate against oracles written here: a `kid` that is not a string, a member
//! name twice at any depth, or an `exp`/`nbf`/`iat` outside years 0001 to 9999 is refused; and a
//! token longer than the maximum size is refused before anything else.
#![no_main]

mod common;

use std::sync::LazyLock;

use common::*;
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::{Algorithm, AuthError, KeySource, SignatureVerifier};

static SIGNATURES: LazyLock<SignatureVerifier> = LazyLock::new(|| {
    SignatureVerifier::new(
        &[
            KeySource::shared_secret(SECRET).with_kid("hs"),
            KeySource::public_key_pem(ED25519_PEM).with_kid("ed"),
        ],
        Algorithm::ALL,
    )
    .expect("verifier")
});

/// The size limit of `SHORT_SIGNATURES`: the fuzzer's tokens fall on both sides of it.
const SHORT_LEN: usize = 512;

/// The same keys with a smaller `max_len`.
static SHORT_SIGNATURES: LazyLock<SignatureVerifier> = LazyLock::new(|| {
    SignatureVerifier::new(
        &[
            KeySource::shared_secret(SECRET).with_kid("hs"),
            KeySource::public_key_pem(ED25519_PEM).with_kid("ed"),
        ],
        Algorithm::ALL,
    )
    .expect("verifier")
    .max_len(SHORT_LEN)
});

/// What each verifier made of a token.
struct Verdict {
    layer: bool,
    strict: bool,
    signature: bool,
}

impl Verdict {
    fn any(&self) -> bool {
        self.layer || self.strict || self.signature
    }
}

/// Runs `token` through every verifier; whether any accepted it.
fn verify(token: &str) -> bool {
    verdict(token).any()
}

/// Runs `token` through every verifier.
fn verdict(token: &str) -> Verdict {
    let layer = RUNTIME.block_on(LAYER.verify(token)).is_ok();
    let strict = RUNTIME.block_on(STRICT_LAYER.verify(token)).is_ok();
    let signature = SIGNATURES.verify(token).is_ok();
    let short = SHORT_SIGNATURES.verify(token);
    if token.len() > SHORT_LEN {
        assert!(
            matches!(short, Err(AuthError::TokenTooLarge)),
            "max_len {SHORT_LEN} let a token of {} bytes through: {short:?}",
            token.len()
        );
    } else {
        assert_eq!(
            short.is_ok(),
            signature,
            "max_len changed the verdict on a short token"
        );
    }
    // The strict layer only adds rules, and the layers check the signature the same way.
    assert!(
        !strict || layer,
        "strict layer accepted what the default one refused"
    );
    assert!(
        !layer || signature,
        "layer accepted a token whose signature fails"
    );
    Verdict {
        layer,
        strict,
        signature,
    }
}

/// Signs `header.payload` with the secret, verifies it, and checks the verdict against the
/// oracles of `common`.
fn verify_signed(header: &[u8], payload: &[u8]) {
    let verdict = verdict(&hs256(header, payload));
    if has_non_string_kid(header) {
        assert!(!verdict.any(), "a header kid that is not a string was accepted");
    }
    if has_duplicate_member(header) {
        assert!(!verdict.any(), "a header with a duplicate member was accepted");
    }
    if has_duplicate_member(payload) {
        assert!(
            !verdict.layer && !verdict.strict,
            "claims with a duplicate member were accepted"
        );
    }
    if has_time_out_of_range(payload) {
        assert!(
            !verdict.layer && !verdict.strict,
            "a time claim out of range was accepted"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        // Raw text: unsigned by us, so it must never verify.
        0 => {
            let token = String::from_utf8_lossy(rest);
            assert!(!verify(&token), "an unsigned token verified: {token:?}");
        }
        // Header and payload of the fuzzer's choosing, correctly signed with the secret.
        1 => {
            let (header, payload) = match rest.iter().position(|b| *b == 0) {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (&br#"{"alg":"HS256","kid":"hs"}"#[..], rest),
            };
            verify_signed(header, payload);
        }
        // Valid claims with members of the fuzzer's choosing spliced in (duplicates, odd types).
        2 => {
            let claims = valid_claims();
            let extra = String::from_utf8_lossy(rest);
            let payload = format!("{},{extra}}}", &claims[..claims.len() - 1]);
            verify_signed(
                br#"{"alg":"HS256","kid":"hs","typ":"at+jwt"}"#,
                payload.as_bytes(),
            );
        }
        // A valid token with bytes overwritten, inserted or cut: only the original may verify.
        _ => {
            let original = VALID_TOKEN.as_bytes();
            let mut token = original.to_vec();
            for edit in rest.chunks(3) {
                let [op, at, byte] = [
                    edit[0],
                    *edit.get(1).unwrap_or(&0),
                    *edit.get(2).unwrap_or(&0),
                ];
                let at = usize::from(at) * token.len().max(1) / 256;
                match op % 3 {
                    0 if at < token.len() => token[at] = byte,
                    1 => token.insert(at.min(token.len()), byte),
                    _ if at < token.len() => {
                        token.remove(at);
                    }
                    _ => {}
                }
            }
            let Ok(token) = String::from_utf8(token) else {
                return;
            };
            let accepted = verify(&token);
            if token.as_bytes() == original {
                assert!(accepted, "the valid token was refused");
            } else {
                assert!(!accepted, "a changed token verified: {token:?}");
            }
        }
    }
});
