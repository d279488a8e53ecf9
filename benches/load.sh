#!/usr/bin/env bash
# Load benchmark: the same axum "hello" route
#   (1) without the layer,
#   (2) with the layer and one repeated RS256 token (verified-token cache hits),
#   (3) with the layer and $TOKENS distinct RS256 tokens rotated by a wrk Lua script (misses),
#   (3c) the same with the verified-token cache switched off (every request a miss, whatever the
#        cache's eviction policy keeps of the rotation),
#   (4) protected by jwt-authorizer 0.15 (axum 0.7) with the same tokens and JWKS,
#   (5) jwt-authorizer with the one repeated token, for reference.
# Every server runs on loopback with its keys from the same JWKS (served by (1)).
#
# Each run reports requests per second, the server's own CPU time per request (user + system, from
# /proc/PID/stat: what a request costs the server, whatever else the machine is doing) and the
# machine's idle cores during the run (a server that leaves cores idle under load is waiting on
# something). ROUNDS rounds of all the runs are interleaved and the medians reported, so that a
# slow moment of a shared machine does not land on one server only.
#
# Needs: cargo, wrk (installed with apt-get when missing), curl, network access to crates.io the
# first time (the peer is built in $SCRATCH, outside the repository, and never committed).
#
# PIN=0 (default): servers and wrk share every core (servers with a worker per core, wrk with
# THREADS=2). PIN=1: the servers run on one core (SERVER_CPU, one Tokio worker) and wrk on another
# (CLIENT_CPU), so that the load generator takes no CPU from the server.
#
# Usage: benches/load.sh   (PIN=0 ROUNDS=3 DURATION=10s CONNECTIONS=64 TOKENS=100000)
set -euo pipefail

PIN=${PIN:-0}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
if [ "$PIN" = 1 ]; then THREADS=${THREADS:-1}; else THREADS=${THREADS:-2}; fi
TOKENS=${TOKENS:-100000}
SCRATCH=${SCRATCH:-${TMPDIR:-/tmp}/tower-jwt-auth-load}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    ON_SERVER_CPU=(taskset -c "$SERVER_CPU")
    ON_CLIENT_CPU=(taskset -c "$CLIENT_CPU")
    export TOKIO_WORKER_THREADS=1
else
    PIN=0
    ON_SERVER_CPU=()
    ON_CLIENT_CPU=()
fi
PLAIN=127.0.0.1:18080
LAYER=127.0.0.1:18081
PEER=127.0.0.1:18082
LAYER_NO_CACHE=127.0.0.1:18083

for tool in curl awk sort; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
fi
mkdir -p "$SCRATCH"

echo "building the servers" >&2
# Built as the peer is below (release, one codegen unit), in the scratch directory so that the
# repository's own release builds keep their settings.
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
    --target-dir "$SCRATCH/target" --example load_server
SERVER="$SCRATCH/target/release/examples/load_server"

# The peer: jwt-authorizer 0.15 on axum 0.7, built in the scratch directory.
PEER_DIR="$SCRATCH/peer"
mkdir -p "$PEER_DIR/src"
cat > "$PEER_DIR/Cargo.toml" <<'EOF'
[package]
name = "jwt-authorizer-load"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
axum = "0.7"
jwt-authorizer = "0.15"
serde = { version = "1", features = ["derive"] }
tokio = { version = "1", features = ["full"] }

[profile.release]
codegen-units = 1

[workspace]
EOF
cat > "$PEER_DIR/src/main.rs" <<'EOF'
use axum::{routing::get, Router};
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, Validation};
use serde::Deserialize;

// Decoded from every token (and put in the request) by the authorizer, as with the layer.
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct LoadClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
}

// The same route as the other servers'.
async fn hello() -> &'static str {
    "hello"
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, jwks_url) = (&args[1], &args[2]);
    let auth: Authorizer<LoadClaims> = JwtAuthorizer::from_jwks_url(jwks_url)
        .validation(
            Validation::new()
                .iss(&["https://issuer.load.test/"])
                .aud(&["load-api"]),
        )
        .build()
        .await
        .expect("jwt-authorizer set-up");
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(auth.into_layer());
    let listener = tokio::net::TcpListener::bind(addr.as_str()).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
EOF
echo "building jwt-authorizer 0.15 in $PEER_DIR" >&2
cargo build --release --quiet --manifest-path "$PEER_DIR/Cargo.toml"
PEER_BIN="$PEER_DIR/target/release/jwt-authorizer-load"

# Tokens are valid for three hours; older files are signed again.
if [ ! -s "$SCRATCH/tokens-$TOKENS.txt" ] || [ -n "$(find "$SCRATCH/tokens-$TOKENS.txt" -mmin +120)" ]; then
    "$SERVER" tokens "$TOKENS" "$SCRATCH/tokens-$TOKENS.txt"
fi
TOKEN_FILE="$SCRATCH/tokens-$TOKENS.txt"
ONE_TOKEN=$(head -n 1 "$TOKEN_FILE")

cat > "$SCRATCH/tokens.lua" <<'EOF'
-- Each wrk thread takes its own slice of the token file, so threads never share a token and every
-- request is a cache miss until the slice wraps. The requests are formatted once, in init, so that
-- the Lua side costs wrk as little as a fixed request.
local counter = 0
function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
end
local requests = {}
local i = 0
function init(args)
    local n = tonumber(args[2])
    local k = 0
    for line in io.lines(args[1]) do
        if k % n == id then
            requests[#requests + 1] =
                wrk.format("GET", "/hello", { ["Authorization"] = "Bearer " .. line })
        end
        k = k + 1
    end
end
function request()
    i = i % #requests + 1
    return requests[i]
end
EOF

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_for() {
    local url=$1 deadline=$((SECONDS + 60))
    until curl -s -o /dev/null "$url"; do
        if [ $SECONDS -ge $deadline ]; then echo "no answer from $url" >&2; exit 1; fi
        sleep 0.2
    done
}

"${ON_SERVER_CPU[@]}" "$SERVER" plain "$PLAIN" 2>/dev/null & PIDS+=($!); PLAIN_PID=$!
wait_for "http://$PLAIN/jwks"
"${ON_SERVER_CPU[@]}" "$SERVER" layer "$LAYER" "http://$PLAIN/jwks" 2>/dev/null & PIDS+=($!); LAYER_PID=$!
TOKEN_CACHE=0 "${ON_SERVER_CPU[@]}" "$SERVER" layer "$LAYER_NO_CACHE" "http://$PLAIN/jwks" 2>/dev/null &
PIDS+=($!); LAYER_NO_CACHE_PID=$!
"${ON_SERVER_CPU[@]}" "$PEER_BIN" "$PEER" "http://$PLAIN/jwks" 2>/dev/null & PIDS+=($!); PEER_PID=$!
wait_for "http://$LAYER/hello"
wait_for "http://$LAYER_NO_CACHE/hello"
wait_for "http://$PEER/hello"

for url in "http://$LAYER/hello" "http://$LAYER_NO_CACHE/hello" "http://$PEER/hello"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ONE_TOKEN" "$url")
    [ "$status" = 200 ] || { echo "$url answered $status to a valid token" >&2; exit 1; }
done

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
idle_ticks() { awk '/^cpu / {print $5 + $6}' /proc/stat; }

run() { # name, server pid, url, then wrk options, then optionally `--` and the Lua script's arguments
    local name=$1 pid=$2 url=$3; shift 3
    local options=() script_args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do options+=("$1"); shift; done
    if [ $# -gt 0 ]; then shift; script_args=("$@"); fi
    local cpu0 idle0 start out cpu1 idle1 elapsed
    cpu0=$(cpu_ticks "$pid"); idle0=$(idle_ticks); start=$(date +%s.%N)
    out=$("${ON_CLIENT_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${options[@]}" "$url" \
        ${script_args[@]+-- "${script_args[@]}"})
    cpu1=$(cpu_ticks "$pid"); idle1=$(idle_ticks)
    elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')
    echo "$out" >>"$SCRATCH/$name.txt"
    echo "$out" | awk -v name="$name" -v ticks="$TICKS" -v cpu="$((cpu1 - cpu0))" \
        -v idle="$((idle1 - idle0))" -v elapsed="$elapsed" '
        /requests in/ { requests = $1 }
        /Requests\/sec/ { rps = $2 }
        /Non-2xx/ { bad = $NF }
        END {
            if (bad > 0 || requests == 0) { print name ": " bad " failed requests" > "/dev/stderr"; exit 1 }
            printf "%s %.0f %.1f %.2f\n", name, rps, cpu / ticks * 1e6 / requests, idle / ticks / elapsed
        }'
}

if [ "$PIN" = 1 ]; then placement="servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"; else placement="unpinned"; fi
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $TOKENS tokens, $placement, $ROUNDS rounds; raw outputs in $SCRATCH" >&2
rm -f "$SCRATCH"/[0-9]*_*.txt
LUA=(-s "$SCRATCH/tokens.lua")
for round in $(seq "$ROUNDS"); do
    echo "round $round" >&2
    # The plain server gets the same header (and ignores it), so that only the layer differs.
    run 1_plain "$PLAIN_PID" "http://$PLAIN/hello" -H "Authorization: Bearer $ONE_TOKEN"
    run 2_layer_one_token "$LAYER_PID" "http://$LAYER/hello" -H "Authorization: Bearer $ONE_TOKEN"
    run 3_layer_distinct_tokens "$LAYER_PID" "http://$LAYER/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
    run 3c_layer_no_cache "$LAYER_NO_CACHE_PID" "http://$LAYER_NO_CACHE/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
    run 4_peer_distinct_tokens "$PEER_PID" "http://$PEER/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
    run 5_peer_one_token "$PEER_PID" "http://$PEER/hello" -H "Authorization: Bearer $ONE_TOKEN"
done | tee "$SCRATCH/rounds.txt"

# Medians over the rounds, per run and per column.
median() { # column of rounds.txt; prints "name median" per run
    awk -v col="$1" '{print $1, $col}' "$SCRATCH/rounds.txt" | sort -k1,1 -k2,2g | awk '
        { values[$1] = values[$1] " " $2; count[$1]++ }
        END {
            for (name in values) {
                n = split(substr(values[name], 2), v, " ")
                m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
                print name, m
            }
        }' | sort
}
join <(median 2) <(median 3) | join - <(median 4) >"$SCRATCH/summary.txt"
{
    echo "run                         req/s   CPU µs/request   idle cores   (medians of $ROUNDS rounds)"
    awk '{printf "%-26s %7.0f %16.1f %12.2f\n", $1, $2, $3, $4}' "$SCRATCH/summary.txt"
    awk '
        { rps[$1] = $2; cpu[$1] = $3 }
        END {
            printf "\n%-48s %10s %16s\n", "ratio", "req/s", "req/CPU-s"
            printf "%-48s %10.2f %16.2f\n", "(2)/(1)  layer, one token / no layer", rps["2_layer_one_token"] / rps["1_plain"], cpu["1_plain"] / cpu["2_layer_one_token"]
            printf "%-48s %10.2f %16.2f\n", "(3)/(4)  layer / jwt-authorizer, distinct", rps["3_layer_distinct_tokens"] / rps["4_peer_distinct_tokens"], cpu["4_peer_distinct_tokens"] / cpu["3_layer_distinct_tokens"]
            printf "%-48s %10.2f %16.2f\n", "(3c)/(4) layer, no cache / jwt-authorizer", rps["3c_layer_no_cache"] / rps["4_peer_distinct_tokens"], cpu["4_peer_distinct_tokens"] / cpu["3c_layer_no_cache"]
            printf "%-48s %10.2f %16.2f\n", "(2)/(5)  layer / jwt-authorizer, one token", rps["2_layer_one_token"] / rps["5_peer_one_token"], cpu["5_peer_one_token"] / cpu["2_layer_one_token"]
        }' "$SCRATCH/summary.txt"
} | tee "$SCRATCH/report.txt"
