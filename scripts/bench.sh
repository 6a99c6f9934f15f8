#!/usr/bin/env bash
# Server load benchmark: ws-mio / ws-std against reference peers.
#
# usage: scripts/bench.sh [--quick] [--rounds N] [--only REGEX] [--no-build] [--out FILE] [--nice N]
#
#   --quick      1 s windows, one round and fewer scenarios (about a minute)
#   --rounds N   rounds of the four echo scenarios (default 3): each round runs every
#                server once, in an order rotated round by round; the table gives each
#                figure's median over the rounds and each ratio's median over the rounds'
#                ratios (two servers measured seconds apart share the machine's slow and
#                fast spells), with the ratios' range in the notes
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
# Loopback only. The full run takes 10 to 14 minutes on a 2-core machine.
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
# how busy the CPUs are first (over one second) and warns when something else runs.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
ROUNDS=""
ONLY=""
BUILD=1
OUT=""
NICE=-10
[ "$(nice -n "$NICE" nice 2>/dev/null)" = "$NICE" ] || NICE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS=${2:?--rounds needs a count}; shift ;;
        --rounds=*) ROUNDS=${1#--rounds=} ;;
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
    : "${ROUNDS:=1}"
else
    WARMUP=1 DUR=3 DUR_BIG=2 IDLE_CONNS=10000
    : "${ROUNDS:=3}"
fi
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds needs a positive count, not $ROUNDS"

# case SCENARIO SERVER KIND ROUND -- ws-load args...
#   KIND: echo | broadcast | pubsub (which example of ours serves it)
# Appends "SCENARIO<TAB>SERVER<TAB>ROUND<TAB>ws-load's JSON, or SKIP/FAIL and why" to RESULTS.
case_run() {
    local scen=$1 server=$2 kind=$3 round=$4
    shift 5
    local label="$scen/$server"
    if [ -n "$ONLY" ] && ! [[ $label =~ $ONLY ]]; then return 0; fi
    local cmd
    cmd=$(server_cmd "$server" "$kind")
    if [ -z "$cmd" ]; then
        printf '%s\t%s\t%s\t%s\n' "$scen" "$server" "$round" "SKIP no $kind example yet" >>"$RESULTS"
        return 0
    fi
    local extra=()
    case "$server" in raw-echo | raw-threads) extra=(--raw) ;; esac
    next_port
    local log=$WORK/${scen}_${server}_$round.log
    nice -n "$NICE" taskset -c 0 "$cmd" "127.0.0.1:$PORT" >"$log.server" 2>&1 &
    SERVER_PID=$!
    if ! wait_listening "$PORT" "$SERVER_PID"; then
        printf '%s\t%s\t%s\t%s\n' "$scen" "$server" "$round" "FAIL server did not listen" >>"$RESULTS"
        echo "   $label: server did not start (log: $log.server)" >&2
        cleanup
        return 0
    fi
    echo "   $label${ROUND_LABEL:-}" >&2
    local json
    if json=$(nice -n "$NICE" taskset -c 1 "$LOAD" --url "ws://127.0.0.1:$PORT/" --server-pid "$SERVER_PID" \
        --json --warmup "$WARMUP" "${extra[@]}" "$@" 2>"$log"); then
        printf '%s\t%s\t%s\t%s\n' "$scen" "$server" "$round" "$json" >>"$RESULTS"
    else
        local err
        err=$(tail -n 1 "$log" | tr '\t' ' ')
        printf '%s\t%s\t%s\t%s\n' "$scen" "$server" "$round" "FAIL $err" >>"$RESULTS"
        echo "   $label failed: $err" >&2
    fi
    cleanup
}

ALL_ECHO=(raw-echo raw-threads tungstenite fastwebsockets ws-mio ws-std)
WS_ECHO=(tungstenite fastwebsockets ws-mio ws-std)
OURS=(ws-mio ws-std)

# echo_rounds SCENARIO -- ws-load args...: ROUNDS rounds of every server of ALL_ECHO, round r
# starting r-1 places further down the list, so that no server always follows the same one.
echo_rounds() {
    local scen=$1 r i n=${#ALL_ECHO[@]}
    shift 2
    for r in $(seq 1 "$ROUNDS"); do
        [ "$ROUNDS" -gt 1 ] && ROUND_LABEL=" (round $r of $ROUNDS)"
        for i in $(seq 0 $((n - 1))); do
            case_run "$scen" "${ALL_ECHO[$(((i + r - 1) % n))]}" echo "$r" -- "$@"
        done
    done
    ROUND_LABEL=""
}

# How busy the CPUs are now, in % over one second (from /proc/stat). The load average would
# mislead: a thread-per-client server's thousands of threads, even gone, keep it high for minutes.
cpu_busy() {
    local a b
    a=$(head -n 1 /proc/stat)
    sleep 1
    b=$(head -n 1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{
        t = 0; for (i = 2; i <= NF; i++) t += $i
        idle = $5 + $6; tot[NR] = t; id[NR] = idle
    } END { printf "%.0f", 100 * (1 - (id[2] - id[1]) / (tot[2] - tot[1])) }'
}
busy=$(cpu_busy)
load1=$(cut -d' ' -f1 /proc/loadavg)
echo "== $(nproc) cores, ${busy}% busy, ulimit -n $NOFILE, nice $NICE, $ROUNDS echo rounds, logs in $WORK" >&2
if [ "$busy" -gt 10 ]; then
    echo "bench.sh: warning: the machine is busy (${busy}% of its CPUs): numbers will be noisy" >&2
fi

echo_rounds echo-64B-c100-k1 -- --conns 100 --size 64 --inflight 1 --duration "$DUR"
echo_rounds echo-64B-c100-k16 -- --conns 100 --size 64 --inflight 16 --duration "$DUR"
echo_rounds echo-16KiB-c10 -- --conns 10 --size 16384 --inflight 1 --duration "$DUR"
if [ "$QUICK" = 0 ]; then
    echo_rounds echo-16MiB-c8 -- --conns 8 --size 16777216 --inflight 1 --duration "$DUR_BIG"
    # The peers have no permessage-deflate (tungstenite, fastwebsockets): ours only.
    for s in "${OURS[@]}"; do
        case_run echo-deflate-1KiB-c100 "$s" echo 1 -- --conns 100 --size 1024 --inflight 1 --deflate --duration "$DUR"
    done
fi
for s in "${WS_ECHO[@]}"; do
    case_run "idle-$IDLE_CONNS" "$s" echo 1 -- --scenario idle --conns "$IDLE_CONNS" --duration 1 --connect-timeout 60
done
for s in "${OURS[@]}"; do
    case_run broadcast-64B-c100 "$s" broadcast 1 -- --scenario broadcast --conns 100 --size 64 --duration "$DUR"
done
for s in "${OURS[@]}"; do
    case_run pubsub-64B-c100-t10 "$s" pubsub 1 -- --scenario pubsub --conns 100 --topics 10 --size 64 --duration "$DUR"
done
if [ "$QUICK" = 0 ]; then
    for s in "${OURS[@]}"; do
        case_run slow-consumer-1KiB-c20 "$s" broadcast 1 -- --scenario slow-consumer --conns 20 --size 1024 --duration "$DUR"
    done
fi

# ---------------------------------------------------------------- report
# ws-load prints one flat JSON object of numbers: a tiny field extractor does. Each figure of a
# row is its median over the rounds that ran; each ratio the median of the rounds' own ratios
# (with their range when there were several).
table=$(awk -F'\t' -v rounds="$ROUNDS" '
function field(j, name,    r) {
    if (match(j, "\"" name "\":[^,}]*")) {
        r = substr(j, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
        return r
    }
    return "null"
}
# Sorts the space-separated numbers of list into v[1..], returns how many.
function sorted(list, v,    n, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) {
        t = v[i] + 0
        for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]
        v[j + 1] = t
    }
    return n
}
function median(list,    v, n) { n = sorted(list, v); return n == 0 ? "null" : v[int((n + 1) / 2)] }
# The median over the rounds of metric m of row k.
function fig(k, m) { return median(vals[k, m]) }
# The rounds ratios of server a over server b in scenario sc, as "median" or "median (lo–hi)".
function ratio(sc, a, b,    r, list, v, n) {
    list = ""
    for (r = 1; r <= rounds; r++)
        if (((sc, a, r) in cpur) && ((sc, b, r) in cpur) && cpur[sc, b, r] > 0)
            list = list " " cpur[sc, a, r] / cpur[sc, b, r]
    n = sorted(list, v)
    if (n == 0) return "–"
    if (n == 1) return sprintf("%.2f", v[1])
    return sprintf("%.2f (%.2f–%.2f)", v[int((n + 1) / 2)], v[1], v[n])
}
function num(v, prec) { return (v == "null" || v == "") ? "–" : sprintf("%." prec "f", v) }
function kib(v) { return (v == "null" || v == "") ? "–" : sprintf("%.1f KiB", v / 1024) }
function mib(v) { return (v == "null" || v == "") ? "–" : sprintf("%+.1f MiB", v / 1048576) }
function add(note, s) { return note (note == "" ? "" : "; ") s }
BEGIN {
    nm = split("msgs_per_s mb_per_s p50_us p99_us p999_us server_cpu_pct server_cpu_us_per_msg load_cpu_pct sent_per_s server_rss_growth rss_per_conn", metric, " ")
}
{
    k = $1 SUBSEP $2
    if (!(k in row)) { n++; row[k] = n; scen[n] = $1; srv[n] = $2 }
    if ($4 !~ /^\{/) { fail[k] = $4; next }
    ok[k]++
    for (i = 1; i <= nm; i++) {
        v = field($4, metric[i])
        if (v != "null") vals[k, metric[i]] = vals[k, metric[i]] " " v
    }
    c = field($4, "server_cpu_us_per_msg")
    if (c != "null") cpur[$1, $2, $3] = c
}
END {
    # The best peer of a scenario: the lower median CPU (RSS for idle) of tungstenite and fastwebsockets.
    for (i = 1; i <= n; i++) {
        if (srv[i] != "tungstenite" && srv[i] != "fastwebsockets") continue
        k = scen[i] SUBSEP srv[i]
        v = fig(k, scen[i] ~ /^idle/ ? "rss_per_conn" : "server_cpu_us_per_msg")
        if (v != "null" && v > 0 && (!(scen[i] in best) || v + 0 < bestv[scen[i]] + 0)) {
            best[scen[i]] = srv[i]; bestv[scen[i]] = v
        }
        if (srv[i] == "tungstenite") tung[scen[i]] = 1
    }
    for (i = 1; i <= n; i++) {
        if ((scen[i], "raw-echo") in ok) raw[scen[i]] = 1
        if ((scen[i], "raw-threads") in ok) rawt[scen[i]] = 1
    }
    print "| scenario | server | msgs/s | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU % | server CPU µs/msg | CPU ×raw | CPU ×best peer | notes |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for (i = 1; i <= n; i++) {
        sc = scen[i]; sv = srv[i]; k = sc SUBSEP sv
        if (!(k in ok)) {
            printf "| %s | %s | | | | | | | | | | %s |\n", sc, sv, fail[k]
            continue
        }
        note = ""
        if ((k in fail) || (sc ~ /^echo-[0-9]/ && ok[k] < rounds))
            note = sprintf("%d of %d rounds ran (%s)", ok[k], rounds, fail[k])
        if (sc ~ /^idle/) {
            r = fig(k, "rss_per_conn")
            note = add(note, "RSS/conn " kib(r))
            if ((sc in best) && r != "null")
                note = note sprintf(" (×%.2f of %s)", r / bestv[sc], best[sc])
            printf "| %s | %s | | | | | | | | | | %s |\n", sc, sv, note
            continue
        }
        c = fig(k, "server_cpu_us_per_msg")
        xr = (sc in raw) ? ratio(sc, sv, "raw-echo") : "–"
        xb = (sc in best) ? ratio(sc, sv, best[sc]) : "–"
        if (xb != "–") xb = xb " " best[sc]
        if (sc ~ /^(broadcast|pubsub|slow)/) note = add(note, "deliveries; sent/s " num(fig(k, "sent_per_s"), 0))
        if (sv == "ws-std" && (sc in tung)) note = add(note, "×tungstenite " ratio(sc, sv, "tungstenite"))
        if ((sv == "ws-std" || sv == "tungstenite") && (sc in rawt)) note = add(note, "×raw-threads " ratio(sc, sv, "raw-threads"))
        if (sc ~ /^slow/) note = add(note, "server RSS " mib(fig(k, "server_rss_growth")) " in window")
        lc = fig(k, "load_cpu_pct")
        if (lc != "null" && lc + 0 > 90) note = add(note, "load generator at " num(lc, 0) "% (tool-bound)")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc, sv,
            num(fig(k, "msgs_per_s"), 0), num(fig(k, "mb_per_s"), 1), num(fig(k, "p50_us"), 0),
            num(fig(k, "p99_us"), 0), num(fig(k, "p999_us"), 0), num(fig(k, "server_cpu_pct"), 0),
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
echo "per client, the limit of their model; ×tungstenite (ws-std's notes): its target's ratio."
echo "Echo scenarios: $ROUNDS rounds; figures are medians over the rounds, ratios the medians of the rounds'"
echo "own ratios, in brackets their lowest and highest. Other scenarios: one run."
echo "Deflate: neither peer implements permessage-deflate, so only our servers run it."
echo "CPUs busy before the run: ${busy}% (load average $load1); nice $NICE."
if [ -n "$OUT" ]; then
    echo "$table" >"$OUT"
fi
