#!/usr/bin/env bash
# REST gateway benchmark: wrk against hive-gateway (cat of a /proc file, echo
# to a worker's telemetry) at 64 and 512 connections, beside nginx with one
# worker process serving a static file of the same size as the cat answer,
# in the same run, all on loopback. The generator's own CPU is recorded with
# /usr/bin/time -v. Raw output is appended to
# bench/results/<UTC date>-gateway.txt.
#
#   bench/gateway.sh                 10 s per run, release build
#   DURATION=30s bench/gateway.sh
#   CONNECTIONS="64 512 2048" bench/gateway.sh
#   IDLE=0 bench/gateway.sh          skip the run beside 10,000 idle connections
#   SKIP_BUILD=1 bench/gateway.sh    use the release binaries already built
#   GATEWAY_BIN=/tmp/old-gateway SKIP_BUILD=1 OUT=/tmp/a.txt bench/gateway.sh   A/B
#
# Needs: apt-get install -y wrk nginx time curl. Not a CI test.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-"64 512"}
THREADS=${THREADS:-2}
POOL=${POOL:-4}
IDLE=${IDLE:-10000}
OUT=${OUT:-bench/results/$(date -u +%Y-%m-%d)-gateway.txt}
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

for tool in wrk nginx curl /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx time curl)"; exit 1; }
done

if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release -p cohesix -p hive-gateway
fi
COHESIX="$TARGET_DIR/release/cohesix"
GATEWAY=${GATEWAY_BIN:-$TARGET_DIR/release/hive-gateway}

WORK=$(mktemp -d -t cohesix-gateway-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1"; exit 1
}

HIVE_PORT=$(free_port)
GW_PORT=$(free_port)
NGINX_PORT=$(free_port)
TOKEN=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

# The hive: no console, no workers of its own.
"$COHESIX" up --data-dir "$WORK/hive" --ninep-listen "127.0.0.1:$HIVE_PORT" \
    --console-listen "" --workers 0 >"$WORK/hive.log" 2>&1 &
PIDS+=($!)
wait_port "$HIVE_PORT"
COH_TICKET=$("$COHESIX" ticket --role queen --ttl-s 3600 --data-dir "$WORK/hive")

# The gateway, logging one line per request as in production (to a file).
COH_TICKET=$COH_TICKET HIVE_GATEWAY_REQUEST_AUTH_TOKEN=$TOKEN \
    "$GATEWAY" --bind "127.0.0.1:$GW_PORT" --tcp-port "$HIVE_PORT" \
    --connections "$POOL" --queue-depth 4096 --client-timeout-ms 60000 \
    >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
wait_port "$GW_PORT"
GW="http://127.0.0.1:$GW_PORT"
AUTH="Authorization: Bearer $TOKEN"
for _ in $(seq 1 100); do
    curl -sf -H "$AUTH" "$GW/v1/meta/status" | grep -q '"connected":true' && break
    sleep 0.1
done

SPAWN='{"spawn":"heartbeat","ticks":1000000,"budget":{"ttl_s":3600,"ops":1000000000}}'
WORKER=$(curl -sf -H "$AUTH" -d "$(python3 -c 'import json,sys; print(json.dumps({"path":"/queen/ctl","line":sys.argv[1]}))' "$SPAWN")" \
    "$GW/v1/fs/echo" | python3 -c 'import json,sys; print(json.load(sys.stdin)["lines"][0])')

CAT_PATH="/v1/fs/cat?path=/proc/lifecycle/state&max_bytes=4096"
ECHO_BODY="{\"path\":\"/worker/$WORKER/telemetry\",\"line\":\"{\\\"bench\\\":1}\"}"
printf '%s' "$ECHO_BODY" >"$WORK/echo.json"
cat >"$WORK/echo.lua" <<EOF
wrk.method = "POST"
local body = io.open("$WORK/echo.json", "rb")
wrk.body = body:read("*a")
body:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
EOF

# nginx: one worker process, a static file the size of the cat answer body.
mkdir -p "$WORK/www" "$WORK/nginx"
# nginx's worker runs as an unprivileged user: let it reach the files.
chmod 755 "$WORK" "$WORK/www"
curl -sf -H "$AUTH" "$GW$CAT_PATH" >"$WORK/www/cat.json"
CAT_BYTES=$(stat -c %s "$WORK/www/cat.json")
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 100000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
PIDS+=($!)
wait_port "$NGINX_PORT"

# One echo by hand first: the runs below are meaningless if it is refused.
curl -sf -H "$AUTH" -H "Content-Type: application/json" --data-binary @"$WORK/echo.json" \
    "$GW/v1/fs/echo" | grep -q '"status":"OK"' || { echo "echo is refused"; exit 1; }

run() {
    local name=$1; shift
    echo "---- $name"
    echo "\$ wrk $*" | sed "s/$TOKEN/<token>/g"
    /usr/bin/time -v wrk "$@" 2>&1 | grep -Ev '^\s+(Average shared|Average unshared|Average stack|Average total|Socket|Signals|Swaps|Page size|Exit status|File system|Major|Minor|Involuntary|Voluntary)' \
        | sed "s/$TOKEN/<token>/g"
}

{
    echo "==== hive-gateway bench $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- crates/gateway || echo ' (gateway dirty)')"
    echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "note: wrk, nginx, hive-gateway and the hive share these cores (and other engineers' jobs)"
    echo "gateway binary: $GATEWAY"
    echo "gateway: $POOL Secure9P sessions, 16 tags each, release build, log filter ${HIVE_GATEWAY_LOG:-info} to a file"
    echo "cat body: $CAT_BYTES bytes ($CAT_PATH); nginx serves a $CAT_BYTES-byte static file"
    echo "echo: POST /v1/fs/echo to /worker/$WORKER/telemetry, body $ECHO_BODY"
    for c in $CONNECTIONS; do
        run "gateway cat c=$c" -t"$THREADS" -c"$c" -d"$DURATION" --latency -H "$AUTH" "$GW$CAT_PATH"
        run "nginx static c=$c" -t"$THREADS" -c"$c" -d"$DURATION" --latency "http://127.0.0.1:$NGINX_PORT/cat.json"
        run "gateway echo c=$c" -t"$THREADS" -c"$c" -d"$DURATION" --latency -s "$WORK/echo.lua" "$GW/v1/fs/echo"
    done
    if [[ "$IDLE" -gt 0 ]]; then
        echo "---- $IDLE idle connections held open (no request sent)"
        echo "gateway rss before: $(grep VmRSS /proc/$GW_PID/status)"
        python3 - "$GW_PORT" "$IDLE" "$WORK/idle.ready" <<'PY' &
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    held.append(s)
open(ready, "w").close()
time.sleep(60)
PY
        IDLE_PID=$!
        PIDS+=($IDLE_PID)
        for _ in $(seq 1 600); do [[ -e "$WORK/idle.ready" ]] && break; sleep 0.1; done
        sleep 1
        echo "gateway rss with $IDLE idle: $(grep VmRSS /proc/$GW_PID/status)"
        curl -sf -H "$AUTH" "$GW/metrics" | grep '^hive_gateway_http_connections_open'
        run "gateway cat c=64 beside $IDLE idle connections" -t"$THREADS" -c64 -d"$DURATION" \
            --latency -H "$AUTH" "$GW$CAT_PATH"
        kill "$IDLE_PID" 2>/dev/null || true
    fi
    echo "---- gateway status after the runs"
    curl -sf -H "$AUTH" "$GW/v1/meta/status"; echo
    echo "---- gateway metrics (status codes)"
    curl -sf -H "$AUTH" "$GW/metrics" | grep -E '^hive_gateway_requests_total|^cohesix_hive_pressure'
    echo "---- gateway log: $(wc -l <"$WORK/gateway.log") lines, $(grep -c 'request failed' "$WORK/gateway.log" || true) failure warnings"
} | tee -a "$OUT"
echo "appended to $OUT"
