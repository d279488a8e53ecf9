//! The Wycheproof JOSE vectors (C2SP), run through the crate's public signature step,
//! [`SignatureVerifier`] (strict parsing, key chosen by `kid`, algorithm pinned by the key, the
//! signature check): every compact-JWS case labelled `valid` must be accepted and every `invalid`
//! one rejected, except the label issues decided below by `tcId`, each with its reason. Cases for
//! what this crate does not do (JWE) are counted and listed as skipped, never dropped; the totals
//! of each file are asserted, so a case that goes missing fails the test.
//!
//! The JWS payloads are not JWT claims sets (`foo`, empty, binary), which is why the signature step
//! is tested on its own; the claim checks are covered by `tests/claims.rs` and `tests/attacks/`.
//!
//! The vectors live beside the repository, not in it: the folder is `$WYCHEPROOF_DIR`, by default
//! `../shared/vectors/wycheproof` next to the crate. Where it is absent (a fresh clone) the test
//! says so and passes, unless `REQUIRE_WYCHEPROOF=1` (set by `.ci/run`) makes that a failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tower_jwt_auth::{Algorithm, AuthError, KeySource, SignatureVerifier};

/// The vectors folder, or `None` (with a message) when it is absent and not required.
fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WYCHEPROOF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/wycheproof")
        });
    if dir.join("json_web_signature_test.json").is_file() {
        return Some(dir);
    }
    let required = std::env::var("REQUIRE_WYCHEPROOF").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "REQUIRE_WYCHEPROOF=1 but the Wycheproof vectors are not at {} (set WYCHEPROOF_DIR)",
        dir.display()
    );
    report(&format!(
        "wycheproof: skipped: vectors not found at {} (set WYCHEPROOF_DIR; REQUIRE_WYCHEPROOF=1 makes this a failure)",
        dir.display()
    ));
    None
}

/// Writes straight to stderr, past the test harness's capture, so that the skip notice and the
/// per-file summary (with the skipped cases) show in every run, not only in failing ones.
fn report(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// What the crate must do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accept,
    Reject,
}

/// Cases where the file's label and this crate's strict policy (DESIGN.md) disagree, decided by
/// `tcId` as `../shared/vectors/README.md` says, each with its reason.
const DECIDED: &[(&str, u64, Expect, &str)] = &[
    // RFC 7520 figure 20 (and with `key_ops`): the JWK says `alg: PS256`, the header PS384. The key
    // pins its algorithm, so the token is refused even though the RSA signature itself is fine.
    (
        "json_web_signature_test.json",
        346,
        Expect::Reject,
        "labelled valid; JWK alg PS256 pins the key, header says PS384",
    ),
    (
        "json_web_signature_test.json",
        350,
        Expect::Reject,
        "labelled valid; JWK alg PS256 pins the key, header says PS384",
    ),
    // RFC 7520 figure 27: a P-521 key with `alg: ES521`, header ES512. Neither is supported and the
    // key's alg differs from the header's anyway.
    (
        "json_web_signature_test.json",
        347,
        Expect::Reject,
        "labelled valid; JWK alg ES521 (P-521, unsupported) differs from header ES512",
    ),
    (
        "json_web_signature_test.json",
        351,
        Expect::Reject,
        "labelled valid; JWK alg ES521 (P-521, unsupported) differs from header ES512",
    ),
    // Byte-identical to the valid tc357 (the padding variant was lost upstream): mislabelled.
    (
        "json_web_signature_test.json",
        367,
        Expect::Accept,
        "mislabelled invalid; byte-identical to the valid tc357",
    ),
    (
        "json_web_signature_test.json",
        370,
        Expect::Accept,
        "mislabelled invalid; byte-identical to the valid tc357",
    ),
    // A `?` inside a base64url part: a strict decoder refuses what a lenient one skips.
    (
        "json_web_signature_test.json",
        372,
        Expect::Reject,
        "labelled valid; '?' inserted in the header is not base64url",
    ),
    (
        "json_web_signature_test.json",
        373,
        Expect::Reject,
        "labelled valid; '?' inserted in the payload is not base64url",
    ),
];

/// Cases labelled `invalid` that the crate accepts: none since mixed symmetric/asymmetric sets
/// (json_web_key tc1, json_web_crypto tc47), duplicate kids (json_web_key tc4) and ROCA moduli
/// (json_web_key tc7, json_web_crypto tc46) are refused. Kept so that a future gap is listed with
/// its reason instead of silently weakening the expectations.
const PENDING: &[(&str, u64, &str)] = &[];

/// What happened to the cases of one file.
#[derive(Debug, Default)]
struct Tally {
    /// Cases labelled `valid` (or decided `Accept`) that were accepted.
    accepted: usize,
    /// Cases labelled `invalid` (or decided `Reject`) that were rejected.
    rejected: usize,
    /// Cases decided against their label (a subset of the two above), with the reason.
    decided: Vec<String>,
    /// [`PENDING`] cases, with the reason.
    pending: Vec<String>,
    /// Cases not run, with the reason.
    skipped: Vec<String>,
    /// Cases whose outcome differs from what is expected.
    failures: Vec<String>,
    /// Why cases were rejected, counted: shows that invalid cases fail for the right reasons.
    reasons: BTreeMap<String, usize>,
}

/// The JWKS a group's verifier is configured with: its public key(s), or for a symmetric key (which
/// only exists as `private`) the secret; any private members of asymmetric keys are dropped, as a
/// verifier is configured with public keys only.
fn group_jwks(group: &Value) -> String {
    let key = group
        .get("public")
        .or_else(|| group.get("private"))
        .expect("a group has a key");
    let mut keys = match key.get("keys") {
        Some(Value::Array(keys)) => keys.clone(),
        _ => vec![key.clone()],
    };
    for key in &mut keys {
        if key["kty"] != "oct" {
            let object = key.as_object_mut().unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
                object.remove(private);
            }
        }
    }
    json!({ "keys": keys }).to_string()
}

/// Runs the cases of `name`. With `strict`, the [`PENDING`] cases must be rejected, as their label
/// says; without, they must be accepted, as the crate does today.
fn run_file(dir: &Path, name: &str, strict: bool) -> Tally {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    let mut tally = Tally::default();
    let mut seen = 0;
    // Proves each skipped JWE is refused all the same: any static key does, JWE fails before it.
    let jwe_probe =
        SignatureVerifier::new(&[KeySource::shared_secret([7u8; 32])], [Algorithm::HS256]).unwrap();

    for group in file["testGroups"].as_array().unwrap() {
        let verifier =
            SignatureVerifier::new(&[KeySource::jwks_json(group_jwks(group))], Algorithm::ALL)
                .map_err(|err| err.to_string());
        for case in group["tests"].as_array().unwrap() {
            seen += 1;
            let tc = case["tcId"].as_u64().unwrap();
            let label = case["result"].as_str().unwrap();
            let comment = case["comment"].as_str().unwrap_or("");

            if let Some(jwe) = case.get("jwe") {
                let jwe = jwe.as_str().map_or_else(|| jwe.to_string(), str::to_owned);
                match jwe_probe.verify(&jwe) {
                    Err(
                        AuthError::UnsupportedTokenFormat
                        | AuthError::MalformedToken(_)
                        | AuthError::UnsupportedAlgorithm,
                    ) => {}
                    other => tally.failures.push(format!(
                        "tc{tc} ({comment}): a JWE must be refused, got {other:?}"
                    )),
                }
                tally
                    .skipped
                    .push(format!("tc{tc} [{label}] {comment}: JWE is not supported"));
                continue;
            }

            // The JSON serialization comes as an object; the crate takes compact text only, so it
            // gets the object's text, which it must refuse (these cases are labelled invalid).
            let jws = match &case["jws"] {
                Value::String(jws) => jws.clone(),
                other => other.to_string(),
            };
            let labelled = match label {
                "valid" => Expect::Accept,
                "invalid" => Expect::Reject,
                other => panic!("{name} tc{tc}: unexpected result {other:?}"),
            };
            let decision = DECIDED
                .iter()
                .find(|(file, id, _, _)| *file == name && *id == tc);
            let mut expect = decision.map_or(labelled, |(_, _, expect, _)| *expect);
            if let Some((_, _, _, why)) = decision {
                tally.decided.push(format!("tc{tc}: {why}"));
            }
            if let Some((_, _, why)) = PENDING
                .iter()
                .find(|(file, id, _)| *file == name && *id == tc)
            {
                tally
                    .pending
                    .push(format!("tc{tc} [{label}] {comment}: {why}"));
                if !strict {
                    expect = Expect::Accept;
                }
            }

            let outcome = match &verifier {
                Err(reason) => Err(format!("key refused: {reason}")),
                Ok(verifier) => verifier
                    .verify(&jws)
                    .map(|_| ())
                    .map_err(|err| err.cause().to_owned()),
            };
            match (expect, outcome) {
                (Expect::Accept, Ok(())) => tally.accepted += 1,
                (Expect::Reject, Err(reason)) => {
                    let key = if reason.starts_with("key refused") {
                        "key_refused".to_owned()
                    } else {
                        reason
                    };
                    *tally.reasons.entry(key).or_default() += 1;
                    tally.rejected += 1;
                }
                (Expect::Accept, Err(reason)) => tally.failures.push(format!(
                    "tc{tc} ({comment}) [{label}]: must be accepted, was rejected: {reason}"
                )),
                (Expect::Reject, Ok(())) => tally.failures.push(format!(
                    "tc{tc} ({comment}) [{label}]: must be rejected, was accepted"
                )),
            }
        }
    }
    assert_eq!(
        seen,
        file["numberOfTests"].as_u64().unwrap() as usize,
        "{name}: every case is read"
    );

    let mut summary = format!(
        "wycheproof {name}: {} accepted, {} rejected, {} skipped, {} decided against the label, {} pending a fix\n  rejected because: {:?}",
        tally.accepted,
        tally.rejected,
        tally.skipped.len(),
        tally.decided.len(),
        tally.pending.len(),
        tally.reasons,
    );
    for line in &tally.decided {
        summary.push_str(&format!("\n  decided {line}"));
    }
    for line in &tally.pending {
        summary.push_str(&format!("\n  pending {line}"));
    }
    for line in &tally.skipped {
        summary.push_str(&format!("\n  skipped {line}"));
    }
    report(&summary);
    tally
}

/// Runs `name` and checks its tally: no failures, and exactly these counts (accepted, rejected,
/// skipped), so that no case can drop out unnoticed.
fn check(name: &str, expected: (usize, usize, usize)) {
    let Some(dir) = vectors_dir() else { return };
    let tally = run_file(&dir, name, false);
    assert!(
        tally.failures.is_empty(),
        "{name}: {} case(s) went the wrong way:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    assert_eq!(
        (tally.accepted, tally.rejected, tally.skipped.len()),
        expected,
        "{name}: (accepted, rejected, skipped)"
    );
}

#[test]
fn json_web_signature_vectors() {
    // 46 valid - 6 decided to reject + 2 mislabelled to accept; 355 invalid - 2 + 6.
    check("json_web_signature_test.json", (42, 359, 0));
}

#[test]
fn json_web_key_vectors() {
    // 5 valid accepted; 21 invalid rejected.
    check("json_web_key_test.json", (5, 21, 0));
}

#[test]
fn json_web_crypto_vectors() {
    // The 34 JWE cases (2 valid, 32 invalid) are skipped; of the 49 JWS cases, 4 valid are
    // accepted and 45 invalid rejected.
    check("json_web_crypto_test.json", (4, 45, 34));
}
