#!/usr/bin/env bash
# The whole test suite, as CI runs it:   bash scripts/test.sh
#
# Stages, in order (the first failure stops the run, with its stage named on stderr):
#   1. cargo fmt --all -- --check
#   2. ws-proto purity: ws-proto/src never uses std::net, mio, std::thread, Instant::now or
#      SystemTime::now (ws-proto is sans-IO: no sockets, no threads, `now` is an argument)
#   3. peer self-test (tests/interop/selftest.sh): the Python/Node peers against each other and the
#      Chromium harness against the reference chat page, when the peers are installed
#   4. cargo clippy --workspace --all-targets -- -D warnings
#   5. RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
#   6. cargo test --workspace
#   7. bash fuzz/run.sh 20, when fuzz/run.sh exists
#   and finally one summary line over every cargo test binary: "Total: N passed, N failed, N skipped".
#
# REAL PEERS. The Rust tests in tests/ find the real WebSocket peers through these variables, which
# this script sets when the peer is installed (a value already in the environment is kept):
#   WS_INTEROP_PYTHON    path of a python3 that can import `websockets` and `websocket` (websocket-client)
#   WS_INTEROP_NODE_DIR  absolute path of tests/interop, with node_modules/ (ws, playwright-core) in it
#   WS_CHROMIUM          path of the chromium binary (/usr/bin/chromium, Debian's package)
# Contract for the tests: when a variable is unset and CI=true, the test must FAIL (panic), never skip;
# when it is unset locally, the test may skip with a message saying what to install. This script
# enforces the CI half too: with CI=true it stops at once if a peer is missing.
# Install the peers with `bash .ci/setup-peers.sh` (root: apt-get chromium, pip, npm ci); .ci/run does
# that first and then runs this script.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

# >>> EXTRA FEATURE FLAGS for clippy, doc and test. Default: every feature of every workspace crate
# (e.g. the optional rustls `tls` feature). Override, e.g.:
#   WS_CARGO_FEATURES="--features ws-std/tls" bash scripts/test.sh
#   WS_CARGO_FEATURES="" bash scripts/test.sh            (default features only)
# shellcheck disable=SC2206
FEATURE_ARGS=(${WS_CARGO_FEATURES---all-features})
# <<<

CI=${CI:-}
in_ci() { [ "$CI" = "true" ] || [ "$CI" = "1" ]; }
if in_ci; then export CARGO_TERM_COLOR=never; fi

stage="setup"
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then echo "scripts/test.sh: FAILED in stage '$stage' (exit $rc)" >&2; fi
}
trap on_exit EXIT
banner() {
  stage=$1
  echo
  echo "==> $1"
}

# ---------------------------------------------------------------- real peers
missing=()
if [ -z "${WS_INTEROP_PYTHON:-}" ]; then
  if py=$(python3 -c 'import sys, websockets, websocket; print(sys.executable)' 2>/dev/null); then
    export WS_INTEROP_PYTHON=$py
  else
    missing+=("python websockets/websocket-client (pip install -r tests/interop/requirements.txt)")
  fi
fi
if [ -z "${WS_INTEROP_NODE_DIR:-}" ]; then
  if command -v node >/dev/null && [ -d tests/interop/node_modules/ws ] \
    && [ -d tests/interop/node_modules/playwright-core ]; then
    export WS_INTEROP_NODE_DIR="$repo/tests/interop"
  else
    missing+=("node ws/playwright-core (cd tests/interop && npm ci)")
  fi
fi
if [ -z "${WS_CHROMIUM:-}" ]; then
  if [ -x /usr/bin/chromium ]; then
    export WS_CHROMIUM=/usr/bin/chromium
  else
    missing+=("chromium (apt-get install chromium)")
  fi
fi
if [ "${#missing[@]}" -gt 0 ]; then
  for m in "${missing[@]}"; do echo "real peer not installed: $m" >&2; done
  if in_ci; then
    echo "CI=true: real-peer tests must not be skipped; run 'bash .ci/setup-peers.sh' first." >&2
    exit 1
  fi
  echo "(not CI: the tests that need these peers will skip; 'bash .ci/setup-peers.sh' installs them)" >&2
fi
echo "WS_INTEROP_PYTHON=${WS_INTEROP_PYTHON:-<unset>}"
echo "WS_INTEROP_NODE_DIR=${WS_INTEROP_NODE_DIR:-<unset>}"
echo "WS_CHROMIUM=${WS_CHROMIUM:-<unset>}"

# ---------------------------------------------------------------- 1. formatting
banner "cargo fmt --check"
cargo fmt --all -- --check

# ---------------------------------------------------------------- 2. ws-proto purity
banner "ws-proto purity (no std::net, mio, std::thread, Instant::now, SystemTime::now)"
# Whole-line comments (//, ///, //!, and lines of /* */ blocks starting with *) may mention them;
# anything else is flagged (an approximation: a trailing comment on a code line is flagged too).
# ws-proto/src/test_clock.rs, compiled for unit tests only, holds the one clock read: the origin
# the tests offset virtual times from.
purity_pattern='std::net|std::thread|Instant::now|SystemTime::now|\bmio::|\buse mio\b|extern crate mio'
if hits=$(grep -rnE --include='*.rs' --exclude='test_clock.rs' "$purity_pattern" ws-proto/src | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(//|/?\*)'); then
  echo "$hits"
  echo "ws-proto must stay sans-IO: the lines above use sockets, threads, mio or the clock." >&2
  exit 1
fi
if grep -nE '^[[:space:]]*mio[[:space:].=]' ws-proto/Cargo.toml; then
  echo "ws-proto must not depend on mio." >&2
  exit 1
fi
echo "ok"

# ---------------------------------------------------------------- 3. peer self-test
if [ "${#missing[@]}" -eq 0 ]; then
  banner "peer self-test (tests/interop/selftest.sh)"
  bash tests/interop/selftest.sh
fi

# ---------------------------------------------------------------- 4. clippy
banner "cargo clippy"
cargo clippy --workspace --all-targets "${FEATURE_ARGS[@]}" -- -D warnings

# ---------------------------------------------------------------- 5. docs
banner "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps "${FEATURE_ARGS[@]}"

# ---------------------------------------------------------------- 6. tests
banner "cargo test"
test_log=$(mktemp /tmp/ws-cargo-test.XXXXXX)
test_rc=0
cargo test --workspace "${FEATURE_ARGS[@]}" 2>&1 | tee "$test_log" || test_rc=$?

summary() {
  # Sum every "test result: ok. 12 passed; 0 failed; 1 ignored; ..." line of every test binary.
  awk '/^test result:/ {
         for (i = 1; i <= NF; i++) {
           if ($(i+1) ~ /^passed/) p += $i
           if ($(i+1) ~ /^failed/) f += $i
           if ($(i+1) ~ /^ignored/) s += $i
         }
       }
       END { printf "Total: %d passed, %d failed, %d skipped\n", p, f, s }' "$test_log"
}

if [ "$test_rc" -ne 0 ]; then
  summary
  exit "$test_rc"
fi

# ---------------------------------------------------------------- 7. fuzz smoke run
if [ -f fuzz/run.sh ]; then
  banner "fuzz (bash fuzz/run.sh 20)"
  bash fuzz/run.sh 20
fi

stage="done"
echo
summary
rm -f "$test_log"
