#!/usr/bin/env bash
# Throughput, latency, CPU and memory of the relay under the bundled load generator,
# with HAProxy measured in the same run as the yardstick (issue 5). Prints one table row
# per workload; a workload whose line counts are wrong is a FAIL and makes the exit
# status 1.
#
#   scripts/bench.sh [--quick] [--duration 5s] [--only NAME,NAME] [--concurrency N]
#                    [--relay-cmd CMD] [--label NAME] [--no-haproxy] [--no-build]
#                    [--out FILE] [--charts DIR] [--compare RESULTS.json] [outage]
#
# --relay-cmd (or RELAY_CMD) is the relay under test, started once per workload.
# Placeholders, also exported as BENCH_* environment variables so a wrapper script can
# write its own configuration for a different relay:
#   {config}     the TOML this script wrote for the workload (influx-relay's format)
#   {http_addr}  where the load generator sends HTTP     {udp_addr}  ... and UDP
#   {sink1_url} {sink2_url}   backends' /write URLs       {sink1_udp} {sink2_udp}
#   {buffer_mb}  RAM retry buffer wanted (0 = none)       {outputs}   1 or 2 HTTP outputs
# scripts/bench-go-relay.sh is such a wrapper for the original Go influxdb-relay.
# --label names the relay under test in results.json and the charts (influx-relay;
# go-relay for that wrapper).
#
# Workloads (names for --only): http-100x32 http-1000x32 http-100x128 http-1000x128
# http-10x2000 gzip-1000x32 one-output-100x32 udp-max udp-100k slow-sink-100x32
# ram-buffer-64m idle-10k api-v1-100x32 api-v2-100x32 api-v3-100x32 api-v2-out-100x32.
# HTTP ones run HAProxy first, then the relay; the api-* ones (the write APIs of
# InfluxDB 1.x, 2.x and 3.x in and out) run the relay only, one after the other, and
# compare each with api-v1-100x32 of the same round (API_ROUNDS rounds, default 3;
# the api-* ones run only when api-v1-100x32 is wanted too).
# Run only when named (`outage` names all six): outage-down outage-down-all
# outage-slow (a backend stopped or slowed for 8 s at full load, spool on both
# outputs; BENCHMARKS.md, "A backend down at full load"), outage-down-paced and
# outage-slow-paced (the same with catch-up-live-percent = 50), and spool-disk (the
# spool's append and replay rates against dd on the same disk).
#
# scripts/bench-wrk.sh is http-1000x32 under wrk with nginx sinks, with nginx as a
# two-backend forwarder beside HAProxy (BENCHMARKS.md, "Large bodies").
#
# Everything listens on 127.0.0.1 on ports the OS hands out; every process started
# here is stopped on exit. Raw results stay in target/bench/<timestamp>/, with
# results.json (the figures of the HTTP and UDP rows) and charts drawn from it by
# scripts/bench-charts.py in charts/ there, or in --charts DIR (docs/bench holds the
# committed ones); --compare adds another run's results.json to the charts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The header comment above, up to the first line that is not a comment.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

DURATION=5s
RELAY_CMD=${RELAY_CMD:-'target/release/influx-relay -config {config}'}
# Parallel keep-alive connections per output; see BENCHMARKS.md for the sweep.
# The relay's default (strict per-backend order); --concurrency to try others.
CONCURRENCY=${BENCH_CONCURRENCY:-1}
ONLY=""
HAPROXY=1
BUILD=1
OUT=""
LABEL=influx-relay
CHARTS=""
COMPARE=()
IDLE_CONNECTIONS=10000
while [ $# -gt 0 ]; do
    case $1 in
        --quick) DURATION=2s ;;
        --duration) DURATION=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --concurrency) CONCURRENCY=$2; shift ;;
        --relay-cmd) RELAY_CMD=$2; shift ;;
        --no-haproxy) HAPROXY=0 ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        --label) LABEL=$2; shift ;;
        --charts) CHARTS=$2; shift ;;
        --compare) COMPARE+=("$2"); shift ;;
        -h | --help) usage; exit 0 ;;
        outage) ONLY=${ONLY:+$ONLY,}outage-down,outage-down-all,outage-slow,outage-down-paced,outage-slow-paced,spool-disk ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case $DURATION in
    *ms) DUR_SECS=$(awk "BEGIN{print ${DURATION%ms}/1000}") ;;
    *s) DUR_SECS=${DURATION%s} ;;
    *) echo "error: --duration takes seconds (5s) or milliseconds (500ms)" >&2; exit 2 ;;
esac

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
# The outage and spool workloads take minutes and write gigabytes: only when named.
named() { [[ ",$ONLY," == *",$1,"* ]]; }

# --- what the benchmark needs -------------------------------------------------------
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
if [ "$BUILD" = 1 ]; then
    command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }
    say "building the relay and the load generator (release)"
    cargo build --release --workspace --quiet
fi
LOADTEST=target/release/loadtest
# 10 000 idle clients need more descriptors than the usual soft limit of 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# HAProxy wants two descriptors per connection (client and server side) and refuses to
# start when maxconn cannot be backed by the hard limit.
HAPROXY_MAXCONN=$((($(ulimit -Hn) - 100) / 2))
TICKS=$(getconf CLK_TCK)
CORES=$(nproc)

WORK=target/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$WORK"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh  # the cd above made the repo root the cwd

# Stop one process we started: TERM, a short grace, then KILL.
stop() {
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# /proc/PID/stat: utime and stime are fields 14 and 15; the command name (field 2) may
# hold spaces, so count from after its closing parenthesis.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
calc() { awk "BEGIN{printf \"$1\", $2}"; }

# --- sinks ----------------------------------------------------------------------------
declare -A SINK_HTTP SINK_UDP SINK_PID
start_sink() { # name
    local out="$WORK/sink-$1.out"
    "$LOADTEST" sink --http 127.0.0.1:0 --udp 127.0.0.1:0 >"$out" 2>"$WORK/sink-$1.err" &
    SINK_PID[$1]=$!
    PIDS+=("$!")
    for _ in $(seq 50); do
        if grep -q '^listening' "$out"; then
            SINK_HTTP[$1]=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$out")
            SINK_UDP[$1]=$(sed -n 's/.*udp=\([^ ]*\).*/\1/p' "$out")
            return
        fi
        sleep 0.1
    done
    echo "error: sink $1 did not start" >&2
    exit 1
}
sink_stats() { curl -sf "http://${SINK_HTTP[$1]}/stats"; }
sink_post() { curl -sf -o /dev/null -XPOST "http://${SINK_HTTP[$1]}/$2"; }
sink_up() { curl -sf -o /dev/null "http://${SINK_HTTP[$1]}/ping"; }
run_field() { # sink run field
    sink_stats "$1" | jq -r --arg r "$2" --arg f "$3" '.runs[$r][$f] // 0'
}
# Wait until a sink has `want` unique lines of run `id`, or its count stops moving
# (ack = any answers after the first backend, so the other may still be writing).
settle() { # sink id want
    local last=-1 now stable=0
    for _ in $(seq 100); do
        now=$(run_field "$1" "$2" unique)
        [ "$now" -ge "$3" ] && return
        if [ "$now" = "$last" ]; then
            stable=$((stable + 1))
            [ $stable -ge 10 ] && return
        else
            stable=0
        fi
        last=$now
        sleep 0.1
    done
}

say "starting two sinks"
start_sink s1
start_sink s2
say "sinks: s1 http=${SINK_HTTP[s1]} udp=${SINK_UDP[s1]}, s2 http=${SINK_HTTP[s2]} udp=${SINK_UDP[s2]}"

# --- the relay under test -------------------------------------------------------------
RELAY_PID=""
# The outage workloads change these for their own relay: the listener's ack and keys
# added to every HTTP output (a spool).
RELAY_ACK=any
OUTPUT_EXTRA=""
# The outputs' write path: /api/v2/write or /api/v3/write_lp make them 2.x or 3.x
# outputs (OUTPUT_EXTRA then adds org).
OUTPUT_PATH=/write
relay_config() { # file outputs buffer_mb
    local outs="" n
    for n in $(seq "$2"); do
        outs+="  { name = \"s$n\", location = \"http://${SINK_HTTP[s$n]}$OUTPUT_PATH\", timeout = \"10s\", concurrency = $CONCURRENCY, buffer-size-mb = $3$OUTPUT_EXTRA },"$'\n'
    done
    cat >"$1" <<CONF
threads = $CORES
log-level = "info"
spool-dir = "$WORK/spool"

[[http]]
name = "bench"
bind-addr = "$HTTP_ADDR"
ack = "$RELAY_ACK"
max-connections = 20000
output = [
$outs]

# 32 MiB: ~290 ms of datagrams at 100 000/s. Past net.core.rmem_max the relay forces
# it when it has CAP_NET_ADMIN; its start-up log says what the kernel gave.
[[udp]]
name = "bench-udp"
bind-addr = "$UDP_ADDR"
read-buffer = 33554432
output = [
  { name = "s1", location = "${SINK_UDP[s1]}", mtu = 1400 },
  { name = "s2", location = "${SINK_UDP[s2]}", mtu = 1400 },
]
CONF
}

start_relay() { # workload outputs buffer_mb
    HTTP_ADDR=127.0.0.1:$(free_port)
    UDP_ADDR=127.0.0.1:$(free_port udp)
    local config="$WORK/$1.toml" cmd
    relay_config "$config" "$2" "$3"
    export BENCH_CONFIG=$config BENCH_HTTP_ADDR=$HTTP_ADDR BENCH_UDP_ADDR=$UDP_ADDR \
        BENCH_SINK1_URL="http://${SINK_HTTP[s1]}/write" BENCH_SINK2_URL="http://${SINK_HTTP[s2]}/write" \
        BENCH_SINK1_UDP=${SINK_UDP[s1]} BENCH_SINK2_UDP=${SINK_UDP[s2]} BENCH_BUFFER_MB=$3 BENCH_OUTPUTS=$2
    cmd=$RELAY_CMD
    cmd=${cmd//\{config\}/$config}
    cmd=${cmd//\{http_addr\}/$HTTP_ADDR}
    cmd=${cmd//\{udp_addr\}/$UDP_ADDR}
    cmd=${cmd//\{sink1_url\}/$BENCH_SINK1_URL}
    cmd=${cmd//\{sink2_url\}/$BENCH_SINK2_URL}
    cmd=${cmd//\{sink1_udp\}/$BENCH_SINK1_UDP}
    cmd=${cmd//\{sink2_udp\}/$BENCH_SINK2_UDP}
    cmd=${cmd//\{buffer_mb\}/$3}
    cmd=${cmd//\{outputs\}/$2}
    # exec: the PID we measure is the relay's, not a shell's. The stats interval makes
    # influx-relay log its UDP counters (where drops happened) every half second.
    INFLUX_RELAY_STATS_INTERVAL_MS=500 bash -c "exec $cmd" 2>"$WORK/$1.relay.log" &
    RELAY_PID=$!
    PIDS+=("$RELAY_PID")
    for _ in $(seq 100); do
        kill -0 "$RELAY_PID" 2>/dev/null || break
        if curl -sf -o /dev/null "http://$HTTP_ADDR/ping"; then return; fi
        sleep 0.1
    done
    echo "error: the relay did not answer /ping on $HTTP_ADDR; its log:" >&2
    tail -20 "$WORK/$1.relay.log" >&2
    exit 1
}

# --- HAProxy: a pure one-backend HTTP proxy in front of sink s1 -------------------------
HAPROXY_PID=""
start_haproxy() { # workload
    HTTP_ADDR=127.0.0.1:$(free_port)
    cat >"$WORK/haproxy.cfg" <<CONF
global
    nbthread 2
    maxconn $HAPROXY_MAXCONN
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind $HTTP_ADDR
    default_backend sink
backend sink
    server s1 ${SINK_HTTP[s1]}
CONF
    haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/$1.haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    PIDS+=("$HAPROXY_PID")
    for _ in $(seq 100); do
        kill -0 "$HAPROXY_PID" 2>/dev/null || break
        if curl -sf -o /dev/null "http://$HTTP_ADDR/ping"; then return; fi
        sleep 0.1
    done
    echo "error: haproxy did not start; its log:" >&2
    tail -20 "$WORK/$1.haproxy.log" >&2
    exit 1
}

# --- the table ------------------------------------------------------------------------
FAILED=0
TABLE="$WORK/table.md"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
# One HTTP row's figures for results.json, from the globals measure_http filled.
record_http() { # workload server lines conns outputs args...
    local gzip=false
    [[ " ${*:6} " == *" --gzip "* ]] && gzip=true
    jq -nc --arg w "$1" --arg s "$2" --argjson lines "$3" --argjson conns "$4" \
        --argjson outputs "$5" --argjson gzip "$gzip" --argjson lps "$LPS" \
        --argjson p99 "$(jq .p99_us "$J")" --argjson cpu "$CPU_PER_M" \
        '{workload: $w, server: $s, kind: "http", lines_per_request: $lines,
          connections: $conns, outputs: $outputs, gzip: $gzip, lines_per_sec: $lps,
          p99_ms: ($p99 / 1000), cpu_s_per_m_lines: $cpu}' >>"$RESULTS"
}
declare -A HA_LPS HA_P99 HA_CPU HA_RSS RELAY_LPS RELAY_CPU
row() { printf '%s\n' "$1" | tee -a "$TABLE"; }
row "| workload | server | lines/s | MB/s | p50 ms | p99 ms | p99.9 ms | CPU s/M lines | peak RSS MiB | lines: acked / sink s1 / sink s2 | result | lines/s ×HAProxy | p99 ×HAProxy | CPU ×HAProxy |"
row "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|"

ms() { calc '%.2f' "$1/1000"; }

# Drive `pid` (relay or haproxy) with one HTTP load; fills the globals below.
measure_http() { # name pid target loadtest-args...
    local name=$1 pid=$2 target=$3
    shift 3
    local t0 t1
    t0=$(cpu_ticks "$pid")
    "$LOADTEST" run --target "http://$target" --duration "$DURATION" --run-id "$name" --json "$@" \
        >"$WORK/$name.json" 2>"$WORK/$name.err"
    t1=$(cpu_ticks "$pid")
    J="$WORK/$name.json"
    ACKED=$(jq .lines_acked "$J")
    SENT=$(jq .lines_sent "$J")
    REQS=$(jq .requests "$J")
    PER=$(jq .lines_per_request "$J")
    ERRS=$(jq -c .errors "$J")
    LPS=$(jq .lines_per_sec "$J")
    CPU_PER_M=$(calc '%.2f' "($t1 - $t0) / $TICKS / (($ACKED + 1) / 1e6)")
    HWM_KB=$(status_kb "$pid" VmHWM)
}

# Formats the measured globals as a table row's first columns.
http_cells() { # label server
    printf '| %s | %s | %s M | %s | %s | %s | %s | %s | %s' "$1" "$2" \
        "$(calc '%.3f' "$LPS/1e6")" "$(jq .mb_per_sec "$J")" \
        "$(ms "$(jq .p50_us "$J")")" "$(ms "$(jq .p99_us "$J")")" "$(ms "$(jq .p999_us "$J")")" \
        "$CPU_PER_M" "$(calc '%.1f' "$HWM_KB/1024")"
}

# The counts a correct HTTP run must show: every request carried `lines` lines, nothing
# errored, and each listed sink holds exactly the acknowledged lines, once each.
check_http() { # name lines sinks...
    local name=$1 lines=$2 s u d why=""
    shift 2
    [ "$ACKED" -gt 0 ] || why+="nothing acknowledged; "
    [ "$PER" = "$lines" ] || why+="lines per request $PER, not $lines; "
    [ "$ACKED" -eq $((REQS * lines)) ] || why+="acked $ACKED ≠ $REQS requests × $lines; "
    [ "$SENT" -eq "$ACKED" ] || why+="errors $ERRS; "
    COUNTS="$ACKED"
    for s in s1 s2; do
        if [[ " $* " == *" $s "* ]]; then
            settle "$s" "$name" "$ACKED"
            u=$(run_field "$s" "$name" unique)
            d=$(run_field "$s" "$name" duplicates)
            COUNTS+=" / $u"
            [ "$u" -eq "$ACKED" ] || why+="$s has $u unique (lost $((ACKED - u))); "
            [ "$d" -eq 0 ] || why+="$s has $d duplicates; "
        else
            COUNTS+=" / –"
        fi
    done
    if [ -z "$why" ]; then
        RESULT=PASS
    else
        RESULT="FAIL: ${why%; }"
        FAILED=1
    fi
}

reset_sinks() { sink_post s1 reset; sink_post s2 reset; }

haproxy_http() { # name lines conns args...
    local name=$1 lines=$2 conns=$3
    shift 3
    [ "$HAPROXY" = 1 ] || return 0
    reset_sinks
    start_haproxy "$name"
    measure_http "$name-haproxy" "$HAPROXY_PID" "$HTTP_ADDR" --lines "$lines" --connections "$conns" "$@"
    stop "$HAPROXY_PID"
    check_http "$name-haproxy" "$lines" s1
    record_http "$name" haproxy "$lines" "$conns" 1 "$@"
    HA_LPS[$name]=$LPS
    HA_P99[$name]=$(jq .p99_us "$J")
    HA_CPU[$name]=$CPU_PER_M
    HA_RSS[$name]=$HWM_KB
    row "$(http_cells "$name" haproxy) | $COUNTS | $RESULT | | | |"
}

ratio() { # ours theirs
    if [ -n "$2" ] && awk "BEGIN{exit !($2 > 0)}"; then calc '%.2f×' "$1/$2"; else echo "–"; fi
}

relay_http() { # name lines conns outputs compare-to args...
    local name=$1 lines=$2 conns=$3 outputs=$4 base=$5 sinks="s1 s2"
    shift 5
    [ "$outputs" = 1 ] && sinks=s1
    reset_sinks
    start_relay "$name" "$outputs" 0
    measure_http "$name" "$RELAY_PID" "$HTTP_ADDR" --lines "$lines" --connections "$conns" "$@"
    check_http "$name" "$lines" $sinks
    stop "$RELAY_PID"
    record_http "$name" "$LABEL" "$lines" "$conns" "$outputs" "$@"
    RELAY_LPS[$name]=$LPS
    RELAY_CPU[$name]=$CPU_PER_M
    row "$(http_cells "$name" relay) | $COUNTS | $RESULT | $(ratio "$LPS" "${HA_LPS[$base]:-}") | $(ratio "$(jq .p99_us "$J")" "${HA_P99[$base]:-}") | $(ratio "$CPU_PER_M" "${HA_CPU[$base]:-}") |"
}

# --- workloads ------------------------------------------------------------------------
for spec in "http-100x32 100 32" "http-1000x32 1000 32" "http-100x128 100 128" \
    "http-1000x128 1000 128" "http-10x2000 10 2000" "gzip-1000x32 1000 32 --gzip"; do
    read -r name lines conns extra <<<"$spec"
    wanted "$name" || continue
    say "$name: HAProxy, then the relay ($DURATION each)"
    # shellcheck disable=SC2086 # extra is a flag list
    haproxy_http "$name" "$lines" "$conns" $extra
    # shellcheck disable=SC2086
    relay_http "$name" "$lines" "$conns" 2 "$name" $extra
done

# Same topology as HAProxy (one backend): separates the cost of fan-out from the rest.
if wanted one-output-100x32; then
    say "one-output-100x32: the relay with only sink s1"
    relay_http one-output-100x32 100 32 1 http-100x32
fi

# Write APIs (issue 13): the same load in through /write, /api/v2/write and
# /api/v3/write_lp, then in through /write and out to both sinks' /api/v2/write; each
# compared with the /write run of its round (lines/s and CPU per line; target within
# 10%). A shared machine's noise is larger than that from one 5 s run to the next, so
# the four run back to back, API_ROUNDS times (default 3), and the median of the
# per-round ratios is what counts.
API_ROUNDS=${API_ROUNDS:-3}
declare -A API_LPS_RATIOS API_CPU_RATIOS
api_workload() { # name round output-path output-extra loadtest-args...
    local name=$1 round=$2
    OUTPUT_PATH=$3 OUTPUT_EXTRA=$4
    shift 4
    say "$name (round $round of $API_ROUNDS): the relay, $* ($DURATION)"
    relay_http "$name" 100 32 2 none "$@"
    OUTPUT_PATH=/write OUTPUT_EXTRA=""
    local base=api-v1-100x32
    if [ "$name" != $base ]; then
        API_LPS_RATIOS[$name]+="$(calc '%.3f' "$LPS/${RELAY_LPS[$base]}") "
        API_CPU_RATIOS[$name]+="$(calc '%.3f' "$CPU_PER_M/${RELAY_CPU[$base]}") "
    fi
}
median() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
if wanted api-v1-100x32; then
    for round in $(seq "$API_ROUNDS"); do
        api_workload api-v1-100x32 "$round" /write ""
        wanted api-v2-100x32 && api_workload api-v2-100x32 "$round" /write "" --api v2
        wanted api-v3-100x32 && api_workload api-v3-100x32 "$round" /write "" --api v3
        wanted api-v2-out-100x32 && api_workload api-v2-out-100x32 "$round" /api/v2/write ', org = "bench"'
    done
    for name in api-v2-100x32 api-v3-100x32 api-v2-out-100x32; do
        [ -n "${API_LPS_RATIOS[$name]:-}" ] || continue
        row "| $name ÷ api-v1-100x32, median of $API_ROUNDS rounds | relay | $(median "${API_LPS_RATIOS[$name]}")× lines/s (${API_LPS_RATIOS[$name]% }) | | | | | $(median "${API_CPU_RATIOS[$name]}")× CPU/line (${API_CPU_RATIOS[$name]% }) | | | | | | |"
    done
fi

# UDP: datagrams of whole lines (~8 of them in 1400 bytes) to the relay, fanned out to
# both sinks' UDP ports. Unpaced finds the ceiling; paced at 100 000/s is the target.
udp_workload() { # name rate|-
    local name=$1 rate=$2 t0 t1 sent dgrams secs cells s u ticks drops
    wanted "$name" || return 0
    say "$name: UDP to the relay, fanned out to both sinks ($DURATION)"
    reset_sinks
    start_relay "$name" 2 0
    local pace=()
    [ "$rate" = - ] || pace=(--rate "$rate")
    t0=$(cpu_ticks "$RELAY_PID")
    "$LOADTEST" run --udp-only --udp "$UDP_ADDR" --duration "$DURATION" --run-id "$name" --json "${pace[@]}" \
        >"$WORK/$name.json" 2>"$WORK/$name.err"
    t1=$(cpu_ticks "$RELAY_PID")
    J="$WORK/$name.json"
    sent=$(jq .udp_lines_sent "$J")
    dgrams=$(jq .udp_datagrams "$J")
    secs=$(jq .duration_secs "$J")
    local lost="" delivered="" outd="" worst=$sent
    for s in s1 s2; do
        settle "$s" "$name" "$sent"
        u=$(run_field "$s" "$name" unique)
        [ "$u" -lt "$worst" ] && worst=$u
        delivered+=" / $u"
        lost+="$s $((sent - u)) ($(calc '%.2f' "100 * ($sent - $u) / ($sent + 1)")%), "
        outd+="$s $(calc '%.0f' "$(sink_stats "$s" | jq .udp_datagrams) / $secs")/s, "
    done
    HWM_KB=$(status_kb "$RELAY_PID" VmHWM)
    # Where the loss happened, when the relay says (influx-relay's periodic summary;
    # another relay's log has no such line, which must not end the script).
    sleep 0.6
    drops=$( (grep 'msg="udp stats"' "$WORK/$name.relay.log" || true) | tail -1 | sed -n 's/.*kernel_drops=\([0-9]*\).*/\1/p')
    stop "$RELAY_PID"
    ticks=$((t1 - t0))
    jq -nc --arg w "$name" --arg s "$LABEL" --argjson sent "$(calc '%.1f' "$dgrams/$secs")" \
        --argjson d1 "$(calc '%.1f' "$(sink_stats s1 | jq .udp_datagrams) / $secs")" \
        --argjson d2 "$(calc '%.1f' "$(sink_stats s2 | jq .udp_datagrams) / $secs")" \
        '{workload: $w, server: $s, kind: "udp", offered_datagrams_per_sec: $sent,
          delivered_datagrams_per_sec: [$d1, $d2]}' >>"$RESULTS"
    cells=$(printf '| %s | relay | %s M | – | – | – | – | %s | %s' "$name" \
        "$(calc '%.3f' "$worst/$secs/1e6")" \
        "$(calc '%.2f' "$ticks / $TICKS / (($sent + 1) / 1e6)")" \
        "$(calc '%.1f' "$HWM_KB/1024")")
    row "$cells | $sent sent$delivered | sent $(calc '%.0f' "$dgrams/$secs") datagrams/s ($(calc '%.1f' "$sent/($dgrams+1)") lines each); delivered ${outd%, }; lost ${lost%, }${drops:+; relay socket overflowed by $drops datagrams}; relay CPU $(calc '%.1f' "$ticks / $TICKS * 1e6 / ($dgrams + 1)") µs per datagram in | | | |"
}
udp_workload udp-max -
udp_workload udp-100k 100000

# One sink answers after 50 ms, the other at full speed: ack = any lets clients go at
# the fast sink's pace; the slow sink's queue fills and its excess is dropped (counted).
if wanted slow-sink-100x32; then
    say "slow-sink-100x32: sink s2 delays every write by 50 ms ($DURATION)"
    reset_sinks
    sink_post s2 'control?mode=delay&ms=50'
    start_relay slow-sink-100x32 2 0
    measure_http slow-sink-100x32 "$RELAY_PID" "$HTTP_ADDR" --lines 100 --connections 32
    check_http slow-sink-100x32 100 s1
    slow=$(run_field s2 slow-sink-100x32 unique)
    stop "$RELAY_PID"
    sink_post s2 'control?mode=ok'
    fast=$(calc '%.3f' "$(run_field s1 slow-sink-100x32 unique) / $(jq .duration_secs "$J") / 1e6")
    row "$(http_cells slow-sink-100x32 relay) | ${COUNTS% / *} / $slow (slow) | $RESULT; fast sink $fast M lines/s = $(ratio "$fast*1e6" "${RELAY_LPS[http-100x32]:-}") of http-100x32 | $(ratio "$LPS" "${HA_LPS[http-100x32]:-}") | | |"
fi

# RAM retry buffer of 64 MiB per output with sink s2 down for the whole run: its
# writes pile up in the buffer, which must cap the relay's memory.
if wanted ram-buffer-64m; then
    say "ram-buffer-64m: buffer-size-mb = 64, sink s2 down ($DURATION)"
    reset_sinks
    start_relay ram-buffer-64m 2 64
    sink_post s2 "control?mode=down&secs=$((${DUR_SECS%.*} + 2))"
    measure_http ram-buffer-64m "$RELAY_PID" "$HTTP_ADDR" --lines 100 --connections 32
    check_http ram-buffer-64m 100 s1
    stop "$RELAY_PID"
    row "$(http_cells ram-buffer-64m relay) | ${COUNTS% / *} / down | $RESULT; peak RSS = $(calc '%.2f' "$HWM_KB/1024/64")× buffer-size-mb | | | |"
    for _ in $(seq 100); do sink_up s2 && break; sleep 0.1; done
fi

# N idle keep-alive connections: RSS growth per connection, after connecting and after
# one /ping each (a connection that has served a request).
idle_probe() { # pid addr label connections
    python3 - "$1" "${2#*:}" "$4" >"$WORK/idle-$3.json" <<'PY'
import json, socket, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def kb(key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0
rss0 = kb("VmRSS")
socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
time.sleep(1.0)
rss1 = kb("VmRSS")
ok = 0
# One at a time, so a proxy in front of the sink can reuse one server connection.
for s in socks:
    s.sendall(b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n")
    try:
        if s.recv(4096).startswith(b"HTTP/1.1 204"):
            ok += 1
    except OSError:
        pass
time.sleep(1.0)
rss2 = kb("VmRSS")
# Still open: a closed connection would read as EOF rather than block.
open_ = 0
for s in socks:
    s.setblocking(False)
    try:
        open_ += s.recv(1) != b""
    except BlockingIOError:
        open_ += 1
print(json.dumps({"n": n, "rss0_kb": rss0, "rss_connected_kb": rss1, "rss_served_kb": rss2,
                  "hwm_kb": kb("VmHWM"), "pinged": ok, "open": open_}))
PY
}
idle_row() { # label server pid
    local f="$WORK/idle-$1.json" n per1 per2 why=""
    n=$(jq .n "$f")
    per1=$(jq '(.rss_connected_kb - .rss0_kb) / .n' "$f")
    per2=$(jq '(.rss_served_kb - .rss0_kb) / .n' "$f")
    [ "$(jq .pinged "$f")" -eq "$n" ] || why+="only $(jq .pinged "$f") of $n answered /ping; "
    [ "$(jq .open "$f")" -eq "$n" ] || why+="only $(jq .open "$f") of $n still open; "
    if [ -z "$why" ]; then RESULT=PASS; else RESULT="FAIL: ${why%; }"; FAILED=1; fi
    IDLE_PER[$2]=$per2
    row "| idle-10k | $2 | – | – | – | – | – | – | $(calc '%.1f' "$(jq .hwm_kb "$f")/1024") | $n connections: $(calc '%.2f' "$per1") KiB each connected, $(calc '%.2f' "$per2") KiB each after one /ping | $RESULT | | | $(if [ "$2" = relay ]; then echo "RSS/conn $(ratio "$per2" "${IDLE_PER[haproxy]:-}")"; fi) |"
}
declare -A IDLE_PER
if wanted idle-10k; then
    if [ "$HAPROXY" = 1 ]; then
        n=$((IDLE_CONNECTIONS < HAPROXY_MAXCONN - 50 ? IDLE_CONNECTIONS : HAPROXY_MAXCONN - 50))
        say "idle-10k: $n idle keep-alive connections to HAProxy (its maxconn is $HAPROXY_MAXCONN)"
        start_haproxy idle-10k
        idle_probe "$HAPROXY_PID" "$HTTP_ADDR" haproxy "$n"
        idle_row haproxy haproxy
        stop "$HAPROXY_PID"
    fi
    say "idle-10k: $IDLE_CONNECTIONS idle keep-alive connections to the relay"
    start_relay idle-10k 2 0
    idle_probe "$RELAY_PID" "$HTTP_ADDR" relay "$IDLE_CONNECTIONS"
    idle_row relay relay
    stop "$RELAY_PID"
fi

# --- the spool alone against the disk -------------------------------------------------
# benches/spool.rs (criterion) appends 100-line writes to a Spool, one fdatasync per
# group of 1 or 16, and replays 64 MiB; dd writes blocks of the same sizes with
# oflag=dsync into the same directory, before and after, so the disk's own rate is
# measured beside the spool's. Reported: writes/s and MB/s, and their ratio to dd.
# Runs before the outage workloads: the gigabytes they spool are still being written
# back by the host for a minute after, which slows this disk several times over.
spool_estimate() { # criterion-id → mean ns per iteration
    jq '.mean.point_estimate' "target/criterion/$1/new/estimates.json"
}
dd_rate() { # dir block-bytes count → "writes/s MB/s"
    local out secs
    out=$(timeout 60 dd if=/dev/zero of="$1/dd.bin" bs="$2" count="$3" oflag=dsync 2>&1 | tail -1)
    rm -f "$1/dd.bin"
    secs=$(sed -n 's/.*copied, \([0-9.e-]*\) s.*/\1/p' <<<"$out")
    [ -n "$secs" ] || { echo "0 0"; return; }
    calc '%.0f' "$3 / $secs"
    printf ' '
    calc '%.1f\n' "$2 * $3 / $secs / 1e6"
}
# The disk's speed moves (the host writes back what the guest wrote, for a minute or
# more), so each spool measurement sits between two dd runs of its block size, and
# the ratio is given against both; they disagree when the disk changed under us.
spool_vs_dd() { # label criterion-id block-bytes dd-count
    local before after ns per id=$2
    sync
    read -r before before_mb <<<"$(dd_rate "$SPOOL_DIR" "$3" "$4")"
    SPOOL_BENCH_DIR=$PWD/$SPOOL_DIR cargo bench --quiet --bench spool -- \
        --warm-up-time 1 --measurement-time 3 "^$id\$" >>"$WORK/spool-disk.criterion.txt" 2>&1
    read -r after after_mb <<<"$(dd_rate "$SPOOL_DIR" "$3" "$4")"
    # criterion names the directory after the group, `/` in it turned into `_`.
    if [ ! -f "target/criterion/$(sed 's|/|_|' <<<"$id")/new/estimates.json" ]; then
        row "| $1 | FAIL: no criterion result for $id (see $WORK/spool-disk.criterion.txt) | | |"
        FAILED=1
        return
    fi
    ns=$(spool_estimate "$(sed 's|/|_|' <<<"$id")")
    per=$(calc '%.0f' "1e9 / $ns")
    row "| $1 | $per /s, $(calc '%.1f' "$per * $3 / 1e6") MB/s | $before → $after /s ($before_mb → $after_mb MB/s) | $(ratio "$per" "$before") – $(ratio "$per" "$after") |"
    printf '{"label":"%s","spool_per_sec":%s,"block_bytes":%s,"dd_before_per_sec":%s,"dd_after_per_sec":%s}\n' \
        "$1" "$per" "$3" "$before" "$after" >>"$WORK/spool-disk.json"
}
if named spool-disk; then
    say "spool-disk: spool appends (fdatasync per group) and replay, dd oflag=dsync around each"
    SPOOL_DIR=target/tmp/spool-bench
    mkdir -p "$SPOOL_DIR"
    : >"$WORK/spool-disk.json"
    BODY=26636 # 100 telegraf lines (benches/common): the criterion ids carry the size
    row ""
    row "| spool-disk | spool | dd oflag=dsync, same block, before → after | spool ÷ dd (before – after) |"
    row "|---|---:|---:|---:|"
    spool_vs_dd "append 1 write of $BODY B + fdatasync" "spool/append/1x${BODY}B" "$BODY" 2000
    spool_vs_dd "append 16 writes ($((16 * BODY)) B) + fdatasync" "spool/append/16x${BODY}B" $((16 * BODY)) 300
    SPOOL_BENCH_DIR=$PWD/$SPOOL_DIR cargo bench --quiet --bench spool -- \
        --warm-up-time 1 --measurement-time 3 "^spool/replay/" >>"$WORK/spool-disk.criterion.txt" 2>&1
    replay_id=$(cd target/criterion/spool_replay 2>/dev/null && ls -d ./*x"${BODY}"B 2>/dev/null | head -1)
    replay_id=${replay_id#./}
    if [ -n "$replay_id" ]; then
        rwrites=${replay_id%%x*}
        rns=$(spool_estimate "spool_replay/$replay_id")
        row "| replay $rwrites writes (peek 4 MiB, consume; page cache) | $(calc '%.0f' "$rwrites * 1e9 / $rns") writes/s, $(calc '%.1f' "$rwrites * $BODY * 1e3 / $rns") MB/s | – | – |"
        printf '{"label":"replay","writes":%s,"ns":%s,"body_bytes":%s}\n' "$rwrites" "$rns" "$BODY" >>"$WORK/spool-disk.json"
    else
        row "| replay | FAIL: no criterion result (see $WORK/spool-disk.criterion.txt) | | |"
        FAILED=1
    fi
fi

# --- a backend down (or slow) at full load ------------------------------------------------
# Sink s2 is stopped for OUTAGE_SECS in the middle of a full-load run, then comes back on
# the same port. The sink's `mode=down` closes its listener and cuts every connection
# (the relay sees connection refused, as from a killed process) but keeps its counts, so
# the loss/duplicate oracle covers the whole run; a killed process would forget what it
# had received. Phases of the run (seconds from its start): 2 s of warm-up, `before` up
# to OUTAGE_AT, `during` the outage, `after` from the return to the end. The healthy
# run (same relay, same configuration, nothing stopped) comes first and is what the
# others are compared with, phase by phase: the relay may fall behind even with both
# sinks up, so `before` alone is not a healthy baseline.
OUTAGE_AT=8
OUTAGE_SECS=8
OUTAGE_AFTER=12
# After the load stops, how long the relay gets to report the backend caught up.
CATCHUP_GRACE=20
# Spool per output: room for the whole backlog, a quarter of the free disk at most.
OUTAGE_SPOOL_MB=$(df -Pm "$WORK" | awk 'NR == 2 {m = int($4 / 4); print (m < 16384 ? m : 16384)}')
OUTAGE_HEADER=0

# perf counts the relay's fdatasync/fsync calls per second (the relay exports no fsync
# counter); without perf or the permission to trace, that column stays empty.
fsync_counter() { # pid out
    command -v perf >/dev/null 2>&1 || return 0
    perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p "$1" -I 1000 -x, \
        -o "$2" 2>/dev/null &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
    PERF_START=$(date +%s%3N)
}

relay_status() { curl -s "http://$HTTP_ADDR/status"; }

declare -A HEALTHY
outage_workload() { # name ack none|down|slow [extra output keys]
    local name=$1 ack=$2 mode=$3 extra=${4:-} t0 t_down t_up load_pid end s
    [ "$mode" = none ] || named "$name" || return 0
    say "$name: 32 connections × 100 lines, ack = $ack, spool on both outputs; s2 $mode for ${OUTAGE_SECS}s at ${OUTAGE_AT}s"
    reset_sinks
    RELAY_ACK=$ack
    OUTPUT_EXTRA=", spool-size-mb = $OUTAGE_SPOOL_MB$extra"
    start_relay "$name" 2 0
    RELAY_ACK=any
    OUTPUT_EXTRA=""
    PERF_PID="" PERF_START=""
    fsync_counter "$RELAY_PID" "$WORK/$name.perf"
    rm -f "$WORK/$name.stop"
    python3 scripts/bench-outage.py poll --status "http://$HTTP_ADDR/status" --pid "$RELAY_PID" \
        --out "$WORK/$name.poll" --stop "$WORK/$name.stop" \
        --max-secs $((OUTAGE_AT + OUTAGE_SECS + OUTAGE_AFTER + CATCHUP_GRACE + 20)) &
    PIDS+=("$!")
    local poll_pid=$!
    local total=$((OUTAGE_AT + OUTAGE_SECS + OUTAGE_AFTER)) back=$((OUTAGE_AT + OUTAGE_SECS))
    local after=(--phase "after=${back}s-${total}s")
    [ "$mode" != none ] || { total=$back; after=(); }
    t0=$(date +%s%3N)
    "$LOADTEST" run --target "http://$HTTP_ADDR" --duration "${total}s" --run-id "$name" --json \
        --lines 100 --connections 32 \
        --phase "before=$((OUTAGE_AT - 8))s-${OUTAGE_AT}s" \
        --phase "during=${OUTAGE_AT}s-${back}s" "${after[@]}" \
        >"$WORK/$name.json" 2>"$WORK/$name.err" &
    load_pid=$!
    PIDS+=("$load_pid")
    local wait_ms=$((t0 + OUTAGE_AT * 1000 - $(date +%s%3N)))
    [ "$wait_ms" -le 0 ] || sleep "$(calc '%.3f' "$wait_ms / 1000")"
    t_down=$(date +%s%3N)
    if [ "$mode" = none ]; then
        sleep "$OUTAGE_SECS"
    elif [ "$mode" = down ]; then
        sink_post s2 "control?mode=down&secs=$OUTAGE_SECS"
        # The sink rebinds by itself after the outage; the return is when it answers.
        sleep "$((OUTAGE_SECS - 1))"
        for _ in $(seq 100); do sink_up s2 && break; sleep 0.05; done
    else
        sink_post s2 'control?mode=delay&ms=50'
        sleep "$OUTAGE_SECS"
        sink_post s2 'control?mode=ok'
    fi
    t_up=$(date +%s%3N)
    wait "$load_pid" || true
    # Bounded wait (a healthy relay can lag too: it gets the same grace) for the relay to report s2 up again, load or no load.
    end=$(($(date +%s) + CATCHUP_GRACE))
    while [ "$(date +%s)" -lt "$end" ]; do
        s=$(relay_status | jq -r '[.http[0].backends[].state] | unique | join(",")' 2>/dev/null || true)
        [ "$s" = up ] && break
        sleep 0.25
    done
    sleep 0.5
    touch "$WORK/$name.stop"
    wait "$poll_pid" 2>/dev/null || true
    [ -z "$PERF_PID" ] || { kill -INT "$PERF_PID" 2>/dev/null || true; wait "$PERF_PID" 2>/dev/null || true; }
    local acked
    acked=$(jq .lines_acked "$WORK/$name.json")
    settle s1 "$name" "$acked"
    settle s2 "$name" "$acked"
    curl -s "http://$HTTP_ADDR/metrics" >"$WORK/$name.metrics"
    relay_status >"$WORK/$name.status.json"
    printf '{"t0_ms":%s,"down_ms":%s,"up_ms":%s,"hwm_kb":%s,"healthy":%s}\n' "$t0" "$t_down" "$t_up" \
        "$(status_kb "$RELAY_PID" VmHWM)" "$([ "$mode" = none ] && echo true || echo false)" \
        >"$WORK/$name.events.json"
    printf '{"s1":%s,"s2":%s}\n' "$(sink_stats s1)" "$(sink_stats s2)" >"$WORK/$name.sinks.json"
    stop "$RELAY_PID"
    [ "$mode" = down ] || sink_post s2 'control?mode=ok'
    python3 scripts/bench-outage.py report --load "$WORK/$name.json" --poll "$WORK/$name.poll" \
        ${PERF_START:+--perf "$WORK/$name.perf" --perf-start "$PERF_START"} \
        --events "$WORK/$name.events.json" --metrics "$WORK/$name.metrics" \
        --sinks "$WORK/$name.sinks.json" --backend s2 >"$WORK/$name.summary.json"
    outage_row "$name" "$WORK/$name.summary.json"
}

# One table row from a summary (bench-outage.py report), judged against the targets:
# during the outage ≥ 0.8× the healthy run's lines/s over the same seconds and p99
# ≤ 2× its p99, the backend caught up while live traffic ran at least twice as fast as
# its backlog built up (catch-up ≤ half the outage), nothing lost, duplicated or
# dropped. The healthy row is judged on the last three only.
outage_row() { # name summary
    local f=$2 why="" r healthy
    healthy=$(jq .healthy "$f")
    if [ "$OUTAGE_HEADER" = 0 ]; then
        OUTAGE_HEADER=1
        row ""
        row "| workload | lines/s before / during / after | during ×healthy (×before) | p99 ms before / during / after | p99 during ×healthy (×before) | spool during outage: points/s, MB/s, disk MB/s, fsync/s | backlog at return MB | s2 caught up after s (outage ÷ catch-up) | every backend up after s | peak RSS MiB | relay drop counters | lost / dup s1, s2 | request errors | result |"
        row "|---|---|---:|---|---:|---|---:|---|---|---:|---|---|---|---|"
    fi
    local lb ld la pb pd pa rl="–" rp="–" cu="–" sp up
    lb=$(jq '.phases.before.lines_per_sec // 0' "$f")
    ld=$(jq '.phases.during.lines_per_sec // 0' "$f")
    la=$(jq '.phases.after.lines_per_sec // 0' "$f")
    pb=$(jq '.phases.before.p99_us // 0' "$f")
    pd=$(jq '.phases.during.p99_us // 0' "$f")
    pa=$(jq '.phases.after.p99_us // 0' "$f")
    up=$(jq -r '.catchup.all_backends_up_secs | if . == null then "not within '"$CATCHUP_GRACE"' s of the end" else (. * 100 | round / 100 | tostring) end' "$f")
    if [ "$healthy" = true ]; then
        HEALTHY[ld]=$ld
        HEALTHY[pd]=$pd
        sp=–
    else
        if [ -n "${HEALTHY[ld]:-}" ]; then
            rl=$(calc '%.2f' "$ld / (${HEALTHY[ld]} + 1e-9)")
            rp=$(calc '%.2f' "$pd / (${HEALTHY[pd]} + 1e-9)")
            awk "BEGIN{exit !($rl >= 0.8)}" || why+="lines/s during ${rl}× healthy (< 0.8×); "
            awk "BEGIN{exit !($rp <= 2)}" || why+="p99 during ${rp}× healthy (> 2×); "
            rl+="× ($(calc '%.2f' "$ld / ($lb + 1e-9)")×)"
            rp+="× ($(calc '%.2f' "$pd / ($pb + 1e-9)")×)"
        fi
        cu=$(jq -r 'if .catchup.secs == null then "not within '"$CATCHUP_GRACE"' s of the end" else "\(.catchup.secs * 100 | round / 100) (\(.catchup.speed_vs_build * 100 | round / 100)×)\(if .catchup.during_live_traffic then "" else ", after the load stopped" end)" end' "$f")
        jq -e '.catchup.during_live_traffic and .catchup.speed_vs_build >= 2' "$f" >/dev/null ||
            why+="s2 catch-up $cu; "
        sp=$(jq -r '.spool | "\(.points_per_sec / 1e6 * 1000 | round / 1000) M, \(.spool_bytes_per_sec / 1e6 | round), \(.disk_write_bytes_per_sec / 1e6 | round), \(if .fsyncs_per_sec == null then "–" else (.fsyncs_per_sec | round | tostring) end)"' "$f")
    fi
    local drops
    drops=$(jq -r '.drops | to_entries | map(select(.value > 0) | "\(.key | gsub("[{}\"]"; "") | gsub("listener=[^,]*,"; "")) \(.value)") | if length == 0 then "0" else join("; ") end' "$f")
    [ "$(jq .drops_total "$f")" -eq 0 ] || why+="relay dropped $(jq .drops_total "$f") points; "
    r=$(jq -r '[.oracle.s1, .oracle.s2] | map("\(.lost) / \(.duplicates)") | join(", ")' "$f")
    jq -e '[.oracle[] | .lost == 0 and .duplicates == 0] | all' "$f" >/dev/null || why+="sinks lost or duplicated lines ($r); "
    local errs
    errs=$(jq -c .errors "$f")
    [ "$errs" = "{}" ] || why+="request errors $errs; "
    if [ -z "$why" ]; then RESULT=PASS; else RESULT="FAIL: ${why%; }"; FAILED=1; fi
    local la_s pa_s
    la_s=$(calc '%.3f' "$la/1e6")
    pa_s=$(ms "$pa")
    [ "$healthy" = false ] || { la_s=–; pa_s=–; }
    row "| $1 | $(calc '%.3f' "$lb/1e6") / $(calc '%.3f' "$ld/1e6") / $la_s M | $rl | $(ms "$pb") / $(ms "$pd") / $pa_s | $rp | $sp | $(jq '.spool.backlog_bytes_at_return / 1e6 | round' "$f") | $cu | $up | $(calc '%.1f' "$(jq .peak_rss_kb "$f")/1024") | $drops | $r | $errs | $RESULT |"
}

if named outage-down || named outage-down-all || named outage-slow || named outage-down-paced \
    || named outage-slow-paced; then
    outage_workload outage-healthy any none
fi
outage_workload outage-down any down
outage_workload outage-down-all all down
outage_workload outage-slow any slow
# The same two with the catch-up given priority over live writes (half its speed).
outage_workload outage-down-paced any down ", catch-up-live-percent = 50"
outage_workload outage-slow-paced any slow ", catch-up-live-percent = 50"

{
    echo
    echo "threads = $CORES, concurrency = $CONCURRENCY per output, ack = any, $DURATION per workload;"
    echo "relay command: $RELAY_CMD; raw results in $WORK"
} | tee -a "$TABLE"
[ -z "$OUT" ] || cp "$TABLE" "$OUT"

# results.json: this run and its HTTP and UDP figures, then the charts drawn from it.
jq -s --arg id "$(basename "$WORK")" --arg lbl "$LABEL" --arg when "$(date '+%Y-%m-%d %H:%M')" \
    --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --arg note "$CORES cores, $DURATION per workload" \
    '{"runs": [{"id": $id, "label": $lbl, "when": $when, "commit": $commit, "note": $note}],
      "results": map(. + {"run": $id})}' "$RESULTS" >"$WORK/results.json"
if [ "$(jq '.results | length' "$WORK/results.json")" -gt 0 ]; then
    say "charts from $WORK/results.json${COMPARE[*]:+ and ${COMPARE[*]}}"
    python3 scripts/bench-charts.py "$WORK/results.json" "${COMPARE[@]}" --out "${CHARTS:-$WORK/charts}" >&2
fi
exit $FAILED
