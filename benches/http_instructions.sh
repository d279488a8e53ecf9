#!/usr/bin/env bash
# User-space instructions per HTTP request, with and without the layer: the load benchmark's
# `plain` and `layer` servers (benches/load.sh) run under `valgrind --tool=callgrind` with one
# Tokio worker; after a warm-up, the counters are zeroed, wrk sends one repeated RS256 token
# (a verified-token cache hit behind the layer) for DURATION, and the counters are dumped.
# Instructions are deterministic where the shared machine's timings are not: the difference
# between the two servers is what the layer costs a request that hits its cache, in the same
# axum route, with the same request bytes (the bare route is sent the token too).
#
# Needs: valgrind (callgrind_control, callgrind_annotate), wrk, curl; both installed with
# apt-get when missing.
#
# Usage: benches/http_instructions.sh   (DURATION=5s CONNECTIONS=8; SCRATCH as in load.sh)
set -euo pipefail

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-8}
SCRATCH=${SCRATCH:-${TMPDIR:-/tmp}/tower-jwt-auth-instructions}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JWKS_ADDR=127.0.0.1:18180
SERVER_ADDR=127.0.0.1:18181

install() {
    if [ "$(id -u)" = 0 ]; then apt-get install -y "$@" >/dev/null; else sudo apt-get install -y "$@" >/dev/null; fi
}
command -v valgrind >/dev/null || install valgrind
command -v wrk >/dev/null || install wrk
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
mkdir -p "$SCRATCH"

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --example load_server
SERVER="$ROOT/target/release/examples/load_server"
"$SERVER" tokens 1 "$SCRATCH/token" >/dev/null
TOKEN=$(cat "$SCRATCH/token")

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# The JWKS, served by a plain server outside valgrind.
"$SERVER" plain "$JWKS_ADDR" 2>/dev/null & PIDS+=($!)

wait_for() { # url: polls until the server answers, for at most 60 s
    local deadline=$((SECONDS + 60))
    until curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$1"; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "no answer from $1" >&2; exit 1; }
        sleep 0.2
    done
}
wait_for "http://$JWKS_ADDR/jwks"

measure() { # name, then the server's arguments
    local name=$1
    shift
    local out="$SCRATCH/callgrind.$name"
    rm -f "$out"*
    TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$SERVER" "$@" 2>"$SCRATCH/valgrind.$name.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_for "http://$SERVER_ADDR/hello"
    wrk -t1 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $TOKEN" "http://$SERVER_ADDR/hello" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    local requests
    requests=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "Authorization: Bearer $TOKEN" \
        "http://$SERVER_ADDR/hello" | awk '/ requests in / {print $1}')
    callgrind_control -d "$pid" >/dev/null 2>&1
    if [ "${requests:-0}" -lt 1000 ]; then
        echo "$name: only ${requests:-0} requests in $DURATION under valgrind: too few to divide by (a busy machine?); run again" >&2
        exit 1
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local instructions
    instructions=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "$name $requests $instructions" | awk '{printf "%-6s %9d requests %14d instructions %8d a request\n", $1, $2, $3, $3 / $2}'
}

measure plain plain "$SERVER_ADDR"
measure layer layer "$SERVER_ADDR" "http://$JWKS_ADDR/jwks"
echo "callgrind profiles in $SCRATCH (callgrind_annotate --tree=calling --inclusive=yes FILE)"
