#!/usr/bin/env bash
# Every `cohesix bench simulate` run that BENCHMARKS.md quotes, one after the
# other (never two at once: they share the machine's cores), then
# `cohesix bench report` to regenerate the tables from the kept results.
#
#   bench/simulate-all.sh                 everything, published durations
#   SCALE=0.5 bench/simulate-all.sh       every duration halved (recorded)
#   RUNS="fixed-1k ramp-100k" bench/simulate-all.sh     a subset
#   BIN_DIR=/path/to/target/release bench/simulate-all.sh   prebuilt binaries
#
# Runs take about 50 minutes in all at SCALE=1. A run that fails its bar
# exits non-zero; the script notes it and goes on with the next one.
set -uo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-1}
RUNS=${RUNS:-"fixed-1k fixed-1p5k fixed-1200-i4 ramp-1k ramp-1p5k fixed-10k-i4 ramp-100k \
telemetry-1mb telemetry-10mb telemetry-100mb telemetry-1gb telemetry-1gb-real"}
if [[ -z "${BIN_DIR:-}" ]]; then
    cargo build --release -p cohesix -p hive-gateway
    BIN_DIR=target/release
fi
bash bench/install-deps.sh || echo "no font: graphs will have no text"

for run in $RUNS; do
    case "$run" in
        telemetry-*-real) args=(--scenario "${run%-real}" --real-bytes) ;;
        telemetry-*) args=(--scenario "$run") ;;
        # Holding ~100k workers with a 300 s TTL takes ~360 spawns/s on top
        # of the load: 16 spawns in flight plateau near 45k workers.
        ramp-100k) args=(--preset "$run" --spawn-concurrency 64) ;;
        *) args=(--preset "$run") ;;
    esac
    echo "== $(date -u +%H:%M:%S) $run (duration scale $SCALE)"
    "$BIN_DIR/cohesix" bench simulate "${args[@]}" --duration-scale "$SCALE" \
        --gateway-bin "$BIN_DIR/hive-gateway" || echo "== $run: exit $?"
done
"$BIN_DIR/cohesix" bench report
