//! The Wycheproof raw-signature vectors, run through the seam every signature check goes through:
//! [`PreparedKey::new`] (the key as it arrives from a JWK or PEM, pinned to the JWS algorithm) and
//! its verifier for that algorithm. Each case labelled `valid` must verify and each `invalid` one
//! must not; a key the crate refuses counts as rejecting its invalid cases, and its valid cases
//! are listed and counted, never dropped. The totals of each file are asserted.
//!
//! The vectors live beside the repository: `$WYCHEPROOF_DIR`, by default
//! `../shared/vectors/wycheproof` next to the crate. Absent, the tests say so and pass, unless
//! `REQUIRE_WYCHEPROOF=1` (set by `.ci/run`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::prepared::{KeyMaterial, PreparedKey};
use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};

fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WYCHEPROOF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/wycheproof")
        });
    if dir.join("ed25519_test.json").is_file() {
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

/// Straight to stderr, past the test harness's capture, so the summary shows in every run.
fn report(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The key of a test group, as the crate's key material.
fn material(group: &Value) -> KeyMaterial {
    let key = &group["publicKey"];
    match group["type"].as_str().unwrap() {
        "EcdsaP1363Verify" => KeyMaterial::Ec {
            family: match key["curve"].as_str().unwrap() {
                "secp256r1" => KeyFamily::EcP256,
                "secp384r1" => KeyFamily::EcP384,
                other => panic!("unexpected curve {other}"),
            },
            point: hex(key["uncompressed"].as_str().unwrap()),
        },
        "EddsaVerify" => KeyMaterial::Ed25519(hex(key["pk"].as_str().unwrap())),
        "RsassaPkcs1Verify" | "RsassaPssVerify" => KeyMaterial::Rsa {
            n: hex(key["modulus"].as_str().unwrap()),
            e: hex(key["publicExponent"].as_str().unwrap()),
        },
        other => panic!("unexpected group type {other}"),
    }
}

/// What happened to the cases of one file.
#[derive(Debug, Default)]
struct Tally {
    valid_accepted: usize,
    invalid_rejected: usize,
    /// `acceptable` cases (a policy choice), with the outcome.
    acceptable: Vec<String>,
    /// Valid cases that could not run because the crate refuses their key, with the reason.
    not_run: Vec<String>,
    /// Invalid cases rejected because the key itself was refused (part of `invalid_rejected`).
    key_refused: usize,
    failures: Vec<String>,
}

/// Runs every case of `name` with the key of its group prepared for `alg`.
fn run_file(dir: &Path, name: &str, alg: Algorithm) -> Tally {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    let allowed: AlgorithmSet = Algorithm::ALL.into_iter().collect();
    let mut tally = Tally::default();
    let mut seen = 0;
    for group in file["testGroups"].as_array().unwrap() {
        // For PSS, the salt and MGF hash are fixed by the JWS algorithm (RFC 7518 §3.5): the
        // files used here match them.
        if let Some(s_len) = group.get("sLen") {
            let expected = match alg {
                Algorithm::PS256 => 32,
                Algorithm::PS384 => 48,
                _ => 64,
            };
            assert_eq!(s_len.as_u64(), Some(expected), "{name}: salt length");
            assert_eq!(group["mgfSha"], group["sha"], "{name}: MGF1 hash");
        }
        let key = PreparedKey::new(None, material(group), Some(alg), allowed);
        for case in group["tests"].as_array().unwrap() {
            seen += 1;
            let tc = case["tcId"].as_u64().unwrap();
            let comment = case["comment"].as_str().unwrap_or("");
            let label = case["result"].as_str().unwrap();
            let msg = hex(case["msg"].as_str().unwrap());
            let sig = hex(case["sig"].as_str().unwrap());
            let verified = match &key {
                Ok(key) => Ok(key
                    .verifier(alg)
                    .expect("a key pinned to alg verifies with alg")
                    .verify(&msg, &sig)),
                Err(reason) => Err(reason),
            };
            match (label, verified) {
                ("valid", Ok(true)) => tally.valid_accepted += 1,
                ("invalid", Ok(false)) => tally.invalid_rejected += 1,
                ("invalid", Err(_)) => {
                    tally.invalid_rejected += 1;
                    tally.key_refused += 1;
                }
                ("valid", Err(reason)) => tally
                    .not_run
                    .push(format!("tc{tc} ({comment}): key refused: {reason}")),
                ("acceptable", outcome) => tally.acceptable.push(format!(
                    "tc{tc} ({comment}, {}): {}",
                    case["flags"],
                    match outcome {
                        Ok(true) => "accepted",
                        Ok(false) => "rejected",
                        Err(_) => "rejected (key refused)",
                    }
                )),
                (label, outcome) => tally.failures.push(format!(
                    "tc{tc} ({comment}) [{label}]: verified = {outcome:?}"
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
        "wycheproof {name} ({alg}): {} valid accepted, {} invalid rejected ({} by refusing the key), {} valid not run, {} acceptable",
        tally.valid_accepted,
        tally.invalid_rejected,
        tally.key_refused,
        tally.not_run.len(),
        tally.acceptable.len(),
    );
    for line in &tally.not_run {
        summary.push_str(&format!("\n  not run {line}"));
    }
    for line in &tally.acceptable {
        summary.push_str(&format!("\n  acceptable {line}"));
    }
    report(&summary);
    tally
}

/// Runs `name` and checks: no case went the wrong way, and exactly these counts (valid accepted,
/// invalid rejected, valid not run, acceptable ones rejected).
///
/// The only `acceptable` cases are the PKCS#1 v1.5 signatures whose DigestInfo omits the NULL
/// parameters (`MissingNull`); the strict answer is to reject them, and they are asserted rejected.
fn check(name: &str, alg: Algorithm, expected: (usize, usize, usize, usize)) {
    let Some(dir) = vectors_dir() else { return };
    let tally = run_file(&dir, name, alg);
    assert!(
        tally.failures.is_empty(),
        "{name}: {} case(s) went the wrong way:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    let acceptable_rejected = tally
        .acceptable
        .iter()
        .filter(|line| line.ends_with("rejected"))
        .count();
    assert_eq!(
        (
            tally.valid_accepted,
            tally.invalid_rejected,
            tally.not_run.len(),
            acceptable_rejected
        ),
        expected,
        "{name}: (valid accepted, invalid rejected, valid not run, acceptable rejected)"
    );
}

#[test]
fn ecdsa_p256_p1363() {
    check(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        Algorithm::ES256,
        (173, 89, 0, 0),
    );
}

#[test]
fn ecdsa_p384_p1363() {
    check(
        "ecdsa_secp384r1_sha384_p1363_test.json",
        Algorithm::ES384,
        (193, 87, 0, 0),
    );
}

#[test]
fn ed25519() {
    check("ed25519_test.json", Algorithm::EdDSA, (88, 63, 0, 0));
}

#[test]
fn rsa_pkcs1_2048_sha256() {
    check(
        "rsa_signature_2048_sha256_test.json",
        Algorithm::RS256,
        (9, 249, 0, 1),
    );
}

#[test]
fn rsa_pkcs1_2048_sha384() {
    check(
        "rsa_signature_2048_sha384_test.json",
        Algorithm::RS384,
        (7, 250, 0, 1),
    );
}

#[test]
fn rsa_pkcs1_2048_sha512() {
    check(
        "rsa_signature_2048_sha512_test.json",
        Algorithm::RS512,
        (8, 250, 0, 1),
    );
}

#[test]
fn rsa_pss_2048_sha256() {
    check(
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        Algorithm::PS256,
        (63, 45, 0, 0),
    );
}

#[test]
fn rsa_pss_2048_sha384() {
    check(
        "rsa_pss_2048_sha384_mgf1_48_test.json",
        Algorithm::PS384,
        (95, 46, 0, 0),
    );
}
