#!/usr/bin/env bash
# Load benchmark: the same axum "hello" route
#   (1) without the layer,
#   (2) with the layer and one repeated RS256 token (verified-token cache hits),
#   (3) with the layer and $TOKENS distinct RS256 tokens rotated by a wrk Lua script (misses),
#   (3c) the same with the verified-token cache switched off (every request a miss, whatever the
#        cache's eviction policy keeps of the rotation),
#   (3f) the floor of (3c): a route that only checks each token's RS256 signature with aws-lc-rs
#        and a key prepared once (`load_server floor`: no header, no claims, no expiry), what
#        any verifier must at least do for a token it has not seen; (3f)/(4) is the most any
#        layer could reach against the peer on this machine,
#   (4) protected by jwt-authorizer 0.15 (axum 0.7) with the same tokens and JWKS,
#   (5) jwt-authorizer with the one repeated token, for reference,
#   (6) the layer with a revocation list of $REVOKED revoked `jti`s (1,000,000 by default), sent the
#       one repeated token, not revoked (the list is looked up on every cache hit),
#   (7) the same revocation list with the distinct tokens (misses),
#   (8) the layer with DPoP required: the one token, DPoP-bound (`cnf.jkt`, an ES256 client key),
#       sent as `Authorization: DPoP` with a new proof on every request.
# Every server runs on loopback with its keys from the same JWKS (served by (1)). Every token
# carries a `jti` (none of them revoked).
#
# DPoP proofs are signed before the rounds (`load_server dpop-client`), one file of $PROOFS
# proofs per round, each with a random `jti`: the replay cache refuses a proof the second time,
# so a proof is never sent twice. Each wrk thread takes its own slice of the round's file; a
# thread that used up its slice would start again at its beginning, every such request would be
# answered 401, and the run fails (see below). PROOFS defaults to 40,000 a second of DURATION,
# twice what the DPoP server served here at its fastest (one 10 s run at 20,336 req/s, when
# 20,000 a second were signed, wrapped and failed). The server accepts proofs up to DPOP_WINDOW seconds
# (1 hour) from their `iat`, since they are signed before the run; RFC 9449's checks are
# otherwise those of production.
#
# A run fails, and the script with it, if wrk reports a single non-2xx response.
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
# SWEEP=1: after the rounds, a sweep over wrk's connections (SWEEP_CONNECTIONS, 8 to 256) of
# (1), (2), (3c) and (4), SWEEP_DURATION (3 s) a point, SWEEP_ROUNDS (1) interleaved rounds,
# written to $SCRATCH/sweep.csv and drawn by examples/load_chart.rs (plotters) into
# $CHART (benches/charts/load.svg, with the CSV beside it). ROUNDS=0 SWEEP=1 runs the sweep alone
# (about 90 s with the defaults).
#
# BUILD_ONLY=1 builds the servers, the peer and the chart and stops, so that a run under a lock
# (`flock /work/bench.lock benches/load.sh`) does not hold it while compiling.
#
# Usage: benches/load.sh   (PIN=0 ROUNDS=3 DURATION=10s CONNECTIONS=64 TOKENS=100000
#                           REVOKED=1000000 SWEEP=0)
set -euo pipefail

PIN=${PIN:-0}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
if [ "$PIN" = 1 ]; then THREADS=${THREADS:-1}; else THREADS=${THREADS:-2}; fi
TOKENS=${TOKENS:-100000}
REVOKED=${REVOKED:-1000000}
SWEEP=${SWEEP:-0}
SWEEP_CONNECTIONS=${SWEEP_CONNECTIONS:-8 16 32 64 128 256}
SWEEP_DURATION=${SWEEP_DURATION:-3s}
SWEEP_ROUNDS=${SWEEP_ROUNDS:-1}
BUILD_ONLY=${BUILD_ONLY:-0}
case $DURATION in
    *[0-9]s) duration_seconds=${DURATION%s} ;;
    *[0-9]) duration_seconds=$DURATION ;;
    *[0-9]m) duration_seconds=$((${DURATION%m} * 60)) ;;
    *) duration_seconds= ;;
esac
if [ -z "${PROOFS:-}" ]; then
    [ -n "$duration_seconds" ] || { echo "set PROOFS for DURATION=$DURATION" >&2; exit 1; }
    PROOFS=$((duration_seconds * 40000))
fi
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
LAYER_REVOKED=127.0.0.1:18084
DPOP=127.0.0.1:18085
FLOOR=127.0.0.1:18086

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
    --target-dir "$SCRATCH/target" --example load_server --example load_chart
SERVER="$SCRATCH/target/release/examples/load_server"
CHART_BIN="$SCRATCH/target/release/examples/load_chart"
CHART=${CHART:-$ROOT/benches/charts/load.svg}

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
if [ "$BUILD_ONLY" = 1 ]; then echo "built $SERVER, $CHART_BIN and $PEER_BIN" >&2; exit 0; fi

# The ports must be free: a server left over from another run would be measured instead.
for addr in "$PLAIN" "$LAYER" "$PEER" "$LAYER_NO_CACHE" "$LAYER_REVOKED" "$DPOP"; do
    if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
        echo "$addr is in use" >&2
        exit 1
    fi
done

# Tokens are valid for three hours; older files are signed again. (Tokens with a `jti`: files
# of earlier versions of this script, without, have another name.)
TOKEN_FILE="$SCRATCH/tokens-jti-$TOKENS.txt"
if [ ! -s "$TOKEN_FILE" ] || [ -n "$(find "$TOKEN_FILE" -mmin +120)" ]; then
    "$SERVER" tokens "$TOKENS" "$TOKEN_FILE"
fi
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

# DPoP: a file of proofs for each round (see the top of this file).
cat > "$SCRATCH/dpop.lua" <<'EOF'
-- Each wrk thread takes its own slice of the round's proofs and sends each proof once, with the
-- one DPoP-bound token. Requests are formatted in init, as in tokens.lua.
local counter = 0
function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
end
local requests = {}
local i = 0
function init(args)
    local n = tonumber(args[2])
    local token = io.open(args[3]):read("*l")
    local k = 0
    for line in io.lines(args[1]) do
        if k % n == id then
            requests[#requests + 1] = wrk.format("GET", "/hello",
                { ["Authorization"] = "DPoP " .. token, ["DPoP"] = line })
        end
        k = k + 1
    end
end
function request()
    i = i % #requests + 1
    return requests[i]
end
EOF
DPOP_DIR="$SCRATCH/dpop"
if [ "$ROUNDS" -gt 0 ]; then
    rm -rf "$DPOP_DIR"
    mkdir -p "$DPOP_DIR"
    echo "signing $ROUNDS x $PROOFS DPoP proofs" >&2
    "$SERVER" dpop-client "http://$DPOP/hello" "$ROUNDS" "$PROOFS" "$DPOP_DIR"
fi

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
REVOKED=$REVOKED "${ON_SERVER_CPU[@]}" "$SERVER" layer "$LAYER_REVOKED" "http://$PLAIN/jwks" 2>/dev/null &
PIDS+=($!); LAYER_REVOKED_PID=$!
"${ON_SERVER_CPU[@]}" "$SERVER" dpop "$DPOP" "http://$PLAIN/jwks" 2>/dev/null & PIDS+=($!); DPOP_PID=$!
"${ON_SERVER_CPU[@]}" "$SERVER" floor "$FLOOR" 2>/dev/null & PIDS+=($!); FLOOR_PID=$!
wait_for "http://$LAYER/hello"
wait_for "http://$LAYER_NO_CACHE/hello"
wait_for "http://$PEER/hello"
wait_for "http://$LAYER_REVOKED/hello"
wait_for "http://$DPOP/hello"
wait_for "http://$FLOOR/hello"

for url in "http://$LAYER/hello" "http://$LAYER_NO_CACHE/hello" "http://$PEER/hello" "http://$LAYER_REVOKED/hello" "http://$FLOOR/hello"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ONE_TOKEN" "$url")
    [ "$status" = 200 ] || { echo "$url answered $status to a valid token" >&2; exit 1; }
done
# The floor server checks the signature: a token with another token's signature is refused.
OTHER_SIGNATURE=$(sed -n 2p "$TOKEN_FILE")
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${ONE_TOKEN%.*}.${OTHER_SIGNATURE##*.}" "http://$FLOOR/hello")
[ "$status" = 401 ] || { echo "the floor server answered $status to a forged signature" >&2; exit 1; }
# The DPoP server refuses the bearer token, and a proof replayed.
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ONE_TOKEN" "http://$DPOP/hello")
[ "$status" = 401 ] || { echo "the DPoP server answered $status to a bearer token" >&2; exit 1; }
if [ "$ROUNDS" -gt 0 ]; then
    # The check spends the last proof of round 1's file, which wrk then never reaches.
    dpop_check=(-H "Authorization: DPoP $(cat "$DPOP_DIR/token")" -H "DPoP: $(tail -n 1 "$DPOP_DIR/proofs-1")")
    status=$(curl -s -o /dev/null -w '%{http_code}' "${dpop_check[@]}" "http://$DPOP/hello")
    [ "$status" = 200 ] || { echo "the DPoP server answered $status to a valid proof" >&2; exit 1; }
    status=$(curl -s -o /dev/null -w '%{http_code}' "${dpop_check[@]}" "http://$DPOP/hello")
    [ "$status" = 401 ] || { echo "the DPoP server answered $status to a replayed proof" >&2; exit 1; }
fi

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
        /Socket errors/ { print name ": " $0 > "/dev/stderr" }
        END {
            if (bad > 0 || requests == 0) { print name ": " bad + 0 " non-2xx responses, run invalid" > "/dev/stderr"; exit 1 }
            printf "%s %.0f %.1f %.2f\n", name, rps, cpu / ticks * 1e6 / requests, idle / ticks / elapsed
        }'
}

if [ "$PIN" = 1 ]; then placement="servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"; else placement="unpinned"; fi
LUA=(-s "$SCRATCH/tokens.lua")
DPOP_LUA=(-s "$SCRATCH/dpop.lua")
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

if [ "$ROUNDS" -gt 0 ]; then
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $TOKENS tokens, $REVOKED revoked, $PROOFS proofs a round, $placement, $ROUNDS rounds; raw outputs in $SCRATCH" >&2
rm -f "$SCRATCH"/[0-9]*_*.txt
for round in $(seq "$ROUNDS"); do
    echo "round $round" >&2
    # The plain server gets the same header (and ignores it), so that only the layer differs.
    run 1_plain "$PLAIN_PID" "http://$PLAIN/hello" -H "Authorization: Bearer $ONE_TOKEN"
    run 2_layer_one_token "$LAYER_PID" "http://$LAYER/hello" -H "Authorization: Bearer $ONE_TOKEN"
    run 3_layer_distinct_tokens "$LAYER_PID" "http://$LAYER/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
    run 3c_layer_no_cache "$LAYER_NO_CACHE_PID" "http://$LAYER_NO_CACHE/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
    run 3f_signature_floor "$FLOOR_PID" "http://$FLOOR/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
    run 4_peer_distinct_tokens "$PEER_PID" "http://$PEER/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
    run 5_peer_one_token "$PEER_PID" "http://$PEER/hello" -H "Authorization: Bearer $ONE_TOKEN"
    run 6_revoked_one_token "$LAYER_REVOKED_PID" "http://$LAYER_REVOKED/hello" -H "Authorization: Bearer $ONE_TOKEN"
    run 7_revoked_distinct "$LAYER_REVOKED_PID" "http://$LAYER_REVOKED/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
    run 8_dpop_one_token "$DPOP_PID" "http://$DPOP/hello" "${DPOP_LUA[@]}" -- \
        "$DPOP_DIR/proofs-$round" "$THREADS" "$DPOP_DIR/token"
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
# The ratios: "label numerator denominator target" (target - for none).
RATIOS='(2)/(1)_layer,_one_token_/_no_layer 2_layer_one_token 1_plain 0.9
(3)/(4)_layer_/_jwt-authorizer,_distinct 3_layer_distinct_tokens 4_peer_distinct_tokens -
(3c)/(4)_layer,_no_cache_/_jwt-authorizer 3c_layer_no_cache 4_peer_distinct_tokens 1.6
(3f)/(4)_signature_only_/_jwt-authorizer 3f_signature_floor 4_peer_distinct_tokens -
(3c)/(3f)_layer,_no_cache_/_signature_only 3c_layer_no_cache 3f_signature_floor -
(2)/(5)_layer_/_jwt-authorizer,_one_token 2_layer_one_token 5_peer_one_token -
(6)/(2)_revocation_list_/_bearer,_one_token 6_revoked_one_token 2_layer_one_token -
(7)/(3)_revocation_list_/_bearer,_distinct 7_revoked_distinct 3_layer_distinct_tokens -
(8)/(2)_DPoP_/_bearer,_one_token 8_dpop_one_token 2_layer_one_token -'
{
    echo "run                         req/s   CPU µs/request   idle cores   (medians of $ROUNDS rounds)"
    awk '{printf "%-26s %7.0f %16.1f %12.2f\n", $1, $2, $3, $4}' "$SCRATCH/summary.txt"
    # Ratios of the medians of req/s, the median of the rounds' own ratios ("med.round"), the ratio
    # of CPU time per request, and each round's ratio of req/s. A target is met when both the
    # ratio of the medians and the median of the rounds' ratios reach it.
    awk -v ratios="$RATIOS" '
        FNR == NR { rps[$1] = $2; cpu[$1] = $3; next }
        { round_rps[$1] = round_rps[$1] " " $2 }
        END {
            printf "\n%-44s %7s %10s %10s %10s   %s\n", "ratio", "target", "req/s", "med.round", "req/CPU-s", "req/s each round"
            n = split(ratios, lines, "\n")
            for (i = 1; i <= n; i++) {
                split(lines[i], f, " "); label = f[1]; gsub("_", " ", label)
                split(substr(round_rps[f[2]], 2), a, " "); split(substr(round_rps[f[3]], 2), b, " ")
                each = ""
                delete each_ratio
                for (r = 1; r in a; r++) { each_ratio[r] = a[r] / b[r]; each = each sprintf(" %.2f", each_ratio[r]) }
                # The median of the ratios of the rounds, beside the ratio of the medians.
                m = r - 1
                for (x = 2; x <= m; x++) for (y = x; y > 1 && each_ratio[y - 1] > each_ratio[y]; y--) {
                    t = each_ratio[y]; each_ratio[y] = each_ratio[y - 1]; each_ratio[y - 1] = t
                }
                median_ratio = (m % 2) ? each_ratio[(m + 1) / 2] : (each_ratio[m / 2] + each_ratio[m / 2 + 1]) / 2
                ratio = rps[f[2]] / rps[f[3]]
                verdict = ""
                if (f[4] != "-") verdict = (ratio >= f[4] && median_ratio >= f[4]) ? "  met" : "  NOT met"
                printf "%-44s %7s %10.2f %10.2f %10.2f  %s%s\n", label, f[4], ratio, median_ratio, cpu[f[3]] / cpu[f[2]], each, verdict
            }
        }' "$SCRATCH/summary.txt" "$SCRATCH/rounds.txt"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$SCRATCH/report.txt"
fi

# The sweep over connections: (1), (2), (3c) and (4), interleaved at each connection count.
if [ "$SWEEP" = 1 ]; then
    echo "sweep: wrk -t$THREADS -c{$SWEEP_CONNECTIONS} -d$SWEEP_DURATION, $SWEEP_ROUNDS round(s), $placement" >&2
    # One point: a label for the chart, the connections, then run's arguments; prints a CSV line.
    sweep_point() {
        local label=$1 connections=$2
        shift 2
        CONNECTIONS=$connections DURATION=$SWEEP_DURATION run "$@" |
            awk -v label="$label" -v c="$connections" '{ printf "%s,%s,%s,%s,%s\n", label, c, $2, $3, $4 }'
    }
    echo "series,connections,requests_per_second,cpu_us_per_request,idle_cores" >"$SCRATCH/sweep.csv"
    for round in $(seq "$SWEEP_ROUNDS"); do
        for connections in $SWEEP_CONNECTIONS; do
            sweep_point "no auth" "$connections" sweep_1_plain "$PLAIN_PID" "http://$PLAIN/hello" \
                -H "Authorization: Bearer $ONE_TOKEN"
            sweep_point "layer: one token" "$connections" sweep_2_layer_one_token "$LAYER_PID" \
                "http://$LAYER/hello" -H "Authorization: Bearer $ONE_TOKEN"
            sweep_point "layer: distinct tokens (cache off)" "$connections" sweep_3c_layer_no_cache \
                "$LAYER_NO_CACHE_PID" "http://$LAYER_NO_CACHE/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
            sweep_point "jwt-authorizer 0.15: distinct tokens" "$connections" sweep_4_peer_distinct_tokens \
                "$PEER_PID" "http://$PEER/hello" "${LUA[@]}" -- "$TOKEN_FILE" "$THREADS"
        done
    done | tee -a "$SCRATCH/sweep.csv"
    mkdir -p "$(dirname "$CHART")"
    cp "$SCRATCH/sweep.csv" "${CHART%.svg}.csv"
    "$CHART_BIN" "$SCRATCH/sweep.csv" "$CHART" \
        "wrk -t$THREADS, $SWEEP_DURATION a point, median of $SWEEP_ROUNDS round(s) ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) shared cores)"
    echo "load average after the sweep: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
fi
