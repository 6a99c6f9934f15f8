#!/usr/bin/env bash
# Interleaved rounds of one echo scenario, for figures steadier than a single bench.sh run.
#
# usage: scripts/bench-rounds.sh ROUNDS SCENARIO [SERVER...]
#
#   ROUNDS     rounds (each round runs every server once, in turn), e.g. 5
#   SCENARIO   64B-k1 | 64B-k16 | 16KiB | 16MiB (the echo scenarios of bench.sh)
#   SERVER     raw-echo raw-threads tungstenite fastwebsockets ws-mio ws-std (default: all), or NAME=PATH for
#              another echo binary taking HOST:PORT (an older build, to measure a change)
#
# Prints, per server, the median server CPU time per message (µs) over the rounds, every
# round's figure, and the median's ratio to raw-echo and to the best peer when they ran. Then
# the ratios to raw-echo (and ws-std's to tungstenite, the thread-per-client servers' to
# raw-threads) round by round, with their median and an
# interval for it from order statistics (with 7 rounds it spans all of them, with 11 all but the
# extremes). Then the medians of each server's user-space and kernel parts (tick-sampled by the
# kernel: a fair estimate over seconds, not exact). A server making the same system calls as a
# peer cannot go below that peer's kernel part, so a peer's "kernel share" is the best ratio to
# it within reach.
# Servers alternate round by round, so that a slow spell of the machine hits them all alike.
# Uses the binaries scripts/bench.sh builds (run it once first); pins like bench.sh (server on
# core 0, ws-load on core 1); loopback only; each run is bounded by its --duration.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

ROUNDS=${1:?usage: scripts/bench-rounds.sh ROUNDS SCENARIO [SERVER...]}
SCENARIO=${2:?usage: scripts/bench-rounds.sh ROUNDS SCENARIO [SERVER...]}
shift 2
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=(raw-echo raw-threads tungstenite fastwebsockets ws-mio ws-std)

scenario_args "$SCENARIO" || exit 2

PEERS=bench/peers/target/release
LOAD=target/release/ws-load
binary() {
    case "$1" in
        *=*) echo "${1#*=}" ;;
        raw-echo) echo "$PEERS/raw-echo" ;;
        raw-threads) echo "$PEERS/raw-echo-threads" ;;
        tungstenite) echo "$PEERS/tungstenite-echo" ;;
        fastwebsockets) echo "$PEERS/fastwebsockets-echo" ;;
        ws-mio|ws-std) echo "target/bench-bin/$1-echo" ;;
        *) echo "bench-rounds.sh: unknown server $1" >&2; exit 2 ;;
    esac
}
label() { echo "${1%%=*}"; } # NAME of NAME=PATH, else the server's own name
for s in "${SERVERS[@]}"; do
    [ -x "$(binary "$s")" ] || { echo "bench-rounds.sh: $(binary "$s") missing: run scripts/bench.sh first" >&2; exit 1; }
done
[ -x "$LOAD" ] || { echo "bench-rounds.sh: $LOAD missing: run scripts/bench.sh first" >&2; exit 1; }

SERVER_PID=""
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; true' EXIT
PORT=19700
declare -A FIGS USERS
for _ in $(seq "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do
        PORT=$((PORT + 1))
        while ss -Hltn "sport = :$PORT" | grep -q .; do PORT=$((PORT + 1)); done
        taskset -c 0 "$(binary "$s")" "127.0.0.1:$PORT" >/dev/null 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 1 200); do
            ss -Hltn "sport = :$PORT" | grep -q . && break
            sleep 0.05
        done
        read -ra raw <<<"$(raw_flag "$(binary "$s")")"
        out=$(taskset -c 1 "$LOAD" --url "ws://127.0.0.1:$PORT/" "${raw[@]}" "${ARGS[@]}" \
            --server-pid "$SERVER_PID" 2>&1 || true)
        fig=$(echo "$out" | grep -oP 'server CPU \K[0-9.]+' || echo nan)
        user=$(echo "$out" | grep -oP 'server CPU .*\(user \K[0-9.]+' || echo nan)
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
        FIGS[$s]="${FIGS[$s]:-} $fig"
        USERS[$s]="${USERS[$s]:-} $user"
    done
done

declare -A MED MEDU
for s in "${SERVERS[@]}"; do
    MED[$s]=$(echo "${FIGS[$s]}" | median)
    MEDU[$s]=$(echo "${USERS[$s]}" | median)
done
best=""
for p in tungstenite fastwebsockets; do
    [ -n "${MED[$p]:-}" ] || continue
    if [ -z "$best" ] || awk -v a="${MED[$p]}" -v b="${MED[$best]}" 'BEGIN {exit !(a < b)}'; then
        best=$p
    fi
done
echo "echo-$SCENARIO, $ROUNDS rounds, server CPU µs/msg (median; every round)"
for s in "${SERVERS[@]}"; do
    line="$(label "$s"): ${MED[$s]} (${FIGS[$s]# })"
    [ -n "${MED[raw-echo]:-}" ] && line+=$(awk -v a="${MED[$s]}" -v b="${MED[raw-echo]}" 'BEGIN {printf "  ×raw %.2f", a / b}')
    [ -n "$best" ] && line+=$(awk -v a="${MED[$s]}" -v b="${MED[$best]}" -v n="$best" 'BEGIN {printf "  ×best peer %.2f (%s)", a / b, n}')
    echo "$line"
done
# The same comparisons round by round: two servers measured a few seconds apart share more of
# the machine's slow and fast spells than two medians do, so the spread of these ratios shows
# how far a ratio of medians can be trusted.
paired() { # NAME OTHER: NAME's figure over OTHER's, per round, then their median
    local r
    r=$(paste -d' ' <(echo "${FIGS[$1]# }" | tr ' ' '\n') <(echo "${FIGS[$2]# }" | tr ' ' '\n') |
        awk '$1 != "nan" && $2 != "nan" && $2 > 0 {printf "%.2f ", $1 / $2}')
    [ -n "$r" ] && echo "$(label "$1") ×$(label "$2") per round: $r ($(echo "$r" | median_interval))"
}
for s in "${SERVERS[@]}"; do
    [ "$s" != raw-echo ] && [ -n "${MED[raw-echo]:-}" ] && paired "$s" raw-echo
    [ "$s" = ws-std ] && [ -n "${MED[tungstenite]:-}" ] && paired "$s" tungstenite
    if [ "$s" = ws-std ] || [ "$s" = tungstenite ]; then
        [ -n "${MED[raw-threads]:-}" ] && paired "$s" raw-threads
    fi
done
echo "user space / kernel, µs/msg (medians); kernel share = kernel / total: the best ratio to that"
echo "server that another can reach with the same system calls, spending no user time at all"
for s in "${SERVERS[@]}"; do
    sys=$(paste -d- <(echo "${FIGS[$s]# }" | tr ' ' '\n') <(echo "${USERS[$s]# }" | tr ' ' '\n') |
        awk -F- '$1 != "nan" && $2 != "nan" {print $1 - $2}' | median)
    echo "$(label "$s"): user ${MEDU[$s]}, kernel ${sys:-nan}" | awk -v t="${MED[$s]}" -v k="${sys:-0}" '{
        printf "%s", $0; if (t > 0 && k > 0) printf "  kernel share %.2f", k / t; print "" }'
done
