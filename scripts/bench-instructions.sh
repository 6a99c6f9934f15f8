#!/usr/bin/env bash
# User-space instructions per echoed message, counted by callgrind: a figure that does not drift
# with the machine's load, for measuring a change to the server's own code (kernel time is not
# counted; use scripts/bench-rounds.sh for the whole cost).
#
# usage: scripts/bench-instructions.sh BINARY [SIZE] [INFLIGHT] [CONNS]
#
#   BINARY     an echo server taking HOST:PORT, e.g. target/bench-bin/ws-mio-echo (scripts/bench.sh
#              builds it) or an older build of it
#   SIZE       payload bytes (default 64); INFLIGHT messages per connection (default 16);
#   CONNS      connections (default 100)
#
# Runs the server under `valgrind --tool=callgrind` (about 50x slower, so ws-load easily keeps it
# saturated), drives it with ws-load for 4 s, and prints total instructions / echoed messages.
# Connection setup is included but is small next to the messages (under 1% at the defaults).
# callgrind counts each byte of a `rep movsb` copy as an instruction, so large copies weigh more
# here than they cost in time.
# Needs valgrind (Debian: valgrind). Loopback only; bounded by ws-load's --duration.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:?usage: scripts/bench-instructions.sh BINARY [SIZE] [INFLIGHT] [CONNS]}
SIZE=${2:-64}
INFLIGHT=${3:-16}
CONNS=${4:-100}
LOAD=target/release/ws-load
command -v valgrind >/dev/null || { echo "bench-instructions.sh: valgrind not installed" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "bench-instructions.sh: $LOAD missing: run scripts/bench.sh first" >&2; exit 1; }

OUT_DIR=$(mktemp -d)
SERVER_PID=""
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$OUT_DIR"' EXIT
PORT=19800
while ss -Hltn "sport = :$PORT" | grep -q .; do PORT=$((PORT + 1)); done
valgrind --tool=callgrind --callgrind-out-file="$OUT_DIR/cg.out" "$BIN" "127.0.0.1:$PORT" \
    >/dev/null 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do
    ss -Hltn "sport = :$PORT" | grep -q . && break
    sleep 0.05
done
report=$("$LOAD" --url "ws://127.0.0.1:$PORT/" --conns "$CONNS" --size "$SIZE" \
    --inflight "$INFLIGHT" --warmup 0 --duration 4 2>&1)
# SIGTERM: callgrind writes its counts as the server exits.
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
rate=$(echo "$report" | grep -oP 'msgs/s \K[0-9]+' | head -1)
callgrind_annotate "$OUT_DIR/cg.out" >"$OUT_DIR/annotated" 2>/dev/null || true
total=$(grep -m1 'PROGRAM TOTALS' "$OUT_DIR/annotated" | grep -oP '^[0-9,]+' | tr -d , || true)
[ -n "$rate" ] && [ -n "$total" ] || { echo "bench-instructions.sh: no figures; ws-load said:" >&2; echo "$report" >&2; exit 1; }
awk -v t="$total" -v r="$rate" -v b="$BIN" -v s="$SIZE" -v k="$INFLIGHT" -v c="$CONNS" \
    'BEGIN {printf "%s: %.0f instructions per echoed message (%d B, %d in flight, %d connections; %d messages)\n", b, t / (r * 4), s, k, c, r * 4}'
