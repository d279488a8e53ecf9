//! What a revocation check costs on a list of 1,000,000 entries, and what the list weighs.
//!
//! Run it in release mode, on an otherwise idle machine (figures in `BENCHMARKS.md`):
//!
//! ```text
//! cargo run --release --example revocation_cost
//! ```
//!
//! It fills an in-memory [`RevocationList`] with 1,000,000 revoked `jti`s (36-character UUIDs,
//! as most issuers mint them), reads the process's resident memory before and after, then times
//! checks of a revoked `jti`, of one that is not listed, and of a token with both `jti` and
//! `sub` (two lookups), each over 2,000,000 checks; the request path makes exactly this call
//! after the signature.

use std::hint::black_box;
use std::time::Instant;

use tower_jwt_auth::{RegisteredClaims, RevocationList};

const ENTRIES: usize = 1_000_000;
const CHECKS: u32 = 2_000_000;

fn jti(i: usize) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        i,
        i % 0xffff,
        i % 0xfff,
        (i / 7) % 0xfff,
        i * 31
    )
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn claims(value: serde_json::Value) -> RegisteredClaims {
    serde_json::from_value(value).expect("registered claims")
}

fn time_checks(list: &RevocationList, claims: &RegisteredClaims) -> (f64, bool) {
    let start = Instant::now();
    let mut revoked = false;
    for _ in 0..CHECKS {
        revoked = black_box(list.is_revoked(black_box(claims)));
    }
    (
        start.elapsed().as_nanos() as f64 / f64::from(CHECKS),
        revoked,
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let list = RevocationList::builder().max_entries(ENTRIES).memory();
    let exp = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )? + 3600;

    let empty = claims(serde_json::json!({ "jti": jti(1), "sub": "alice", "iat": 1 }));
    let (ns, _) = time_checks(&list, &empty);
    println!("empty list: {ns:.1} ns per check");

    let before = resident_kib();
    let start = Instant::now();
    for i in 0..ENTRIES {
        list.revoke_token(&jti(i), exp).await?;
    }
    let filled = start.elapsed();
    let after = resident_kib();
    println!(
        "{} entries added in {filled:.2?}; resident memory {} MiB -> {} MiB: {:.1} bytes per entry",
        list.status().entries,
        before / 1024,
        after / 1024,
        (after.saturating_sub(before) * 1024) as f64 / ENTRIES as f64
    );

    for (name, token) in [
        (
            "revoked jti",
            claims(serde_json::json!({ "jti": jti(ENTRIES / 2) })),
        ),
        (
            "jti not listed",
            claims(serde_json::json!({ "jti": jti(ENTRIES + 7) })),
        ),
        (
            "jti and sub not listed",
            claims(serde_json::json!({ "jti": jti(ENTRIES + 9), "sub": "alice", "iat": 1 })),
        ),
    ] {
        let (ns, revoked) = time_checks(&list, &token);
        println!("{name}: {ns:.1} ns per check (revoked: {revoked})");
    }
    Ok(())
}
