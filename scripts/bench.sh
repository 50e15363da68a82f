#!/bin/sh
# bench.sh — runs corio's micro-benchmarks once each and prints their RESULT
# lines (RESULT<TAB>bench<TAB>peer<TAB>metric<TAB>value<TAB>unit), as
# `make bench` does. Workloads and sizes are the ones the peers' run.sh uses
# (../shared/BENCHMARKS.md); for medians against the peers run
#   CORIO_BENCH=$PWD/build/bench/corio-bench ../shared/peers/micro/run.sh
# which also appends @1M / @200k to the timers peer names itself.
#
# Usage: sh scripts/bench.sh path/to/corio-bench
set -e

BIN=${1:-build/bench/corio-bench}
if [ ! -x "$BIN" ]; then
    echo "bench.sh: no benchmark program at $BIN (build it with: make bench-bin)" >&2
    exit 1
fi

run() {
    echo "[bench.sh] $BIN $*" >&2
    "$BIN" "$@"
}

run switch 10000000
run spawn 1000000
run idle 1000000 sleep
run idle 1000000 event
run timers 1000000
run timers 200000
run gather 1000000
run queue 10000000
run offload 100000
run threadsafe 1000000
