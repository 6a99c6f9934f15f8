#!/usr/bin/env bash
# Two builds of an echo server measured side by side, at the same time, to see a change of 1%.
#
# usage: scripts/bench-ab.sh ROUNDS SCENARIO BASE NEW [LOAD-ARG...]
#
#   ROUNDS     rounds, e.g. 8
#   SCENARIO   64B-k1 | 64B-k16 | 16KiB | 16MiB (the echo scenarios of bench.sh)
#   BASE, NEW  echo binaries taking HOST:PORT (e.g. two copies of target/release/examples/echo);
#              one named raw-echo* gets ws-load's --raw (the same bytes, no framing), which
#              measures a server against the physical limit side by side
#   LOAD-ARG   more ws-load arguments (e.g. --deflate)
#
# Each round starts both servers on core 0 and one ws-load per server on core 1, all at once,
# and prints NEW's server CPU time per message over BASE's; the servers swap ports and start
# order every round. Both live through the same spells of the machine (other guests, frequency),
# which move sequential runs by 10% or more here, so the ratio is steady to about half a percent:
# an A/A run of one binary against itself gave ratios of 0.98 to 1.01, mean 0.999 over 8 rounds.
# The figures themselves are not those of bench.sh (two servers share a core and its caches):
# use this to decide whether a change pays, and bench.sh or bench-rounds.sh for the tables.
# Sound for single-threaded servers (ws-mio, raw-echo, fastwebsockets); not for thread-per-client
# ones (ws-std, tungstenite): their threads then compete with the other server's for the core,
# and ws-std's yields hand it to the other process (ws-std measured 1.2-1.3x tungstenite side by
# side, about 0.7x alone).
# Loopback only; every run is bounded by its --duration.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

usage="usage: scripts/bench-ab.sh ROUNDS SCENARIO BASE NEW [LOAD-ARG...]"
ROUNDS=${1:?$usage}
SCENARIO=${2:?$usage}
BASE=${3:?$usage}
NEW=${4:?$usage}
shift 4
scenario_args "$SCENARIO" || exit 2
read -ra BASE_RAW <<<"$(raw_flag "$BASE")"
read -ra NEW_RAW <<<"$(raw_flag "$NEW")"
LOAD=target/release/ws-load
for b in "$BASE" "$NEW" "$LOAD"; do
    [ -x "$b" ] || { echo "bench-ab.sh: $b missing" >&2; exit 1; }
done

PIDS=()

RATIOS=""
OUT_BASE=$(mktemp)
OUT_NEW=$(mktemp)
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -f "$OUT_BASE" "$OUT_NEW"; true' EXIT
echo "echo-$SCENARIO, $ROUNDS rounds side by side: $NEW over $BASE, server CPU per message"
for r in $(seq "$ROUNDS"); do
    first=$BASE second=$NEW
    if [ $((r % 2)) -eq 0 ]; then first=$NEW second=$BASE; fi
    p1=$(free_port 19610)
    taskset -c 0 "$first" "127.0.0.1:$p1" >/dev/null 2>&1 &
    pid1=$!
    wait_listening "$p1"
    p2=$(free_port $((p1 + 1)))
    taskset -c 0 "$second" "127.0.0.1:$p2" >/dev/null 2>&1 &
    pid2=$!
    wait_listening "$p2"
    PIDS=("$pid1" "$pid2")
    if [ "$first" = "$BASE" ]; then
        pb=$p1 pidb=$pid1 pn=$p2 pidn=$pid2
    else
        pb=$p2 pidb=$pid2 pn=$p1 pidn=$pid1
    fi
    taskset -c 1 "$LOAD" --url "ws://127.0.0.1:$pb/" "${ARGS[@]}" ${BASE_RAW[@]+"${BASE_RAW[@]}"} "$@" --server-pid "$pidb" \
        >"$OUT_BASE" 2>&1 &
    lb=$!
    taskset -c 1 "$LOAD" --url "ws://127.0.0.1:$pn/" "${ARGS[@]}" ${NEW_RAW[@]+"${NEW_RAW[@]}"} "$@" --server-pid "$pidn" \
        >"$OUT_NEW" 2>&1 &
    ln=$!
    wait "$lb" "$ln" || true
    kill "$pid1" "$pid2" 2>/dev/null || true
    wait "$pid1" "$pid2" 2>/dev/null || true
    PIDS=()
    b=$(cpu_per_message "$OUT_BASE")
    n=$(cpu_per_message "$OUT_NEW")
    ratio=$(awk -v n="$n" -v b="$b" 'BEGIN { if (b > 0 && n > 0) printf "%.4f", n / b; else print "nan" }')
    echo "round $r: base $b µs, new $n µs, new/base $ratio"
    RATIOS+=" $ratio"
done
valid=$(echo "$RATIOS" | tr ' ' '\n' | grep -v -e '^$' -e nan || true)
mean=$(echo "$valid" | awk 'NF {s += $1; n++} END {if (n) printf "%.4f", s / n}')
echo "new/base: mean $mean, $(echo "$valid" | median_interval)"
