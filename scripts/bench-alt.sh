#!/usr/bin/env bash
# Two echo servers measured in alternation, a short window each, to compare thread-per-client
# servers (ws-std, tungstenite), which bench-ab.sh cannot run side by side.
#
# usage: scripts/bench-alt.sh PAIRS SCENARIO A B [LOAD-ARG...]
#
#   PAIRS      windows per server, e.g. 20
#   SCENARIO   64B-k1 | 64B-k16 | 16KiB | 16MiB (the echo scenarios of bench.sh)
#   A, B       echo binaries taking HOST:PORT (e.g. bench/peers/target/release/tungstenite-echo
#              and target/bench-bin/ws-std-echo); one named raw-echo* gets ws-load's --raw
#   LOAD-ARG   more ws-load arguments (e.g. --deflate)
#
# Both servers start once, pinned to core 0, and stay up. Then, PAIRS times, ws-load (core 1)
# loads one of them for a 1 s window (after 0.3 s of warm-up), then the other (the order swaps
# every pair): only one server is busy at a time, its threads alone on the core, and the two
# windows of a pair are a second apart, so they share the machine's spells, which last longer
# (sequential rounds of bench-rounds.sh, several seconds apart per server, moved by 20% today).
# Prints B's server CPU time per message over A's, pair by pair, and their median with an
# interval from order statistics. A window of 1 s measures CPU time to about 1% (the kernel
# counts it in 10 ms ticks).
# Loopback only; every window is bounded by ws-load's --duration.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

usage="usage: scripts/bench-alt.sh PAIRS SCENARIO A B [LOAD-ARG...]"
PAIRS=${1:?$usage}
SCENARIO=${2:?$usage}
A=${3:?$usage}
B=${4:?$usage}
shift 4
scenario_args "$SCENARIO" || exit 2
read -ra A_RAW <<<"$(raw_flag "$A")"
read -ra B_RAW <<<"$(raw_flag "$B")"
LOAD=target/release/ws-load
for b in "$A" "$B" "$LOAD"; do
    [ -x "$b" ] || { echo "bench-alt.sh: $b missing" >&2; exit 1; }
done

OUT=$(mktemp)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -f "$OUT"; true' EXIT
pa=$(free_port 19710)
taskset -c 0 "$A" "127.0.0.1:$pa" >/dev/null 2>&1 &
pida=$!
PIDS+=("$pida")
wait_listening "$pa" || { echo "bench-alt.sh: $A does not listen" >&2; exit 1; }
pb=$(free_port $((pa + 1)))
taskset -c 0 "$B" "127.0.0.1:$pb" >/dev/null 2>&1 &
pidb=$!
PIDS+=("$pidb")
wait_listening "$pb" || { echo "bench-alt.sh: $B does not listen" >&2; exit 1; }

# One window against the server on PORT with PID; prints its CPU time per message.
window() {
    local port=$1 pid=$2
    shift 2
    taskset -c 1 "$LOAD" --url "ws://127.0.0.1:$port/" "${ARGS[@]}" --warmup 0.3 --duration 1 \
        "$@" --server-pid "$pid" >"$OUT" 2>&1 || true
    cpu_per_message "$OUT"
}

echo "echo-$SCENARIO, $PAIRS pairs of 1 s windows in alternation: $B over $A, server CPU per message"
RATIOS=""
for r in $(seq "$PAIRS"); do
    if [ $((r % 2)) -eq 1 ]; then
        a=$(window "$pa" "$pida" ${A_RAW[@]+"${A_RAW[@]}"} "$@")
        b=$(window "$pb" "$pidb" ${B_RAW[@]+"${B_RAW[@]}"} "$@")
    else
        b=$(window "$pb" "$pidb" ${B_RAW[@]+"${B_RAW[@]}"} "$@")
        a=$(window "$pa" "$pida" ${A_RAW[@]+"${A_RAW[@]}"} "$@")
    fi
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0 && b > 0) printf "%.4f", b / a; else print "nan" }')
    echo "pair $r: A $a µs, B $b µs, B/A $ratio"
    RATIOS+=" $ratio"
done
valid=$(echo "$RATIOS" | tr ' ' '\n' | grep -v -e '^$' -e nan || true)
echo "B/A: $(echo "$valid" | median_interval)"
