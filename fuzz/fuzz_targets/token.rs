//! Token parsing and verification: `JwtAuthLayer::verify` (two issuers, default and strict rules)
//! and `SignatureVerifier::verify`, on raw text, on correctly signed tokens whose header and
//! payload are fuzzed, and on valid tokens with bytes changed. Besides "no panic", it checks that
//! no token the fuzzer could not sign verifies: any change to a valid token must fail.
#![no_main]

mod common;

use std::sync::LazyLock;

use common::*;
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::{Algorithm, KeySource, SignatureVerifier};

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

/// Runs `token` through every verifier; whether any accepted it.
fn verify(token: &str) -> bool {
    let layer = RUNTIME.block_on(LAYER.verify(token)).is_ok();
    let strict = RUNTIME.block_on(STRICT_LAYER.verify(token)).is_ok();
    let signature = SIGNATURES.verify(token).is_ok();
    // The strict layer only adds rules, and the layers check the signature the same way.
    assert!(
        !strict || layer,
        "strict layer accepted what the default one refused"
    );
    assert!(
        !layer || signature,
        "layer accepted a token whose signature fails"
    );
    layer || strict || signature
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
            verify(&hs256(header, payload));
        }
        // Valid claims with members of the fuzzer's choosing spliced in (duplicates, odd types).
        2 => {
            let claims = valid_claims();
            let extra = String::from_utf8_lossy(rest);
            let payload = format!("{},{extra}}}", &claims[..claims.len() - 1]);
            verify(&hs256(
                br#"{"alg":"HS256","kid":"hs","typ":"at+jwt"}"#,
                payload.as_bytes(),
            ));
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
