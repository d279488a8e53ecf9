//! JWKS parsing: `SignatureVerifier::new` and a layer build over `KeySource::jwks_json`, plus
//! `KeySource::public_key_pem` on the same bytes. A set that loads is then used to check a token.
#![no_main]

mod common;

use common::*;
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::{Algorithm, Issuer, KeySource, SignatureVerifier};

fuzz_target!(|data: &[u8]| {
    let pem = KeySource::public_key_pem(data);
    let _ = SignatureVerifier::new(&[pem], Algorithm::ALL);

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(verifier) = SignatureVerifier::new(&[KeySource::jwks_json(text)], Algorithm::ALL) {
        // A configured set may hold the test secret as an `oct` key; nothing else may verify it.
        let _ = verifier.verify(&VALID_TOKEN);
    }
    let built = RUNTIME.block_on(
        Layer::builder()
            .issuer(Issuer::new(ISSUER_A).key(KeySource::jwks_json(text)))
            .build(),
    );
    if let Ok(layer) = built {
        let _ = RUNTIME.block_on(layer.verify(&VALID_TOKEN));
    }
});
