#!/usr/bin/env bash
# Self-test of the real-peer scaffolding, independent of our Rust code: the Python and Node peers
# against each other (with and without permessage-deflate), and the headless Chromium harness against
# the reference chat server (a correct page must pass, a page that injects HTML must fail).
#
# Usage: bash tests/interop/selftest.sh [--no-browser]
# Needs: python3 with tests/interop/requirements.txt, `npm ci` done in tests/interop, and (unless
# --no-browser) chromium at $WS_CHROMIUM (default /usr/bin/chromium).
# Output: one line per pair; last line "peer self-test: OK (<n> checks)" and exit 0, or the logs of
# the failing pair and exit 1. Every peer has its own watchdog, so this stops by itself (< 2 min).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
browser_dir=$(cd "$here/../browser" && pwd)
py=${WS_INTEROP_PYTHON:-python3}
export WS_INTEROP_NODE_DIR=${WS_INTEROP_NODE_DIR:-$here}
with_browser=1
[ "${1:-}" = "--no-browser" ] && with_browser=0

work=$(mktemp -d /tmp/ws-peer-selftest.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

checks=0
n=0

start_server() { # start_server LOG CMD... : starts a server that takes PORT_FILE as its first argument
  local log=$1; shift
  n=$((n + 1))
  port_file="$work/port.$n"
  "$@" "$port_file" > "$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    [ -s "$port_file" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL: server did not start: $*"; cat "$log"; exit 1
}

# pair "SERVER CMD" "SERVER OPTS" "CLIENT CMD" "CLIENT OPTS": both must exit 0.
pair() {
  local srv=$1 sopts=$2 cli=$3 copts=$4
  local slog="$work/server.log" clog="$work/client.log"
  # shellcheck disable=SC2086
  start_server "$slog" $srv
  local port; port=$(cat "$port_file")
  local crc=0 src=0
  # shellcheck disable=SC2086
  $cli "ws://127.0.0.1:$port/echo" $copts > "$clog" 2>&1 || crc=$?
  wait "$server_pid" || src=$?
  server_pid=
  if [ "$crc" -ne 0 ] || [ "$src" -ne 0 ]; then
    echo "FAIL: $srv | $cli $copts (client exit $crc, server exit $src)"
    echo "--- client:"; cat "$clog"; echo "--- server:"; cat "$slog"
    exit 1
  fi
  checks=$((checks + 1))
  printf 'ok   %-62s <- %s\n' "$(basename "${srv%% *}")${sopts:+ $sopts}" "$(basename "$(echo "$cli" | awk '{print $2}')") $copts"
}

# Servers take PORT_FILE first and their options after it (from $SOPTS); `exec` keeps $! the server's pid.
# shellcheck disable=SC2086
py_server()   { exec "$py" "$here/py_server.py" "$1" --timeout 30 ${SOPTS:-}; }
# shellcheck disable=SC2086
node_server() { exec node "$here/node_server.mjs" "$1" --timeout 30 ${SOPTS:-}; }

run_pair() { # run_pair SERVERFN "SERVER OPTS" CLIENT "CLIENT OPTS"
  SOPTS=$2 pair "$1" "$2" "$3" "$4"
}

PYC="$py $here/py_client.py"
NODEC="node $here/node_client.mjs"

# Python client -> Node server
run_pair node_server ""                           "$PYC" ""
run_pair node_server ""                           "$PYC" "--websocket-client"
run_pair node_server "--deflate --require-deflate" "$PYC" "--deflate"
run_pair node_server "--deflate --require-deflate" "$PYC" "--window-bits 9"
run_pair node_server "--deflate --require-deflate" "$PYC" "--window-bits 12 --no-context-takeover both"
run_pair node_server "--no-context-takeover server --require-deflate" "$PYC" "--deflate"
# Node client -> Python server
run_pair py_server   ""                           "$NODEC" ""
run_pair py_server   "--deflate --require-deflate" "$NODEC" "--deflate"
run_pair py_server   "--deflate --require-deflate" "$NODEC" "--window-bits 10 --no-context-takeover client"
run_pair py_server   "--window-bits 8 --require-deflate" "$NODEC" "--deflate"
run_pair py_server   "--deflate"                  "$NODEC" "--window-bits 8 --deflate-optional"
# Python client -> Python server, Node client -> Node server
run_pair py_server   "--deflate --require-deflate" "$PYC" "--deflate --no-context-takeover both"
run_pair node_server "--deflate --require-deflate" "$NODEC" "--deflate"

if [ "$with_browser" = 1 ]; then
  for mode in good unsafe; do
    slog="$work/chat-server.log"; clog="$work/chat-test.log"
    extra=""; [ "$mode" = unsafe ] && extra="--unsafe-html"
    # shellcheck disable=SC2086
    start_server "$slog" node "$browser_dir/reference_chat_server.mjs" --timeout 60 $extra
    port=$(cat "$port_file")
    rc=0
    node "$browser_dir/chat_test.mjs" "http://127.0.0.1:$port/" "$work/chat-$mode.png" > "$clog" 2>&1 || rc=$?
    kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=
    if { [ "$mode" = good ] && [ "$rc" -ne 0 ]; } || { [ "$mode" = unsafe ] && [ "$rc" -ne 1 ]; } \
       || { [ "$mode" = unsafe ] && ! grep -q '^FAIL html-escaped' "$clog"; }; then
      echo "FAIL: chat_test.mjs against the reference chat page ($mode) exited $rc"; cat "$clog"; exit 1
    fi
    if [ "$mode" = good ] && [ ! -s "$work/chat-$mode.png" ]; then
      echo "FAIL: chat_test.mjs wrote no screenshot"; exit 1
    fi
    checks=$((checks + 1))
    printf 'ok   %-62s <- %s\n' "reference_chat_server.mjs $extra" "chat_test.mjs (expect $([ "$mode" = good ] && echo pass || echo 'FAIL html-escaped'))"
  done
fi

echo "peer self-test: OK ($checks checks)"
