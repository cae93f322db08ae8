#!/usr/bin/env bash
# How fast a rebuild fills an empty InfluxDB 1.x from another, measured against how fast
# one influxd takes the same data from the load generator (issue: "the rebuild should
# not be the bottleneck"). BENCHMARKS.md, "Rebuild and verify".
#
#   scripts/bench-rebuild.sh [--points 2000000] [--days 7] [--settings 24h:10000,...]
#                            [--lines 5000] [--connections 8] [--series 1000]
#                            [--timeout 1800] [--no-build] [--out FILE] [--keep]
#
# Two influxd (source, target) on free loopback ports, each in its own temporary
# directory. The load generator writes --points points straight into the source, their
# timestamps spread over the last --days days (loadtest --ts-step) into a database whose
# shard groups are one day long: that rate is the yardstick, what one influxd takes.
# Then the relay (release build; outputs source and target, a spool on the target)
# rebuilds the target once per --settings entry WINDOW:CHUNK-SIZE (the target's
# database dropped before each), then rebuilds it once more while it is identical
# (compare only), and `influx-relay verify --since all --rate 0` compares the pair.
# Each step checks its counts (points loaded, copied and found on the target, windows
# equal) and a wrong count is a FAIL with exit status 1.
#
# Beside the rates: CPU seconds of the relay, its rebuild thread and each influxd
# (from /proc), the source's read rate alone (the same chunked SELECTs over curl) and
# how full the target's queue was, sampled while the rebuild ran. Each whole run is
# bounded by --timeout seconds; every process started here is stopped on exit and the
# temporary directories removed (kept with --keep).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

POINTS=2000000
DAYS=7
SETTINGS=24h:10000,1h:10000,24h:50000
LINES=5000
CONNECTIONS=8
SERIES=1000
TIMEOUT=1800
BUILD=1
OUT=""
KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
        --points) POINTS=$2; shift ;;
        --days) DAYS=$2; shift ;;
        --settings) SETTINGS=$2; shift ;;
        --lines) LINES=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --series) SERIES=$2; shift ;;
        --timeout) TIMEOUT=$2; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ $((POINTS % LINES)) -ne 0 ]; then
    echo "error: --points must be a multiple of --lines ($LINES)" >&2
    exit 2
fi

say() { printf '==> %s\n' "$*" >&2; }
calc() { awk "BEGIN{printf \"$1\", $2}"; }
now_ms() { date +%s%3N; }

for tool in influxd curl jq python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found (influxd: apt-get install influxdb)" >&2; exit 1; }
done
BIN=${CARGO_TARGET_DIR:-target}/release
if [ "$BUILD" = 1 ]; then
    say "building the relay and the load generator (release)"
    cargo build --release --workspace --quiet
fi

WORK=$(mktemp -d -t bench-rebuild.XXXXXX)
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh  # the cd above made the repo root the cwd
# shellcheck disable=SC2317  # called by the trap below
finish() {
    cleanup
    if [ "$KEEP" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap finish EXIT
# The whole run is bounded: every step that waits gets what is left of --timeout (at
# least a second, so a step started late fails quickly rather than not at all).
DEADLINE=$(($(date +%s) + TIMEOUT))
left() {
    local n=$((DEADLINE - $(date +%s)))
    echo $((n > 1 ? n : 1))
}

TICKS=$(getconf CLK_TCK)
# /proc/PID/stat: utime and stime are fields 14 and 15; the command name (field 2) may
# hold spaces, so count from after its closing parenthesis.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# The same for one thread of a process, found by its name (comm).
thread_ticks() { # pid name
    local t
    for t in /proc/"$1"/task/*; do
        if [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ]; then
            sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}'
            return
        fi
    done
    echo 0
}
cpu_s() { calc '%.1f' "($2 - $1) / $TICKS"; }

# --- two influxd ------------------------------------------------------------------------
# shellcheck source=scripts/influxd-lib.sh
source scripts/influxd-lib.sh
q() { # name query
    curl -sf "http://127.0.0.1:${HTTP_PORT[$1]}/query" --data-urlencode "q=$2"
}
# Points in database bench on one influxd: every generated line has the field seq.
count_points() { # name
    q "$1" 'SELECT count("seq") FROM "bench"."autogen"./.*/' \
        | jq '[.results[0].series[]?.values[0][1]] | add // 0'
}

say "starting two influxd (source, target) in $WORK"
start_influxd source
start_influxd target

# --- the yardstick: the load generator straight into the source ---------------------------
# One-day shard groups: --days days make that many shard groups and, per measurement,
# that many 24 h windows.
q source 'CREATE DATABASE "bench" WITH SHARD DURATION 1d' >/dev/null
# The points STEP apart, rising with the request number and ending at the start of
# the load, as a backfill in time order would send them.
STEP_NS=$((DAYS * 86400 * 1000000000 / POINTS))
say "loading $POINTS points into the source: $LINES lines per request, $CONNECTIONS connections, $SERIES series, one every ${STEP_NS} ns over $DAYS days"
s0=$(cpu_ticks "${PID[source]}")
timeout "$(left)" "$BIN/loadtest" run --target "http://127.0.0.1:${HTTP_PORT[source]}" --db bench \
    --requests $((POINTS / LINES)) --duration 1h --lines "$LINES" --connections "$CONNECTIONS" \
    --series "$SERIES" --ts-step "${STEP_NS}ns" --timeout 60s --progress off --json \
    >"$WORK/load.json" 2>"$WORK/load.err"
s1=$(cpu_ticks "${PID[source]}")
LOAD_CPU=$(cpu_s "$s0" "$s1")
DIRECT=$(jq .lines_per_sec "$WORK/load.json")
FAILED=0
fail() { echo "FAIL: $*" >&2; FAILED=1; }
acked=$(jq .lines_acked "$WORK/load.json")
[ "$acked" = "$POINTS" ] || fail "the source acknowledged $acked lines of $POINTS ($(jq -c .errors "$WORK/load.json"))"
have=$(count_points source)
[ "$have" = "$POINTS" ] || fail "the source holds $have points of $POINTS"
shards=$(q source 'SHOW SHARDS' | jq '[.results[0].series[]? | select(.name == "bench") | .values[]] | length')
say "direct: $(calc '%.0f' "$DIRECT") points/s, $shards shard groups, source CPU $LOAD_CPU s"

# --- the source read alone ------------------------------------------------------------------
# The rebuild's source reads without the relay: every measurement, one day at a time, as
# `SELECT * … GROUP BY *` in chunks, over curl into /dev/null. What a copy could reach if
# writing the target cost nothing.
read_source() { # chunk-size → seconds
    local t0 m day from to
    local end_ns=$(($(date +%s) * 1000000000 + 60000000000))
    local start_ns=$((end_ns - (DAYS + 1) * 86400 * 1000000000))
    t0=$(now_ms)
    for m in cpu disk mem net; do
        for ((day = 0; day <= DAYS + 1; day++)); do
            from=$((start_ns + day * 86400 * 1000000000))
            to=$((from + 86400 * 1000000000))
            curl -sf -o /dev/null --max-time "$(left)" "http://127.0.0.1:${HTTP_PORT[source]}/query" \
                --data-urlencode "db=bench" --data-urlencode "chunked=true" \
                --data-urlencode "chunk_size=$1" --data-urlencode "epoch=ns" \
                --data-urlencode "q=SELECT * FROM \"bench\".\"autogen\".\"$m\" WHERE time >= $from AND time < $to GROUP BY *"
        done
    done
    calc '%.3f' "($(now_ms) - $t0) / 1000"
}
say "reading the source alone (chunked SELECT * GROUP BY *, 24 h at a time)"
s0=$(cpu_ticks "${PID[source]}")
READ_SECS=$(read_source 10000)
s1=$(cpu_ticks "${PID[source]}")
READ_RATE=$(calc '%.0f' "$POINTS / $READ_SECS")
READ_CPU=$(cpu_s "$s0" "$s1")
say "source read: $READ_RATE points/s, source CPU $READ_CPU s"

# --- the relay --------------------------------------------------------------------------
HTTP_ADDR=127.0.0.1:$(free_port tcp)
cat >"$WORK/relay.toml" <<CONF
spool-dir = "$WORK/spool"
log-level = "info"

[[http]]
name = "bench"
bind-addr = "$HTTP_ADDR"
output = [
  { name = "source", location = "http://127.0.0.1:${HTTP_PORT[source]}/write" },
  { name = "target", location = "http://127.0.0.1:${HTTP_PORT[target]}/write", spool-size-mb = 4096 },
]
CONF
"$BIN/influx-relay" -config "$WORK/relay.toml" 2>"$WORK/relay.log" &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://$HTTP_ADDR/ping" && break
    kill -0 "$RELAY_PID" 2>/dev/null || { tail -20 "$WORK/relay.log" >&2; exit 1; }
    sleep 0.1
done

status() { curl -sf "http://$HTTP_ADDR/admin/rebuild?output=target"; }
# One figure of the target backend in /status.
target_stat() { # key
    curl -sf "http://$HTTP_ADDR/status" | jq --arg k "$1" '.http[0].backends[] | select(.name == "target") | .[$k]'
}
target_queue() { target_stat queued_requests; }

# One rebuild of the target; fills the globals below. Polls every 0.2 s, sampling the
# target's queue and the CPU time of the rebuild's thread (it ends with the rebuild,
# so the last sample stands for it: up to 0.2 s short).
rebuild() { # window chunk-size
    local st r0 s0 t0 b1=0 bt r1 s1 t1 sp0 qsum=0 qn=0 qmax=0 qv
    r0=$(cpu_ticks "$RELAY_PID")
    sp0=$(target_stat spooled_points)
    s0=$(cpu_ticks "${PID[source]}")
    t0=$(cpu_ticks "${PID[target]}")
    curl -sf -o /dev/null -XPOST \
        "http://$HTTP_ADDR/admin/rebuild?output=target&source=source&since=all&window=$1&chunk-size=$2" \
        || { fail "POST /admin/rebuild refused (window=$1, chunk-size=$2)"; return 1; }
    while :; do
        st=$(status)
        [ "$(jq -r .state <<<"$st")" = running ] || break
        if [ "$(date +%s)" -ge "$DEADLINE" ]; then
            fail "rebuild window=$1 chunk-size=$2 still running at --timeout"
            return 1
        fi
        bt=$(thread_ticks "$RELAY_PID" rebuild-target)
        [ "$bt" = 0 ] || b1=$bt
        qv=$(target_queue)
        qsum=$((qsum + qv)); qn=$((qn + 1))
        [ "$qv" -le "$qmax" ] || qmax=$qv
        sleep 0.2
    done
    r1=$(cpu_ticks "$RELAY_PID")
    s1=$(cpu_ticks "${PID[source]}")
    t1=$(cpu_ticks "${PID[target]}")
    ST=$st
    [ "$(jq -r .state <<<"$st")" = "done" ] || fail "rebuild window=$1 chunk-size=$2 ended $(jq -c '{state, error}' <<<"$st")"
    SECS=$(jq '(.finished_ms - .started_ms) / 1000' <<<"$st")
    COPIED=$(jq .points_copied <<<"$st")
    RELAY_CPU=$(cpu_s "$r0" "$r1")
    THREAD_CPU=$(cpu_s 0 "$b1")
    SPOOLED=$(($(target_stat spooled_points) - sp0))
    SRC_CPU=$(cpu_s "$s0" "$s1")
    TGT_CPU=$(cpu_s "$t0" "$t1")
    QUEUE="$(calc '%.1f' "$qsum / ($qn + 1e-9)") avg / $qmax max"
    printf '%s\n' "$st" >"$WORK/rebuild-$1-$2-$(now_ms).json"
}

# Until the relay has nothing queued for the target (a copy spooled counts as taken).
drain_target() {
    for _ in $(seq 600); do
        [ "$(target_queue)" = 0 ] && return
        sleep 0.1
    done
    fail "the target's queue did not drain within 60 s"
}

TABLE="$WORK/table.md"
row() { printf '%s\n' "$1" | tee -a "$TABLE"; }
echo >&2
row "Rebuild of $POINTS points over $DAYS days ($shards one-day shard groups, 4 measurements, $SERIES series), $(nproc) cores."
row "Direct: loadtest → source influxd, $LINES lines per request, $CONNECTIONS connections: **$(calc '%.0f' "$DIRECT") points/s** (source CPU $LOAD_CPU s)."
row "Source read alone (curl, chunked SELECT * GROUP BY *, 24 h windows): $READ_RATE points/s (source CPU $READ_CPU s)."
row ""
row "| run | window | chunk-size | points | seconds | points/s | ÷ direct | windows copied / equal / total | relay CPU s (rebuild thread) | source CPU s | target CPU s | target queue writes | points spooled |"
row "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|"

IFS=, read -r -a settings <<<"$SETTINGS"
last=""
for s in "${settings[@]}"; do
    window=${s%%:*}
    chunk=${s##*:}
    q target 'DROP DATABASE "bench"' >/dev/null
    say "rebuild (copy) window=$window chunk-size=$chunk"
    rebuild "$window" "$chunk" || continue
    drain_target
    have=$(count_points target)
    [ "$COPIED" = "$POINTS" ] || fail "copy window=$window chunk-size=$chunk: points_copied $COPIED, not $POINTS"
    [ "$have" = "$POINTS" ] || fail "copy window=$window chunk-size=$chunk: the target holds $have points of $POINTS"
    rate=$(calc '%.0f' "$COPIED / $SECS")
    row "| copy | $window | $chunk | $COPIED | $(calc '%.1f' "$SECS") | $rate | $(calc '%.2f' "$rate / $DIRECT") | $(jq -r '"\(.windows_copied) / \(.windows_equal) / \(.windows_total)"' <<<"$ST") | $RELAY_CPU ($THREAD_CPU) | $SRC_CPU | $TGT_CPU | $QUEUE | $SPOOLED |"
    last=$s
done

# The target is now identical: every window compared, none copied.
if [ -n "$last" ]; then
    window=${last%%:*}
    chunk=${last##*:}
    say "rebuild (compare only) window=$window chunk-size=$chunk"
    if rebuild "$window" "$chunk"; then
        [ "$COPIED" = 0 ] || fail "compare-only rebuild copied $COPIED points"
        [ "$(jq '.windows_equal == .windows_total' <<<"$ST")" = true ] || fail "compare-only rebuild: $(jq -c '{windows_equal, windows_total}' <<<"$ST")"
        rate=$(calc '%.0f' "$POINTS / $SECS")
        row "| compare only | $window | $chunk | $POINTS | $(calc '%.1f' "$SECS") | $rate | $(calc '%.2f' "$rate / $DIRECT") | $(jq -r '"\(.windows_copied) / \(.windows_equal) / \(.windows_total)"' <<<"$ST") | $RELAY_CPU ($THREAD_CPU) | $SRC_CPU | $TGT_CPU | $QUEUE | $SPOOLED |"
    fi
fi

# --- verify ---------------------------------------------------------------------------
say "influx-relay verify --since all --rate 0"
s0=$(cpu_ticks "${PID[source]}")
t0=$(cpu_ticks "${PID[target]}")
v0=$(now_ms)
vrc=0
timeout "$(left)" "$BIN/influx-relay" verify --config "$WORK/relay.toml" --since all --rate 0 --json \
    >"$WORK/verify.json" 2>"$WORK/verify.err" || vrc=$?
vsecs=$(calc '%.3f' "($(now_ms) - $v0) / 1000")
s1=$(cpu_ticks "${PID[source]}")
t1=$(cpu_ticks "${PID[target]}")
if [ "$vrc" != 0 ] || [ "$(jq .identical "$WORK/verify.json")" != true ]; then
    fail "verify exit $vrc: $(head -c 300 "$WORK/verify.json" "$WORK/verify.err")"
fi
read_pts=$(jq '[.listeners[0].backends[].points] | min // 0' "$WORK/verify.json")
[ "$read_pts" = "$POINTS" ] || fail "verify read $read_pts points per backend, not $POINTS"
rate=$(calc '%.0f' "$read_pts / $vsecs")
row "| verify | 1h | 10000 | $read_pts | $(calc '%.1f' "$vsecs") | $rate | $(calc '%.2f' "$rate / $DIRECT") | – | – | $(cpu_s "$s0" "$s1") | $(cpu_s "$t0" "$t1") | – | – |"
row ""
row "points/s: copy = points_copied ÷ (finished_ms − started_ms); compare only and verify = points compared per backend ÷ wall time. verify exit $vrc."
[ -z "$OUT" ] || cp "$TABLE" "$OUT"
exit $FAILED
