#!/usr/bin/env bash
# Gateway load benchmark: the example gateway against nginx `proxy_pass`, in front of the same
# static nginx upstream, all on loopback:
#   (0) straight to the upstream (nginx answering `GET /hello` itself),
#   (1) nginx `proxy_pass` to the upstream, without authentication (keepalive upstream, access log
#       off, the usual X-Forwarded-For / X-Real-IP / X-Forwarded-Proto headers set),
#   (2) the gateway with one repeated RS256 token (verified-token cache hits), default settings,
#   (2a) the same gateway with its access log on (`--access-log`, written to a file),
#   (3) the gateway with $TOKENS distinct RS256 tokens and the token cache off
#       (`--token-cache-bytes 0`: every request checks a signature).
# The gateway's keys are a static JWKS file served by the upstream nginx. nginx (both instances)
# runs from Debian's package, each in a temporary directory, as a child of this script stopped by
# its PID; never a system-wide instance.
#
# Each run reports requests per second, the p99 latency (wrk --latency), and the proxy's own CPU
# time per request (user + system of the proxy's processes, from /proc: nginx's master and
# workers, or the gateway) and the share of it spent in the kernel (system). ROUNDS rounds of all the runs are interleaved and the medians
# reported, so that a slow moment of a shared machine does not land on one run only. The proxies
# (nginx with WORKERS worker processes, the gateway with as many worker threads, `--workers`, set
# through GATEWAY_WORKERS; TOKIO_WORKER_THREADS sizes a BASELINE gateway from before that flag,
# which warns about the variable it does not know) and the upstream share the machine's cores with
# wrk, unpinned: the same cores for nginx and the gateway.
#
# Needs: cargo, curl, nginx, wrk (installed with apt-get when missing); PROFILE=1 also needs perf
# (linux-perf) and inferno (cargo install inferno): it records the gateway under runs (2) and (3)
# after the rounds and writes flame graphs to $SCRATCH/flamegraph-*.svg.
#
# PERF_STAT=1, after the rounds, counts the system calls, context switches and CPU time of nginx
# `proxy_pass` and of each gateway per request (`perf stat -e
# task-clock,context-switches,raw_syscalls:sys_enter` on the proxy's processes for 4 s in the
# middle of a 6 s wrk run of the same load); needs perf.
#
# BASELINE=PATH adds (2b): another gateway binary (e.g. one built from an older commit), with its
# default settings and one repeated token, for a before/after within one run.
#
# Usage: benches/gateway_load.sh   (ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2 TOKENS=20000
#                                   WORKERS=2 PROFILE=0 PERF_STAT=0 BASELINE=)
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-20000}
WORKERS=${WORKERS:-2}
PROFILE=${PROFILE:-0}
PERF_STAT=${PERF_STAT:-0}
SCRATCH=${SCRATCH:-${TMPDIR:-/tmp}/tower-jwt-auth-gateway-load}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
UPSTREAM=127.0.0.1:18090
NGINX_PROXY=127.0.0.1:18091
GATEWAY=127.0.0.1:18092
GATEWAY_LOGGED=127.0.0.1:18093
GATEWAY_NO_CACHE=127.0.0.1:18094
GATEWAY_BASELINE=127.0.0.1:18095
BASELINE=${BASELINE:-}
ISSUER=https://issuer.load.test/
AUDIENCE=load-api

install() { # package names; as the project's other scripts do
    echo "installing $*" >&2
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update >/dev/null
    "${sudo[@]}" apt-get install -y "$@" >/dev/null
}
for tool in curl awk sort; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { install nginx; NGINX=$(command -v nginx || echo /usr/sbin/nginx); }
command -v wrk >/dev/null || install wrk
if [ "$PROFILE" = 1 ] || [ "$PERF_STAT" = 1 ]; then
    command -v perf >/dev/null || install linux-perf
fi
if [ "$PROFILE" = 1 ]; then
    command -v inferno-flamegraph >/dev/null || {
        echo "PROFILE=1 needs inferno: cargo install inferno" >&2
        exit 1
    }
fi
mkdir -p "$SCRATCH"
RUN=$(mktemp -d "$SCRATCH/run.XXXXXX")
# nginx's workers drop root for `nobody`, who must read the upstream's files.
chmod 755 "$RUN"

echo "building the gateway and the token generator" >&2
# Release with one codegen unit, in the scratch directory so that the repository's own release
# builds keep their settings.
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
    --target-dir "$SCRATCH/target" --example gateway --example load_server
GATEWAY_BIN="$SCRATCH/target/release/examples/gateway"
LOAD_SERVER="$SCRATCH/target/release/examples/load_server"

# Tokens are valid for three hours; older files are signed again.
TOKEN_FILE="$SCRATCH/tokens-$TOKENS.txt"
if [ ! -s "$TOKEN_FILE" ] || [ -n "$(find "$TOKEN_FILE" -mmin +120)" ]; then
    "$LOAD_SERVER" tokens "$TOKENS" "$TOKEN_FILE"
fi
ONE_TOKEN=$(head -n 1 "$TOKEN_FILE")
mkdir -p "$RUN/www"
printf 'hello\n' >"$RUN/www/hello"
"$LOAD_SERVER" jwks "$RUN/www/jwks.json"

cat >"$RUN/tokens.lua" <<'EOF'
-- Each wrk thread takes its own slice of the token file, so threads never share a token. The
-- requests are formatted once, in init, so that the Lua side costs wrk as little as a fixed request.
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
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# nginx in its own directory: name, listen address, then the `location /` body.
start_nginx() {
    local name=$1 listen=$2 location=$3 dir="$RUN/$1"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream backend {
        server $UPSTREAM;
        keepalive 128;
    }
    server {
        listen $listen;
        location / {
$location
        }
    }
}
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" </dev/null >/dev/null 2>&1 &
    PIDS+=($!)
}

wait_for() {
    local url=$1 deadline=$((SECONDS + 60))
    until curl -sf -o /dev/null "$url"; do
        if [ $SECONDS -ge $deadline ]; then echo "no answer from $url" >&2; exit 1; fi
        sleep 0.2
    done
}

start_nginx upstream "$UPSTREAM" "            root $RUN/www;
            location = /hello { default_type text/plain; return 200 \"hello\\n\"; }"
UPSTREAM_PID=${PIDS[-1]}
start_nginx proxy "$NGINX_PROXY" "            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;"
NGINX_PROXY_PID=${PIDS[-1]}
wait_for "http://$UPSTREAM/jwks.json"
wait_for "http://$NGINX_PROXY/hello"

start_gateway() { # binary, listen address, log file, then more flags
    local binary=$1 listen=$2 log=$3; shift 3
    GATEWAY_WORKERS=$WORKERS TOKIO_WORKER_THREADS=$WORKERS "$binary" --listen "$listen" --upstream "http://$UPSTREAM" \
        --issuer "$ISSUER" --jwks-url "http://$UPSTREAM/jwks.json" --audience "$AUDIENCE" "$@" \
        </dev/null >/dev/null 2>"$log" &
    PIDS+=($!)
}
# Default settings: RUST_LOG unset, the gateway's own default log level.
start_gateway "$GATEWAY_BIN" "$GATEWAY" "$RUN/gateway.log"
GATEWAY_PID=${PIDS[-1]}
start_gateway "$GATEWAY_BIN" "$GATEWAY_LOGGED" "$RUN/gateway-access.log" --access-log
GATEWAY_LOGGED_PID=${PIDS[-1]}
start_gateway "$GATEWAY_BIN" "$GATEWAY_NO_CACHE" "$RUN/gateway-no-cache.log" --token-cache-bytes 0
GATEWAY_NO_CACHE_PID=${PIDS[-1]}
GATEWAYS=("$GATEWAY" "$GATEWAY_LOGGED" "$GATEWAY_NO_CACHE")
if [ -n "$BASELINE" ]; then
    start_gateway "$BASELINE" "$GATEWAY_BASELINE" "$RUN/gateway-baseline.log"
    GATEWAY_BASELINE_PID=${PIDS[-1]}
    GATEWAYS+=("$GATEWAY_BASELINE")
fi
for addr in "${GATEWAYS[@]}"; do
    wait_for "http://$addr/healthz"
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ONE_TOKEN" "http://$addr/hello")
    [ "$status" = 200 ] || { echo "the gateway on $addr answered $status to a valid token" >&2; exit 1; }
done

TICKS=$(getconf CLK_TCK)
cpu_ticks() { # "user system" ticks of a process and its children processes (nginx's workers)
    local pid user=0 system=0 times
    for pid in "$1" $(ps -o pid= --ppid "$1"); do
        times=($(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null || echo 0 0))
        user=$((user + times[0]))
        system=$((system + times[1]))
    done
    echo "$user $system"
}

run() { # name, proxy pid, url, then wrk options, then optionally `--` and the Lua script's arguments
    local name=$1 pid=$2 url=$3; shift 3
    local options=() script_args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do options+=("$1"); shift; done
    if [ $# -gt 0 ]; then shift; script_args=("$@"); fi
    local cpu0 cpu1 out
    cpu0=($(cpu_ticks "$pid"))
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${options[@]}" "$url" \
        ${script_args[@]+-- "${script_args[@]}"})
    cpu1=($(cpu_ticks "$pid"))
    echo "$out" >>"$SCRATCH/$name.txt"
    echo "$out" | awk -v name="$name" -v ticks="$TICKS" -v user="$((cpu1[0] - cpu0[0]))" \
        -v kernel="$((cpu1[1] - cpu0[1]))" '
        function ms(value) {
            if (value ~ /us$/) return value / 1000
            if (value ~ /ms$/) return value + 0
            if (value ~ /m$/) return value * 60000
            if (value ~ /s$/) return value * 1000
            return value
        }
        /requests in/ { requests = $1 }
        /Requests\/sec/ { rps = $2 }
        /Non-2xx/ { bad = $NF }
        $1 == "99%" { p99 = ms($2) }
        END {
            if (bad > 0 || requests == 0) { print name ": " bad " failed requests" > "/dev/stderr"; exit 1 }
            cpu = user + kernel
            printf "%s %.0f %.2f %.1f %.0f\n", name, rps, p99, cpu / ticks * 1e6 / requests,
                cpu ? 100 * kernel / cpu : 0
        }'
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $TOKENS tokens, $WORKERS workers per proxy, $ROUNDS rounds; raw outputs in $SCRATCH" >&2
rm -f "$SCRATCH"/[0-9]*_*.txt
HEADER=(-H "Authorization: Bearer $ONE_TOKEN")
LUA=(-s "$RUN/tokens.lua" -- "$TOKEN_FILE" "$THREADS")
for round in $(seq "$ROUNDS"); do
    echo "round $round" >&2
    # Every run sends a bearer token, so that the requests are the same size; nginx ignores it.
    run 0_upstream "$UPSTREAM_PID" "http://$UPSTREAM/hello" "${HEADER[@]}"
    run 1_nginx_proxy "$NGINX_PROXY_PID" "http://$NGINX_PROXY/hello" "${HEADER[@]}"
    run 2_gateway_one_token "$GATEWAY_PID" "http://$GATEWAY/hello" "${HEADER[@]}"
    run 2a_gateway_access_log "$GATEWAY_LOGGED_PID" "http://$GATEWAY_LOGGED/hello" "${HEADER[@]}"
    run 3_gateway_distinct_no_cache "$GATEWAY_NO_CACHE_PID" "http://$GATEWAY_NO_CACHE/hello" "${LUA[@]}"
    if [ -n "$BASELINE" ]; then
        run 2b_baseline_one_token "$GATEWAY_BASELINE_PID" "http://$GATEWAY_BASELINE/hello" "${HEADER[@]}"
    fi
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
join <(median 2) <(median 3) | join - <(median 4) | join - <(median 5) >"$SCRATCH/summary.txt"
{
    echo "run                            req/s   p99 ms   proxy CPU µs/request  of which system   (medians of $ROUNDS rounds)"
    awk '{printf "%-29s %7.0f %8.2f %22.1f %15.0f%%\n", $1, $2, $3, $4, $5}' "$SCRATCH/summary.txt"
    awk '
        { rps[$1] = $2 }
        END {
            printf "\n%-52s %8s %8s\n", "ratio (req/s)", "target", "median"
            printf "%-52s %8s %8.2f\n", "(2)/(1)  gateway, one token / nginx proxy_pass", ">= 0.9", rps["2_gateway_one_token"] / rps["1_nginx_proxy"]
            printf "%-52s %8s %8.2f\n", "(2a)/(1) the same with the access log on", "", rps["2a_gateway_access_log"] / rps["1_nginx_proxy"]
            printf "%-52s %8s %8.2f\n", "(3)/(1)  gateway, distinct tokens, no cache / nginx", ">= 0.5", rps["3_gateway_distinct_no_cache"] / rps["1_nginx_proxy"]
            if ("2b_baseline_one_token" in rps)
                printf "%-52s %8s %8.2f\n", "(2b)/(1) baseline gateway, one token / nginx", "", rps["2b_baseline_one_token"] / rps["1_nginx_proxy"]
        }' "$SCRATCH/summary.txt"
    # Per round, since the medians of two columns need not come from the same round.
    echo
    echo "per round, (2)/(1) and (3)/(1):"
    awk '{ rps[NR] = $2; name[NR] = $1 }
        END {
            for (i = 1; i <= NR; i++) {
                if (name[i] == "1_nginx_proxy") nginx = rps[i]
                if (name[i] == "2_gateway_one_token") one = rps[i]
                if (name[i] == "3_gateway_distinct_no_cache") printf "  %.2f %.2f\n", one / nginx, rps[i] / nginx
            }
        }' "$SCRATCH/rounds.txt"
} | tee "$SCRATCH/report.txt"
echo "access log lines written by (2a): $(wc -l <"$RUN/gateway-access.log"); ANSI escapes in it: $(grep -c $'\e\[' "$RUN/gateway-access.log" || true)" | tee -a "$SCRATCH/report.txt"

if [ "$PERF_STAT" = 1 ]; then
    counted() { # name, proxy pid, then wrk options and url as for run()
        local name=$1 pid=$2; shift 2
        local pids out rps
        # nginx's workers (its master does not take part in a request), or the gateway.
        pids=$( (ps -o pid= --ppid "$pid" || true) | tr -d ' ' | paste -sd,)
        [ -n "$pids" ] || pids=$pid
        wrk -t"$THREADS" -c"$CONNECTIONS" -d6s "$@" >"$SCRATCH/perf-stat-wrk-$name.txt" &
        local wrk_pid=$!
        sleep 1
        perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$pids" -- sleep 4 \
            2>"$SCRATCH/perf-stat-$name.csv" >/dev/null
        wait "$wrk_pid"
        rps=$(awk '/Requests\/sec/ {print $2}' "$SCRATCH/perf-stat-wrk-$name.txt")
        # task-clock is in ms; per request over the 4 s window at the run's mean rate.
        awk -F, -v name="$name" -v rps="$rps" '
            $3 == "task-clock" { cpu = $1 }
            $3 == "context-switches" { cs = $1 }
            $3 == "raw_syscalls:sys_enter" { sc = $1 }
            END {
                n = rps * 4
                printf "%-29s %8.0f %10.1f %10.2f %10.2f\n", name, rps, cpu * 1000 / n, sc / n, cs / n
            }' "$SCRATCH/perf-stat-$name.csv"
    }
    {
        echo
        echo "perf stat, per request        req/s   CPU µs   syscalls   ctx switches"
        counted 1_nginx_proxy "$NGINX_PROXY_PID" "${HEADER[@]}" "http://$NGINX_PROXY/hello"
        counted 2_gateway_one_token "$GATEWAY_PID" "${HEADER[@]}" "http://$GATEWAY/hello"
        counted 3_gateway_distinct_no_cache "$GATEWAY_NO_CACHE_PID" -s "$RUN/tokens.lua" \
            "http://$GATEWAY_NO_CACHE/hello" -- "$TOKEN_FILE" "$THREADS"
        if [ -n "$BASELINE" ]; then
            counted 2b_baseline_one_token "$GATEWAY_BASELINE_PID" "${HEADER[@]}" "http://$GATEWAY_BASELINE/hello"
        fi
    } | tee -a "$SCRATCH/report.txt"
fi

if [ "$PROFILE" = 1 ]; then
    profile() { # name, gateway pid, then wrk options and url as for run()
        local name=$1 pid=$2; shift 2
        echo "profiling the gateway under $name" >&2
        perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$pid" \
            -o "$SCRATCH/perf-$name.data" -- sleep 5 >/dev/null 2>&1 &
        local perf_pid=$!
        wrk -t"$THREADS" -c"$CONNECTIONS" -d6s "$@" >/dev/null
        wait "$perf_pid"
        perf script -i "$SCRATCH/perf-$name.data" 2>/dev/null | inferno-collapse-perf >"$SCRATCH/perf-$name.folded"
        inferno-flamegraph --title "gateway, $name" <"$SCRATCH/perf-$name.folded" >"$SCRATCH/flamegraph-$name.svg"
        echo "$SCRATCH/flamegraph-$name.svg" >&2
    }
    profile one-token "$GATEWAY_PID" "${HEADER[@]}" "http://$GATEWAY/hello"
    profile distinct-no-cache "$GATEWAY_NO_CACHE_PID" -s "$RUN/tokens.lua" "http://$GATEWAY_NO_CACHE/hello" \
        -- "$TOKEN_FILE" "$THREADS"
fi
