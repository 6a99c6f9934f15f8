#!/usr/bin/env bash
# Server load benchmark: ws-mio / ws-std against reference peers.
#
# usage: scripts/bench.sh [--quick] [--only REGEX] [--no-build] [--out FILE] [--nice N]
#
#   --quick      1 s windows and fewer scenarios (about a minute)
#   --only RE    run only the cases whose "scenario/server" label matches the
#                extended regex RE, e.g. --only 'echo-64B' or --only '/ws-mio$'
#   --no-build   use the binaries already built
#   --out FILE   also write the markdown table to FILE
#   --nice N     run server and load at this nice level (default -10 when
#                permitted, else 0): keeps background work on the same cores
#                from skewing the figures; 0 disables
#
# Every case starts a fresh server pinned to core 0 (`taskset -c 0`), waits
# until its port listens, runs target/release/ws-load pinned to core 1 with
# --server-pid (server CPU time and RSS from /proc), then stops the server.
# Loopback only. The full run takes 4 to 8 minutes on a 2-core machine.
#
# Servers (each takes ADDR = 127.0.0.1:PORT as its only argument):
#   raw-echo        bench/peers: plain TCP echo (the physical limit; ws-load --raw)
#   raw-threads     bench/peers: plain TCP echo, a thread per client (the limit of that model,
#                   which ws-std and tungstenite share; ws-load --raw)
#   tungstenite     bench/peers: tungstenite, a thread per client (peer of ws-std)
#   fastwebsockets  bench/peers: fastwebsockets on a tokio current_thread runtime
#                   (peer of ws-mio)
#   ws-mio, ws-std  our `echo`, `broadcast` and `pubsub` examples, when they exist
#                   (built one at a time and copied to target/bench-bin/CRATE-EXAMPLE,
#                   because both crates' examples land in target/release/examples/).
#                   The broadcast and pub/sub protocols are documented at the top
#                   of bench/src/main.rs.
#
# Numbers are only meaningful on an otherwise idle machine: the script prints
# the load average first and warns when something else is running.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
ONLY=""
BUILD=1
OUT=""
NICE=-10
[ "$(nice -n "$NICE" nice 2>/dev/null)" = "$NICE" ] || NICE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --only) ONLY=${2:?--only needs a regex}; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --no-build) BUILD=0 ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        --out=*) OUT=${1#--out=} ;;
        --nice) NICE=${2:?--nice needs a level}; shift ;;
        --nice=*) NICE=${1#--nice=} ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "bench.sh: $*" >&2; exit 1; }
command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v ss >/dev/null || die "ss (iproute2) is required"
[ "$(nproc)" -ge 2 ] || die "needs at least 2 cores (server on core 0, load on core 1)"

# 10,000 idle connections need 10k descriptors in the load generator and in
# the server. Raise the soft limit as far as the hard limit allows.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)

PEERS=$ROOT/bench/peers/target/release
BIN=$ROOT/target/bench-bin
LOAD=$ROOT/target/release/ws-load
WORK=$(mktemp -d /tmp/ws-bench.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# ---------------------------------------------------------------- build
example_exists() { # CRATE EXAMPLE
    [ -f "$1/examples/$2.rs" ] || [ -f "$1/examples/$2/main.rs" ] ||
        grep -Eqs "^name *= *\"$2\"" "$1/Cargo.toml"
}

if [ "$BUILD" = 1 ]; then
    echo "== building (release)" >&2
    cargo build --release -q -p ws-bench
    cargo build --release -q --manifest-path bench/peers/Cargo.toml
    mkdir -p "$BIN"
    for crate in ws-mio ws-std; do
        for ex in echo broadcast pubsub; do
            rm -f "$BIN/$crate-$ex"
            example_exists "$crate" "$ex" || continue
            # Built one at a time: both crates' examples share a file name.
            if cargo build --release -q -p "$crate" --example "$ex"; then
                cp "target/release/examples/$ex" "$BIN/$crate-$ex"
            else
                echo "bench.sh: warning: $crate example $ex does not build; skipped" >&2
            fi
        done
    done
fi
[ -x "$LOAD" ] || die "$LOAD missing (run without --no-build)"
for p in raw-echo raw-echo-threads tungstenite-echo fastwebsockets-echo; do
    [ -x "$PEERS/$p" ] || die "$PEERS/$p missing (run without --no-build)"
done

server_cmd() { # LABEL KIND -> path of the binary, or nothing
    case "$1" in
        raw-echo) echo "$PEERS/raw-echo" ;;
        raw-threads) echo "$PEERS/raw-echo-threads" ;;
        tungstenite) echo "$PEERS/tungstenite-echo" ;;
        fastwebsockets) echo "$PEERS/fastwebsockets-echo" ;;
        ws-mio|ws-std) [ -x "$BIN/$1-$2" ] && echo "$BIN/$1-$2" ;;
    esac
    return 0
}

# ---------------------------------------------------------------- running
PORT=19500
next_port() {
    PORT=$((PORT + 1))
    while ss -Hltn "sport = :$PORT" | grep -q .; do PORT=$((PORT + 1)); done
}

wait_listening() { # PORT PID
    local i
    for i in $(seq 1 200); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

if [ "$QUICK" = 1 ]; then
    WARMUP=0.5 DUR=1 DUR_BIG=1 IDLE_CONNS=2000
else
    WARMUP=1 DUR=3 DUR_BIG=2 IDLE_CONNS=10000
fi

# case SCENARIO SERVER KIND -- ws-load args...
#   KIND: echo | broadcast | pubsub (which example of ours serves it)
case_run() {
    local scen=$1 server=$2 kind=$3
    shift 4
    local label="$scen/$server"
    if [ -n "$ONLY" ] && ! [[ $label =~ $ONLY ]]; then return 0; fi
    local cmd
    cmd=$(server_cmd "$server" "$kind")
    if [ -z "$cmd" ]; then
        printf '%s\t%s\t%s\n' "$scen" "$server" "SKIP no $kind example yet" >>"$RESULTS"
        return 0
    fi
    local extra=()
    case "$server" in raw-echo | raw-threads) extra=(--raw) ;; esac
    next_port
    local log=$WORK/${scen}_$server.log
    nice -n "$NICE" taskset -c 0 "$cmd" "127.0.0.1:$PORT" >"$log.server" 2>&1 &
    SERVER_PID=$!
    if ! wait_listening "$PORT" "$SERVER_PID"; then
        printf '%s\t%s\t%s\n' "$scen" "$server" "FAIL server did not listen" >>"$RESULTS"
        echo "   $label: server did not start (log: $log.server)" >&2
        cleanup
        return 0
    fi
    echo "   $label" >&2
    local json
    if json=$(nice -n "$NICE" taskset -c 1 "$LOAD" --url "ws://127.0.0.1:$PORT/" --server-pid "$SERVER_PID" \
        --json --warmup "$WARMUP" "${extra[@]}" "$@" 2>"$log"); then
        printf '%s\t%s\t%s\n' "$scen" "$server" "$json" >>"$RESULTS"
    else
        local err
        err=$(tail -n 1 "$log" | tr '\t' ' ')
        printf '%s\t%s\t%s\n' "$scen" "$server" "FAIL $err" >>"$RESULTS"
        echo "   $label failed: $err" >&2
    fi
    cleanup
}

ALL_ECHO=(raw-echo raw-threads tungstenite fastwebsockets ws-mio ws-std)
WS_ECHO=(tungstenite fastwebsockets ws-mio ws-std)
OURS=(ws-mio ws-std)

load1=$(cut -d' ' -f1 /proc/loadavg)
echo "== $(nproc) cores, load average $load1, ulimit -n $NOFILE, nice $NICE, logs in $WORK" >&2
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    echo "bench.sh: warning: the machine is busy (load $load1): numbers will be noisy" >&2
fi

for s in "${ALL_ECHO[@]}"; do
    case_run echo-64B-c100-k1 "$s" echo -- --conns 100 --size 64 --inflight 1 --duration "$DUR"
done
for s in "${ALL_ECHO[@]}"; do
    case_run echo-64B-c100-k16 "$s" echo -- --conns 100 --size 64 --inflight 16 --duration "$DUR"
done
for s in "${ALL_ECHO[@]}"; do
    case_run echo-16KiB-c10 "$s" echo -- --conns 10 --size 16384 --inflight 1 --duration "$DUR"
done
if [ "$QUICK" = 0 ]; then
    for s in "${ALL_ECHO[@]}"; do
        case_run echo-16MiB-c8 "$s" echo -- --conns 8 --size 16777216 --inflight 1 --duration "$DUR_BIG"
    done
    # The peers have no permessage-deflate (tungstenite, fastwebsockets): ours only.
    for s in "${OURS[@]}"; do
        case_run echo-deflate-1KiB-c100 "$s" echo -- --conns 100 --size 1024 --inflight 1 --deflate --duration "$DUR"
    done
fi
for s in "${WS_ECHO[@]}"; do
    case_run "idle-$IDLE_CONNS" "$s" echo -- --scenario idle --conns "$IDLE_CONNS" --duration 1 --connect-timeout 60
done
for s in "${OURS[@]}"; do
    case_run broadcast-64B-c100 "$s" broadcast -- --scenario broadcast --conns 100 --size 64 --duration "$DUR"
done
for s in "${OURS[@]}"; do
    case_run pubsub-64B-c100-t10 "$s" pubsub -- --scenario pubsub --conns 100 --topics 10 --size 64 --duration "$DUR"
done
if [ "$QUICK" = 0 ]; then
    for s in "${OURS[@]}"; do
        case_run slow-consumer-1KiB-c20 "$s" broadcast -- --scenario slow-consumer --conns 20 --size 1024 --duration "$DUR"
    done
fi

# ---------------------------------------------------------------- report
# A tiny JSON field extractor: ws-load prints one flat object of numbers.
table=$(awk -F'\t' '
function field(j, name,    r) {
    if (match(j, "\"" name "\":[^,}]*")) {
        r = substr(j, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
        return r
    }
    return "null"
}
function num(v, prec) { return (v == "null" || v == "") ? "–" : sprintf("%." prec "f", v) }
function kib(v) { return (v == "null" || v == "") ? "–" : sprintf("%.1f KiB", v / 1024) }
function mib(v) { return (v == "null" || v == "") ? "–" : sprintf("%+.1f MiB", v / 1048576) }
{
    n++; scen[n] = $1; srv[n] = $2; j[n] = $3
    if ($3 ~ /^\{/) {
        cpu[n] = field($3, "server_cpu_us_per_msg")
        if ($2 == "raw-echo" && cpu[n] != "null") raw[$1] = cpu[n]
        if ($2 == "raw-threads" && cpu[n] != "null") rawt[$1] = cpu[n]
        if (($2 == "tungstenite" || $2 == "fastwebsockets") && cpu[n] != "null" && cpu[n] > 0 &&
            (!($1 in best) || cpu[n] + 0 < best[$1] + 0)) { best[$1] = cpu[n]; bestname[$1] = $2 }
        if ($1 ~ /^idle/) {
            rpc[n] = field($3, "rss_per_conn")
            if (($2 == "tungstenite" || $2 == "fastwebsockets") && rpc[n] != "null" &&
                (!($1 in bestrss) || rpc[n] + 0 < bestrss[$1] + 0)) { bestrss[$1] = rpc[n]; bestrssname[$1] = $2 }
        }
    }
}
END {
    print "| scenario | server | msgs/s | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU % | server CPU µs/msg | CPU ×raw | CPU ×best peer | notes |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for (i = 1; i <= n; i++) {
        if (j[i] !~ /^\{/) {
            printf "| %s | %s | | | | | | | | | | %s |\n", scen[i], srv[i], j[i]
            continue
        }
        x = j[i]; note = ""
        if (scen[i] ~ /^idle/) {
            note = "RSS/conn " kib(rpc[i])
            if ((scen[i] in bestrss) && rpc[i] != "null" && bestrss[scen[i]] > 0)
                note = note sprintf(" (×%.2f of %s)", rpc[i] / bestrss[scen[i]], bestrssname[scen[i]])
            printf "| %s | %s | | | | | | | | | | %s |\n", scen[i], srv[i], note
            continue
        }
        c = cpu[i]
        xr = (c != "null" && (scen[i] in raw) && raw[scen[i]] > 0) ? sprintf("%.2f", c / raw[scen[i]]) : "–"
        xb = (c != "null" && (scen[i] in best) && best[scen[i]] > 0) ? sprintf("%.2f (%s)", c / best[scen[i]], bestname[scen[i]]) : "–"
        if (scen[i] ~ /^(broadcast|pubsub|slow)/) note = "deliveries; sent/s " num(field(x, "sent_per_s"), 0)
        if ((srv[i] == "ws-std" || srv[i] == "tungstenite") && c != "null" && (scen[i] in rawt) && rawt[scen[i]] > 0)
            note = sprintf("×raw-threads %.2f", c / rawt[scen[i]])
        if (scen[i] ~ /^slow/) note = note "; server RSS " mib(field(x, "server_rss_growth")) " in window"
        lc = field(x, "load_cpu_pct")
        if (lc != "null" && lc + 0 > 90) note = note (note == "" ? "" : "; ") "load generator at " num(lc, 0) "% (tool-bound)"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", scen[i], srv[i],
            num(field(x, "msgs_per_s"), 0), num(field(x, "mb_per_s"), 1), num(field(x, "p50_us"), 0),
            num(field(x, "p99_us"), 0), num(field(x, "p999_us"), 0), num(field(x, "server_cpu_pct"), 0),
            num(c, 2), xr, xb, note
    }
}' "$RESULTS")

echo
echo "$table"
echo
echo "server CPU µs/msg = (utime+stime of the server over the window) / messages received by the load"
echo "generator (echoes, or deliveries for broadcast/pubsub). ×raw: against raw-echo (plain TCP echo of"
echo "the same bytes) in the same scenario; ×best peer: against the lower of tungstenite and fastwebsockets."
echo "×raw-threads (notes of the thread-per-client servers): against raw-threads, the same echo with a thread"
echo "per client, the limit of their model."
echo "Deflate: neither peer implements permessage-deflate, so only our servers run it."
echo "Load average (1 min) at start $load1, at end $(cut -d' ' -f1 /proc/loadavg); nice $NICE."
if [ -n "$OUT" ]; then
    echo "$table" >"$OUT"
fi
