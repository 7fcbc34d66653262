#!/usr/bin/env bash
# Telemetry ingest benchmark: durable small appends, then an artifact pushed
# over Secure9P and read back verified (default 1 GiB), against a bare hive
# (hive-fixture) on loopback, with a dd-with-fdatasync baseline of the same
# disk taken in the same run. Raw output is appended to
# bench/results/<UTC date>-ingest.txt.
#
#   bench/ingest.sh                 1 GiB artifact, release build
#   bench/ingest.sh 67108864        64 MiB artifact
#   PROFILE=dev bench/ingest.sh     debug build (much slower hashing)
#   BENCH_DIR=/mnt/x bench/ingest.sh   put the data dir and dd file there
#
# Not a CI test: CI runs a few-MiB round trip in crates/hive/tests.
set -euo pipefail
cd "$(dirname "$0")/.."

BYTES=${1:-1073741824}
PROFILE=${PROFILE:-release}
BASE=${BENCH_DIR:-${TMPDIR:-/tmp}}
OUT=bench/results/$(date -u +%Y-%m-%d)-ingest.txt
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
case "$PROFILE" in dev) SUB=debug ;; *) SUB=$PROFILE ;; esac

cargo build --profile "$PROFILE" -p cohesix-hive --bin hive-fixture --example ingest_bench
FIXTURE="$TARGET_DIR/$SUB/hive-fixture"
CLIENT="$TARGET_DIR/$SUB/examples/ingest_bench"

WORK=$(mktemp -d -p "$BASE" cohesix-ingest-bench.XXXXXX)
HIVE_PID=""
FEEDER=""
cleanup() {
    [[ -n "$HIVE_PID" ]] && kill "$HIVE_PID" 2>/dev/null || true
    [[ -n "$FEEDER" ]] && pkill -P "$FEEDER" sleep 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/manifest.toml" <<'EOF'
[ninep]
msize = 1048576
EOF

dd_baseline() {
    dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=2048 conv=fdatasync 2>&1 | tail -1
    rm -f "$WORK/dd.bin"
}

run() {
    echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) ingest bench"
    local paths="crates/core crates/hive crates/ninep crates/client crates/manifest"
    # shellcheck disable=SC2086
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- $paths || echo ' (dirty)')"
    echo "machine $(nproc) cores, $(uname -srm), $(free -g | awk '/Mem:/ {print $2}') GiB," \
        "cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    echo "disk $(df -h "$BASE" | awk 'NR==2 {print $1, $2}') at $BASE"
    echo "profile $PROFILE, artifact $BYTES bytes, msize 1048576, chunk_bytes 16777216"
    echo "note: client and hive share this machine's cores; the client's CPU is reported"
    echo "dd (2 GiB, bs=1M, conv=fdatasync) before: $(dd_baseline)"

    # The fixture serves until its stdin closes; nothing here may hold
    # this function's stdout (the tee) open after it ends.
    (sleep 86400 | "$FIXTURE" --data-dir "$WORK/data" --manifest "$WORK/manifest.toml" \
        > "$WORK/fixture.out") > /dev/null 2>&1 &
    FEEDER=$!
    for _ in $(seq 1 100); do
        grep -q '^ready' "$WORK/fixture.out" 2>/dev/null && break
        sleep 0.1
    done
    HIVE_PID=$(pgrep -n -f "$FIXTURE --data-dir $WORK/data" || true)
    local ready addr ticket
    ready=$(head -1 "$WORK/fixture.out")
    addr=$(sed -n 's/.*ninep=\([^ ]*\).*/\1/p' <<< "$ready")
    ticket=$(sed -n 's/.*ticket=\([^ ]*\).*/\1/p' <<< "$ready")
    echo "hive pid $HIVE_PID at $addr"

    /usr/bin/env time -f "client cpu user_s=%U sys_s=%S max_rss_kib=%M wall_s=%e" \
        "$CLIENT" --addr "$addr" --ticket-file "$ticket" --bytes "$BYTES" 2>&1
    echo "hive $(grep -E 'VmHWM|VmRSS' /proc/"$HIVE_PID"/status | tr -s ' \n' ' ')"
    echo "hive cpu $(awk '{print "utime_ticks=" $14, "stime_ticks=" $15}' /proc/"$HIVE_PID"/stat)"
    echo "stored $(du -sh "$WORK/data/telemetry" | cut -f1) in telemetry/"
    kill "$HIVE_PID" 2>/dev/null || true
    pkill -P "$FEEDER" sleep 2>/dev/null || true
    HIVE_PID=""
    echo "dd (2 GiB, bs=1M, conv=fdatasync) after: $(dd_baseline)"
}

mkdir -p bench/results
run | tee -a "$OUT"
echo "results appended to $OUT"
