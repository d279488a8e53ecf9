//! The unknown-`kid` gate: when a token naming a `kid` the set lacks may trigger a refetch. One
//! on-demand refetch per cooldown, and `kid`s proven unknown remembered (boundedly) until the next
//! successful refresh, so that tokens with random kids can't turn the service into a load
//! generator against the issuer.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

/// At most this many unknown `kid`s are remembered between refreshes; past that, the cooldown
/// alone limits refetches.
const MAX_UNKNOWN_KIDS: usize = 1024;

/// The gate's memory, kept under the key set's refresh lock.
#[derive(Debug, Default)]
pub(crate) struct UnknownKidGate {
    last_on_demand: Option<Instant>,
    unknown_kids: HashSet<String>,
}

impl UnknownKidGate {
    /// Whether the cooldown since the last on-demand refetch has passed.
    pub(crate) fn cooldown_passed(&self, cooldown: Duration) -> bool {
        self.last_on_demand
            .is_none_or(|at| at.elapsed() >= cooldown)
    }

    /// Whether `kid` was proven unknown since the last successful refresh.
    pub(crate) fn is_known_unknown(&self, kid: Option<&str>) -> bool {
        self.unknown_kids.contains(kid.unwrap_or(""))
    }

    /// Records an on-demand refetch starting now.
    pub(crate) fn refetch_started(&mut self) {
        self.last_on_demand = Some(Instant::now());
    }

    /// Remembers `kid` as unknown (up to the bound).
    pub(crate) fn remember(&mut self, kid: Option<&str>) {
        if self.unknown_kids.len() < MAX_UNKNOWN_KIDS {
            self.unknown_kids.insert(kid.unwrap_or("").to_owned());
        }
    }

    /// A new set arrived: every `kid` may be known now.
    pub(crate) fn forget_unknown(&mut self) {
        self.unknown_kids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refetch_per_cooldown_and_a_bounded_memory() {
        let mut gate = UnknownKidGate::default();
        let cooldown = Duration::from_secs(30);
        assert!(gate.cooldown_passed(cooldown));
        gate.refetch_started();
        assert!(!gate.cooldown_passed(cooldown));
        assert!(gate.cooldown_passed(Duration::ZERO));

        for i in 0..2 * MAX_UNKNOWN_KIDS {
            gate.remember(Some(&format!("kid-{i}")));
        }
        assert_eq!(gate.unknown_kids.len(), MAX_UNKNOWN_KIDS);
        assert!(gate.is_known_unknown(Some("kid-0")));
        assert!(!gate.is_known_unknown(Some("kid-2047")));
        gate.forget_unknown();
        assert!(!gate.is_known_unknown(Some("kid-0")));
    }
}
