#!/usr/bin/env bash
# Artifact streaming through hive-gateway: a random file (default 1 GiB)
# PUT with `curl -T` to /v1/telemetry/<device>/artifact and read back with
# `curl -o` from /v1/telemetry/<device>/artifacts/<id>, sha256 compared,
# wall time and MB/s for each direction, peak RSS (VmHWM) of the hive and
# the gateway, beside a dd-with-fdatasync baseline of the same disk taken
# in the same run. Hive and gateway on loopback, release builds, hive msize
# 1 MiB. Raw output is appended to bench/results/<UTC date>-gateway-artifact.txt.
#
#   bench/gateway-artifact.sh               1 GiB
#   bench/gateway-artifact.sh 67108864      64 MiB
#   SKIP_BUILD=1 bench/gateway-artifact.sh  use the release binaries as built
#   NO_DD=1 OUT=/tmp/x.txt bench/gateway-artifact.sh 16777216   a smoke run
#   BENCH_DIR=/mnt/x bench/gateway-artifact.sh   data, files and dd there
set -euo pipefail
cd "$(dirname "$0")/.."

BYTES=${1:-1073741824}
BASE=${BENCH_DIR:-${TMPDIR:-/tmp}}
OUT=${OUT:-bench/results/$(date -u +%Y-%m-%d)-gateway-artifact.txt}
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
for tool in curl sha256sum python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
done
if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release -p cohesix -p hive-gateway
fi
COHESIX="$TARGET_DIR/release/cohesix"
GATEWAY="$TARGET_DIR/release/hive-gateway"

WORK=$(mktemp -d -p "$BASE" cohesix-gw-artifact.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

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
dd_baseline() {
    [[ "${NO_DD:-}" == 1 ]] && { echo "skipped (NO_DD=1)"; return; }
    dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=2048 conv=fdatasync 2>&1 | tail -1
    rm -f "$WORK/dd.bin"
}
hwm() { grep -E 'VmHWM' /proc/"$1"/status | tr -s ' \n' ' '; }
mbps() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]) / 1e6:.1f}')" "$1" "$2"; }

cat > "$WORK/manifest.toml" <<'EOF'
[ninep]
msize = 1048576
EOF

# Runs in the pipeline's subshell: it stops what it started itself.
run() {
    RUN_PIDS=()
    trap 'for p in "${RUN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait' EXIT
    echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) gateway artifact bench"
    local paths="crates/core crates/hive crates/ninep crates/client crates/manifest crates/gateway"
    # shellcheck disable=SC2086
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- $paths || echo ' (dirty)')"
    echo "machine $(nproc) cores, $(uname -srm), $(free -g | awk '/Mem:/ {print $2}') GiB," \
        "cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    echo "disk $(df -h "$BASE" | awk 'NR==2 {print $1, $2}') at $BASE; load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "artifact $BYTES random bytes, hive msize 1048576, chunk_bytes 16777216, gateway" \
        "--artifact-msize 1048576; curl, gateway and hive share these cores"
    echo "dd (2 GiB, bs=1M, conv=fdatasync) before: $(dd_baseline)"

    local hive_port gw_port token ticket gw auth
    hive_port=$(free_port)
    gw_port=$(free_port)
    token=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    "$COHESIX" up --data-dir "$WORK/hive" --manifest "$WORK/manifest.toml" \
        --ninep-listen "127.0.0.1:$hive_port" --console-listen "" --workers 0 \
        >"$WORK/hive.log" 2>&1 &
    local hive_pid=$!
    RUN_PIDS+=("$hive_pid")
    wait_port "$hive_port"
    ticket=$("$COHESIX" ticket --role queen --ttl-s 3600 --data-dir "$WORK/hive")
    COH_TICKET=$ticket HIVE_GATEWAY_REQUEST_AUTH_TOKEN=$token HIVE_GATEWAY_LOG=warn \
        "$GATEWAY" --bind "127.0.0.1:$gw_port" --tcp-port "$hive_port" \
        --client-timeout-ms 60000 --artifact-msize 1048576 >"$WORK/gateway.log" 2>&1 &
    local gw_pid=$!
    RUN_PIDS+=("$gw_pid")
    wait_port "$gw_port"
    gw="http://127.0.0.1:$gw_port"
    auth="Authorization: Bearer $token"
    for _ in $(seq 1 100); do
        curl -sf -H "$auth" "$gw/v1/meta/status" | grep -q '"connected":true' && break
        sleep 0.1
    done
    echo "hive pid $hive_pid, gateway pid $gw_pid"

    head -c "$BYTES" /dev/urandom > "$WORK/in.bin"
    local sum_in
    sum_in=$(sha256sum "$WORK/in.bin" | cut -d' ' -f1)
    curl -sSf -H "$auth" -H 'content-type: application/json' -d '{"mime":"application/octet-stream"}' \
        "$gw/v1/telemetry/bench/segment"
    echo

    local t0 t1 put_s answer id
    t0=$(date +%s.%N)
    answer=$(curl -sS -T "$WORK/in.bin" -H "$auth" -H 'content-type: application/octet-stream' \
        "$gw/v1/telemetry/bench/artifact")
    t1=$(date +%s.%N)
    put_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    echo "put: $answer"
    echo "put wall_s=$put_s MB/s=$(mbps "$BYTES" "$put_s")"
    id=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("artifact",""))' <<< "$answer")

    local get_line get_s
    get_line=$(curl -sS -H "$auth" -o "$WORK/out.bin" \
        -w '%{http_code} size_download=%{size_download} time_total=%{time_total}' \
        "$gw/v1/telemetry/bench/artifacts/$id")
    get_s=$(sed -n 's/.*time_total=\([0-9.]*\).*/\1/p' <<< "$get_line")
    echo "get: $get_line"
    echo "get wall_s=$get_s MB/s=$(mbps "$BYTES" "$get_s")"
    local sum_out
    sum_out=$(sha256sum "$WORK/out.bin" | cut -d' ' -f1)
    if [[ "$sum_in" == "$sum_out" ]]; then
        echo "sha256 match $sum_in"
    else
        echo "sha256 MISMATCH in=$sum_in out=$sum_out"
    fi
    echo "hive $(hwm "$hive_pid")"
    echo "gateway $(hwm "$gw_pid")"
    echo "stored $(du -sh "$WORK/hive/telemetry" | cut -f1) in telemetry/"
    rm -f "$WORK/in.bin" "$WORK/out.bin"
    echo "dd (2 GiB, bs=1M, conv=fdatasync) after: $(dd_baseline)"
}

mkdir -p bench/results
run | tee -a "$OUT"
echo "results appended to $OUT"
