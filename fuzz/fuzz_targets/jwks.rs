//! JWKS parsing: `SignatureVerifier::new` and a layer build over `KeySource::jwks_json`, plus
//! `KeySource::public_key_pem` on the same bytes. A set that loads is then used to check a token,
//! and must not verify the small-order forgery: `alg: EdDSA`, any payload, and the signature
//! `R || 0` with `R` a point of small order, which a small-order Ed25519 key (the identity above
//! all) would accept for any message.
#![no_main]

mod common;

use std::sync::LazyLock;

use common::*;
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::{Algorithm, Issuer, KeySource, SignatureVerifier};

/// The encodings of the eight Ed25519 points of small order (little-endian `y`, either sign of
/// `x`; the two "negative zero" encodings of `y = 1` and `y = p − 1` too).
static SMALL_ORDER_POINTS: LazyLock<Vec<[u8; 32]>> = LazyLock::new(|| {
    let y_values: [[u8; 32]; 5] = [
        [0; 32],
        {
            let mut one = [0; 32];
            one[0] = 1;
            one
        },
        {
            let mut minus_one = [0xff; 32];
            minus_one[0] = 0xec;
            minus_one[31] = 0x7f;
            minus_one
        },
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
    ];
    y_values
        .iter()
        .flat_map(|y| {
            let mut negative = *y;
            negative[31] |= 0x80;
            [*y, negative]
        })
        .collect()
});

/// The forgeries for a key named `kid` (or none): for every key `A` of small order and every
/// message, `[S]B = R + [k]A` holds with `S = 0` and `R = −[k]A`, one of the points above.
fn forgeries(kid: Option<&str>) -> Vec<String> {
    let header = match kid {
        Some(kid) => serde_json::json!({"alg": "EdDSA", "kid": kid}),
        None => serde_json::json!({"alg": "EdDSA"}),
    };
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(valid_claims().as_bytes())
    );
    SMALL_ORDER_POINTS
        .iter()
        .map(|r| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(r);
            format!("{signing_input}.{}", b64(&signature))
        })
        .collect()
}

/// The `kid`s of the set's keys (a few), and no `kid` at all.
fn kids(text: &str) -> Vec<Option<String>> {
    let mut kids = vec![None];
    if let Ok(set) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(keys) = set.get("keys").and_then(serde_json::Value::as_array)
    {
        kids.extend(
            keys.iter()
                .filter_map(|key| key.get("kid")?.as_str().map(|kid| Some(kid.to_owned())))
                .take(4),
        );
    }
    kids
}

fuzz_target!(|data: &[u8]| {
    let pem = KeySource::public_key_pem(data);
    if let Ok(verifier) = SignatureVerifier::new(&[pem], Algorithm::ALL) {
        for token in forgeries(None) {
            assert!(
                verifier.verify(&token).is_err(),
                "a PEM key verified the small-order forgery {token}"
            );
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Only sets that can hold an Ed25519 key are tried with the forgeries: the rest refuse EdDSA.
    let okp = text.contains("OKP") || text.contains("Ed25519");
    let forged: Vec<String> = if okp {
        kids(text)
            .iter()
            .flat_map(|kid| forgeries(kid.as_deref()))
            .collect()
    } else {
        Vec::new()
    };
    if let Ok(verifier) = SignatureVerifier::new(&[KeySource::jwks_json(text)], Algorithm::ALL) {
        // A configured set may hold the test secret as an `oct` key; nothing else may verify it.
        let _ = verifier.verify(&VALID_TOKEN);
        for token in &forged {
            assert!(
                verifier.verify(token).is_err(),
                "a JWKS key verified the small-order forgery {token}"
            );
        }
    }
    let built = RUNTIME.block_on(
        Layer::builder()
            .issuer(Issuer::new(ISSUER_A).key(KeySource::jwks_json(text)))
            .build(),
    );
    if let Ok(layer) = built {
        let _ = RUNTIME.block_on(layer.verify(&VALID_TOKEN));
        for token in &forged {
            assert!(
                RUNTIME.block_on(layer.verify(token)).is_err(),
                "the layer accepted the small-order forgery {token}"
            );
        }
    }
});
