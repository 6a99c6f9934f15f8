# What bench-rounds.sh, bench-ab.sh and bench-alt.sh share (sourced, not run): the echo
# scenarios' load arguments, starting servers on free ports, reading ws-load's report, and order
# statistics.

# Sets ARGS to ws-load's arguments for an echo scenario of bench.sh.
scenario_args() {
    case "$1" in
        64B-k1) ARGS=(--conns 100 --size 64 --inflight 1 --duration 3) ;;
        64B-k16) ARGS=(--conns 100 --size 64 --inflight 16 --duration 3) ;;
        16KiB) ARGS=(--conns 10 --size 16384 --inflight 1 --duration 3) ;;
        16MiB) ARGS=(--conns 8 --size 16777216 --inflight 1 --duration 4) ;;
        *) echo "unknown scenario $1 (64B-k1 | 64B-k16 | 16KiB | 16MiB)" >&2; return 1 ;;
    esac
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The median of the values on stdin with an interval for it from order statistics, which assumes
# nothing about their distribution: from the k-th smallest to the k-th largest value, k as large
# as keeps the chance that the true median lies outside at 5% or less (for fewer than six values,
# all of them, with what that covers), and that coverage.
median_interval() {
    tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {
        n = NR; if (n == 0) exit
        # cdf[j] = P(Binomial(n, 1/2) <= j)
        p = 0.5 ^ n; c = p; cdf[0] = c
        for (j = 1; j <= n; j++) { p = p * (n - j + 1) / j; c += p; cdf[j] = c }
        k = 1
        while (k + 1 <= (n + 1) / 2 && 1 - 2 * cdf[k] >= 0.95) k++
        printf "median %s, %.0f%% interval %s to %s", a[int((n + 1) / 2)], 100 * (1 - 2 * cdf[k - 1]), a[k], a[n - k + 1]
    }'
}

# ws-load's extra argument for BINARY: the raw echo's load sends the frames' bytes and expects them
# back verbatim.
raw_flag() { case "$(basename "$1")" in raw-echo*) echo --raw ;; esac; }
# FROM: the first port from FROM on that nothing listens on.
free_port() {
    local p=$1
    while ss -Hltn "sport = :$p" | grep -q .; do p=$((p + 1)); done
    echo "$p"
}
# PORT: waits up to 10 s until something listens on it.
wait_listening() {
    for _ in $(seq 1 200); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        sleep 0.05
    done
    return 1
}
# REPORT: the server CPU time per message of a ws-load report file, or nan.
cpu_per_message() { grep -oP 'server CPU \K[0-9.]+' "$1" || echo nan; }
