#!/usr/bin/env bash
# Runs every ws-proto fuzz target for a while; fails if any target finds a crash.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 20); TARGETs default to all of them. Works from a fresh clone:
# installs cargo-fuzz when missing, builds on the stable toolchain with RUSTC_BOOTSTRAP=1.
# Prints one line per target (executions and coverage from libFuzzer's final stats).
#
# Corpora: seeds are read from fuzz/corpus/<target> (committed, small); what a run discovers goes
# to fuzz/corpus-run/<target> (git-ignored), so repeated local runs keep their progress.
# Crashes land in fuzz/artifacts/<target>/; logs in fuzz/target/run-logs/.
#
# Environment: FUZZ_SANITIZER (default none: ws-proto is safe Rust but for the call of its AVX2
# unmask, and this is ~6x faster; set
# `address` for ASan); extra libFuzzer
# flags in FUZZ_ARGS. Reproduce a crash with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -a -s none TARGET fuzz/artifacts/TARGET/crash-...
# (or run fuzz/target/<host triple>/release/TARGET on the crash file).
set -uo pipefail

secs=${1:-20}
shift || true
all=(frame_header server_stream client_stream handshake_request handshake_response extensions inflate pair)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
export RUSTC_BOOTSTRAP=1
san=${FUZZ_SANITIZER:-none}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..."
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || { echo "cargo install cargo-fuzz failed"; exit 2; }
fi

logs=fuzz/target/run-logs
mkdir -p "$logs"
if ! cargo fuzz build -a -s "$san" >"$logs/build.log" 2>&1; then
    tail -n 40 "$logs/build.log"
    echo "fuzz build failed"
    exit 2
fi

# Run the binaries just built (`cargo fuzz run` would rebuild before every target).
triple=$(rustc -vV | sed -n 's/^host: //p')
bin=fuzz/target/$triple/release

failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-run/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="$logs/$t.log"
    if [ ! -x "$bin/$t" ]; then
        printf '%-20s MISSING (no %s)\n' "$t" "$bin/$t"
        failed+=("$t")
        continue
    fi
    # shellcheck disable=SC2086
    "$bin/$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" ${FUZZ_ARGS:-} >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    if [ "$rc" -eq 0 ]; then
        printf '%-20s ok     execs=%s cov=%s\n' "$t" "${execs:-?}" "${cov:-?}"
    else
        art=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | tail -1)
        why=$(grep -m1 -A1 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" | tr '\n' ' ' | cut -c1-200)
        printf '%-20s CRASH  execs=%s cov=%s %s\n    %s\n' "$t" "${execs:-?}" "${cov:-?}" "${art:-}" "$why"
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) crashed: ${failed[*]} (logs in $logs)"
    exit 1
fi
echo "fuzz: ${#targets[@]} target(s) ran ${secs}s each, no crash"
