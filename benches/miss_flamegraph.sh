#!/usr/bin/env bash
# A flame graph of the layer's miss path: `load_server profile-miss` (examples/load_server.rs)
# sends REQUESTS requests with $TOKENS distinct RS256 tokens through the layer, with the
# verified-token cache off (TOKEN_CACHE=0: every request a miss), in front of a no-op service (no
# HTTP, no sockets: the layer's own work), while `perf record` samples it with DWARF call graphs.
# The samples go through inferno into $OUT (benches/flamegraphs/miss-path.svg), and the script
# prints the frames that take the most time, on the stack (inclusive) and at its top (self).
#
# The binary is the load benchmark's (release, one codegen unit, in $SCRATCH), unstripped: perf
# unwinds with its unwind tables and names functions from its symbol table; functions inlined
# into their callers show as their callers.
#
# Needs: cargo, perf (linux-perf, installed with apt-get when missing), inferno
# (`cargo install inferno`). BUILD_ONLY=1 builds and stops, so that a run under a lock
# (`flock /work/bench.lock benches/miss_flamegraph.sh`) does not hold it while compiling.
#
# Usage: benches/miss_flamegraph.sh   (TOKENS=100000 REQUESTS=300000 FREQUENCY=499)
set -euo pipefail

TOKENS=${TOKENS:-100000}
REQUESTS=${REQUESTS:-300000}
FREQUENCY=${FREQUENCY:-499}
SCRATCH=${SCRATCH:-${TMPDIR:-/tmp}/tower-jwt-auth-load}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/benches/flamegraphs/miss-path.svg}
BUILD_ONLY=${BUILD_ONLY:-0}

install() {
    echo "installing $1" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y "$1" >/dev/null; else sudo apt-get install -y "$1" >/dev/null; fi
}
command -v perf >/dev/null || install linux-perf
command -v inferno-flamegraph >/dev/null || { echo "inferno is needed: cargo install inferno" >&2; exit 1; }
mkdir -p "$SCRATCH"

echo "building load_server" >&2
# The same build as benches/load.sh's.
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
    --target-dir "$SCRATCH/target" --example load_server
SERVER="$SCRATCH/target/release/examples/load_server"
if [ "$BUILD_ONLY" = 1 ]; then echo "built $SERVER" >&2; exit 0; fi

# The token file of benches/load.sh (valid three hours; signed again when older than two).
TOKEN_FILE="$SCRATCH/tokens-jti-$TOKENS.txt"
if [ ! -s "$TOKEN_FILE" ] || [ -n "$(find "$TOKEN_FILE" -mmin +120)" ]; then
    "$SERVER" tokens "$TOKENS" "$TOKEN_FILE"
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
TOKEN_CACHE=0 perf record -e cpu-clock -F "$FREQUENCY" --call-graph dwarf,16384 -o "$SCRATCH/perf-miss.data" \
    -- "$SERVER" profile-miss "$TOKEN_FILE" "$REQUESTS" 2>&1 | grep -v '^\[ perf record' >&2
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
perf script -i "$SCRATCH/perf-miss.data" 2>/dev/null | inferno-collapse-perf >"$SCRATCH/perf-miss.folded"
mkdir -p "$(dirname "$OUT")"
inferno-flamegraph --title "miss path: $REQUESTS requests, distinct RS256 tokens, cache off (load_server profile-miss)" \
    <"$SCRATCH/perf-miss.folded" >"$OUT"
echo "$OUT" >&2

# The frames with the most samples: on the stack (each frame counted once a stack) and on top.
# With cpu-clock, inferno weighs each stack by its sampling period in nanoseconds.
awk '
    {
        count = $NF
        stack = substr($0, 1, length($0) - length(count) - 1)
        n = split(stack, frames, ";")
        total += count
        self[frames[n]] += count
        delete seen
        for (i = 1; i <= n; i++) {
            if (!(frames[i] in seen)) { seen[frames[i]] = 1; inclusive[frames[i]] += count }
        }
    }
    END {
        printf "%.2f s of CPU time sampled\n\ninclusive\n", total / 1e9
        for (f in inclusive) printf "%6.2f%%  %s\n", 100 * inclusive[f] / total, f | "sort -rn | head -40"
        close("sort -rn | head -40")
        printf "\nself\n"
        for (f in self) printf "%6.2f%%  %s\n", 100 * self[f] / total, f | "sort -rn | head -25"
    }' "$SCRATCH/perf-miss.folded" | tee "$SCRATCH/perf-miss-top.txt"
